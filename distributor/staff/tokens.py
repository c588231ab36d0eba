"""API tokens: issued for a staff account, shown once, checked on every API request."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.errors import NotAuthenticated, NotFound
from distributor.staff.accounts import find_user
from distributor.staff.models import ApiToken, StaffUser
from distributor.staff.secrets import new_secret, secret_hash

TOKEN_PREFIX = "dst_"  # recognisable in a leaked log or a secret scanner
TOKEN_MAX = 200
LAST_USED_EVERY = timedelta(minutes=1)  # not a write on every request


def issue_token(session: Session, name: str) -> tuple[ApiToken, str]:
    """A new token for account ``name``: the row, and the token itself (never stored)."""
    user = find_user(session, name)
    token = new_secret(TOKEN_PREFIX)
    row = ApiToken(user_id=user.id, token_hash=secret_hash(token))
    session.add(row)
    session.flush()
    return row, token


def revoke_token(session: Session, token_id: int, now: datetime | None = None) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no API token with id {token_id}", code="token.missing", token=token_id)
    if row.revoked_at is None:
        row.revoked_at = now or utcnow()
    return row


def revoke_tokens_of(session: Session, user_id: int, now: datetime | None = None) -> None:
    """Every live token of one account, revoked (a new password, a disabled account)."""
    session.execute(
        update(ApiToken)
        .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )


def live_tokens(session: Session) -> dict[int, list[ApiToken]]:
    """Every account's unrevoked tokens by account id, oldest first: one query for a listing."""
    found: dict[int, list[ApiToken]] = {}
    for row in session.scalars(
        select(ApiToken).where(ApiToken.revoked_at.is_(None)).order_by(ApiToken.id)
    ):
        found.setdefault(row.user_id, []).append(row)
    return found


def authenticate_token(session: Session, token: str, now: datetime | None = None) -> StaffUser:
    """The enabled account a live token belongs to; one error for every other case."""
    now = now or utcnow()
    row = None
    if token.startswith(TOKEN_PREFIX) and len(token) <= TOKEN_MAX:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == secret_hash(token)))
    if row is None or row.revoked_at is not None or row.user.disabled:
        raise NotAuthenticated("the API token is missing, unknown or revoked", code="token.unknown")
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_EVERY:
        row.last_used_at = now
    return row.user
