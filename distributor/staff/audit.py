"""The audit log: who did what to which send, issue, subscriber or account, and when."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.staff.models import TARGET_ID_MAX, AuditEntry, StaffUser

AUDIT_SHOWN = 50


def target_key(target_id: int | str) -> str:
    """The column's form of a target: as it is, or, past ``TARGET_ID_MAX`` (a list name may be
    100 characters), its start and a hash of the whole, so that each still has its own key."""
    text = str(target_id)
    if len(text) <= TARGET_ID_MAX:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{text[:TARGET_ID_MAX - 17]}~{digest}"


def record_audit(
    session: Session,
    user: StaffUser | None,
    action: str,
    target_kind: str | None = None,
    target_id: int | str | None = None,
    detail: Mapping[str, object] | None = None,
    *,
    actor: str | None = None,
) -> AuditEntry:
    """In the caller's transaction, so the entry exists exactly when the action happened.
    ``actor`` names someone without an account (``cli``)."""
    entry = AuditEntry(
        user_id=user.id if user else None,
        actor=user.name if user else (actor or "system"),
        action=action,
        target_kind=target_kind,
        target_id=None if target_id is None else target_key(target_id),
        detail={
            **(detail or {}),
            **({"target": str(target_id)} if target_id is not None
               and target_key(target_id) != str(target_id) else {}),
        },
    )
    session.add(entry)
    session.flush()
    return entry


def audit_of(
    session: Session, target_kind: str, target_id: int | str, limit: int = AUDIT_SHOWN
) -> Sequence[AuditEntry]:
    """The newest entries about one thing, newest first."""
    return session.scalars(
        select(AuditEntry)
        .where(AuditEntry.target_kind == target_kind, AuditEntry.target_id == target_key(target_id))
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    ).all()


def recent_audit(session: Session, limit: int = AUDIT_SHOWN) -> Sequence[AuditEntry]:
    return session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).all()
