"""The readers' side of an A/B subject test (:mod:`distributor.sending.ab`): how many in each
arm opened and clicked, the winner it makes, and the test as staff read it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from distributor.readers.models import EngagementEvent, EngagementKind
from distributor.sending.ab import (
    ARMS,
    REACHED,
    ArmFigures,
    Reason,
    WinnerBy,
    choose_winner,
    take_decision,
    tests_due,
)
from distributor.sending.models import ARM_A, ARM_B, Delivery, Send, SendRender


def arm_figures(session: Session, send_id: int) -> dict[str, ArmFigures]:
    """Each arm's figures ("a", "b", and "rest": the rest of the audience), counted in the
    database: rows by arm and state from the arm index, opens and clicks by reader."""
    readers: dict[str, int] = {}
    reached: dict[str, int] = {}
    for arm, state, n in session.execute(
        select(func.coalesce(Delivery.arm, ""), Delivery.state, func.count())
        .where(Delivery.send_id == send_id, Delivery.arm.is_not(None))
        .group_by(Delivery.arm, Delivery.state)
    ):
        readers[arm] = readers.get(arm, 0) + n
        if state in REACHED:
            reached[arm] = reached.get(arm, 0) + n
    engaged: dict[tuple[str, str], int] = {}
    for arm, kind, n in session.execute(
        select(
            func.coalesce(Delivery.arm, ""),
            EngagementEvent.kind,
            func.count(func.distinct(Delivery.id)),
        )
        .join(
            Delivery,
            and_(
                Delivery.send_id == EngagementEvent.send_id,
                Delivery.subscriber_id == EngagementEvent.subscriber_id,
            ),
        )
        .where(
            EngagementEvent.send_id == send_id,
            Delivery.arm.is_not(None),
            ~EngagementEvent.machine,  # a link scanner is not a reader
        )
        .group_by(Delivery.arm, EngagementEvent.kind)
    ):
        engaged[(arm, kind)] = n
    return {
        arm: ArmFigures(
            arm,
            readers.get(arm, 0),
            reached.get(arm, 0),
            engaged.get((arm, EngagementKind.OPEN), 0),
            engaged.get((arm, EngagementKind.CLICK), 0),
        )
        for arm in ARMS
    }


def decide_due_tests(session: Session, now: datetime) -> list[int]:
    """The scheduler's step: each A/B send whose wait is over gets its winner, and its held
    rows go out with the winner's subject, in this one transaction. A decision already taken
    (a second scheduler, a tick repeated after a crash) is left as it is. The sends decided."""
    decided = []
    for send_id, winner_by in tests_due(session, now):
        figures = arm_figures(session, send_id)
        winner, reason = choose_winner(figures[ARM_A], figures[ARM_B], winner_by)
        if take_decision(session, send_id, winner, reason, now):
            decided.append(send_id)
    return decided


@dataclass(frozen=True)
class AbStatus:
    """A send's A/B test as staff read it: what was asked, each arm, and the decision."""

    share: int
    winner_by: WinnerBy
    wait: timedelta
    subject_a: str | None  # the issue's own subject, once rendered
    subject_b: str
    arms: dict[str, ArmFigures]
    tested_at: datetime | None
    decided_at: datetime | None
    winner: str | None
    reason: Reason | None

    def to_json(self) -> dict[str, object]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "share": self.share,
            "winner_by": self.winner_by.value,
            "wait_seconds": int(self.wait.total_seconds()),
            "subject_a": self.subject_a,
            "subject_b": self.subject_b,
            "arms": {
                arm: {
                    "readers": f.readers,
                    "reached": f.reached,
                    "opened": f.opened,
                    "clicked": f.clicked,
                }
                for arm, f in self.arms.items()
            },
            "tested_at": iso(self.tested_at),
            "decided_at": iso(self.decided_at),
            "winner": self.winner,
            "reason": self.reason.value if self.reason else None,
        }


def ab_status(session: Session, send: Send) -> AbStatus | None:
    """The A/B test of ``send``, or None when it has none."""
    if send.ab_share is None or send.ab_subject_b is None:
        return None
    stored = session.scalar(
        select(SendRender.compiled)
        .where(SendRender.send_id == send.id, SendRender.subject == "")
        .limit(1)
    )
    return AbStatus(
        share=send.ab_share,
        winner_by=WinnerBy(send.ab_winner_by or WinnerBy.OPENS),
        wait=timedelta(seconds=send.ab_wait or 0),
        subject_a=stored["subject"] if stored else None,
        subject_b=send.ab_subject_b,
        arms=arm_figures(session, send.id),
        tested_at=send.ab_tested_at,
        decided_at=send.ab_decided_at,
        winner=send.ab_winner,
        reason=Reason(send.ab_reason) if send.ab_reason else None,
    )
