"""Saved segments: create, edit, delete, count them, and the audience of a send to one.

Every check happens when a segment is saved, so a send to it never meets a surprise: the
expression must read, and the lists and tags it names must exist (a misspelt list would be an
empty audience, not an error, by the time anyone noticed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.db import counting_over_readers, utcnow
from distributor.errors import AlreadyExists, DistributorError, NotFound
from distributor.segments.language import All, Any_, Facet, Node, Not, parse
from distributor.segments.models import DESCRIPTION_MAX, SEGMENT_NAME_MAX, Segment
from distributor.sending.queries import check_lists
from distributor.snapshot_counts import counted_rows
from subscribers.csvfile import check_label
from subscribers.models import Subscriber, Tag
from subscribers.query import Audience, audience_conditions


@dataclass(frozen=True)
class SegmentView:
    id: int
    name: str
    expression: str
    description: str
    created_at: datetime
    updated_at: datetime


def _view(segment: Segment) -> SegmentView:
    return SegmentView(
        segment.id,
        segment.name,
        segment.expression,
        segment.description,
        segment.created_at,
        segment.updated_at,
    )


def named(node: Node, field: str) -> list[str]:
    """The values of every ``field`` facet (list, tag) anywhere in the tree, in order."""
    match node:
        case All(items) | Any_(items):
            return [value for item in items for value in named(item, field)]
        case Not(item):
            return named(item, field)
        case Facet(name, values) if name == field:
            return list(values)
    return []


def check_expression(session: Session, expression: str, zone: ZoneInfo) -> str:
    """``expression`` stripped, if it reads and every list and tag it names exists."""
    expression = expression.strip()
    node = parse(expression, zone)
    lists = named(node, "list")
    if lists:
        check_lists(session, lists)
    tags = named(node, "tag")
    known = set(session.scalars(select(Tag.name).where(Tag.name.in_(tags)))) if tags else set()
    unknown = [tag for tag in dict.fromkeys(tags) if tag not in known]
    if unknown:
        raise NotFound(
            f"there is no tag named {', '.join(map(repr, unknown))}",
            code="segment.unknown_tag",
            tags="、".join(unknown),
        )
    return expression


def get_segment(session: Session, name: str) -> Segment:
    found = session.scalar(select(Segment).where(Segment.name == name))
    if found is None:
        raise NotFound(f"there is no segment named {name!r}", code="segment.missing", name=name)
    return found


def create_segment(
    session: Session, name: str, expression: str, zone: ZoneInfo, description: str = ""
) -> SegmentView:
    name = check_label("segment", name, SEGMENT_NAME_MAX)
    _check_description(description)
    expression = check_expression(session, expression, zone)
    if session.scalar(select(Segment.id).where(Segment.name == name)) is not None:
        raise AlreadyExists(
            f"a segment named {name!r} exists already", code="segment.taken", name=name
        )
    segment = Segment(name=name, expression=expression, description=description)
    session.add(segment)
    session.flush()
    return _view(segment)


def edit_segment(
    session: Session,
    name: str,
    zone: ZoneInfo,
    *,
    expression: str | None = None,
    description: str | None = None,
) -> SegmentView:
    """A new expression or description; sends already made keep the expression they were
    made with."""
    segment = get_segment(session, name)
    if expression is not None:
        segment.expression = check_expression(session, expression, zone)
    if description is not None:
        _check_description(description)
        segment.description = description
    segment.updated_at = utcnow()
    session.flush()
    return _view(segment)


def delete_segment(session: Session, name: str) -> None:
    session.delete(get_segment(session, name))


def list_segments(session: Session) -> list[SegmentView]:
    return [_view(s) for s in session.scalars(select(Segment).order_by(Segment.name))]


def show_segment(session: Session, name: str) -> SegmentView:
    return _view(get_segment(session, name))


def segment_audience(
    session: Session,
    name: str,
    zone: ZoneInfo,
    *,
    lists: tuple[str, ...] = (),
    tags: tuple[str, ...] = (),
) -> Audience:
    """The audience of a send to segment ``name`` (within ``lists`` and ``tags`` if given): its
    expression as it stands now, kept with the send."""
    segment = get_segment(session, name)
    return Audience(
        lists=lists, tags=tags, segment=segment.name, where=segment.expression, zone=zone.key
    )


def count_segment(session: Session, name: str, zone: ZoneInfo) -> int:
    """How many active readers, on some list, the segment holds now: what a send to it (by
    any channel) would be planned from (:mod:`distributor.snapshot_counts`: counted again only
    after a change to what it reads)."""
    audience = segment_audience(session, name, zone)
    counting_over_readers(session)
    count = select(func.count(Subscriber.id)).where(*audience_conditions(audience))
    return int(counted_rows(session, count)[0][0])


def _check_description(description: str) -> None:
    if len(description) > DESCRIPTION_MAX:
        raise DistributorError(
            f"the description is longer than {DESCRIPTION_MAX} characters",
            code="segment.description_long",
            most=DESCRIPTION_MAX,
        )
