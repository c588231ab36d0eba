"""``distributor send`` and ``schedule``: create sends, watch them, repeat them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.orm import Session

from distributor.cli.context import AppContext, pass_app
from distributor.db import utcnow
from distributor.errors import DistributorError
from distributor.sending.lifecycle import cancel_send, pause_send, resume_send, retry_failed
from distributor.sending.models import DeliveryState, SendVariant
from distributor.sending.recurring import EVERY, add_rule, list_rules, remove_rule
from distributor.sending.service import (
    DeliveryView,
    SendStatus,
    create_send,
    create_test_send,
    list_deliveries,
    schedule_send,
    send_status,
)
from subscribers.query import AudienceFilter

VARIANTS = [v.value for v in SendVariant]


def parse_when(value: str, app: AppContext) -> datetime:
    """ISO 8601; without an offset it is read in DISTRIBUTOR_TIMEZONE (Asia/Shanghai)."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise DistributorError(
            f"--at {value!r} is not an ISO 8601 time, "
            "e.g. 2026-12-01T09:00 or 2026-12-01T09:00+08:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=app.settings.zone)


@click.group()
def send() -> None:
    """Create, test and watch sends of an issue to an audience."""


@send.command("create")
@click.option(
    "--issue", "issue_id", type=int, required=True, help="Issue ID (distributor issue list)."
)
@click.option("--list", "lists", multiple=True, required=True, help="Audience list; repeatable.")
@click.option("--tag", "tags", multiple=True, help="Only subscribers with this tag; repeatable.")
@click.option(
    "--variant",
    type=click.Choice(VARIANTS),
    default="full",
    show_default=True,
    help="'preference' sends each subscriber the format they chose.",
)
@click.option("--at", "at", help="When to send (ISO 8601); default now.")
@click.option("--draft", is_flag=True, help="Create it unscheduled; schedule later.")
@click.option(
    "--expires-in",
    "expires_in",
    type=click.FloatRange(min=0, min_open=True),
    default=6,
    show_default=True,
    help="Hours after --at past which it no longer starts by itself (workers down).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="At most this many messages per second for this send.",
)
@pass_app
def create_command(
    app: AppContext,
    issue_id: int,
    lists: tuple[str, ...],
    tags: tuple[str, ...],
    variant: str,
    at: str | None,
    draft: bool,
    expires_in: float,
    rate: float | None,
) -> None:
    """Create a send of an issue to one or more lists."""
    app.settings.require_secret_key()  # its links are signed: say so now, not in the worker
    when = parse_when(at, app) if at else utcnow()
    with app.session() as session:
        created = create_send(
            session,
            issue_id=issue_id,
            audience=AudienceFilter(lists=lists, tags=tags),
            variant=SendVariant(variant),
            at=when,
            draft=draft,
            expires_after=timedelta(hours=expires_in),
            rate_limit=rate,
        )
        send_id, state = created.id, created.state
    click.echo(f"Created send ID: {send_id}")
    if draft:
        click.echo(f"It is a draft: schedule it with `distributor send schedule {send_id} --at …`.")
    else:
        local = when.astimezone(app.settings.zone).strftime("%Y-%m-%d %H:%M %Z")
        click.echo(
            f"State: {state}, goes out at {local} once a worker and beat run "
            "(distributor worker --beat)."
        )


@send.command("schedule")
@click.argument("send_id", type=int)
@click.option("--at", "at", help="When to send (ISO 8601); default now.")
@pass_app
def schedule_command(app: AppContext, send_id: int, at: str | None) -> None:
    """Schedule a draft send (or move a scheduled one)."""
    when = parse_when(at, app) if at else utcnow()
    with app.session() as session:
        schedule_send(session, send_id, when)
    click.echo(
        f"Send {send_id} scheduled for {when.astimezone(app.settings.zone):%Y-%m-%d %H:%M %Z}"
    )


@send.command("test")
@click.option("--issue", "issue_id", type=int, required=True, help="Issue ID.")
@click.option("--to", "addresses", multiple=True, required=True, help="Staff address; repeatable.")
@click.option(
    "--variant", type=click.Choice(["full", "digest", "text"]), default="full", show_default=True
)
@pass_app
def test_command(app: AppContext, issue_id: int, addresses: tuple[str, ...], variant: str) -> None:
    """Send the issue now to staff addresses, from this process, and show each server answer."""
    from distributor.sending.engine import Engine

    with app.session() as session:
        send_id = create_test_send(
            session,
            issue_id=issue_id,
            addresses=addresses,
            variant=SendVariant(variant),
            now=utcnow(),
        ).id
    engine = Engine.from_settings(app.settings)
    try:
        engine.drain_now()
    finally:
        engine.close()
    with app.session() as session:
        rows = list_deliveries(session, send_id)
    _print_deliveries(app, rows)
    if any(row.state != "sent" for row in rows):
        raise DistributorError(f"test send {send_id}: not every address accepted the message")


def _control(verb: str, action: Callable[[Session, int, datetime], object]) -> Callable[..., None]:
    @pass_app
    def command(app: AppContext, send_id: int) -> None:
        with app.session() as session:
            action(session, send_id, utcnow())
            state = send_status(session, send_id).state
        click.echo(f"Send {send_id} {verb}; it is now {state}.")

    command.__doc__ = {
        "paused": "Pause a send: no new message goes out within 2 seconds.",
        "resumed": "Resume a paused or expired send exactly where it stopped.",
        "cancelled": "Cancel a send: every message not yet sent is cancelled.",
    }[verb]
    return click.argument("send_id", type=int)(command)


send.command("pause")(_control("paused", pause_send))
send.command("resume")(_control("resumed", resume_send))
send.command("cancel")(_control("cancelled", cancel_send))


@send.command("retry-failed")
@click.argument("send_id", type=int)
@click.option("--code", type=int, help="Only deliveries that failed with this SMTP code.")
@pass_app
def retry_failed_command(app: AppContext, send_id: int, code: int | None) -> None:
    """Send the failed deliveries of a send again (nobody already sent is touched)."""
    with app.session() as session:
        reopened = retry_failed(session, send_id, utcnow(), code=code)
    which = f" with code {code}" if code else ""
    click.echo(f"Reopened {reopened} failed deliveries{which} of send {send_id}.")


@send.command("status")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="State and a count per delivery state.")
@click.option("--watch", is_flag=True, help="Follow the send with a live progress bar.")
@pass_app
def status_command(app: AppContext, send_id: int, as_json: bool, watch: bool) -> None:
    """Counts of deliveries per state for a send."""
    with app.session() as session:
        status = send_status(session, send_id)
    if watch and status.state not in ("done",):
        status = watch_send(app, send_id)
    if as_json:
        click.echo(json.dumps(status.to_json()))
        return
    print_status(app, status)


def watch_send(
    app: AppContext,
    send_id: int,
    *,
    interval: float = 0.5,
    check: Callable[[], None] = lambda: None,
) -> SendStatus:
    """A live bar until the send is done or cancelled (Ctrl-C stops watching, not the send);
    ``check`` runs each round and may raise to stop watching (e.g. the worker died)."""
    columns = (
        TextColumn("send {task.fields[send]} [{task.fields[state]}]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=app.console) as progress:
        task = progress.add_task("", total=None, send=send_id, state="…")
        while True:
            with app.session() as session:
                status = send_status(session, send_id)
            progress.update(
                task,
                total=status.total or None,
                completed=status.finished_deliveries,
                state=status.state,
            )
            if status.state in ("done", "cancelled"):
                return status
            check()
            time.sleep(interval)


def print_status(app: AppContext, status: SendStatus) -> None:
    table = Table(
        title=f"Send {status.id} · issue {status.issue_id} · {status.variant} · {status.state}"
    )
    table.add_column("State")
    table.add_column("Deliveries", justify="right")
    for state in DeliveryState:
        if state.value in status.counts:
            table.add_row(state.value, f"{status.counts[state.value]:,}")
    table.add_row("[bold]total[/bold]", f"[bold]{status.total:,}[/bold]")
    app.console.print(table)
    if status.possible_duplicates:
        app.console.print(
            f"{status.possible_duplicates} deliveries were re-sent after a worker "
            "stopped mid-batch: those recipients may have received it twice."
        )


@send.command("deliveries")
@click.argument("send_id", type=int)
@click.option(
    "--state",
    type=click.Choice([s.value for s in DeliveryState]),
    help="Only deliveries in this state.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--limit", type=int, default=1000, show_default=True)
@pass_app
def deliveries_command(
    app: AppContext, send_id: int, state: str | None, as_json: bool, limit: int
) -> None:
    """Who got what, and why not."""
    with app.session() as session:
        rows = list_deliveries(
            session, send_id, state=DeliveryState(state) if state else None, limit=limit
        )
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], ensure_ascii=False))
        return
    _print_deliveries(app, rows)


def _print_deliveries(app: AppContext, rows: list[DeliveryView]) -> None:
    table = Table("ID", "Address", "State", "Attempts", "Code", "Detail")
    for row in rows:
        table.add_row(
            str(row.id),
            row.address,
            row.state,
            str(row.attempts),
            str(row.smtp_code or ""),
            (row.detail or "")[:80],
        )
    app.console.print(table)


@click.group()
def schedule() -> None:
    """Recurring digests: send the issues of each period to the readers who chose the digest."""


@schedule.command("add")
@click.argument("name")
@click.option("--every", type=click.Choice(EVERY), required=True, help="A weekday, or 'day'.")
@click.option("--at", "at_time", required=True, help="Local time of day, e.g. 09:00.")
@click.option("--tz", "timezone", help="Time zone; default DISTRIBUTOR_TIMEZONE.")
@click.option("--list", "lists", multiple=True, required=True, help="Audience list; repeatable.")
@pass_app
def schedule_add(
    app: AppContext,
    name: str,
    every: str,
    at_time: str,
    timezone: str | None,
    lists: tuple[str, ...],
) -> None:
    """Add a recurring digest NAME (issues imported from now on are in its first one)."""
    zone = timezone or app.settings.timezone
    with app.session() as session:
        rule = add_rule(
            session,
            name=name,
            every=every,
            at_time=at_time,
            timezone=zone,
            lists=list(lists),
            now=utcnow(),
        )
        next_run = rule.next_run_at.astimezone(ZoneInfo(zone))
    click.echo(
        f"Schedule {name!r}: every {every} at {at_time} {zone}; next {next_run:%Y-%m-%d %H:%M}"
    )


@schedule.command("list")
@pass_app
def schedule_list(app: AppContext) -> None:
    """The recurring digests and when each runs next."""
    with app.session() as session:
        rules = list_rules(session)
    if not rules:
        click.echo(
            "No schedules. Add one: distributor schedule add NAME --every monday --at 09:00 …"
        )
        return
    table = Table("Name", "When", "Lists", "Next run", "Issues imported since")
    for rule in rules:
        zone = ZoneInfo(rule.timezone)
        table.add_row(
            rule.name,
            f"every {rule.every} {rule.at_time} {rule.timezone}",
            ", ".join(rule.lists),
            f"{rule.next_run_at.astimezone(zone):%Y-%m-%d %H:%M}",
            f"{rule.window_start.astimezone(zone):%Y-%m-%d %H:%M}",
        )
    app.console.print(table)


@schedule.command("remove")
@click.argument("name")
@pass_app
def schedule_remove(app: AppContext, name: str) -> None:
    """Remove a recurring digest (the sends it made stay)."""
    with app.session() as session:
        remove_rule(session, name)
    click.echo(f"Schedule {name!r} removed.")
