"""The API's one error shape, ``{"error": {"code", "message"}}`` (with ``line`` and ``reason``
where they apply), and the handlers that give it.

The messages are the services' own (:class:`DistributorError`), the same words the CLI prints;
the code says what kind of refusal it is, the HTTP status follows from it.
"""

from __future__ import annotations

from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from distributor.errors import (
    AlreadyExists,
    DistributorError,
    ImportFailed,
    InvalidTransition,
    IssueFormatError,
    NotFound,
    RequestRefused,
    StaffAccountConflict,
)
from distributor.web.api.models import PATTERN_RULES
from distributor.web.controls import UNFIT
from subscribers.text import shorten

API_PREFIX = "/api/"


class ErrorBody(BaseModel):
    code: str
    message: str
    line: int | None = None  # the line of an uploaded file the error is about
    # The service's own code of the refusal ("send.no_lists"), where it has one: finer than
    # ``code``, and stable where the English message may be reworded.
    reason: str | None = None


class ApiError(BaseModel):
    error: ErrorBody


def _described(text: str) -> dict[str, Any]:
    return {"model": ApiError, "description": text}


# Every operation can answer these; operations add 404 and 409 where they can happen.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _described("The request could not be read (a malformed body)."),
    401: _described("No valid API token (Authorization: Bearer …)."),
    403: _described("The token's role does not allow this."),
    422: _described("A value in the request is invalid; the message says which and why."),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _described("No such thing.")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _described("The thing is not in a state that allows this.")
}


def error_response(
    status: int, code: str, message: str, *, line: int | None = None, reason: str | None = None
) -> JSONResponse:
    body = ApiError(error=ErrorBody(code=code, message=message, line=line, reason=reason))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status)


def status_of(error: DistributorError) -> tuple[int, str]:
    """The HTTP status and code of a service's refusal."""
    if isinstance(error, RequestRefused):
        codes = {401: "not_authenticated", 403: "forbidden", 429: "rate_limited"}
        return error.status, codes.get(error.status, "refused")
    if isinstance(error, NotFound):
        return 404, "not_found"
    if isinstance(error, InvalidTransition):
        return 409, "invalid_transition"
    if isinstance(error, AlreadyExists | StaffAccountConflict):
        return 409, "conflict"
    if isinstance(error, ImportFailed):
        return 422, "import_failed"
    return 422, "invalid"


def refused(error: DistributorError) -> JSONResponse:
    status, code = status_of(error)
    line = error.line if isinstance(error, IssueFormatError) else None
    return error_response(status, code, error.message, line=line, reason=error.code)


def http_error(error: HTTPException) -> JSONResponse:
    codes = {400: "bad_request", 401: "not_authenticated", 403: "forbidden", 404: "not_found"}
    codes |= {405: "method_not_allowed", 413: "too_large", 429: "rate_limited"}
    response = error_response(
        error.status_code, codes.get(error.status_code, "http_error"), str(error.detail)
    )
    response.headers.update(error.headers or {})
    return response


def invalid_request(error: RequestValidationError) -> JSONResponse:
    """Pydantic's findings in one line each: ``body.at: Input should be a valid datetime``."""
    parts = []
    for detail in error.errors():
        where = ".".join(str(part) for part in detail.get("loc", ()))
        parts.append(f"{where}: {_worded(detail)}" if where else _worded(detail))
    malformed = any(detail.get("type") == "json_invalid" for detail in error.errors())
    if malformed:
        return error_response(400, "bad_request", "; ".join(parts))
    return error_response(422, "invalid", "; ".join(parts) or "invalid request")


def _worded(detail: dict[str, Any]) -> str:
    """A finding as a person reads it: the rule a pattern stands for, never the pattern."""
    context = detail.get("ctx") or {}
    if detail.get("type") == "string_pattern_mismatch":
        rule = PATTERN_RULES.get(context.get("pattern", ""), "is not in the form the API asks")
        return f"{shorten(str(detail.get('input', '')))!r} {rule}"
    if detail.get("type") == "string_too_short":
        return f"too short: at least {context.get('min_length')} characters"
    return str(detail.get("msg", "invalid"))


def unfit_value(_error: Exception) -> JSONResponse:
    return error_response(400, "bad_request", UNFIT)


def server_error() -> JSONResponse:
    return error_response(500, "server_error", "the server failed; the error is in its log")
