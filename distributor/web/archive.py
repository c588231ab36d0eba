"""``/archive``: every issue that was sent, newest first; ``/archive/<number>``: one issue as it
reads on a phone, where each message's "view in browser" link and the digest's links land."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from distributor.render.views import issue_view
from distributor.sending.archive import archive_page, archived_issue
from distributor.web.pages import WebDep, page_language, render
from subscribers.links import ARCHIVE_PATH

CACHE = "public, max-age=300"  # issues do not change once sent; new ones appear within minutes

router = APIRouter(include_in_schema=False)


@router.get(ARCHIVE_PATH.rstrip("/"))
def archive_index(
    request: Request, web: WebDep, page: int = Query(1, ge=1, le=1_000_000)
) -> HTMLResponse:
    with web.transaction() as session:
        archive = archive_page(session, page)
    return render(
        request, "archive.html", lang=page_language(request), archive=archive, cache=CACHE
    )


@router.get(ARCHIVE_PATH + "{number}")
def archive_issue(request: Request, number: int, web: WebDep) -> HTMLResponse:
    with web.transaction() as session:
        doc = archived_issue(session, number)
    return render(
        request,
        "issue.html",
        lang=page_language(request),
        issue=issue_view(doc, web.settings),
        cache=CACHE,
    )
