"""A/B subject tests: a share of a send's audience, in two equal random arms, gets the issue's
own subject (A) or another (B); the rest of the audience is held until the arm whose readers
opened (or clicked) more is known, then gets that subject.

On the same engine as every send: each reader's row is planned once with its arm (random within
each planning batch, the two arms equal at every checkpoint), the rest are ``held`` (never
claimed) and the decision is one conditional UPDATE of the send taken by the scheduler's tick,
which releases the held rows in the same transaction: taken once, whatever restarts or a second
scheduler do. No signal at all (nobody opened or clicked either arm), or a tie, gives A, and the
send says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import Exists, select, update
from sqlalchemy.orm import Session

from distributor.errors import DistributorError
from distributor.sending.models import (
    ARM_A,
    ARM_B,
    ARM_REST,
    OPEN_DELIVERY_STATES,
    Delivery,
    Send,
)
from distributor.vocabulary import DeliveryState, SendState

MIN_SHARE, MAX_SHARE = 2, 90  # percent of the audience in the test: both arms, and a rest
MAX_WAIT = timedelta(days=7)
# One line with something to read: no control character could split the header.
_LINE = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]"
SUBJECT_PATTERN = rf"^{_LINE}*[^\s\x00-\x1f\x7f-\x9f\u2028\u2029]{_LINE}*$"
SUBJECT_MAX = 200
REACHED = (DeliveryState.SENT, DeliveryState.BOUNCED, DeliveryState.COMPLAINED)
ARMS = (ARM_A, ARM_B, ARM_REST)


class WinnerBy(StrEnum):
    """What makes an arm the better: more of its readers opened, or clicked a link."""

    OPENS = "opens"
    CLICKS = "clicks"


class Reason(StrEnum):
    """Why the winner won."""

    BETTER = "better"  # its readers opened (clicked) more, as a share of those it reached
    TIE = "tie"  # the same share in both arms: A, the issue's own subject
    NO_SIGNAL = "no_signal"  # nobody opened (clicked) either arm: A


@dataclass(frozen=True)
class AbTest:
    """What staff ask for: ``share`` percent of the audience in the test, half each on
    ``subject_b`` and the issue's own subject, the winner by ``winner_by`` ``wait`` after the
    test's last message."""

    subject_b: str
    share: int = 20
    winner_by: WinnerBy = WinnerBy.OPENS
    wait: timedelta = timedelta(hours=4)

    def check(self) -> None:
        """Refuse what cannot make a test, in words staff can act on."""
        if len(self.subject_b) > SUBJECT_MAX or not re.fullmatch(SUBJECT_PATTERN, self.subject_b):
            raise DistributorError(
                "subject B must be one line of 1 to 200 characters", code="send.ab_subject"
            )
        if not MIN_SHARE <= self.share <= MAX_SHARE:
            raise DistributorError(
                f"the test share is a percent of the audience from {MIN_SHARE} to {MAX_SHARE}, "
                f"not {self.share}",
                code="send.ab_share",
                share=self.share,
                least=MIN_SHARE,
                most=MAX_SHARE,
            )
        if not timedelta(0) < self.wait <= MAX_WAIT:
            raise DistributorError(
                "the wait before the winner is chosen must be more than nothing and at most "
                "7 days",
                code="send.ab_wait",
            )


def parse_wait(text: str) -> timedelta:
    """``4h``, ``90m``, ``30s``, ``1d`` (or a number of hours) as a time span."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in units else "h"
    number = value[:-1] if value[-1:] in units else value
    try:
        seconds = float(number) * units[unit]
    except ValueError:
        raise DistributorError(
            f"{text!r} is not a wait like 4h, 90m, 30s or 1d", code="send.ab_wait_text", text=text
        ) from None
    return timedelta(seconds=seconds)


def wait_text(wait: timedelta) -> str:
    """A wait as staff type it (``4h``, ``90m``, ``30s``, ``1d``): :func:`parse_wait` reads it."""
    seconds = int(wait.total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def arm_quota(planned: int, batch: int, share: int) -> tuple[int, int]:
    """How many rows of a planning batch of ``batch`` rows, after ``planned`` rows, go to arm A
    and to arm B: the test is ``share`` percent of all rows planned so far (rounded down), its
    rows taken in turn by A and B, so the arms never differ by more than one reader however the
    audience is cut into batches (and are equal when the test's size is even)."""

    def arms(rows: int) -> tuple[int, int]:
        test = rows * share // 100
        return (test + 1) // 2, test // 2

    (a_before, b_before), (a_after, b_after) = arms(planned), arms(planned + batch)
    return a_after - a_before, b_after - b_before


@dataclass(frozen=True)
class ArmFigures:
    """One arm as staff compare it: readers in it, messages out, readers who opened or clicked."""

    arm: str
    readers: int
    reached: int  # accepted by the receiving server (sent, or later bounced or complained)
    opened: int
    clicked: int

    def rate(self, by: WinnerBy) -> float | None:
        """The share of the reached readers who opened (clicked); None before any was reached."""
        if not self.reached:
            return None
        return (self.opened if by is WinnerBy.OPENS else self.clicked) / self.reached


def choose_winner(a: ArmFigures, b: ArmFigures, by: WinnerBy) -> tuple[str, Reason]:
    """The better arm by ``by``, or A (the issue's own subject) on a tie or without a signal."""
    rate_a, rate_b = a.rate(by) or 0.0, b.rate(by) or 0.0
    if rate_a == rate_b == 0.0:
        return ARM_A, Reason.NO_SIGNAL
    if rate_a == rate_b:
        return ARM_A, Reason.TIE
    return (ARM_A if rate_a > rate_b else ARM_B), Reason.BETTER


def _test_still_open(send_id: int) -> Exists:
    return (
        select(Delivery.id)
        .where(
            Delivery.send_id == send_id,
            Delivery.state.in_(OPEN_DELIVERY_STATES),
            Delivery.arm.in_((ARM_A, ARM_B)),
        )
        .exists()
    )


def tests_due(session: Session, now: datetime) -> list[tuple[int, WinnerBy]]:
    """Running A/B sends whose winner is due now: planned, every test message out (marked so
    now, once: the wait counts from then) and ``ab_wait`` passed since."""
    candidates = session.execute(
        select(Send.id, Send.ab_tested_at, Send.ab_wait, Send.ab_winner_by).where(
            Send.state == SendState.RUNNING,
            Send.ab_share.is_not(None),
            Send.ab_decided_at.is_(None),
            Send.planned_at.is_not(None),
        )
    ).all()
    due = []
    for send_id, tested_at, wait, winner_by in candidates:
        if tested_at is None:
            if session.scalar(select(_test_still_open(send_id))):
                continue
            session.execute(
                update(Send)
                .where(Send.id == send_id, Send.ab_tested_at.is_(None))
                .values(ab_tested_at=now, updated_at=now)
            )
            tested_at = now
        if now >= tested_at + timedelta(seconds=wait or 0):
            due.append((send_id, WinnerBy(winner_by or WinnerBy.OPENS)))
    return due


def take_decision(
    session: Session, send_id: int, winner: str, reason: Reason, now: datetime
) -> bool:
    """Record the winner and release the held rows, in the caller's transaction; False (and
    nothing changed) if the decision was taken already."""
    taken = session.execute(
        update(Send)
        .where(Send.id == send_id, Send.ab_decided_at.is_(None))
        .values(ab_decided_at=now, ab_winner=winner, ab_reason=reason, updated_at=now)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.execute(
        update(Delivery)
        .where(Delivery.send_id == send_id, Delivery.state == DeliveryState.HELD)
        .values(state=DeliveryState.PENDING, updated_at=now)
    )
    return True


def render_subject(arm: str | None, winner: str | None) -> str:
    """Which stored render a delivery of ``arm`` goes out with: "" (the issue's own subject) or
    "b"; the rest of the audience gets the winner's."""
    chosen = winner if arm == ARM_REST else arm
    return ARM_B if chosen == ARM_B else ""
