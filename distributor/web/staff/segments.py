"""``/staff/segments``: saved segments, listed, made, counted and deleted, through the same
services as ``distributor segments`` and ``/api/v1/segments``. An expression that does not read
comes back with its problem in words and a mark under the place."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from distributor.errors import DistributorError, NotFound
from distributor.segments.language import EXPRESSION_MAX, SegmentSyntaxError
from distributor.segments.models import DESCRIPTION_MAX, SEGMENT_NAME_MAX, Segment
from distributor.segments.store import (
    count_segment,
    create_segment,
    delete_segment,
    list_segments,
)
from distributor.staff.audit import record_audit
from distributor.staff.models import StaffUser
from distributor.web.pages import WebDep
from distributor.web.staff.common import WriterDep, see_other, shown_error, staff_page
from distributor.web.staff_auth import StaffDep

router = APIRouter(include_in_schema=False)

SEGMENTS = "/staff/segments"


def _segments_page(
    request: Request,
    web: WebDep,
    user: StaffUser,
    *,
    status: int = 200,
    error: str | None = None,
    caret: int | None = None,
    counted: tuple[int, int] | None = None,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    """``caret``: where (0-based) the typed expression stopped reading, marked under it;
    ``counted``: (segment id, readers) just counted."""
    with web.transaction() as session:
        segments = list_segments(session)
    return staff_page(
        request,
        "segments.html",
        user,
        status=status,
        segments=segments,
        error=error,
        caret=None if caret is None else pad_to((values or {}).get("expression", ""), caret),
        counted=counted,
        values=values or {},
        expression_max=EXPRESSION_MAX,
    )


def pad_to(expression: str, position: int) -> str:
    """Spaces as wide as ``expression`` up to ``position`` in a fixed-width font, where a
    Chinese character takes two columns: the mark below it then points at the place."""
    return "".join(
        "  " if unicodedata.east_asian_width(char) in "WF" else " "
        for char in expression[:position]
    )


@router.get(SEGMENTS)
def segments_page(request: Request, web: WebDep, user: StaffDep) -> HTMLResponse:
    return _segments_page(request, web, user)


@router.post(SEGMENTS)
def create(
    request: Request,
    web: WebDep,
    user: WriterDep,
    name: Annotated[str, Form(max_length=SEGMENT_NAME_MAX)],
    expression: Annotated[str, Form(max_length=EXPRESSION_MAX * 2)],
    description: Annotated[str, Form(max_length=DESCRIPTION_MAX)] = "",
) -> Response:
    try:
        with web.transaction() as session:
            segment = create_segment(session, name, expression, web.settings.zone, description)
            record_audit(
                session, user, "segment.create", "segment", segment.id,
                {"name": segment.name, "expression": segment.expression},
            )
    except DistributorError as error:
        typed = expression.strip()
        caret = error.position if isinstance(error, SegmentSyntaxError) and typed else None
        values = {"name": name, "expression": typed, "description": description}
        return _segments_page(
            request, web, user, status=400, error=shown_error(request, error), caret=caret,
            values=values,
        )
    return see_other(SEGMENTS)


def _name_of(web: WebDep, segment_id: int) -> str:
    with web.transaction() as session:
        segment = session.get(Segment, segment_id)
    if segment is None:
        raise NotFound(
            f"there is no segment with ID {segment_id}",
            code="segment.missing_id",
            segment=segment_id,
        )
    return segment.name


@router.get(SEGMENTS + "/{segment_id}/count")
def count(request: Request, web: WebDep, user: StaffDep, segment_id: int) -> HTMLResponse:
    """Counted when asked, not on every look at the list: a count reads the whole store."""
    try:
        name = _name_of(web, segment_id)
        with web.transaction() as session:
            readers = count_segment(session, name, web.settings.zone)
    except DistributorError as error:
        return _segments_page(request, web, user, status=404, error=shown_error(request, error))
    return _segments_page(request, web, user, counted=(segment_id, readers))


@router.post(SEGMENTS + "/{segment_id}/delete")
def delete(request: Request, web: WebDep, user: WriterDep, segment_id: int) -> Response:
    """Sends already made to it keep the expression they were made with."""
    try:
        name = _name_of(web, segment_id)
        with web.transaction() as session:
            delete_segment(session, name)
            record_audit(session, user, "segment.delete", "segment", segment_id, {"name": name})
    except DistributorError as error:
        return _segments_page(request, web, user, status=404, error=shown_error(request, error))
    return see_other(SEGMENTS)
