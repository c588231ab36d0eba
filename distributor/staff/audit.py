"""The audit log: who did what to which send, issue, subscriber or account, and when."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.staff.models import AuditEntry, StaffUser

AUDIT_SHOWN = 50


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
        target_id=None if target_id is None else str(target_id),
        detail=dict(detail or {}),
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
        .where(AuditEntry.target_kind == target_kind, AuditEntry.target_id == str(target_id))
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    ).all()


def recent_audit(session: Session, limit: int = AUDIT_SHOWN) -> Sequence[AuditEntry]:
    return session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).all()
