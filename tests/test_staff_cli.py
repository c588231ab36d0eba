"""`distributor users …` as an administrator uses it."""

from __future__ import annotations

from click.testing import CliRunner, Result

from distributor.db import transaction
from distributor.staff.accounts import authenticate_password
from distributor.staff.audit import recent_audit
from distributor.staff.tokens import authenticate_token

PASSWORD = "correct horse battery"


def run(url: str, *args: str, input: str | None = None) -> Result:
    from distributor.cli import main

    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": url}, input=input)


def test_add_list_token_revoke_and_disable(sqlite_url: str) -> None:
    added = run(sqlite_url, "users", "add", "admin", "--role", "admin", input=f"{PASSWORD}\n" * 2)
    assert added.exit_code == 0, added.output
    assert "Added admin admin." in added.output
    assert PASSWORD not in added.output.replace("Password", "")
    piped = run(
        sqlite_url,
        "users",
        "add",
        "编辑",
        "--role",
        "editor",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert piped.exit_code == 0, piped.output

    issued = run(sqlite_url, "users", "token", "编辑")
    assert issued.exit_code == 0, issued.output
    token = issued.stdout.strip().splitlines()[-1]
    with transaction(sqlite_url) as session:
        assert authenticate_token(session, token).name == "编辑"

    listed = run(sqlite_url, "users", "list")
    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.output.splitlines() if "编辑" in line or "admin" in line]
    assert any("editor" in row and "active" in row and "│ 1 " in row for row in rows), rows

    revoked = run(sqlite_url, "users", "revoke-token", "1")
    assert revoked.exit_code == 0 and "Revoked API token 1." in revoked.output
    changed = run(
        sqlite_url, "users", "password", "编辑", "--password-stdin", input="another long one\n"
    )
    assert changed.exit_code == 0 and "Password of 编辑 changed." in changed.output
    with transaction(sqlite_url) as session:
        assert authenticate_password(session, "编辑", "another long one").name == "编辑"
    disabled = run(sqlite_url, "users", "disable", "编辑")
    assert disabled.exit_code == 0 and "Disabled 编辑." in disabled.output
    assert "disabled" in run(sqlite_url, "users", "list").output
    last = run(sqlite_url, "users", "disable", "admin")
    assert (last.exit_code, last.output) == (
        2,
        "Error: 'admin' is the last active admin: add another admin before disabling it\n",
    )
    with transaction(sqlite_url) as session:
        actions = [(e.actor, e.action) for e in recent_audit(session)]
    assert actions == [
        ("cli", "user.disable"),
        ("cli", "user.password"),
        ("cli", "token.revoke"),
        ("cli", "token.issue"),
        ("cli", "user.add"),
        ("cli", "user.add"),
    ]


def test_a_disabled_account_is_enabled_again(sqlite_url: str) -> None:
    for name, role in (("admin", "admin"), ("li", "editor")):
        added = run(sqlite_url, "users", "add", name, "--role", role, "--password-stdin",
                    input=PASSWORD + "\n")
        assert added.exit_code == 0, added.output
    assert run(sqlite_url, "users", "disable", "li").exit_code == 0
    enabled = run(sqlite_url, "users", "enable", "li")
    assert (enabled.exit_code, enabled.output) == (0, "Enabled li.\n")
    with transaction(sqlite_url) as session:
        assert authenticate_password(session, "li", PASSWORD).name == "li"
        assert [(e.actor, e.action) for e in recent_audit(session)][:2] == [
            ("cli", "user.enable"), ("cli", "user.disable")
        ]
    weak = run(sqlite_url, "users", "password", "li", "--password-stdin", input="li12345678\n")
    assert weak.exit_code == 2
    assert weak.output.startswith("Error: the password is too easy to guess")


def test_bad_input_is_one_line_with_exit_2(sqlite_url: str) -> None:
    short = run(
        sqlite_url, "users", "add", "li", "--role", "viewer", "--password-stdin", input="x\n"
    )
    assert short.exit_code == 2
    assert short.output == "Error: the password is too short: use at least 10 characters\n"
    missing = run(sqlite_url, "users", "token", "ghost")
    assert (missing.exit_code, missing.output) == (2, "Error: no staff account named 'ghost'\n")
    assert run(sqlite_url, "users", "revoke-token", "5").output == "Error: no API token with id 5\n"
    bad_role = run(sqlite_url, "users", "add", "li", "--role", "owner", "--password-stdin")
    assert bad_role.exit_code == 2 and "'owner' is not one of" in bad_role.output
