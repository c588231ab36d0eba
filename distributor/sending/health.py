"""Relays resting and domains slowed down, shared by every worker through the database: a rare
write (a relay failed, a domain said "too many"), read by each dispatcher about once a second."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.db import insert_ignoring_duplicates
from distributor.sending.models import RouteStrain
from distributor.sending.routing import Strain


def read_strains(session: Session) -> dict[str, Strain]:
    """Every strain: ``relay:<name>`` and ``domain:<domain>`` keys."""
    rows = session.execute(select(RouteStrain.key, RouteStrain.level, RouteStrain.until))
    return {key: Strain(level, until) for key, level, until in rows}


def strain(session: Session, key: str, step: Callable[[Strain | None], Strain]) -> Strain:
    """Move ``key``'s strain on by ``step`` (from what the store holds, under a row lock, so two
    workers seeing the same failure add one level, not two rests from scratch)."""
    insert_ignoring_duplicates(session, RouteStrain, [{"key": key, "level": 0, "until": 0.0}])
    row = session.scalars(select(RouteStrain).where(RouteStrain.key == key).with_for_update()).one()
    new = step(Strain(row.level, row.until) if row.level else None)
    row.level, row.until = new.level, new.until
    return new
