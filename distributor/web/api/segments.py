"""``/api/v1/segments``: saved segments (an audience by its facts), their counts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from distributor.segments.language import EXPRESSION_MAX
from distributor.segments.models import DESCRIPTION_MAX, SEGMENT_NAME_MAX
from distributor.segments.store import (
    SegmentView,
    count_segment,
    create_segment,
    delete_segment,
    edit_segment,
    list_segments,
    show_segment,
)
from distributor.web.api.access import Editor, Viewer, audit
from distributor.web.api.errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from distributor.web.api.models import Body
from distributor.web.pages import WebDep
from subscribers.csvfile import label_pattern

router = APIRouter(prefix="/api/v1/segments", tags=["segments"], responses=COMMON_ERRORS)

SegmentName = Annotated[str, Field(max_length=SEGMENT_NAME_MAX, pattern=label_pattern())]
NamePath = Annotated[str, Path(max_length=SEGMENT_NAME_MAX)]
Where = Annotated[
    str,
    Field(
        min_length=1,
        max_length=EXPRESSION_MAX,
        description="The segment language (README, Segments), e.g. `list = members and "
        "(tag = 青年 or attr.department = 工会办) and not opened any of last 5 sends`. It must "
        "read, and the lists and tags it names must exist.",
    ),
]


class SegmentIn(Body):
    name: SegmentName
    where: Where
    description: str = Field(default="", max_length=DESCRIPTION_MAX)


class SegmentEdit(Body):
    where: Where | None = None
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX)


class SegmentOut(BaseModel):
    name: str
    where: str
    description: str
    created_at: datetime
    updated_at: datetime
    readers: int = Field(description="Active readers on some list it holds now.")


class SegmentsOut(BaseModel):
    items: list[SegmentOut]


class SegmentCount(BaseModel):
    readers: int = Field(description="Active readers on some list it holds now.")


def _out(segment: SegmentView, readers: int) -> SegmentOut:
    return SegmentOut(
        name=segment.name,
        where=segment.expression,
        description=segment.description,
        created_at=segment.created_at,
        updated_at=segment.updated_at,
        readers=readers,
    )


@router.get("", response_model=SegmentsOut, summary="Segments with their counts")
def list_all(web: WebDep, user: Viewer) -> SegmentsOut:
    zone = web.settings.zone
    with web.reading() as session:
        return SegmentsOut(
            items=[_out(s, count_segment(session, s.name, zone)) for s in list_segments(session)]
        )


@router.post(
    "",
    status_code=201,
    response_model=SegmentOut,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Save",
)
def create(body: SegmentIn, web: WebDep, user: Editor) -> SegmentOut:
    """An expression that does not read is refused (422) with its position; a list or tag it
    names that does not exist, 404; a name taken, 409."""
    zone = web.settings.zone
    with web.transaction() as session:
        created = create_segment(session, body.name, body.where, zone, body.description)
        audit(session, user, "segment.create", "segment", created.name, body.model_dump())
        return _out(created, count_segment(session, created.name, zone))


@router.get("/{name}", response_model=SegmentOut, responses=NOT_FOUND, summary="One segment")
def show(name: NamePath, web: WebDep, user: Viewer) -> SegmentOut:
    zone = web.settings.zone
    with web.reading() as session:
        return _out(show_segment(session, name), count_segment(session, name, zone))


@router.get(
    "/{name}/count", response_model=SegmentCount, responses=NOT_FOUND, summary="How many now"
)
def count(name: NamePath, web: WebDep, user: Viewer) -> SegmentCount:
    """What a send to it created now would be planned from (by any channel)."""
    with web.reading() as session:
        return SegmentCount(readers=count_segment(session, name, web.settings.zone))


@router.patch("/{name}", response_model=SegmentOut, responses=NOT_FOUND, summary="Edit")
def edit(name: NamePath, body: SegmentEdit, web: WebDep, user: Editor) -> SegmentOut:
    """Sends already made to it keep the expression they were made with."""
    zone = web.settings.zone
    with web.transaction() as session:
        edited = edit_segment(
            session, name, zone, expression=body.where, description=body.description
        )
        audit(session, user, "segment.edit", "segment", name, body.model_dump())
        return _out(edited, count_segment(session, name, zone))


@router.delete("/{name}", status_code=204, responses=NOT_FOUND, summary="Delete")
def delete(name: NamePath, web: WebDep, user: Editor) -> Response:
    with web.transaction() as session:
        delete_segment(session, name)
        audit(session, user, "segment.delete", "segment", name)
    return Response(status_code=204)
