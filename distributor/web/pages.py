"""What every view shares: the app's parts (:class:`Web`), the page language, rendering."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Annotated, TypeVar, cast
from urllib.parse import urlencode

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session, sessionmaker

from distributor.config import Settings
from distributor.count_budget import give_budget
from distributor.errors import RequestRefused
from distributor.render.views import render_template
from distributor.web.formats import day, number
from distributor.web.i18n import LANGUAGES, choose, supported, translator
from distributor.web.page_cache import PageCache
from distributor.web.security import Csrf, RateLimiter
from subscribers.links import PublicLinks
from subscribers.tokens import TokenSigner

LANG_COOKIE = "lang"
LANG_COOKIE_SECONDS = 365 * 24 * 3600
R = TypeVar("R", bound=Response)


MAX_ID_DIGITS = 18  # ids are 64-bit integers
MAX_NAME = 200  # characters of an uploaded file's name kept


@dataclass(frozen=True)
class Web:
    """The app's parts, built once by ``create_app``."""

    settings: Settings
    factory: sessionmaker[Session]
    signer: TokenSigner
    links: PublicLinks  # with an empty base: links between the site's own pages are relative
    csrf: Csrf
    limiter: RateLimiter
    enqueue_confirmation: Callable[[int], None]  # send a sign-up its confirmation message
    site_name: str
    pages: PageCache  # pages that are the same for every reader (the archive)

    @contextmanager
    def transaction(
        self, *, budget: bool = False, waited: Sequence[str] = ()
    ) -> Iterator[Session]:
        """Short: a view reads or writes what it needs and renders after the commit.
        ``budget``: a view that can show "Counting…" gives its counts over readers the
        settings' time (:mod:`distributor.count_budget`); one that does not fit raises
        :class:`~distributor.count_budget.CountPending`; ``waited``: the counts it was told of
        then, and waited for (the ``counted`` parameters of the page asked again)."""
        with self.factory.begin() as session:
            if budget:
                give_budget(session, self.settings.count_budget_seconds, waited)
            yield session

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """For a view that only reads (and a token's once-a-minute ``last_used_at``). On
        PostgreSQL each statement commits on its own: what a READ COMMITTED transaction would
        see, without its BEGIN and COMMIT, two round trips a request that waits on the database."""
        with self.factory.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            yield session


def get_web(request: Request) -> Web:
    return cast(Web, request.app.state.web)


async def _web_dependency(request: Request) -> Web:
    """As a coroutine, FastAPI calls it on the event loop: no trip through the thread pool."""
    return get_web(request)


WebDep = Annotated[Web, Depends(_web_dependency)]


def cursor_id(raw: str | None) -> int:
    """The id a page of a listing starts after (``?after=``): 0 when absent, and a bad one is a
    bad request, not a server error."""
    if not raw:
        return 0
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_ID_DIGITS):
        raise RequestRefused(
            f"{raw[:20]!r} is not where a page can start",
            status=400,
            code="form.page_start",
            value=raw[:20],
        )
    return int(raw)


def upload_name(filename: str | None, default: str) -> str:
    """An uploaded file's own name, as a file name in a folder of ours: its last part only, and
    ``default`` for a name that is no file's (empty, ``.``, ``..``, too long)."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    return name if name not in ("", ".", "..") and len(name) <= MAX_NAME else default


def page_language(request: Request, own: str | None = None) -> str:
    """``own``: the subscriber's language, on their own pages."""
    return choose(
        asked=request.query_params.get("lang"),
        remembered=request.cookies.get(LANG_COOKIE),
        own=own,
        accept=request.headers.get("accept-language"),
    )


def local_path(request: Request) -> str:
    """This page's path as a link of this site: ``//evil.example/x`` (a path a request may have)
    would be another host's address in an ``href``, so its leading slashes are one."""
    return "/" + request.url.path.lstrip("/")


def here(request: Request) -> str:
    """This page's path and query: where its forms post to."""
    query = request.url.query
    return local_path(request) + (f"?{query}" if query else "")


def render(
    request: Request,
    template: str,
    *,
    lang: str,
    status: int = 200,
    cache: str | None = None,
    **context: object,
) -> HTMLResponse:
    """A page of ``templates/web/`` in ``lang``, with the language switch; a ``?lang=`` choice
    is remembered in a cookie."""
    response = HTMLResponse(page_html(request, template, lang=lang, **context), status_code=status)
    return finish(request, response, cache=cache)


def page_html(request: Request, template: str, *, lang: str, **context: object) -> str:
    """The text of a page: it depends on the request's path and query (the language switch
    links back to them), ``lang`` and ``context``, nothing else."""
    query = dict(request.query_params)
    switch = [
        (code, label, local_path(request) + "?" + urlencode({**query, "lang": code}))
        for code, label in LANGUAGES.items()
    ]
    return render_template(
        f"web/{template}",
        lang=lang,
        t=translator(lang),
        number=lambda value: number(value, lang),
        day=lambda value: day(value, lang),
        site_name=get_web(request).site_name,
        languages=switch,
        **context,
    )


def finish(
    request: Request, response: R, *, cache: str | None = None, etag: str | None = None
) -> R:
    """The language cookie when ``?lang=`` chose one; ``cache``: the Cache-Control of a page
    that is the same for every reader, whose ``etag`` lets a browser or proxy revalidate it."""
    asked = supported(request.query_params.get("lang"))
    if asked is not None and request.cookies.get(LANG_COOKIE) != asked:
        response.set_cookie(
            LANG_COOKIE,
            asked,
            max_age=LANG_COOKIE_SECONDS,
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )
    if cache is not None:
        response.headers["Cache-Control"] = cache
        response.headers["Vary"] = "Accept-Language, Cookie"  # the page's language
    if etag is not None:
        response.headers["ETag"] = etag
    return response
