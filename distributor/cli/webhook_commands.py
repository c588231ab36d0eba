"""``distributor webhooks``: URLs told of events, signed; what each was sent (the log)."""

from __future__ import annotations

import json

import click
from rich.table import Table

from distributor.cli.context import AppContext, pass_app
from distributor.cli.terminal import plain, rich_text
from distributor.webhooks.models import HookState
from distributor.webhooks.store import (
    EVENT_NAMES,
    add_webhook,
    delivery_log,
    list_webhooks,
    remove_webhook,
    set_active,
    webhook_secret,
)


@click.group()
def webhooks() -> None:
    """Webhooks: a URL is sent each event it listens for, signed (README, Webhooks)."""


@webhooks.command("add")
@click.argument("url")
@click.option(
    "--event",
    "events",
    multiple=True,
    required=True,
    type=click.Choice(EVENT_NAMES),
    help="An event to send it; repeatable.",
)
@click.option("--description", default="", help="What it is for, in a few words.")
@pass_app
def add_command(app: AppContext, url: str, events: tuple[str, ...], description: str) -> None:
    """Register URL for the events given; prints its ID and the secret its posts are signed
    with (keep it with the receiver; `webhooks secret ID` shows it again)."""
    with app.session() as session:
        hook, secret = add_webhook(session, url, list(events), description)
    click.echo(f"Webhook ID: {hook.id}")
    click.echo(f"Secret: {secret}")
    click.echo(f"It is sent {', '.join(hook.events)} from now on, {_WORKER}.")


_WORKER = "once a worker with the scheduler runs (distributor worker --beat)"


@webhooks.command("list")
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@pass_app
def list_command(app: AppContext, as_json: bool) -> None:
    """Every webhook, with its events and whether it is active."""
    with app.session() as session:
        found = list_webhooks(session)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"id": h.id, "url": h.url, "events": list(h.events), "active": h.active}
                    for h in found
                ]
            )
        )
        return
    if not found:
        click.echo("No webhooks. Add one: distributor webhooks add URL --event send.done …")
        return
    table = Table("ID", "URL", "Events", "Active", "Description")
    for hook in found:
        table.add_row(
            str(hook.id),
            rich_text(hook.url),
            ", ".join(hook.events),
            "yes" if hook.active else "paused",
            rich_text(hook.description),
        )
    app.console.print(table)


@webhooks.command("log")
@click.argument("webhook_id", type=int)
@click.option("--state", type=click.Choice([state.value for state in HookState]))
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="As JSON.")
@pass_app
def log_command(
    app: AppContext, webhook_id: int, state: str | None, limit: int, as_json: bool
) -> None:
    """What was sent to a webhook, newest first: each event, its tries and the last answer."""
    with app.session() as session:
        entries = delivery_log(session, webhook_id, state=state, limit=limit)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "event": e.event,
                        "kind": e.kind,
                        "state": e.state,
                        "attempts": e.attempts,
                        "last_status": e.last_status,
                        "last_error": e.last_error,
                        "next_attempt_at": e.next_attempt_at and e.next_attempt_at.isoformat(),
                        "delivered_at": e.delivered_at and e.delivered_at.isoformat(),
                    }
                    for e in entries
                ],
                ensure_ascii=False,
            )
        )
        return
    if not entries:
        click.echo("Nothing was sent to it yet.")
        return
    zone = app.settings.zone
    table = Table("Event", "Kind", "State", "Tries", "Last answer", "Next try / delivered")
    for e in entries:
        when = e.delivered_at or e.next_attempt_at
        table.add_row(
            e.event,
            e.kind,
            e.state,
            str(e.attempts),
            rich_text(plain(e.last_error or (str(e.last_status) if e.last_status else "—"), 80)),
            f"{when.astimezone(zone):%Y-%m-%d %H:%M:%S}" if when else "—",
        )
    app.console.print(table)


@webhooks.command("secret")
@click.argument("webhook_id", type=int)
@pass_app
def secret_command(app: AppContext, webhook_id: int) -> None:
    """The secret a webhook's posts are signed with."""
    with app.session() as session:
        click.echo(webhook_secret(session, webhook_id))


@webhooks.command("pause")
@click.argument("webhook_id", type=int)
@pass_app
def pause_command(app: AppContext, webhook_id: int) -> None:
    """Stop keeping events for it (what is already queued is still tried)."""
    with app.session() as session:
        set_active(session, webhook_id, False)
    click.echo(f"Webhook {webhook_id} paused: events from now on are not sent to it.")


@webhooks.command("resume")
@click.argument("webhook_id", type=int)
@pass_app
def resume_command(app: AppContext, webhook_id: int) -> None:
    """Send it events again, from now on."""
    with app.session() as session:
        set_active(session, webhook_id, True)
    click.echo(f"Webhook {webhook_id} resumed.")


@webhooks.command("remove")
@click.argument("webhook_id", type=int)
@pass_app
def remove_command(app: AppContext, webhook_id: int) -> None:
    """Remove a webhook and its log."""
    with app.session() as session:
        remove_webhook(session, webhook_id)
    click.echo(f"Webhook {webhook_id} removed.")
