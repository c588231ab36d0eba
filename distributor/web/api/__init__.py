"""The staff's JSON API under ``/api/v1``, ``/healthz`` and ``/metrics``: :func:`install` adds
them to the app that ``create_app`` builds.

Under ``/api/`` every error is ``{"error": {"code", "message"}}`` (:mod:`.errors`); elsewhere the
app's own error pages stay as they are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from distributor.config import Settings
from distributor.errors import DistributorError
from distributor.web import health
from distributor.web.api import (
    automations,
    errors,
    issues,
    lists,
    schedules,
    segments,
    sends,
    subscribers,
    users,
    webhooks,
)
from distributor.web.api.document import document_maker, documented_methods
from distributor.web.controls import UNFIT_VALUES
from distributor.web.metrics import MetricsAccess
from distributor.web.prometheus import RequestTimer
from distributor.web.security import HEADERS

ROUTERS = (
    issues, sends, subscribers, lists, schedules, users, segments, webhooks, automations
)
Handler = Callable[[Request, Any], Response | Awaitable[Response]]


def install(app: FastAPI, settings: Settings) -> None:
    """Call after the app's own exception handlers are added and before its middleware."""
    for module in ROUTERS:
        app.include_router(module.router)
    app.include_router(health.router)
    app.openapi = document_maker(app)  # type: ignore[method-assign]
    app.state.metrics_access = MetricsAccess.from_settings(settings)
    app.add_middleware(RequestTimer)
    json_handlers: dict[Any, Callable[[Any], Response]] = {
        DistributorError: errors.refused,
        HTTPException: errors.http_error,
        RequestValidationError: errors.invalid_request,
        **{unfit: errors.unfit_value for unfit in UNFIT_VALUES},
        Exception: _server_error,
    }
    for kind, for_api in json_handlers.items():
        app.exception_handlers[kind] = _by_path(for_api, app.exception_handlers[kind])
    invalid = app.exception_handlers[RequestValidationError]
    app.exception_handlers[RequestValidationError] = _undocumented_method_first(invalid)


def _server_error(_error: Exception) -> Response:
    """Outside the other middleware, like the page's: the security headers are added here."""
    response = errors.server_error()
    response.headers.update(HEADERS)
    return response


def _by_path(for_api: Callable[[Any], Response], for_pages: Handler) -> Handler:
    def handle(request: Request, error: Any) -> Response | Awaitable[Response]:
        if request.url.path.startswith(errors.API_PREFIX):
            return for_api(error)
        return for_pages(request, error)

    return handle


def _undocumented_method_first(handler: Handler) -> Handler:
    """``GET /sends/test`` reaches the route of ``GET /sends/{send_id}``, which finds "test" no
    number; but the document gives ``/sends/test`` no GET: a 405, as for any other method."""

    def handle(request: Request, error: Any) -> Response | Awaitable[Response]:
        allowed = documented_methods(request.app.openapi(), request.url.path)
        if allowed is not None and request.method not in allowed:
            response = errors.error_response(405, "method_not_allowed", "Method Not Allowed")
            response.headers["Allow"] = ", ".join(allowed)
            return response
        return handler(request, error)

    return handle
