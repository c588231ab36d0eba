"""``/staff/users``: admins add staff accounts, disable them, issue API tokens (shown once) and
revoke them, through the same services as ``distributor users`` and ``/api/v1/users``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from distributor.errors import DistributorError
from distributor.staff.accounts import (
    add_user,
    disable_user,
    enable_user,
    get_user,
    list_users,
)
from distributor.staff.audit import record_audit
from distributor.staff.models import STAFF_NAME_MAX, Role, StaffUser
from distributor.staff.passwords import PASSWORD_MAX
from distributor.staff.tokens import issue_token, live_tokens, revoke_token
from distributor.web.pages import Web, WebDep
from distributor.web.staff.common import AdminFormDep, see_other, shown_error, staff_page
from distributor.web.staff_auth import AdminDep

router = APIRouter(include_in_schema=False)

USERS = "/staff/users"


def _users_page(
    request: Request,
    web: WebDep,
    admin: StaffUser,
    *,
    status: int = 200,
    error: str | None = None,
    issued: tuple[int, str, str] | None = None,
) -> HTMLResponse:
    """``issued``: (token id, account name, token) of a token just issued, shown this once."""
    with web.transaction() as session:
        tokens = live_tokens(session)
        rows = [(user, tokens.get(user.id, [])) for user in list_users(session)]
    return staff_page(
        request,
        "users.html",
        admin,
        status=status,
        rows=rows,
        roles=list(Role),
        error=error,
        issued=issued,
    )


@router.get(USERS)
def users_page(request: Request, web: WebDep, admin: AdminDep) -> HTMLResponse:
    return _users_page(request, web, admin)


def _refused(request: Request, web: WebDep, admin: StaffUser, error: DistributorError) -> Response:
    return _users_page(request, web, admin, status=400, error=shown_error(request, error))


@router.post(USERS)
def add(
    request: Request,
    web: WebDep,
    admin: AdminFormDep,
    name: Annotated[str, Form(max_length=STAFF_NAME_MAX)],
    role: Annotated[Role, Form()],
    password: Annotated[str, Form(max_length=PASSWORD_MAX)],
) -> Response:
    try:
        with web.transaction() as session:
            user = add_user(session, name, role, password)
            record_audit(session, admin, "user.add", "user", user.id, {"role": role.value})
    except DistributorError as error:
        return _refused(request, web, admin, error)
    return see_other(USERS)


@router.post(USERS + "/{user_id}/disable")
def disable(request: Request, web: WebDep, admin: AdminFormDep, user_id: int) -> Response:
    return _switch(request, web, admin, user_id, disable_user, "user.disable")


@router.post(USERS + "/{user_id}/enable")
def enable(request: Request, web: WebDep, admin: AdminFormDep, user_id: int) -> Response:
    return _switch(request, web, admin, user_id, enable_user, "user.enable")


def _switch(
    request: Request,
    web: Web,
    admin: StaffUser,
    user_id: int,
    change: Callable[[Session, str], StaffUser],
    action: str,
) -> Response:
    """Disable or enable an account, audited; a refusal (the last admin) shown on the page."""
    try:
        with web.transaction() as session:
            user = change(session, get_user(session, user_id).name)
            record_audit(session, admin, action, "user", user.id)
    except DistributorError as error:
        return _refused(request, web, admin, error)
    return see_other(USERS)


@router.post(USERS + "/{user_id}/tokens")
def issue(request: Request, web: WebDep, admin: AdminFormDep, user_id: int) -> Response:
    """The token is in this answer only (never in a URL, never stored): the page shows it."""
    try:
        with web.transaction() as session:
            name = get_user(session, user_id).name
            row, token = issue_token(session, name)
            record_audit(session, admin, "token.issue", "token", row.id, {"user": user_id})
            token_id = row.id
    except DistributorError as error:
        return _refused(request, web, admin, error)
    return _users_page(request, web, admin, issued=(token_id, name, token))


@router.post("/staff/tokens/{token_id}/revoke")
def revoke(request: Request, web: WebDep, admin: AdminFormDep, token_id: int) -> Response:
    try:
        with web.transaction() as session:
            revoke_token(session, token_id)
            record_audit(session, admin, "token.revoke", "token", token_id)
    except DistributorError as error:
        return _refused(request, web, admin, error)
    return see_other(USERS)
