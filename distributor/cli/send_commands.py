"""``distributor send``: create sends, test them, control them, list and watch them."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from distributor.campaigns.status import list_sends, send_status
from distributor.cli.context import AppContext, pass_app
from distributor.cli.hints import hinted
from distributor.cli.send_status_output import (
    print_deliveries,
    print_routing,
    print_send_list,
    print_status,
    watch_send,
)
from distributor.cli.terminal import plain
from distributor.db import utcnow
from distributor.errors import DistributorError, EmptyAudience, NotFound
from distributor.sending.ab import AbTest, WinnerBy, parse_wait
from distributor.sending.models import BY_PREFERENCE
from distributor.sending.queries import DEFAULT_EXPIRY, get_send, list_deliveries, local_time
from distributor.vocabulary import EMAIL_VARIANTS, DeliveryState, SendState, Variant
from subscribers.query import Audience

if TYPE_CHECKING:
    from distributor.campaigns.left_out import ReaderLookup

# A command imports in its body what only it uses (making, scheduling, controlling a send):
# `send status` and `send list` start without audience counts, segments or the engine.
EMAIL_VARIANT_NAMES = [variant.value for variant in EMAIL_VARIANTS]
VARIANTS = [*EMAIL_VARIANT_NAMES, BY_PREFERENCE]
AT_HELP = (
    "When to send: a date and time, e.g. 2026-12-01T09:00, in DISTRIBUTOR_TIMEZONE "
    "unless it ends with an offset such as +08:00"
)
WORKER_HINT = "once a worker with the scheduler runs (distributor worker --beat)"


def parse_when(value: str, zone: ZoneInfo, option: str = "--at") -> datetime:
    """ISO 8601 with a time of day; without an offset it is read in ``zone``. A date alone is
    refused rather than read as midnight: a newsletter sent at 00:00 by mistake cannot be
    called back, and typing the time costs a second."""
    try:
        date.fromisoformat(value)
    except ValueError:
        pass
    else:
        raise DistributorError(
            f"{option} {value!r} is a date without a time of day: add one, e.g. {value}T09:00"
        )
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise DistributorError(
            f"{option} {value!r} is not a date and time like 2026-12-01T09:00 or "
            "2026-12-01T09:00+08:00"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=zone)


def expiry(hours: float | None) -> timedelta | None:
    return timedelta(hours=hours) if hours is not None else None


EXPIRES_IN = click.option(
    "--expires-in",
    "expires_in",
    type=click.FloatRange(min=0, min_open=True),
    help="Hours after its time past which it no longer starts by itself (workers were down) "
    "and waits for `send resume` instead. Default 6.",
)


@click.group()
def send() -> None:
    """Create, schedule, test, control and watch sends of an issue to an audience."""


@send.command("create")
@click.option(
    "--issue", "issue_id", type=int, required=True, help="Issue ID (distributor issue list)."
)
@click.option("--list", "lists", multiple=True, help="Audience list; repeatable.")
@click.option("--tag", "tags", multiple=True, help="Only subscribers with this tag; repeatable.")
@click.option(
    "--segment",
    help="A saved segment (distributor segments list): its readers (on its --list, if given).",
)
@click.option(
    "--variant",
    type=click.Choice(VARIANTS),
    default=BY_PREFERENCE,
    show_default=True,
    help="'preference' (as in the dashboard) sends each subscriber the format they chose; "
    "full, digest or text sends that one to all.",
)
@click.option("--at", "at", help=AT_HELP + "; default now (a draft: no time yet).")
@click.option("--draft", is_flag=True, help="Create it without scheduling it; schedule it later.")
@EXPIRES_IN
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    help="At most this many messages per second for this send.",
)
@click.option(
    "--allow-empty", is_flag=True, help="Create it even if nobody on its lists can receive it."
)
@click.option(
    "--track",
    is_flag=True,
    help="Count opens (an image) and clicks (links through the web server) of its HTML "
    "messages; off by default. See README, Tracking, for what the counts can mean.",
)
@click.option(
    "--window",
    "windows",
    multiple=True,
    help='Send only inside this window, e.g. "Mon-Fri 08:00-20:00" (DISTRIBUTOR_TIMEZONE); '
    "repeatable. Outside them it waits and resumes.",
)
@click.option(
    "--commercial",
    is_flag=True,
    help="Advertising: the subject starts with 【广告】 (AD in English) and the footer shows the "
    "sender's name and address. See README, Commercial mail.",
)
@click.option(
    "--subject-b",
    help="An A/B subject test: half of the test share gets this subject, half the issue's own; "
    "the rest of the audience gets the better one. Tracks opens and clicks. See README, "
    "A/B subject tests.",
)
@click.option(
    "--test-share",
    type=click.IntRange(2, 90),
    default=20,
    show_default=True,
    help="With --subject-b: percent of the audience in the test (both halves).",
)
@click.option(
    "--winner-by",
    type=click.Choice([by.value for by in WinnerBy]),
    default=WinnerBy.OPENS.value,
    show_default=True,
    help="With --subject-b: the better subject is the one more of its readers opened (clicked).",
)
@click.option(
    "--winner-after",
    default="4h",
    show_default=True,
    help="With --subject-b: how long after the test's last message the winner is chosen "
    "(4h, 90m, 30s, 1d).",
)
@pass_app
def create_command(
    app: AppContext,
    issue_id: int,
    lists: tuple[str, ...],
    tags: tuple[str, ...],
    segment: str | None,
    variant: str,
    at: str | None,
    draft: bool,
    expires_in: float | None,
    rate: float | None,
    allow_empty: bool,
    track: bool,
    windows: tuple[str, ...],
    commercial: bool,
    subject_b: str | None,
    test_share: int,
    winner_by: str,
    winner_after: str,
) -> None:
    """Create a send of an issue to one or more lists, or to a segment.

    Prints its ID, how many readers it reaches today and when it goes out. A time in the past,
    a date without a time of day and a list with nobody to send to are refused."""
    from distributor.campaigns.schedule import create_send, wechat_account_of
    from distributor.segments.store import segment_audience

    app.settings.require_secret_key()  # its links are signed: say so now, not in the worker
    zone = app.settings.zone
    when = parse_when(at, zone) if at else None
    if draft and when is None and expires_in is not None:
        raise DistributorError(
            "--expires-in counts from the send's time, and this draft has none: "
            "give it with --at, or later with send schedule"
        )
    if not lists and segment is None:
        raise click.UsageError("give the audience: --list NAME (repeatable) or --segment NAME")
    ab = (
        AbTest(subject_b, test_share, WinnerBy(winner_by), parse_wait(winner_after))
        if subject_b is not None
        else None
    )
    with (
        hinted(EmptyAudience, "{message} (--allow-empty creates it anyway)"),
        hinted(NotFound, "{message} (see distributor issue list, distributor lists list)"),
        app.session() as session,
    ):
        audience = (
            Audience(lists=lists, tags=tags)
            if segment is None
            else segment_audience(session, segment, zone, lists=lists, tags=tags)
        )
        created = create_send(
            session,
            issue_id=issue_id,
            audience=audience,
            variant=None if variant == BY_PREFERENCE else Variant(variant),
            at=when,
            now=utcnow(),
            zone=zone,
            draft=draft,
            allow_empty=allow_empty,
            rate_limit=rate,
            expires_after=expiry(expires_in) or DEFAULT_EXPIRY,
            tracking=track,
            wechat_account=wechat_account_of(app.settings),
            windows=windows,
            commercial=commercial,
            ab=ab,
        )
    click.echo(f"Created send ID: {created.id}")
    readers = f"{created.readers:,} reader{'s' if created.readers != 1 else ''}"
    described = plain(audience.describe())
    if created.scheduled_at is None:
        click.echo(
            f"It is a draft to {readers} ({described}) with no time yet: "
            f"distributor send schedule {created.id} --at … schedules it."
        )
    elif draft:
        click.echo(
            f"It is a draft to {readers} ({described}) for "
            f"{local_time(created.scheduled_at, zone)}: "
            f"distributor send schedule {created.id} schedules it for that time."
        )
    else:
        moment = f"at {local_time(created.scheduled_at, zone)}" if when else "now"
        click.echo(f"It goes to {readers} ({described}) {moment}, {WORKER_HINT}.")
    if windows:
        click.echo(f"It goes out only within {', '.join(windows)} ({zone.key}).")
    if created.readers == 0:
        click.echo("Nobody can receive it now; readers who join its lists before it starts will.")
    if ab is not None:
        click.echo(
            f"A/B subject test: {ab.share // 2}% get the issue's subject (A), {ab.share // 2}% "
            f"get {plain(ab.subject_b)!r} (B); the rest get the one more of its readers "
            f"{'opened' if ab.winner_by is WinnerBy.OPENS else 'clicked'}, {winner_after} after "
            "the test's last message (A if nobody did)."
        )
    if track or ab is not None:
        click.echo(
            f"Opens and clicks are tracked through {app.settings.public_base_url}: "
            "distributor web must answer there while readers read it."
        )


@send.command("schedule")
@click.argument("send_id", type=int)
@click.option("--at", "at", help=AT_HELP + "; default the time it was given (none: now).")
@EXPIRES_IN
@pass_app
def schedule_command(
    app: AppContext, send_id: int, at: str | None, expires_in: float | None
) -> None:
    """Schedule a draft, or move a scheduled send.

    Without --at it keeps the time it was given (none: now)."""
    from distributor.campaigns.schedule import schedule_send, wechat_account_of

    zone = app.settings.zone
    with app.session() as session:
        when = schedule_send(
            session,
            send_id,
            parse_when(at, zone) if at else None,
            now=utcnow(),
            zone=zone,
            expires_after=expiry(expires_in),
            wechat_account=wechat_account_of(app.settings),
        )
    click.echo(f"Send {send_id} is scheduled for {local_time(when, zone)}, {WORKER_HINT}.")


@send.command("edit")
@click.argument("send_id", type=int)
@click.option("--list", "lists", multiple=True, help="Its lists instead; repeatable.")
@click.option("--tag", "tags", multiple=True, help="Its tags instead; repeatable.")
@click.option("--no-tags", is_flag=True, help="No tag condition any more.")
@click.option("--variant", type=click.Choice(VARIANTS), help="Its variant instead.")
@click.option("--at", "at", help=AT_HELP + "; default the time it has.")
@click.option("--draft", is_flag=True, help="Make (or keep) it a draft: it does not go out.")
@EXPIRES_IN
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Messages per second.")
@click.option("--track/--no-track", default=None, help="Count opens and clicks, or stop.")
@pass_app
def edit_command(
    app: AppContext,
    send_id: int,
    lists: tuple[str, ...],
    tags: tuple[str, ...],
    no_tags: bool,
    variant: str | None,
    at: str | None,
    draft: bool,
    expires_in: float | None,
    rate: float | None,
    track: bool | None,
) -> None:
    """Change a draft or a scheduled send that has not started.

    What is not given stays as it is; it is checked as a new send is, and prints its readers."""
    from distributor.campaigns.schedule import SendChanges, edit_send, wechat_account_of

    zone = app.settings.zone
    with app.session() as session:
        current = get_send(session, send_id)
        keep_expiry = (
            current.expires_at - current.scheduled_at
            if current.expires_at is not None and current.scheduled_at is not None
            else DEFAULT_EXPIRY
        )
        changes = SendChanges(
            audience=Audience(
                lists=lists or current.audience.lists,
                tags=() if no_tags else (tags or current.audience.tags),
            ),
            variant=current.variant
            if variant is None
            else None if variant == BY_PREFERENCE else Variant(variant),
            at=parse_when(at, zone) if at else current.scheduled_at,
            rate_limit=rate if rate is not None else current.rate_limit,
            expires_after=expiry(expires_in) or keep_expiry,
            tracking=current.tracking if track is None else track,
        )
        reach = edit_send(
            session,
            send_id,
            changes,
            now=utcnow(),
            zone=zone,
            draft=draft or current.state is SendState.DRAFT,
            wechat_account=wechat_account_of(app.settings),
        )
        state, when = current.state.value, current.scheduled_at
    readers = f"{reach.readers:,} reader{'s' if reach.readers != 1 else ''}"
    moment = local_time(when, zone) if when is not None else "no time yet"
    click.echo(f"Send {send_id} changed: {state}, to {readers}, {moment}.")


@send.command("test")
@click.option("--issue", "issue_id", type=int, required=True, help="Issue ID.")
@click.option("--to", "addresses", multiple=True, required=True, help="Staff address; repeatable.")
@click.option(
    "--variant", type=click.Choice(EMAIL_VARIANT_NAMES), default="full", show_default=True
)
@pass_app
def test_command(app: AppContext, issue_id: int, addresses: tuple[str, ...], variant: str) -> None:
    """Send the issue now to staff addresses, from this process, and show each server's answer.

    The subject starts with [测试]. Nothing is left for a worker: what could not go out while
    this command waited is reported as failed.
    """
    from distributor.runtime import WorkerRuntime
    from distributor.sending.test_sends import create_test_send

    runtime = WorkerRuntime.from_settings(app.settings)
    try:
        with app.session() as session:
            send_id = create_test_send(
                session,
                issue_id=issue_id,
                addresses=addresses,
                variant=Variant(variant),
                settings=app.settings,
                now=utcnow(),
            ).id
        runtime.send_test(send_id)
    finally:
        runtime.close()
    with app.session() as session:
        rows = list_deliveries(session, send_id)
    print_deliveries(app, rows)
    for row in rows:
        if row.state == "suppressed":
            click.echo(f"{plain(row.address)} is suppressed: {plain(row.detail)}.")
    if any(row.state not in ("sent", "suppressed") for row in rows):
        raise DistributorError(
            f"test send {send_id}: not every address accepted the message; "
            "nothing of it is retried later: fix the problem and test again"
        )


@send.command("pause")
@click.argument("send_id", type=int)
@pass_app
def pause_command(app: AppContext, send_id: int) -> None:
    """Pause a send: no new message goes out within 2 seconds."""
    from distributor.sending.lifecycle import pause_send

    with app.session() as session:
        pause_send(session, send_id, utcnow())
    click.echo(
        f"Send {send_id} paused: no new message goes out until distributor send resume {send_id}."
    )


@send.command("resume")
@click.argument("send_id", type=int)
@pass_app
def resume_command(app: AppContext, send_id: int) -> None:
    """Resume a paused or expired send.

    It goes on where it stopped; one paused before its time waits for that time again."""
    from distributor.sending.lifecycle import resume_send

    with app.session() as session:
        resume_send(session, send_id, utcnow())
        status = send_status(session, send_id)
    if status.state == "scheduled" and status.scheduled_at is not None:
        click.echo(
            f"Send {send_id} resumed: it waits for its time, "
            f"{local_time(status.scheduled_at, app.settings.zone)}."
        )
    else:
        click.echo(f"Send {send_id} resumed: it goes on where it stopped, {WORKER_HINT}.")


@send.command("cancel")
@click.argument("send_id", type=int)
@pass_app
def cancel_command(app: AppContext, send_id: int) -> None:
    """Cancel a send: nothing not yet sent goes out.

    `distributor send reopen` sends the rest after all."""
    from distributor.sending.lifecycle import cancel_send

    with app.session() as session:
        cancel_send(session, send_id, utcnow())
    click.echo(
        f"Send {send_id} cancelled: messages not sent yet will not go out. "
        f"distributor send reopen {send_id} sends them after all."
    )


@send.command("reopen")
@click.argument("send_id", type=int)
@pass_app
def reopen_command(app: AppContext, send_id: int) -> None:
    """Finish a cancelled send after all.

    It goes to the readers it had not reached, never again to those who got it. One cancelled
    before it started comes back as a draft."""
    from distributor.sending.lifecycle import reopen_send

    with app.session() as session:
        waiting = reopen_send(session, send_id, utcnow())
        status = send_status(session, send_id)
    if status.state == "draft":
        click.echo(
            f"Send {send_id} reopened as a draft (it was cancelled before it started): "
            f"distributor send schedule {send_id} schedules it."
        )
        return
    click.echo(
        f"Send {send_id} reopened: it goes on to the readers it had not reached "
        f"({waiting:,} cancelled messages wait again), {WORKER_HINT}."
    )


@send.command("retry-failed")
@click.argument("send_id", type=int)
@click.option("--code", type=int, help="Only deliveries that failed with this SMTP code.")
@pass_app
def retry_failed_command(app: AppContext, send_id: int, code: int | None) -> None:
    """Send the failed deliveries of a send again.

    Nobody already sent is touched."""
    from distributor.sending.lifecycle import retry_failed

    with app.session() as session:
        reopened = retry_failed(session, send_id, utcnow(), code=code)
    which = f" with code {code}" if code else ""
    click.echo(f"Reopened {reopened} failed deliveries{which} of send {send_id}.")


@send.command("list")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--before", "before_id", type=int, help="Only sends older than this ID (next page).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per send, as status --json.")
@pass_app
def list_command(app: AppContext, limit: int, before_id: int | None, as_json: bool) -> None:
    """List sends, newest first.

    Each with its issue, audience, state, time, how many messages went out or failed, and
    whether it was a test."""
    with app.session() as session:
        statuses = list_sends(session, before_id=before_id, limit=limit)
    if as_json:
        click.echo(json.dumps([s.to_json() for s in statuses], ensure_ascii=False))
        return
    if not statuses:
        click.echo("No sends." if before_id is None else f"No sends before ID {before_id}.")
        return
    print_send_list(app, statuses)
    if len(statuses) == limit:
        click.echo(f"Older ones: distributor send list --before {statuses[-1].id}")


@send.command("status")
@click.argument("send_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="The same, as one JSON object.")
@click.option("--watch", is_flag=True, help="Follow the send with a live progress bar first.")
@pass_app
def status_command(app: AppContext, send_id: int, as_json: bool, watch: bool) -> None:
    """Show a send: audience, time, state and progress.

    How many of its messages are in each state, and what each state means."""
    from distributor.sending.route_status import routing_now  # reads Redis, if there is one

    with app.session() as session:
        status = send_status(session, send_id)
    if watch and status.state not in ("done",):
        status = watch_send(app, send_id)
    routing = routing_now(app.settings)
    if as_json:
        shown = {**status.to_json(), "routing": routing.to_json()}
        click.echo(json.dumps(shown, ensure_ascii=False))
        return
    print_status(app, status)
    print_routing(app, routing)


REASONS = {
    "unsubscribed": "unsubscribed",
    "bounced": "suppressed: their address bounced",
    "complained": "suppressed: reported a message as spam",
    "not_confirmed": "not confirmed",
    "left_list": "left the send's lists",
    "not_tagged": "without the send's tags",
    "not_in_segment": "outside the audience's other conditions",
    "wechat_only": "chose WeChat only; this send goes by email only",
    "no_address": "no address on the channels they chose",
    "joined_later": "joined after the send started",
    "not_planned_yet": "not planned yet",
    "not_on_lists": "not on the send's lists",
    "unknown": "no subscriber has this address",
}


@send.command("left-out")
@click.argument("send_id", type=int)
@click.option("--email", help="Say where this address stands with the send, and why.")
@click.option("--json", "as_json", is_flag=True, help="The same, as one JSON object.")
@pass_app
def left_out_command(app: AppContext, send_id: int, email: str | None, as_json: bool) -> None:
    """Every reader of a send's lists: in it, or left out and why.

    Counts per reason (unsubscribed, suppressed, not confirmed, …); --email looks one up."""
    from distributor.campaigns.left_out import left_out, look_up_reader  # its own, heavy

    wechat = app.settings.wechat_app_id is not None
    with app.session() as session:
        counts = left_out(session, send_id, wechat=wechat)
        found = look_up_reader(session, send_id, email, wechat=wechat) if email else None
    if as_json:
        body = {**counts.to_json(), "reader": found.to_json() if found else None}
        click.echo(json.dumps(body, ensure_ascii=False))
        return
    if found is not None:
        click.echo(_standing_line(app, found))
        return
    click.echo(f"Readers of its lists: {counts.list_readers:,}")
    click.echo(f"In the send:          {counts.in_send:,}")
    if counts.fell_back:
        click.echo(f"  of them by email instead of WeChat (cannot be reached there): "
                   f"{counts.fell_back:,}")
    for reason, n in counts.reasons.items():
        click.echo(f"Left out, {REASONS[reason]}: {n:,}")


def _standing_line(app: AppContext, found: ReaderLookup) -> str:
    zone = app.settings.zone
    if found.standing.value == "in_send":
        what = f"in this send: {found.state}" if found.state else "will get this send"
        if found.fell_back:
            what += " (by email: chose WeChat, cannot be reached there)"
    else:
        what = REASONS[found.standing.value]
    if found.since is not None:
        what += f" on {local_time(found.since, zone)}"
    if found.detail:
        what += f" ({'because ' if found.standing.value != 'in_send' else ''}{found.detail})"
    return f"{plain(found.address)}: {plain(what)}"


@send.command("deliveries")
@click.argument("send_id", type=int)
@click.option(
    "--state",
    type=click.Choice([s.value for s in DeliveryState]),
    help="Only deliveries in this state.",
)
@click.option("--json", "as_json", is_flag=True, help="A JSON list, one object per delivery.")
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
    print_deliveries(app, rows)


