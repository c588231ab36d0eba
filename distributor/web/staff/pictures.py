"""The pictures of a send for its staff page and its printed report (deliveries over time, per
receiving domain with the reasons of failures in words, opens and clicks), and of the last sends
side by side for the overview: the database's groups (:mod:`distributor.sending.breakdown`,
:mod:`distributor.readers.engagement`) drawn by :mod:`distributor.web.charts`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy.orm import Session

from distributor.readers.engagement import clicks_per_link, engagement_timeline
from distributor.readers.models import EngagementKind
from distributor.sending.breakdown import (
    FAILED_STATES,
    DomainRow,
    all_of,
    busiest,
    domains_of,
    timeline_of,
)
from distributor.vocabulary import DeliveryState
from distributor.web.charts import Series, bar_chart, time_axis
from distributor.web.staff.reasons import reason_key

Translate = Callable[..., str]
TIMELINE = (DeliveryState.SENT, DeliveryState.DEFERRED, DeliveryState.FAILED)
WAITING = (DeliveryState.PENDING, DeliveryState.CLAIMED)


@dataclass(frozen=True)
class DomainLine:
    """One row of the per-domain table, its failures' causes as (words, count), most first."""

    domain: str | None
    total: int
    sent: int
    deferred: int
    failed: int
    reasons: tuple[tuple[str, int], ...]


def domain_line(row: DomainRow, t: Translate) -> DomainLine:
    return DomainLine(
        row.domain,
        row.total,
        row.count(DeliveryState.SENT),
        row.count(DeliveryState.DEFERRED),
        row.failed,
        reasons_in_words(row.causes, t),
    )


def reasons_in_words(causes: dict[str, int], t: Translate) -> tuple[tuple[str, int], ...]:
    """Failures per cause as (words, count), most first; causes worded alike are added up."""
    words: dict[str, int] = {}
    for cause, n in causes.items():
        key = t(reason_key(cause or None))
        words[key] = words.get(key, 0) + n
    return tuple(sorted(words.items(), key=lambda item: (-item[1], item[0])))


def send_pictures(
    session: Session, send_id: int, zone: ZoneInfo, t: Translate, *, tracking: bool, final: bool
) -> dict[str, Any]:
    """What the send page and the report draw: the charts as SVG markup, the domain table, the
    reasons of all failures, and (tracked sends) the links readers followed."""
    timeline = timeline_of(session, send_id)
    by_domain = domains_of(session, send_id)
    pictures: dict[str, Any] = {
        "timeline": _over_time(
            [(state.value, t(f"delivery.{state.value}")) for state in TIMELINE],
            timeline,
            zone,
            title=t("staff.pictures.timeline"),
            chart_id="chart-deliveries",
        ),
        "domains": [domain_line(row, t) for row in busiest(by_domain)],
        "reasons": reasons_in_words(all_of(by_domain).causes, t),
        "tracking": tracking,
        "engagement": None,
        "links": [],
        "final": final,
    }
    if pictures["tracking"]:
        pictures["engagement"] = _over_time(
            [
                (EngagementKind.OPEN.value, t("staff.pictures.opens")),
                (EngagementKind.CLICK.value, t("staff.pictures.clicks")),
            ],
            engagement_timeline(session, send_id),
            zone,
            title=t("staff.pictures.engagement"),
            chart_id="chart-engagement",
        )
        pictures["links"] = clicks_per_link(session, send_id)
    return pictures


def _over_time(
    keys: Sequence[tuple[str, str]],
    per_minute: dict[str, dict[int, int]],
    zone: ZoneInfo,
    *,
    title: str,
    chart_id: str,
) -> Markup | None:
    axis = time_axis(*(per_minute.get(key, {}) for key, _ in keys))
    if axis is None:
        return None
    series = [Series(key, name, axis.values(per_minute.get(key, {}))) for key, name in keys]
    return bar_chart(axis.labels(zone), series, title=title, chart_id=chart_id)


def sends_side_by_side(sends: Sequence[dict[str, Any]], t: Translate) -> Markup | None:
    """The last sends (oldest on the left) as one bar each: delivered, failed, retrying, not
    yet tried."""
    if not sends:
        return None
    shown = list(reversed(sends))

    def counted(*states: DeliveryState) -> tuple[int, ...]:
        return tuple(sum(s["counts"].get(state.value, 0) for state in states) for s in shown)

    series = [
        Series("sent", t("delivery.sent"), counted(DeliveryState.SENT)),
        Series("failed", t("delivery.failed"), counted(*FAILED_STATES)),
        Series("deferred", t("delivery.deferred"), counted(DeliveryState.DEFERRED)),
        Series("waiting", t("staff.pictures.waiting"), counted(*WAITING)),
    ]
    return bar_chart(
        [f"#{s['id']}" for s in shown],
        series,
        title=t("staff.pictures.compare"),
        chart_id="chart-sends",
    )
