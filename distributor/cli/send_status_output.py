"""How sends look on a staff terminal: the status of one, a list of many, a live bar, who got what.

Shared by ``distributor send`` and ``distributor demo``. Audience, list and tag names and server
answers come from outside, so they go through :func:`rich_text`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from rich.table import Table

from distributor.campaigns.status import SendStatus, send_status
from distributor.cli.context import AppContext
from distributor.cli.terminal import rich_text
from distributor.readers.arms import AbStatus
from distributor.sending.ab import Reason, WinnerBy, wait_text
from distributor.sending.models import ARM_A, ARM_B, ARM_REST
from distributor.sending.queries import DeliveryView, local_time
from distributor.vocabulary import DeliveryState
from distributor.wechat.status import wechat_delivery_counts

if TYPE_CHECKING:
    from distributor.sending.route_status import RoutingReport  # it reads Redis: imported by use

# What each delivery state means to someone who did not write the engine.
STATE_MEANINGS = {
    DeliveryState.PENDING: "waiting to go out",
    DeliveryState.HELD: "A/B test: waiting for the winning subject",
    DeliveryState.CLAIMED: "being sent now",
    DeliveryState.SENT: "accepted by the mail server",
    DeliveryState.DEFERRED: "server said 'try later': will be retried",
    DeliveryState.FAILED: "refused by the server, or retried too often",
    DeliveryState.SUPPRESSED: "not sent: the reader unsubscribed meanwhile",
    DeliveryState.CANCELLED: "not sent: the send was cancelled",
    DeliveryState.BOUNCED: "accepted, then bounced: the address does not take mail",
    DeliveryState.COMPLAINED: "accepted, then reported as spam by the reader",
}
WECHAT_SENT = ", or by WeChat in a mass-send job"


def when_text(app: AppContext, moment: datetime | None, missing: str = "—") -> str:
    return local_time(moment, app.settings.zone) if moment is not None else missing


def print_status(app: AppContext, status: SendStatus) -> None:
    """The send in a few lines, then how many messages are in each state."""
    kind = "test send" if status.is_test else "send"
    app.console.print(
        f"[bold]{kind.capitalize()} {status.id}[/bold]: issue {status.issue_id} "
        f"(No. {status.issue_number}), {status.variant}, {status.state}"
    )
    app.console.print(f"To:        {rich_text(status.audience_text)}")
    app.console.print(f"Scheduled: {when_text(app, status.scheduled_at, 'no time yet (draft)')}")
    if status.started_at is not None:
        app.console.print(f"Started:   {when_text(app, status.started_at)}")
    if status.finished_at is not None:
        app.console.print(f"Finished:  {when_text(app, status.finished_at)}")
    if status.windows:
        app.console.print(
            f"Windows:   {', '.join(status.windows)} ({status.window_zone})", highlight=False
        )
    if status.opens_at is not None:
        app.console.print(
            f"Waiting:   outside its windows; it goes on {when_text(app, status.opens_at)}",
            highlight=False,
        )
    if status.commercial:
        app.console.print("Commercial: marked as advertising (【广告】 in the subject)")
    print_counts(app, status)
    if status.ab is not None:
        print_ab_test(app, status.ab)
    print_feedback(app, status)
    if status.error:
        app.console.print(f"It stopped by itself: {rich_text(status.error)}", highlight=False)
    if status.refused_by and status.refused_by != status.error:
        app.console.print(f"Refused:   {rich_text(status.refused_by)}", highlight=False)
    if status.possible_duplicates:
        app.console.print(
            f"{status.possible_duplicates} messages were sent again after a worker "
            "stopped mid-batch: those readers may have received it twice."
        )
    print_readers(app, status)
    if status.wechat_jobs:
        print_wechat_jobs(app, status)


AB_REASONS = {
    Reason.BETTER: "its readers {verb} more",
    Reason.TIE: "a tie: the issue's own subject",
    Reason.NO_SIGNAL: "nobody {verb} either: the issue's own subject",
}


def print_ab_test(app: AppContext, ab: AbStatus) -> None:
    """Both arms side by side, then what was decided (or when it will be)."""
    table = Table("Arm", "Subject", "Readers", "Reached", "Opened", "Clicked")
    for column in table.columns[2:]:
        column.justify = "right"
    subjects = {ARM_A: ab.subject_a or "the issue's own", ARM_B: ab.subject_b, ARM_REST: "—"}
    names = {ARM_A: "A", ARM_B: "B", ARM_REST: "rest"}
    for arm, figures in ab.arms.items():
        table.add_row(
            names[arm],
            rich_text(subjects[arm]),
            f"{figures.readers:,}",
            f"{figures.reached:,}",
            f"{figures.opened:,}",
            f"{figures.clicked:,}",
        )
    app.console.print(
        f"A/B subject test: {ab.share}% of the audience, winner by {ab.winner_by.value}, "
        f"{wait_text(ab.wait)} after the test's last message",
        highlight=False,
    )
    app.console.print(table)
    verb = "opened" if ab.winner_by is WinnerBy.OPENS else "clicked"
    if ab.winner is not None and ab.reason is not None:
        why = AB_REASONS[ab.reason].format(verb=verb)
        app.console.print(
            f"Winner:    {names[ab.winner]} ({why}), chosen {when_text(app, ab.decided_at)}; "
            "the rest get its subject",
            highlight=False,
        )
    elif ab.tested_at is not None:
        app.console.print(
            f"Winner:    chosen {when_text(app, ab.tested_at + ab.wait)}; the rest wait",
            highlight=False,
        )
    else:
        app.console.print("Winner:    chosen once the test's messages are out; the rest wait")


def print_counts(app: AppContext, status: SendStatus) -> None:
    """How many messages are in each state; with WeChat readers in the send, the email and the
    WeChat ones side by side (a WeChat message is "sent" once WeChat accepted its job)."""
    with app.session() as session:
        wechat = wechat_delivery_counts(session, status.id)
    split = bool(wechat)
    table = Table("State", "Meaning", *(("Email", "WeChat") if split else ()), "Messages")
    for column in table.columns[2:]:
        column.justify = "right"

    def cells(total: int, on_wechat: int) -> list[str]:
        by_channel = [f"{total - on_wechat:,}", f"{on_wechat:,}"] if split else []
        return [*by_channel, f"{total:,}"]

    for state in DeliveryState:
        if state.value in status.counts:
            meaning = STATE_MEANINGS[state]
            if split and state is DeliveryState.SENT:
                meaning += WECHAT_SENT
            table.add_row(
                state.value, meaning, *cells(status.counts[state.value], wechat.get(state.value, 0))
            )
    totals = cells(status.total, sum(wechat.values()))
    table.add_row("[bold]total[/bold]", "", *(f"[bold]{cell}[/bold]" for cell in totals))
    app.console.print(table)


def print_readers(app: AppContext, status: SendStatus) -> None:
    """Opens and clicks (a tracked send) and unsubscribes: what readers did with it."""
    sent = status.counts.get(DeliveryState.SENT.value, 0)

    def readers(n: int) -> str:
        share = f" ({n / sent:.1%} of {sent:,} sent)" if sent and n else ""
        return f"{n:,} reader{'' if n == 1 else 's'}{share}"

    if status.engagement is not None:
        seen = status.engagement
        clicks = f"{seen.clicks:,} click{'' if seen.clicks == 1 else 's'}"
        scanned = (f"; {seen.machine_clicks:,} more by link scanners as the mail arrived"
                   if seen.machine_clicks else "")
        app.console.print(f"Opened:    {readers(seen.opened)}, as far as an image can tell")
        app.console.print(f"Clicked:   {readers(seen.clicked)}, {clicks}{scanned}")
    elif not status.tracking:
        app.console.print("Tracking:  off (opens and clicks are not counted)")
    if status.unsubscribes is not None:
        left = readers(status.unsubscribes)
        app.console.print(f"Left:      {left} unsubscribed through its links")


def print_wechat_jobs(app: AppContext, status: SendStatus) -> None:
    """The WeChat readers apart from the messages above: WeChat reports per job, not per reader
    (its counts come with the job's end; "filtered" is who it was sent to after its own caps)."""
    table = Table(
        "WeChat job", "State", "Followers", "WeChat status", "Total", "Filtered", "Sent", "Errors",
        title="WeChat (counts as WeChat reports them)",
    )
    for column in (*table.columns[2:3], *table.columns[4:]):
        column.justify = "right"

    def number(n: int | None) -> str:
        return "—" if n is None else f"{n:,}"

    for job in status.wechat_jobs:
        table.add_row(
            f"{job.batch}" + (f" (msg_id {job.msg_id})" if job.msg_id else ""),
            job.state,
            f"{job.openids:,}",
            rich_text(job.wechat_status or "—"),
            number(job.total),
            number(job.filtered),
            number(job.sent),
            number(job.errors),
        )
    app.console.print(table)
    for job in status.wechat_jobs:
        if job.error:
            app.console.print(f"WeChat job {job.batch}: {rich_text(job.error)}", highlight=False)


def print_feedback(app: AppContext, status: SendStatus) -> None:
    """Bounces and complaints so far, as counts and shares of the messages the server accepted."""
    if not (status.bounced or status.complained or status.soft_bounces):
        return

    def share(rate: float | None) -> str:
        return f" ({rate:.1%} of accepted)" if rate is not None else ""

    app.console.print(
        f"Bounces:   {status.bounced:,} hard{share(status.bounce_rate)}, "
        f"{status.soft_bounces:,} soft (temporary)",
        highlight=False,
    )
    app.console.print(
        f"Complaints: {status.complained:,}{share(status.complaint_rate)}", highlight=False
    )


def print_send_list(app: AppContext, statuses: list[SendStatus]) -> None:
    table = Table("ID", "Issue", "To", "State", "Time", "Sent", "Failed", "Total", "Test")
    for column in table.columns[5:8]:
        column.justify = "right"
    for status in statuses:
        table.add_row(
            str(status.id),
            f"{status.issue_id} (No. {status.issue_number})",
            rich_text(status.audience_text, 60),
            status.state,
            when_text(app, status.scheduled_at, "no time yet"),
            f"{status.counts.get('sent', 0):,}",
            f"{status.counts.get('failed', 0):,}",
            f"{status.total:,}",
            "test" if status.is_test else "",
        )
    app.console.print(table)


def print_deliveries(app: AppContext, rows: list[DeliveryView]) -> None:
    table = Table("ID", "Address", "State", "Attempts", "Code", "Server answer or reason")
    for row in rows:
        table.add_row(
            str(row.id),
            rich_text(row.address),
            row.state,
            str(row.attempts),
            str(row.smtp_code or ""),
            rich_text(row.detail or "", 80),
        )
    app.console.print(table)


def watch_send(
    app: AppContext,
    send_id: int,
    *,
    interval: float = 0.5,
    check: Callable[[], None] = lambda: None,
) -> SendStatus:
    """A live bar until the send is done or cancelled (Ctrl-C stops watching, not the send);
    ``check`` runs each round and may raise to stop watching (e.g. the worker died)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

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


def print_routing(app: AppContext, routing: RoutingReport) -> None:
    """The relays (several, or capped) and the capped or slowed domains, as of now: what every
    send shares."""
    if routing.unreachable:
        app.console.print(f"Routing:   unknown ({rich_text(routing.unreachable)})")

    def number(n: int | None) -> str:
        return "—" if n is None else f"{n:,}"

    def moment(epoch: float | None) -> str:
        if epoch is None:
            return "—"
        return when_text(app, datetime.fromtimestamp(epoch, UTC))

    if routing.relays:
        table = Table(
            "Relay", "Sent today", "Deferred today", "Resting until", "Cap left today",
            "Cap left this hour", title="Relays (all sends)",
        )
        for relay in routing.relays:
            table.add_row(
                rich_text(relay.name), number(relay.sent_today), number(relay.deferred_today),
                moment(relay.resting_until), number(relay.daily_cap_left),
                number(relay.hourly_cap_left),
            )
        app.console.print(table)
    if routing.domains:
        table = Table(
            "Domain", "Sent today", "Sent this hour", "Cap left today", "Cap left this hour",
            "Rate now", title="Receiving domains with caps or slowed (all sends)",
        )
        for domain in routing.domains:
            rate = "—" if domain.rate_now is None else f"{domain.rate_now:g}/s"
            slowed = f" (slowed ×1/{2 ** domain.slowdown})" if domain.slowdown else ""
            table.add_row(
                rich_text(domain.domain), number(domain.sent_today),
                number(domain.sent_this_hour), number(domain.daily_cap_left),
                number(domain.hourly_cap_left), rate + slowed,
            )
        app.console.print(table)
