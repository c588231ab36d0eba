"""Who may call the API: a bearer token from ``distributor users token NAME``; viewers read,
editors also write. Every write records an audit entry in its own transaction."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from distributor.errors import NotFound


def _provisional() -> object:  # replaced by the staff accounts' dependencies on merge
    raise NotFound("no accounts yet")


Viewer = Annotated[object, Depends(_provisional)]
Editor = Annotated[object, Depends(_provisional)]


def audit(
    session: Session,
    user: object,
    action: str,
    kind: str,
    target: int | str,
    detail: dict[str, object] | None = None,
) -> None:
    """Who did what to which thing, in the transaction that did it."""
