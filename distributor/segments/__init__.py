"""Saved segments: audiences defined by a reader's lists, tags, attributes, channel, format,
sign-up date and engagement (opens, clicks, soft bounces), combined with and/or/not.

The language (:mod:`.language`) is read by a pure parser; :mod:`.compile` turns its tree into
SQLAlchemy conditions that the database evaluates; :mod:`.store` keeps the segments (table
``segments``, :mod:`.models`). A send's audience carries its segment's expression, and the
subscriber store's audience query (:func:`subscribers.query.audience_conditions`, which the
planner and every count use) compiles it through the compiler installed here (:func:`install`).

An engine-floor room: it reads the sending engine's sends and deliveries and the readers'
engagement events; only ``campaigns``, ``runtime`` and the faces import it.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement

from distributor.db import utcnow
from distributor.segments.compile import compile_where
from subscribers.query import install_where_compiler


def _compile(source: str, zone: str, on_a_list: bool) -> list[ColumnElement[bool]]:
    return compile_where(source, ZoneInfo(zone), utcnow(), on_a_list=on_a_list)


def install() -> None:
    """Let this process read segments' audiences (done on import; a worker calls it to say so)."""
    install_where_compiler(_compile)


install()
