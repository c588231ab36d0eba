"""``distributor subscribers suppressions`` and ``unsuppress``: who was suppressed for what, and
lifting it knowingly, one reader or all of one cause, domain and time window at once."""

from __future__ import annotations

import json

import click
from rich.table import Table

from distributor.cli.context import AppContext, pass_app
from distributor.cli.send_commands import parse_when
from distributor.cli.send_status_output import when_text
from distributor.cli.terminal import plain, rich_text
from distributor.errors import DistributorError
from distributor.vocabulary import FailureCause
from subscribers.store import unsuppress
from subscribers.suppressions import (
    SuppressionFilter,
    count_suppressions,
    lift_suppressions,
    list_suppressions,
)

STAFF_SOURCE = "staff: distributor subscribers unsuppress"
CAUSES = click.Choice([cause.value for cause in FailureCause])


def _filter(
    app: AppContext,
    cause: str | None,
    domain: str | None,
    since: str | None,
    until: str | None,
) -> SuppressionFilter:
    zone = app.settings.zone
    where = SuppressionFilter.of(
        FailureCause(cause) if cause else None,
        domain,
        parse_when(since, zone, "--since") if since else None,
        parse_when(until, zone, "--until") if until else None,
        zone=zone,
    )
    if where.since and where.until and where.since >= where.until:  # surely a slip of the hand
        raise DistributorError("the window is empty: --since must come before --until")
    return where


def _window_options(command: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option("--cause", type=CAUSES, help="Only suppressions for this cause."),
            click.option("--domain", help="Only addresses at this domain, e.g. qq.com."),
            click.option("--since", help="Only those made at or after, e.g. 2026-12-01T09:00."),
            click.option("--until", help="Only suppressions made before this time."),
        ]
    ):
        command = option(command)
    return command


@click.command("suppressions")
@_window_options
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_app
def suppressions_command(
    app: AppContext,
    cause: str | None,
    domain: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Readers suppressed by a bounce or a complaint, with the cause, when, the send and the
    remote server's words."""
    where = _filter(app, cause, domain, since, until)
    with app.session() as session:
        rows = list_suppressions(session, where, limit=limit)
        total = count_suppressions(session, where)
    if as_json:
        click.echo(json.dumps([row.to_json() for row in rows], ensure_ascii=False, indent=2))
        return
    table = Table("Email", "Status", "Cause", "Since", "Send", "Evidence")
    for row in rows:
        table.add_row(
            rich_text(row.email),
            row.status,
            row.cause or "—",
            when_text(app, row.at),
            str(row.send_id or ""),
            rich_text(row.evidence or row.reason, 100),
        )
    app.console.print(table)
    shown = f", the first {len(rows):,} shown" if total > len(rows) else ""
    click.echo(f"{total:,} suppressed{shown}")


@click.command("unsuppress")
@click.argument("email", required=False)
@click.option("--reason", help="Why (kept in each subscriber's history); needed for one EMAIL.")
@_window_options
@click.option("--dry-run", is_flag=True, help="Only count whom it would make active again.")
@pass_app
def unsuppress_command(
    app: AppContext,
    email: str | None,
    reason: str | None,
    cause: str | None,
    domain: str | None,
    since: str | None,
    until: str | None,
    dry_run: bool,
) -> None:
    """Make readers active again after a bounce or a complaint suppressed them, knowingly: EMAIL
    (the address was fixed, the complaint was a mistake), or every reader suppressed for
    --cause at --domain within --since/--until (our IP was on a provider's blocklist that
    day). Each lifting is logged with its reason."""
    bulk = any((cause, domain, since, until))
    if email is not None:
        if bulk or dry_run:
            raise DistributorError("give EMAIL or --cause/--domain/--since/--until, not both")
        if reason is None:
            raise DistributorError("--reason is required: why the suppression is lifted")
        with app.session() as session:
            subscriber = unsuppress(session, email, reason=reason, source=STAFF_SOURCE)
        click.echo(f"{plain(subscriber.email)} is active again; the reason is in their history.")
        return
    if not bulk:
        raise DistributorError(
            "name an EMAIL, or the suppressions to lift with --cause, --domain, --since, --until"
        )
    where = _filter(app, cause, domain, since, until)
    with app.session() as session:
        if dry_run:
            count = count_suppressions(session, where)
            click.echo(f"{count:,} readers would be made active again (dry run: nothing changed).")
            return
        count = lift_suppressions(
            session, where, reason=reason or _bulk_reason(cause, domain, since, until),
            source=STAFF_SOURCE,
        )  # fmt: skip
    click.echo(f"{count:,} readers are active again; the reason is in their history.")


def _bulk_reason(
    cause: str | None, domain: str | None, since: str | None, until: str | None
) -> str:
    given = {"cause": cause, "domain": domain, "since": since, "until": until}
    return "lifted in bulk: " + ", ".join(f"{k} {v}" for k, v in given.items() if v)
