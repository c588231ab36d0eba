"""``/archive``: every issue that was sent, newest first; ``/archive/<number>``: one issue as it
reads on a phone, where each message's "view in browser" link and the digest's links land;
``/archive/<number>/images/<name>``: its pictures (named by their digest: kept a year).

Both pages are the same for every reader, and a send makes thousands of them open the same page
in its first minutes: each process keeps a rendered page a minute (:class:`PageCache`; a new or
cancelled send shows within that time), and proxies and browsers may keep it as long and
revalidate it with its ETag.
"""

from __future__ import annotations

from collections.abc import Hashable

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from distributor.errors import NotFound
from distributor.readers.archive import archive_page, archived_issue
from distributor.render.views import issue_view
from distributor.web.page_cache import CachedPage, PageCache
from distributor.web.pages import WebDep, finish, page_html, page_language
from subscribers.links import ARCHIVE_PATH

router = APIRouter(include_in_schema=False)
IMAGE_CACHE_SECONDS = 365 * 24 * 3600  # a picture's name is its digest: it never changes


def _answer(request: Request, pages: PageCache, page: CachedPage) -> Response:
    """The page, or 304 when the client already holds this version of it; proxies may keep it
    as long as this process does."""
    cache = f"public, max-age={pages.seconds:g}"
    if page.etag in request.headers.get("if-none-match", ""):
        return finish(request, Response(status_code=304), cache=cache, etag=page.etag)
    return finish(request, HTMLResponse(page.body), cache=cache, etag=page.etag)


def _key(request: Request, lang: str) -> Hashable:
    return (request.url.path, request.url.query, lang)


@router.get(ARCHIVE_PATH.rstrip("/"))
def archive_index(
    request: Request, web: WebDep, page: int = Query(1, ge=1, le=1_000_000)
) -> Response:
    lang = page_language(request)

    def make() -> str:
        with web.transaction() as session:
            archive = archive_page(session, page)
        return page_html(request, "archive.html", lang=lang, archive=archive)

    return _answer(request, web.pages, web.pages.get(_key(request, lang), make))


@router.get(ARCHIVE_PATH + "{number}")
def archive_issue(request: Request, number: int, web: WebDep) -> Response:
    lang = page_language(request)

    def make() -> str:
        with web.transaction() as session:
            doc = archived_issue(session, number)
        images = {name: f"{ARCHIVE_PATH}{number}/images/{name}" for name in doc.images}
        view = issue_view(doc, web.settings, images)
        return page_html(request, "issue.html", lang=lang, issue=view)

    return _answer(request, web.pages, web.pages.get(_key(request, lang), make))


@router.get(ARCHIVE_PATH + "{number}/images/{name}")
def archive_image(request: Request, number: int, name: str, web: WebDep) -> Response:
    """A picture of a sent issue, as its type was sniffed at import."""
    with web.transaction() as session:
        image = archived_issue(session, number).images.get(name)
    if image is None:
        raise NotFound(
            f"issue {number} has no picture {name[:40]!r}",
            code="archive.no_picture",
            number=number,
            name=name[:40],
        )
    response = Response(image.data, media_type=image.content_type)
    return finish(request, response, cache=f"public, max-age={IMAGE_CACHE_SECONDS}, immutable")
