"""``/api/v1/users`` and ``/api/v1/tokens``: staff accounts and their API tokens, for admins
only, through the same services as ``distributor users``."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from distributor.staff.accounts import (
    add_user,
    disable_user,
    get_user,
    list_users,
)
from distributor.staff.models import ApiToken, StaffUser
from distributor.staff.tokens import issue_token, live_tokens, revoke_token
from distributor.web.api.access import audit
from distributor.web.api.errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from distributor.web.api.models import ItemId, TokenIssued, TokenOut, UserIn, UserOut, UsersOut
from distributor.web.pages import WebDep
from distributor.web.staff_auth import ApiAdminDep

router = APIRouter(prefix="/api/v1", tags=["users"], responses=COMMON_ERRORS)


def token_out(row: ApiToken) -> TokenOut:
    return TokenOut(
        id=row.id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def user_out(user: StaffUser, tokens: list[ApiToken]) -> UserOut:
    return UserOut(
        id=user.id,
        name=user.name,
        role=user.role,
        disabled=user.disabled,
        created_at=user.created_at,
        tokens=[token_out(row) for row in tokens],
    )


def _one(session: Session, user: StaffUser) -> UserOut:
    session.flush()
    session.refresh(user)
    return user_out(user, live_tokens(session).get(user.id, []))


@router.get("/users", response_model=UsersOut, summary="Staff accounts")
def list_all(web: WebDep, admin: ApiAdminDep) -> UsersOut:
    """Every account with its role, whether it is disabled, and its live API tokens."""
    with web.transaction() as session:
        tokens = live_tokens(session)
        return UsersOut(items=[user_out(u, tokens.get(u.id, [])) for u in list_users(session)])


@router.post("/users", status_code=201, response_model=UserOut, responses=CONFLICT, summary="Add")
def add(body: UserIn, web: WebDep, admin: ApiAdminDep) -> UserOut:
    """Viewers look, editors also send, admins also manage staff. Without a password the
    account is for the API only (issue it a token)."""
    with web.transaction() as session:
        user = add_user(session, body.name, body.role, body.password)
        audit(session, admin, "user.add", "user", user.id, {"role": body.role.value})
        return _one(session, user)


@router.post(
    "/users/{user_id}/disable",
    response_model=UserOut,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Disable",
)
def disable(user_id: ItemId, web: WebDep, admin: ApiAdminDep) -> UserOut:
    """No more logins; its sessions end and its API tokens are revoked. The last active admin
    is refused (409)."""
    with web.transaction() as session:
        user = disable_user(session, get_user(session, user_id).name)
        audit(session, admin, "user.disable", "user", user.id)
        return _one(session, user)


@router.post(
    "/users/{user_id}/tokens",
    status_code=201,
    response_model=TokenIssued,
    responses=NOT_FOUND,
    summary="Issue a token",
)
def issue(user_id: ItemId, web: WebDep, admin: ApiAdminDep) -> TokenIssued:
    """A new API token for the account, in this answer only: store it now."""
    with web.transaction() as session:
        row, token = issue_token(session, get_user(session, user_id).name)
        audit(session, admin, "token.issue", "token", row.id, {"user": user_id})
        return TokenIssued(id=row.id, user_id=user_id, token=token)


@router.post(
    "/tokens/{token_id}/revoke", response_model=TokenOut, responses=NOT_FOUND, summary="Revoke"
)
def revoke(token_id: ItemId, web: WebDep, admin: ApiAdminDep) -> TokenOut:
    """The token stops working at once; revoking it again changes nothing."""
    with web.transaction() as session:
        row = revoke_token(session, token_id)
        audit(session, admin, "token.revoke", "token", token_id)
        return token_out(row)
