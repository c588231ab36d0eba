"""The web application: ``create_app(settings)`` builds it; ``distributor web`` serves it with
uvicorn. One app for the public pages now and the staff dashboard and JSON API later."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.routing import Match
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from distributor.config import Settings
from distributor.db import CONNECTIONS, session_factory
from distributor.errors import DistributorError, NotFound, RequestRefused
from distributor.models import load_all_models
from distributor.web import (
    archive,
    bounce_intake,
    formats,
    preferences,
    signup,
    tracking,
    unsubscribe,
    wechat_callback,
)
from distributor.web.api import install as install_api
from distributor.web.api.document import documented_methods
from distributor.web.api.errors import API_PREFIX, error_response
from distributor.web.bodies import BodyLimit
from distributor.web.controls import UNFIT, UNFIT_VALUES, NoNul
from distributor.web.i18n import translator, worded
from distributor.web.page_cache import PageCache
from distributor.web.pages import Web, page_language, render
from distributor.web.security import HEADERS, Csrf, RateLimiter, SecurityHeaders, rate_limiter
from distributor.web.staff import staff_routers
from distributor.web.staff_auth import LoginRequired, login_redirect, upload_refusal
from subscribers.links import PublicLinks
from subscribers.tokens import TokenSigner

STATIC_DIR = Path(__file__).with_name("static")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def create_app(
    settings: Settings,
    *,
    enqueue_confirmation: Callable[[int], None] | None = None,
    limiter: RateLimiter | None = None,
    pages: PageCache | None = None,
) -> FastAPI:
    """``enqueue_confirmation`` sends a sign-up its confirmation (default: a Celery task);
    ``limiter`` counts requests per client (default: Redis when shared, else this process);
    ``pages`` keeps the archive's pages (default: a minute each)."""
    signer = TokenSigner(settings.require_secret_key())
    load_all_models()
    from_name, from_address = parseaddr(settings.mail_from)
    app = FastAPI(
        title="distributor",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
        lifespan=_lifespan,
    )
    app.state.web = Web(
        settings=settings,
        factory=session_factory(settings.database_url),
        signer=signer,
        links=PublicLinks("", signer),
        csrf=Csrf(signer.secret),
        limiter=limiter or rate_limiter(settings.shared_redis_url),
        enqueue_confirmation=enqueue_confirmation or _confirmation_task,
        site_name=from_name or from_address.rpartition("@")[2] or "distributor",
        pages=pages or PageCache(),
    )
    for module in (unsubscribe, preferences, signup, archive, tracking, wechat_callback):
        app.include_router(module.router)
    for router in staff_routers():
        app.include_router(router)
    app.include_router(bounce_intake.router)  # the mail server's, not a page
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(LoginRequired, login_redirect)  # type: ignore[arg-type]
    app.add_exception_handler(DistributorError, _refused)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid_request)  # type: ignore[arg-type]
    for unfit in UNFIT_VALUES:
        app.add_exception_handler(unfit, _unfit_value)
    app.add_exception_handler(Exception, _server_error)
    install_api(app, settings)  # the JSON API, /healthz, /metrics; JSON errors under /api/
    app.exception_handlers[HTTPException] = _with_allow(app.exception_handlers[HTTPException])
    app.add_middleware(NoNul, refusal=_edge_refusal)
    app.add_middleware(
        BodyLimit,
        most=settings.web_max_body_bytes,
        most_upload=settings.web_max_upload_bytes,
        uploader=upload_refusal,
        refusal=_edge_refusal,
    )
    app.add_middleware(SecurityHeaders)
    # Outermost, so that everything inside sees the client and scheme the proxy reported.
    app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """No more threads for the views than database connections for them (one is the writer's
    of opens and clicks): a burst of one-click unsubscribes then waits its turn on the event
    loop, not on the pool, whose timeout would fail it, and fewer threads contend for the
    interpreter. Then that writer."""
    to_thread.current_default_thread_limiter().total_tokens = CONNECTIONS - 1
    async with tracking.recording(app):
        yield


def app_from_environment() -> FastAPI:
    """The app as ``distributor web`` serves it, in each of its worker processes.

    What is built by now lives as long as the process, so it is frozen out of the garbage
    collector: a full pass over it (some 160,000 objects) stalls every request in flight for
    tens of milliseconds, which is most of the pixel's p99 under a burst."""
    app = create_app(Settings.from_env())
    formats.preload()
    gc.collect()
    gc.freeze()
    return app


def _confirmation_task(subscriber_id: int) -> None:
    from distributor.tasks import send_confirmation

    send_confirmation.delay(subscriber_id)


def _error_page(
    request: Request, status: int, error: DistributorError | None = None
) -> HTMLResponse:
    """``error``: the service's refusal, worded in the page's language; without one, the
    status's own sentence."""
    lang = page_language(request)
    t = translator(lang)
    text = {
        401: "error.401.text",
        403: "error.403.text",
        404: "error.404.text",
        429: "error.429.text",
        500: "error.500.text",
    }.get(status, "error.generic")
    shown = worded(error, lang) if error is not None and error.code else t(text)
    return render(
        request, "error.html", lang=lang, status=status, title=t(f"error.{status}"), message=shown
    )


def _refused(request: Request, error: DistributorError) -> HTMLResponse:
    """A bad, altered, expired or other-purpose link, a missing page, a stale form: a page in
    the reader's language, never a traceback."""
    if isinstance(error, RequestRefused):
        return _error_page(request, error.status, error)
    return _error_page(request, 404 if isinstance(error, NotFound) else 400, error)


def _http_error(request: Request, error: HTTPException) -> HTMLResponse:
    status = error.status_code if error.status_code in (403, 404, 429) else 400
    response = _error_page(request, status)
    response.status_code = error.status_code
    response.headers.update(error.headers or {})
    return response


def _invalid_request(request: Request, error: RequestValidationError) -> HTMLResponse:
    """A path that is not a page (``/archive/abc``) is not found; a bad form is a bad request."""
    in_path = any(detail.get("loc", ("",))[0] == "path" for detail in error.errors())
    return _error_page(request, 404 if in_path else 400)


def _with_allow(handler: Any) -> Any:
    """A 405 names every method the path takes: Starlette names those of the first route that
    matched the path only, and a path's methods are often routes of their own."""

    def handle(request: Request, error: HTTPException) -> Any:
        if error.status_code == 405:
            error.headers = {**(error.headers or {}), "Allow": ", ".join(_methods_of(request))}
        return handler(request, error)

    return handle


def _methods_of(request: Request) -> list[str]:
    """The API's paths as its document gives them; the pages' by their routes."""
    if request.url.path.startswith(API_PREFIX):
        documented = documented_methods(request.app.openapi(), request.url.path)
        if documented is not None:
            return documented
    return [
        method for method in METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
               for route in request.app.router.routes)
    ]


def _edge_refusal(path: str, status: int, code: str, message: str) -> Response:
    """A request refused before routing (a NUL, a body too large): the API's JSON error under
    /api/, one line of text elsewhere."""
    if path.startswith(API_PREFIX):
        return error_response(status, code, message)
    return PlainTextResponse(message + "\n", status_code=status)


def _unfit_value(request: Request, error: Exception) -> HTMLResponse:
    return _error_page(request, 400, DistributorError(UNFIT, code="form.unfit"))


def _server_error(request: Request, error: Exception) -> HTMLResponse:
    """Outside the other middleware, so the security headers are added here; the traceback
    goes to the server's log, never to the page."""
    response = _error_page(request, 500)
    response.headers.update(HEADERS)
    return response
