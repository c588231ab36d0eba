"""``/staff/login`` and ``/staff/logout``: a new server-side session at each login.

Only failed logins count, in 15-minute windows: an address with too many failures, or too many
at one account, is refused (429) for the rest of the window; an account with many failures from
everywhere is slowed (each further try waits a little longer, up to a few seconds), never
locked: a stranger guessing from many addresses makes the real staff member wait, not stay out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response

from distributor.errors import NotAuthenticated, RequestRefused
from distributor.staff.accounts import authenticate_password
from distributor.staff.audit import record_audit
from distributor.staff.names import name_key
from distributor.staff.sessions import SESSION_LIFETIME, end_session, start_session
from distributor.web.i18n import translator
from distributor.web.pages import WebDep, page_language
from distributor.web.security import RateLimiter, client_address
from distributor.web.staff.common import PosterDep, see_other, staff_page
from distributor.web.staff_auth import LOGIN_PATH, SESSION_COOKIE, safe_next

LOGIN_SCOPE = "staff-login"
WINDOW = 15 * 60
PER_ADDRESS = 30  # failed logins from one client address in a window, whatever the names
PER_ACCOUNT_HERE = 10  # failed logins at one account from one address in a window
SLOW_AFTER = 10  # failed logins at one account from everywhere before each try is slowed
SLOWDOWN_STEP, SLOWDOWN_MAX = 0.5, 5.0  # seconds added per further failure, and at most

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


@dataclass(frozen=True)
class FailedLogins:
    """The failed logins that matter to one try: from its address, at its account from its
    address, and at its account from everywhere."""

    limiter: RateLimiter
    address: str
    account: str  # the name's key: look-alike spellings of a name are one account here too

    @property
    def _keys(self) -> tuple[tuple[str, int], ...]:
        return (
            (f"staff-login-failed:{self.address}", PER_ADDRESS),
            (f"staff-login-failed:{self.account}:{self.address}", PER_ACCOUNT_HERE),
            (f"staff-login-failed:{self.account}", SLOW_AFTER),
        )

    def check(self) -> None:
        """Refuse a try from an address past its limits; slow one at an account under attack."""
        (here, most_here), (at_account_here, most_at_account), (at_account, _) = self._keys
        if self.limiter.hits(here, WINDOW) >= most_here:
            raise RequestRefused(
                "too many failed logins from this address: try again later",
                status=429,
                code="staff.login_limit",
            )
        if self.limiter.hits(at_account_here, WINDOW) >= most_at_account:
            raise RequestRefused(
                "too many failed logins at this account from this address: try again later",
                status=429,
                code="staff.login_limit",
            )
        beyond = self.limiter.hits(at_account, WINDOW) - SLOW_AFTER
        if beyond >= 0:
            time.sleep(min(SLOWDOWN_MAX, SLOWDOWN_STEP * (beyond + 1)))

    def count(self) -> None:
        for key, most in self._keys:
            self.limiter.allow(key, most, WINDOW)  # counts the failure; the answer is not needed


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
    failures = FailedLogins(web.limiter, client_address(request), name_key(name.strip()))
    failures.check()
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
        failures.count()
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
