"""``distributor users``: staff accounts for the dashboard and the API, and their tokens."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from rich.table import Table
from sqlalchemy.orm import Session

from distributor.cli.context import AppContext, pass_app
from distributor.cli.terminal import plain, rich_text
from distributor.staff.accounts import (
    add_user,
    disable_user,
    enable_user,
    list_users,
    set_password,
)
from distributor.staff.audit import record_audit
from distributor.staff.models import Role, StaffUser
from distributor.staff.tokens import issue_token, live_tokens, revoke_token

ROLES = [role.value for role in Role]
CLI_ACTOR = "cli"


def _password(from_stdin: bool) -> str:
    """Read from a prompt (typed twice, not echoed) or the first line of standard input."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.group()
def users() -> None:
    """Staff accounts: add, list, disable, enable, set a password, issue and revoke API tokens."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the account may do.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_app
def users_add(app: AppContext, name: str, role: str, password_stdin: bool) -> None:
    """Add the staff account NAME: viewers look, editors also send, admins also manage staff."""
    password = _password(password_stdin)
    with app.session() as session:
        user = add_user(session, name, Role(role), password)
        record_audit(session, None, "user.add", "user", user.id, {"role": role}, actor=CLI_ACTOR)
        shown = plain(user.name)
    app.console.print(rich_text(f"Added {role} {shown}."))


@users.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_app
def users_password(app: AppContext, name: str, password_stdin: bool) -> None:
    """Set a new password for NAME; the account's browser sessions end."""
    password = _password(password_stdin)
    with app.session() as session:
        user = set_password(session, name, password)
        record_audit(session, None, "user.password", "user", user.id, actor=CLI_ACTOR)
    app.console.print(rich_text(f"Password of {plain(name)} changed."))


@users.command("list")
@pass_app
def users_list(app: AppContext) -> None:
    """Every staff account, with its role and live API tokens."""
    table = Table("Name", "Role", "State", "Created", "API tokens (id)")
    with app.session() as session:
        tokens = live_tokens(session)
        for user in list_users(session):
            live = [str(token.id) for token in tokens.get(user.id, [])]
            table.add_row(
                rich_text(plain(user.name)),
                user.role.value,
                "disabled" if user.disabled else "active",
                user.created_at.astimezone(app.settings.zone).strftime("%Y-%m-%d %H:%M"),
                ", ".join(live) or "—",
            )
    app.console.print(table)


@users.command("disable")
@click.argument("name")
@pass_app
def users_disable(app: AppContext, name: str) -> None:
    """Disable NAME: no more logins, its sessions end and its API tokens are revoked."""
    _switch(app, name, disable_user, "user.disable", "Disabled")


@users.command("enable")
@click.argument("name")
@pass_app
def users_enable(app: AppContext, name: str) -> None:
    """Enable NAME again: it may sign in with its password (issue it new API tokens)."""
    _switch(app, name, enable_user, "user.enable", "Enabled")


def _switch(
    app: AppContext, name: str, change: Callable[[Session, str], StaffUser], action: str, done: str
) -> None:
    with app.session() as session:
        user = change(session, name)
        record_audit(session, None, action, "user", user.id, actor=CLI_ACTOR)
    app.console.print(rich_text(f"{done} {plain(name)}."))


@users.command("token")
@click.argument("name")
@pass_app
def users_token(app: AppContext, name: str) -> None:
    """Issue a new API token for NAME. It is printed once: store it now."""
    with app.session() as session:
        row, token = issue_token(session, name)
        record_audit(session, None, "token.issue", "token", row.id, actor=CLI_ACTOR)
        token_id = row.id
    click.echo(f"API token {token_id} for {plain(name)} (shown once, store it now):", err=True)
    click.echo(token)


@users.command("revoke-token")
@click.argument("token_id", type=int)
@pass_app
def users_revoke_token(app: AppContext, token_id: int) -> None:
    """Revoke the API token TOKEN_ID (see: distributor users list)."""
    with app.session() as session:
        revoke_token(session, token_id)
        record_audit(session, None, "token.revoke", "token", token_id, actor=CLI_ACTOR)
    app.console.print(f"Revoked API token {token_id}.")
