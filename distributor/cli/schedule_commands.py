"""``distributor schedule``: recurring digests of the issues imported since the last one."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import click
from rich.table import Table

from distributor.cli.context import AppContext, pass_app
from distributor.cli.hints import hinted
from distributor.cli.terminal import plain, rich_text
from distributor.db import utcnow
from distributor.errors import DistributorError
from distributor.sending.recurring import (
    EVERY,
    add_rule,
    digest_readers,
    list_rules,
    parse_time_of_day,
    remove_rule,
)


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
    """Add a recurring digest NAME (issues imported from now on are in its first one); prints
    when it runs next and how many readers it reaches today."""
    zone = timezone or app.settings.timezone
    with hinted(DistributorError, "--at {message}"):
        parse_time_of_day(at_time)
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
        readers = digest_readers(session, list(lists))
    click.echo(
        f"Schedule {plain(name)!r}: every {every} at {rule.at_time} {zone}; "
        f"next {next_run:%a %Y-%m-%d %H:%M}"
    )
    if readers:
        click.echo(
            f"It reaches {readers:,} reader{'s' if readers != 1 else ''} today: "
            "those of its lists who chose the digest."
        )
    else:
        click.echo(
            "It reaches nobody today: no active reader of its lists chose the digest. "
            "Readers choose it with the format 'digest' (distributor subscribers import)."
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
            rich_text(rule.name),
            f"every {rule.every} {rule.at_time} {rule.timezone}",
            rich_text(", ".join(rule.lists)),
            f"{rule.next_run_at.astimezone(zone):%a %Y-%m-%d %H:%M}",
            f"{rule.window_start.astimezone(zone):%a %Y-%m-%d %H:%M}",
        )
    app.console.print(table)


@schedule.command("remove")
@click.argument("name")
@pass_app
def schedule_remove(app: AppContext, name: str) -> None:
    """Remove a recurring digest (the sends it made stay)."""
    with app.session() as session:
        remove_rule(session, name)
    click.echo(f"Schedule {plain(name)!r} removed.")
