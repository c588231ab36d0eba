"""Staff accounts: add, list, disable and enable, set a password, sign in with a password."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.errors import (
    NotAuthenticated,
    NotFound,
    StaffAccountConflict,
    StaffAccountError,
)
from distributor.staff.models import STAFF_NAME_MAX, Role, StaffUser
from distributor.staff.names import name_key
from distributor.staff.passwords import (
    check_strength,
    hash_password,
    needs_rehash,
    verify_password,
)

WRONG_LOGIN = "wrong name or password, or the account is disabled"


def clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise StaffAccountError("a staff name cannot be empty", code="staff.name_empty")
    if len(name) > STAFF_NAME_MAX:
        raise StaffAccountError(
            f"a staff name has at most {STAFF_NAME_MAX} characters",
            code="staff.name_long",
            most=STAFF_NAME_MAX,
        )
    if any(not char.isprintable() or char.isspace() for char in name):
        raise StaffAccountError(
            f"a staff name has no spaces or control characters: {name!r}",
            code="staff.name_spaces",
            name=name,
        )
    return name


def add_user(session: Session, name: str, role: Role, password: str | None) -> StaffUser:
    """``password`` None: the account cannot sign in with a password (an API-only account).
    A name that only differs from an existing one by case, width or look-alike letters is the
    same name (:func:`~distributor.staff.names.name_key`)."""
    name = clean_name(name)
    key = name_key(name)
    taken = next((other for other in session.scalars(select(StaffUser.name))
                  if name_key(other) == key), None)
    if taken is not None:
        same = "" if taken == name else f" (as {taken!r}: it reads the same)"
        raise StaffAccountConflict(
            f"a staff account named {name!r} exists already{same}",
            code="staff.name_taken",
            name=taken,
        )
    if password is not None:
        check_strength(password, name=name)
    user = StaffUser(
        name=name,
        role=role,
        password_hash=hash_password(password) if password is not None else None,
        disabled=False,
    )
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> Sequence[StaffUser]:
    return session.scalars(select(StaffUser).order_by(StaffUser.name)).all()


def find_user(session: Session, name: str) -> StaffUser:
    user = session.scalar(select(StaffUser).where(StaffUser.name == name.strip()))
    if user is None:
        raise NotFound(f"no staff account named {name!r}", code="staff.no_name", name=name)
    return user


def get_user(session: Session, user_id: int) -> StaffUser:
    user = session.get(StaffUser, user_id)
    if user is None:
        raise NotFound(f"no staff account with id {user_id}", code="staff.no_id", id=user_id)
    return user


def disable_user(session: Session, name: str) -> StaffUser:
    """The account can no longer sign in; its sessions end and its API tokens are revoked (so
    enabling it again revives neither). The last active admin is refused: nobody would be left
    to manage the staff."""
    from distributor.staff.sessions import end_sessions_of
    from distributor.staff.tokens import revoke_tokens_of

    user = find_user(session, name)
    if user.role is Role.ADMIN and not user.disabled:
        # Locked on PostgreSQL: two admins disabling each other at once cannot both succeed.
        admins = session.scalars(
            select(StaffUser.id)
            .where(StaffUser.role == Role.ADMIN, StaffUser.disabled.is_(False))
            .with_for_update()
        ).all()
        if len(admins) <= 1:
            raise StaffAccountConflict(
                f"{user.name!r} is the last active admin: add another admin before disabling it",
                code="staff.last_admin",
                name=user.name,
            )
    user.disabled = True
    end_sessions_of(session, user.id)
    revoke_tokens_of(session, user.id)
    return user


def enable_user(session: Session, name: str) -> StaffUser:
    """A disabled account may sign in again, with its password; its old sessions and API tokens
    stay ended (new ones are made)."""
    user = find_user(session, name)
    user.disabled = False
    return user


def set_password(session: Session, name: str, password: str) -> StaffUser:
    """A new password ends the account's sessions and revokes its API tokens: whoever knew the
    old password, or took a token with it, is shut out."""
    from distributor.staff.sessions import end_sessions_of
    from distributor.staff.tokens import revoke_tokens_of

    user = find_user(session, name)
    check_strength(password, name=user.name)
    user.password_hash = hash_password(password)
    end_sessions_of(session, user.id)
    revoke_tokens_of(session, user.id)
    return user


def authenticate_password(session: Session, name: str, password: str) -> StaffUser:
    """The enabled account ``name`` with ``password``; the same error, after the same work,
    whether the name is unknown, the password wrong or the account disabled."""
    user = session.scalar(select(StaffUser).where(StaffUser.name == name.strip()))
    matched = verify_password(user.password_hash if user else None, password)
    if user is None or not matched or user.disabled:
        raise NotAuthenticated(WRONG_LOGIN, code="staff.wrong_login")
    assert user.password_hash is not None
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user
