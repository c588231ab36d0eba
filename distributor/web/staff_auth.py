"""Who is asking: the staff member behind a session cookie (pages) or a bearer token (API),
and whether their role allows what they ask.

Pages without a session redirect to the login page (:class:`LoginRequired`); the API answers
401 (:class:`~distributor.errors.NotAuthenticated`) and a role too small 403
(:class:`~distributor.errors.NotPermitted`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import urlencode, urlsplit

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from distributor.errors import NotAuthenticated, NotPermitted
from distributor.staff.models import Role, StaffUser
from distributor.staff.sessions import session_user
from distributor.staff.tokens import authenticate_token
from distributor.web.pages import Web, WebDep

SESSION_COOKIE = "distributor_staff"
STAFF_HOME = "/staff/"
LOGIN_PATH = "/staff/login"


class LoginRequired(Exception):
    """A staff page was asked for without a live session: answered by a redirect to login."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def safe_next(value: str | None) -> str:
    """Where to go after login: a staff page of this site only, never another host."""
    if not value or "\\" in value or any(ord(char) < 0x20 for char in value):
        return STAFF_HOME
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith(STAFF_HOME):
        return STAFF_HOME
    return value


def login_redirect(request: Request, error: LoginRequired) -> RedirectResponse:
    query = urlencode({"next": safe_next(error.next_path)})
    return RedirectResponse(f"{LOGIN_PATH}?{query}", status_code=303)


def current_staff_user(request: Request, web: WebDep) -> StaffUser:
    """The signed-in staff member; a page asked for without one redirects to the login."""
    user = signed_in_user(request, web)
    if user is None:
        query = request.url.query
        wanted = request.url.path + (f"?{query}" if query else "")
        raise LoginRequired(wanted if request.method == "GET" else STAFF_HOME)
    return user


def signed_in_user(request: Request, web: Web) -> StaffUser | None:
    """The staff member of the request's session, if one is signed in (an error page under
    ``/staff/`` is then drawn in the staff frame)."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    try:
        with web.transaction() as session:
            return session_user(session, session_id)
    except NotAuthenticated:
        return None


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def api_user(request: Request, web: WebDep) -> StaffUser:
    """The staff member whose API token came as ``Authorization: Bearer …``; else 401."""
    token = bearer_token(request)
    if token is None:
        raise NotAuthenticated(
            "send an API token: Authorization: Bearer <token>", code="token.none"
        )
    with web.reading() as session:
        return authenticate_token(session, token)


async def upload_refusal(request: Request) -> Response | None:
    """None when the request's credential (the API token under /api/, else the session cookie)
    belongs to an enabled editor or admin; else the answer to give before its body is read
    (:mod:`distributor.web.bodies`): 401 (the API's JSON error) or a redirect to the login,
    403 for a viewer."""
    from distributor.web.api.errors import refused  # the API package imports this module

    web: Web = request.app.state.web
    api = request.url.path.startswith("/api/")

    def check() -> None:
        if api:
            user = api_user(request, web)
        else:
            with web.transaction() as session:
                user = session_user(session, request.cookies.get(SESSION_COOKIE, ""))
        if not user.role.allows(Role.EDITOR):
            raise NotPermitted(
                f"a {user.role} cannot upload: it needs the {Role.EDITOR} role",
                code="staff.role_needed",
                role=user.role,
                needed=Role.EDITOR,
            )

    try:
        await run_in_threadpool(check)
    except NotAuthenticated as error:
        return refused(error) if api else login_redirect(request, LoginRequired(STAFF_HOME))
    except NotPermitted as error:
        return refused(error) if api else PlainTextResponse(error.message + "\n", 403)
    return None


def require(
    role: Role, via: Callable[..., StaffUser] = current_staff_user
) -> Callable[..., Awaitable[StaffUser]]:
    """A dependency: the staff member from ``via``, if their role allows ``role``'s work."""

    async def allowed(user: StaffUser) -> StaffUser:  # no I/O: kept off the thread pool
        if not user.role.allows(role):
            raise NotPermitted(
                f"a {user.role} cannot do this: it needs the {role} role",
                code="staff.role_needed",
                role=user.role,
                needed=role,
            )
        return user

    # Set, not annotated: a string annotation (this module's) could not name the local ``via``.
    parameter = inspect.Parameter(
        "user",
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        annotation=Annotated[StaffUser, Depends(via)],
    )
    allowed.__signature__ = inspect.Signature([parameter], return_annotation=StaffUser)  # type: ignore[attr-defined]
    return allowed


StaffDep = Annotated[StaffUser, Depends(current_staff_user)]
EditorDep = Annotated[StaffUser, Depends(require(Role.EDITOR))]
AdminDep = Annotated[StaffUser, Depends(require(Role.ADMIN))]
ApiUserDep = Annotated[StaffUser, Depends(api_user)]
ApiEditorDep = Annotated[StaffUser, Depends(require(Role.EDITOR, api_user))]
ApiAdminDep = Annotated[StaffUser, Depends(require(Role.ADMIN, api_user))]
