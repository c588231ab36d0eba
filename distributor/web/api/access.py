"""Who may call the API: a bearer token from ``distributor users token NAME``; viewers read,
editors also write (admins too). Every write records an audit entry in the transaction that
made it, so the entry exists exactly when the change does."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from distributor.staff.audit import record_audit
from distributor.staff.models import StaffUser
from distributor.web.staff_auth import ApiEditorDep, ApiUserDep

Viewer = ApiUserDep  # any role reads
Editor = ApiEditorDep


def audit(
    session: Session,
    user: StaffUser,
    action: str,
    kind: str,
    target: int | str,
    detail: Mapping[str, object] | None = None,
) -> None:
    record_audit(session, user, action, kind, target, {"via": "api", **(detail or {})})
