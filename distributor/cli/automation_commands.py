"""``distributor automations``: a list's welcome mail and the steps after it, sent to each reader
who joins, exactly once per reader and step."""

from __future__ import annotations

import json

import click
from rich.table import Table

from distributor.automations.delays import parse_delay
from distributor.automations.store import (
    AutomationView,
    list_automations,
    pause_automation,
    reader_steps,
    remove_step,
    resume_automation,
    set_step,
    show_automation,
)
from distributor.cli.context import AppContext, pass_app
from distributor.cli.terminal import plain, rich_text
from distributor.db import utcnow
from subscribers.store import find_subscriber

AFTER_HELP = "When, after a reader joins: 0 (the welcome), 3d, 12h or 30m (a bare number: days)."


@click.group()
def automations() -> None:
    """Welcome mail and simple automations: per list, issues sent to each reader who joins (a
    confirmed sign-up, an import or add with --welcome, the API's welcome), at 0 (the welcome)
    or N days after, exactly once per reader and step."""


@automations.command("add-step")
@click.argument("list_name", metavar="LIST")
@click.option("--issue", "issue_id", type=int, required=True, help="The issue to send.")
@click.option("--after", "after", default="0", show_default=True, help=AFTER_HELP)
@pass_app
def add_step_command(app: AppContext, list_name: str, issue_id: int, after: str) -> None:
    """Send an issue to each reader who joins LIST from now on, at a moment after joining."""
    with app.session() as session:
        step = set_step(session, list_name, parse_delay(after), issue_id, utcnow())
    moment = "on joining (the welcome)" if not step.delay_seconds else f"{step.delay} after joining"
    click.echo(
        f"List {plain(list_name)!r}: issue {step.issue_id} {moment}, through send {step.send_id}."
    )


@automations.command("welcome")
@click.argument("list_name", metavar="LIST")
@click.option("--issue", "issue_id", type=int, required=True, help="The issue to send.")
@click.pass_context
def welcome_command(ctx: click.Context, list_name: str, issue_id: int) -> None:
    """Send an issue to each reader who joins LIST from now on, as they join (--after 0)."""
    ctx.invoke(add_step_command, list_name=list_name, issue_id=issue_id, after="0")


@automations.command("remove-step")
@click.argument("list_name", metavar="LIST")
@click.option("--after", "after", required=True, help=AFTER_HELP)
@pass_app
def remove_step_command(app: AppContext, list_name: str, after: str) -> None:
    """Stop one step of LIST: its messages not yet sent are cancelled; what it sent stays."""
    with app.session() as session:
        send_id = remove_step(session, list_name, parse_delay(after), utcnow())
    click.echo(f"Step removed; its send {send_id} is cancelled.")


@automations.command("pause")
@click.argument("list_name", metavar="LIST")
@pass_app
def pause_command(app: AppContext, list_name: str) -> None:
    """Stop LIST's steps: nothing goes out until resumed; readers due meanwhile wait."""
    with app.session() as session:
        pause_automation(session, list_name, utcnow())
    click.echo(f"Automation of {plain(list_name)!r} paused.")


@automations.command("resume")
@click.argument("list_name", metavar="LIST")
@pass_app
def resume_command(app: AppContext, list_name: str) -> None:
    """Go on where it stopped: the readers due meanwhile are sent to now."""
    with app.session() as session:
        resume_automation(session, list_name, utcnow())
    click.echo(f"Automation of {plain(list_name)!r} resumed.")


@automations.command("list")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@pass_app
def list_command(app: AppContext, as_json: bool) -> None:
    """Every list's automation with its steps, the readers each reached and their messages."""
    with app.session() as session:
        found = list_automations(session)
    if as_json:
        click.echo(json.dumps([_json(view) for view in found], ensure_ascii=False))
        return
    if not found:
        click.echo("No automations. Add one: distributor automations welcome LIST --issue ID")
        return
    _print(app, found)


@automations.command("show")
@click.argument("list_name", metavar="LIST")
@pass_app
def show_command(app: AppContext, list_name: str) -> None:
    """LIST's automation: its steps, the readers each reached and their messages."""
    with app.session() as session:
        view = show_automation(session, list_name)
    _print(app, [view])


@automations.command("reader")
@click.argument("email")
@pass_app
def reader_command(app: AppContext, email: str) -> None:
    """The steps EMAIL was given, when, and what became of each message."""
    with app.session() as session:
        subscriber = find_subscriber(session, email)
        steps = reader_steps(session, subscriber.id)
    if not steps:
        click.echo(f"{plain(subscriber.email)} was given no automation step.")
        return
    table = Table("List", "After", "Issue", "Send", "Claimed", "Message", "Sent")
    zone = app.settings.zone
    for step in steps:
        table.add_row(
            rich_text(step.list_name),
            step.delay,
            str(step.issue_id),
            str(step.send_id),
            step.claimed_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
            step.state or "not by email",
            step.sent_at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if step.sent_at else "",
        )
    app.console.print(table)


def _json(view: AutomationView) -> dict[str, object]:
    return {
        "list": view.list_name,
        "paused": view.paused,
        "steps": [
            {
                "after": step.delay,
                "issue_id": step.issue_id,
                "send_id": step.send_id,
                "send_state": step.send_state,
                "readers": step.reached,
                "deliveries": step.counts,
            }
            for step in view.steps
        ],
    }


def _print(app: AppContext, views: list[AutomationView]) -> None:
    table = Table("List", "State", "After", "Issue", "Send", "Readers", "Messages")
    for view in views:
        state = "paused" if view.paused else "on"
        for step in view.steps:
            messages = ", ".join(f"{n} {name}" for name, n in step.counts.items())
            table.add_row(
                rich_text(view.list_name),
                state,
                step.delay,
                str(step.issue_id),
                f"{step.send_id} ({step.send_state})",
                str(step.reached),
                messages,
            )
    app.console.print(table)
