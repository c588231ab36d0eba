"""Recurring digests: a rule like 'every Monday 09:00 Asia/Shanghai' sends the issues imported
since its previous window to the subscribers of its lists who chose the digest format.

Windows never overlap (issues imported in (window_start, window_end]) and a send is unique per
(rule, window), so a beat that ticks twice, or two beats, send each issue once per subscriber.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from distributor.errors import AlreadyExists, DistributorError, NotFound
from distributor.issues.models import Issue
from distributor.sending.models import ScheduleRule, Send
from distributor.sending.queries import DEFAULT_EXPIRY, check_lists, reachable_readers
from distributor.vocabulary import DeliveryChannel, SendState, Variant
from distributor.zones import zone_named
from subscribers.query import Audience

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
EVERY = ("day", *WEEKDAYS)


def parse_time_of_day(text: str) -> time:
    try:
        hours, minutes = (int(part) for part in text.split(":"))
        return time(hours, minutes)
    except ValueError:
        raise DistributorError(
            f"{text!r} is not a time of day like 09:00", code="schedule.time", value=text
        ) from None


def occurrences_after(weekday: int | None, at: time, zone: ZoneInfo, after: datetime) -> datetime:
    """The first run strictly after ``after``: at ``at`` local time on ``weekday`` (None: daily)."""
    local = after.astimezone(zone)
    day = local.date()
    while True:
        candidate = datetime.combine(day, at, tzinfo=zone)
        if candidate > local and (weekday is None or candidate.weekday() == weekday):
            return candidate.astimezone(after.tzinfo)
        day += timedelta(days=1)


def last_occurrence_until(rule: ScheduleRule, now: datetime) -> datetime:
    """The latest run time ≤ ``now`` (runs missed while beat was down merge into one window)."""
    zone, at = ZoneInfo(rule.timezone), parse_time_of_day(rule.at_time)
    run = rule.next_run_at
    while (following := occurrences_after(rule.weekday, at, zone, run)) <= now:
        run = following
    return run


@dataclass(frozen=True)
class RuleView:
    name: str
    every: str
    at_time: str
    timezone: str
    lists: list[str]
    next_run_at: datetime
    window_start: datetime


def add_rule(
    session: Session,
    *,
    name: str,
    every: str,
    at_time: str,
    timezone: str,
    lists: list[str],
    now: datetime,
) -> ScheduleRule:
    if every not in EVERY:
        raise DistributorError(
            f"{every!r} is not one of {', '.join(EVERY)}", code="schedule.every", value=every
        )
    if not lists:
        raise DistributorError("a schedule needs at least one list", code="schedule.no_lists")
    check_lists(session, lists)
    zone = zone_named(timezone)
    if session.scalar(select(ScheduleRule.id).where(ScheduleRule.name == name)) is not None:
        raise AlreadyExists(
            f"a schedule named {name!r} exists already", code="schedule.taken", name=name
        )
    weekday = None if every == "day" else WEEKDAYS.index(every)
    at = parse_time_of_day(at_time)
    rule = ScheduleRule(
        name=name,
        weekday=weekday,
        at_time=at.strftime("%H:%M"),
        timezone=timezone,
        lists=lists,
        window_start=now,
        next_run_at=occurrences_after(weekday, at, zone, now),
    )
    session.add(rule)
    session.flush()
    return rule


def list_rules(session: Session) -> list[RuleView]:
    return [
        RuleView(
            rule.name,
            "day" if rule.weekday is None else WEEKDAYS[rule.weekday],
            rule.at_time,
            rule.timezone,
            list(rule.lists),
            rule.next_run_at,
            rule.window_start,
        )
        for rule in session.scalars(select(ScheduleRule).order_by(ScheduleRule.name))
    ]


def remove_rule(session: Session, name: str) -> None:
    """The rule goes; the sends it made stay, with their history."""
    rule_id = session.scalar(select(ScheduleRule.id).where(ScheduleRule.name == name))
    if rule_id is None:
        raise NotFound(
            f"there is no schedule named {name!r}", code="schedule.missing", name=name
        )
    session.execute(update(Send).where(Send.rule_id == rule_id).values(rule_id=None))
    session.execute(delete(ScheduleRule).where(ScheduleRule.id == rule_id))


def digest_audience(lists: list[str]) -> Audience:
    """Who a rule's sends go to: the readers of its lists who chose the digest."""
    return Audience(lists=tuple(lists), format="digest")


def digest_readers(session: Session, lists: list[str]) -> int:
    """How many readers a rule's next send would reach if it went out now."""
    send = Send(audience=digest_audience(lists), channel=DeliveryChannel.EMAIL)
    return reachable_readers(session, send)


def run_due_rules(session: Session, now: datetime) -> list[int]:
    """Create the digest send of every rule whose time has come; returns the new send ids."""
    created = []
    due = session.scalars(select(ScheduleRule).where(ScheduleRule.next_run_at <= now)).all()
    for rule in due:
        window_end = last_occurrence_until(rule, now)
        issue_ids = list(
            session.scalars(
                select(Issue.id)
                .where(Issue.imported_at > rule.window_start, Issue.imported_at <= window_end)
                .order_by(Issue.issue_date, Issue.number)
            )
        )
        if issue_ids:
            send = Send(
                issue_id=issue_ids[-1],
                issue_ids=issue_ids,
                variant=Variant.DIGEST,
                audience=digest_audience(rule.lists),
                channel=DeliveryChannel.EMAIL,
                state=SendState.SCHEDULED,
                scheduled_at=window_end,
                expires_at=window_end + DEFAULT_EXPIRY,
                rule_id=rule.id,
                rule_window=window_end.isoformat(),
            )
            try:
                with session.begin_nested():
                    session.add(send)
            except IntegrityError:
                continue  # another beat made this window's send: it advances the rule too
            created.append(send.id)
        zone, at = ZoneInfo(rule.timezone), parse_time_of_day(rule.at_time)
        session.execute(
            update(ScheduleRule)
            .where(ScheduleRule.id == rule.id, ScheduleRule.next_run_at == rule.next_run_at)
            .values(
                window_start=window_end, next_run_at=occurrences_after(rule.weekday, at, zone, now)
            )
        )
    return created
