"""``/staff/login`` and ``/staff/logout``: a new server-side session at each login; failed
logins are slowed per address and per account name."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from distributor.errors import NotAuthenticated, RequestRefused
from distributor.staff.accounts import authenticate_password
from distributor.staff.audit import record_audit
from distributor.staff.sessions import SESSION_LIFETIME, end_session, start_session
from distributor.web.i18n import translator
from distributor.web.pages import WebDep, page_language
from distributor.web.security import limit
from distributor.web.staff.common import PosterDep, see_other, staff_page
from distributor.web.staff_auth import LOGIN_PATH, SESSION_COOKIE, safe_next

LOGIN_SCOPE = "staff-login"
WINDOW = 15 * 60
PER_ADDRESS = 30  # attempts per client address in a window
PER_ACCOUNT = 10  # attempts at one account name in a window, from anywhere

router = APIRouter(include_in_schema=False)


def _form(
    request: Request, *, status: int = 200, error: str | None = None, name: str = ""
) -> HTMLResponse:
    return staff_page(
        request,
        "login.html",
        None,
        status=status,
        scope=LOGIN_SCOPE,
        error=error,
        name=name,
        next=safe_next(request.query_params.get("next")),
    )


@router.get(LOGIN_PATH)
def login_form(request: Request) -> HTMLResponse:
    return _form(request)


@router.post(LOGIN_PATH)
def login(
    request: Request,
    web: WebDep,
    name: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
    csrf: Annotated[str | None, Form()] = None,
) -> Response:
    web.csrf.check_browser(request, LOGIN_SCOPE, csrf)
    limit(web.limiter, request, "staff-login", PER_ADDRESS, WINDOW)
    if not web.limiter.allow(f"staff-login-name:{name.strip().lower()}", PER_ACCOUNT, WINDOW):
        raise RequestRefused("too many attempts at this account: try again later", status=429)
    t = translator(page_language(request))
    try:
        with web.transaction() as session:
            user = authenticate_password(session, name, password)
            old = request.cookies.get(SESSION_COOKIE)
            if old:
                end_session(session, old)  # never carry a session id across a login
            session_id = start_session(session, user)
            record_audit(session, user, "login", "user", user.id)
    except NotAuthenticated:
        return _form(request, status=401, error=t("staff.login.wrong"), name=name)
    response = see_other(safe_next(next))
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/staff",
    )
    return response


@router.post("/staff/logout")
def logout(request: Request, web: WebDep, user: PosterDep) -> RedirectResponse:
    with web.transaction() as session:
        end_session(session, request.cookies.get(SESSION_COOKIE, ""))
        record_audit(session, user, "logout", "user", user.id)
    response = see_other(LOGIN_PATH)
    response.delete_cookie(SESSION_COOKIE, path="/staff")
    return response
