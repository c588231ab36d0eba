"""Staff accounts, sessions, API tokens and the audit log, as the services keep them."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from distributor.db import transaction, utcnow
from distributor.errors import NotAuthenticated, NotFound, StaffAccountError
from distributor.staff.accounts import (
    add_user,
    authenticate_password,
    disable_user,
    enable_user,
    list_users,
    set_password,
)
from distributor.staff.audit import audit_of, record_audit
from distributor.staff.models import ApiToken, Role, StaffSession, StaffUser
from distributor.staff.names import name_key
from distributor.staff.sessions import SESSION_IDLE, end_session, session_user, start_session
from distributor.staff.tokens import authenticate_token, issue_token, revoke_token

PASSWORD = "correct horse battery"


def test_roles_are_ordered() -> None:
    assert [r.can_write for r in Role] == [False, True, True]
    assert [r.can_admin for r in Role] == [False, False, True]
    assert Role.ADMIN.allows(Role.EDITOR) and Role.EDITOR.allows(Role.EDITOR)
    assert not Role.VIEWER.allows(Role.EDITOR) and not Role.EDITOR.allows(Role.ADMIN)


def test_a_user_signs_in_with_the_password_stored_only_as_an_argon2id_hash(
    database_url: str,
) -> None:
    with transaction(database_url) as session:
        add_user(session, "王编辑", Role.EDITOR, PASSWORD)
    with transaction(database_url) as session:
        stored = session.scalars(select(StaffUser.password_hash)).one()
        assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
        user = authenticate_password(session, "王编辑", PASSWORD)
        assert (user.name, user.role) == ("王编辑", Role.EDITOR)
        for name, password in (("王编辑", "wrong password"), ("nobody", PASSWORD)):
            with pytest.raises(NotAuthenticated, match="wrong name or password"):
                authenticate_password(session, name, password)


def test_unknown_names_take_as_long_as_known_ones(sqlite_url: str) -> None:
    """Timing must not tell which names exist: an unknown name runs a full argon2 check too."""
    with transaction(sqlite_url) as session:
        add_user(session, "admin", Role.ADMIN, PASSWORD)

    def seconds(name: str) -> float:
        start = time.perf_counter()
        for _ in range(3):
            with transaction(sqlite_url) as session, pytest.raises(NotAuthenticated):
                authenticate_password(session, name, "wrong password")
        return time.perf_counter() - start

    known, unknown = seconds("admin"), seconds("nobody")
    assert unknown > known / 3, (known, unknown)  # without the dummy hash: ~100x faster


def test_bad_accounts_are_refused_with_a_clear_message(sqlite_url: str) -> None:
    with transaction(sqlite_url) as session:
        add_user(session, "li", Role.VIEWER, PASSWORD)
        for name, password, message in (
            ("li", PASSWORD, "a staff account named 'li' exists already"),
            ("zhao", "short", "the password is too short: use at least 10 characters"),
            ("", PASSWORD, "a staff name cannot be empty"),
            ("a b", PASSWORD, "no spaces or control characters"),
        ):
            with pytest.raises(StaffAccountError, match=message):
                add_user(session, name, Role.VIEWER, password)
        assert [user.name for user in list_users(session)] == ["li"]
        with pytest.raises(NotFound, match="no staff account named 'ghost'"):
            disable_user(session, "ghost")


def test_disabling_a_user_ends_its_sessions_tokens_and_logins(database_url: str) -> None:
    with transaction(database_url) as session:
        user = add_user(session, "li", Role.EDITOR, PASSWORD)
        session_id = start_session(session, user)
        _, token = issue_token(session, "li")
    with transaction(database_url) as session:
        assert session_user(session, session_id).name == "li"
        assert authenticate_token(session, token).name == "li"
        disable_user(session, "li")
    with transaction(database_url) as session:
        for check in (
            lambda: session_user(session, session_id),
            lambda: authenticate_token(session, token),
            lambda: authenticate_password(session, "li", PASSWORD),
        ):
            with pytest.raises(NotAuthenticated):
                check()


@pytest.mark.parametrize(
    ("name", "password"),
    [
        ("li", "password123456"),  # on every list of common passwords
        ("li", "1qaz2wsx3edc"),  # a keyboard walk
        ("wangyu", "Wangyu@123456"),  # the account's own name and a common tail
        ("li", "Password2026!"),  # a word, a year and a symbol
    ],
)
def test_common_and_name_derived_passwords_are_refused(
    sqlite_url: str, name: str, password: str
) -> None:
    with transaction(sqlite_url) as session:
        with pytest.raises(StaffAccountError, match="the password is too easy to guess"):
            add_user(session, name, Role.EDITOR, password)
        add_user(session, name, Role.EDITOR, PASSWORD)
        with pytest.raises(StaffAccountError, match="too easy to guess"):
            set_password(session, name, password)
    with transaction(sqlite_url) as session:
        assert authenticate_password(session, name, PASSWORD).name == name  # unchanged


@pytest.mark.parametrize(
    "look_alike",
    ["Admin", "ADMIN", "\u0430dmin", "\uff41\uff44\uff4d\uff49\uff4e", "adm1n", "admln", "adrnin"],
)
def test_a_name_that_reads_like_an_existing_one_is_refused(
    sqlite_url: str, look_alike: str
) -> None:
    """Case, width and look-alike letters (Cyrillic а, fullwidth, 1 for i, rn for m) do not make
    another name: the audit log would read the same."""
    with transaction(sqlite_url) as session:
        add_user(session, "admin", Role.ADMIN, PASSWORD)
        with pytest.raises(StaffAccountError, match=r"exists already \(as 'admin': it reads"):
            add_user(session, look_alike, Role.EDITOR, PASSWORD)
        add_user(session, "王编辑", Role.EDITOR, PASSWORD)  # a different name is fine
        assert [user.name for user in list_users(session)] == ["admin", "王编辑"]
    assert name_key("王编辑") != name_key("王编")


def test_a_new_password_revokes_the_accounts_api_tokens(sqlite_url: str) -> None:
    with transaction(sqlite_url) as session:
        add_user(session, "li", Role.EDITOR, PASSWORD)
        _, token = issue_token(session, "li")
        set_password(session, "li", "another long password")
    with transaction(sqlite_url) as session, pytest.raises(NotAuthenticated):
        authenticate_token(session, token)


def test_a_disabled_account_can_be_enabled_without_reviving_its_tokens(
    database_url: str,
) -> None:
    with transaction(database_url) as session:
        add_user(session, "admin", Role.ADMIN, PASSWORD)
        add_user(session, "li", Role.EDITOR, PASSWORD)
        _, token = issue_token(session, "li")
        disable_user(session, "li")
    with transaction(database_url) as session:
        enable_user(session, "li")
    with transaction(database_url) as session:
        assert authenticate_password(session, "li", PASSWORD).name == "li"
        with pytest.raises(NotAuthenticated):
            authenticate_token(session, token)
        _, fresh = issue_token(session, "li")
        assert authenticate_token(session, fresh).name == "li"


def test_a_new_password_signs_out_every_session(sqlite_url: str) -> None:
    with transaction(sqlite_url) as session:
        user = add_user(session, "li", Role.EDITOR, PASSWORD)
        session_id = start_session(session, user)
        set_password(session, "li", "another long password")
    with transaction(sqlite_url) as session:
        with pytest.raises(NotAuthenticated):
            session_user(session, session_id)
        with pytest.raises(NotAuthenticated):
            authenticate_password(session, "li", PASSWORD)
        assert authenticate_password(session, "li", "another long password").name == "li"


def test_sessions_are_stored_hashed_and_end_when_idle_expired_or_signed_out(
    database_url: str,
) -> None:
    now = utcnow()
    with transaction(database_url) as session:
        user = add_user(session, "li", Role.VIEWER, PASSWORD)
        first = start_session(session, user, now)
        second = start_session(session, user, now)
        idle = start_session(session, user, now)
    assert len({first, second, idle}) == 3
    with transaction(database_url) as session:
        hashes = session.scalars(select(StaffSession.id_hash)).all()
        assert first not in hashes and len(hashes) == 3
        assert session_user(session, first, now + timedelta(hours=1)).name == "li"
        end_session(session, second)
    with transaction(database_url) as session:
        later = now + timedelta(hours=1) + SESSION_IDLE - timedelta(minutes=1)
        assert session_user(session, first, later).name == "li"  # seen an hour in: still live
        with pytest.raises(NotAuthenticated):
            session_user(session, second, now)
        with pytest.raises(NotAuthenticated):
            session_user(session, idle, later)
        with pytest.raises(NotAuthenticated):
            session_user(session, first, now + timedelta(hours=12))
        with pytest.raises(NotAuthenticated):
            session_user(session, "made-up", now)


def test_an_api_token_is_shown_once_stored_hashed_and_revocable(database_url: str) -> None:
    with transaction(database_url) as session:
        add_user(session, "bot", Role.EDITOR, None)
        row, token = issue_token(session, "bot")
        token_id = row.id
    assert token.startswith("dst_") and len(token) > 40
    now = utcnow()
    with transaction(database_url) as session:
        assert authenticate_token(session, token, now).name == "bot"
        stored = session.get(ApiToken, token_id)
        assert stored is not None and stored.token_hash != token
        assert stored.last_used_at == now
        with pytest.raises(NotAuthenticated):
            authenticate_token(session, token[:-1] + ("A" if token[-1] != "A" else "B"))
        with pytest.raises(NotAuthenticated):  # no password: cannot sign in to the pages
            authenticate_password(session, "bot", "")
        revoke_token(session, token_id)
    with transaction(database_url) as session, pytest.raises(NotAuthenticated):
        authenticate_token(session, token)
    with transaction(database_url) as session, pytest.raises(NotFound):
        revoke_token(session, 999)


def test_the_audit_log_keeps_who_did_what_to_which_thing(database_url: str) -> None:
    with transaction(database_url) as session:
        user = add_user(session, "li", Role.EDITOR, PASSWORD)
        record_audit(session, user, "send.pause", "send", 7, {"reason": "typo"})
        record_audit(session, user, "send.resume", "send", 7)
        record_audit(session, None, "user.add", "user", user.id, actor="cli")
    with transaction(database_url) as session:
        entries = audit_of(session, "send", 7)
        assert [(e.actor, e.action, e.detail) for e in entries] == [
            ("li", "send.resume", {}),
            ("li", "send.pause", {"reason": "typo"}),
        ]
        assert [e.actor for e in audit_of(session, "user", user.id)] == ["cli"]
