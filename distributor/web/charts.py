"""Series into pictures: stacked bar charts as SVG, drawn on the server (no script, no chart
library, nothing from another site: the CSP allows none of them), every text escaped.

Pure: numbers in, markup out. Each bar segment carries its series, label and value as data
attributes and a ``<title>`` (the browser's tooltip, and what a test or a screen reader reads);
the legend beside it gives each series' total.

:func:`time_axis` turns counts per minute (as the database groups them) into at most
:data:`MOST_BARS` bars of a round width, labelled in the office's time zone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from zoneinfo import ZoneInfo

from markupsafe import Markup

MOST_BARS = 48
# Bar widths in minutes, the smallest that keeps a send's span within MOST_BARS bars.
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)
WIDTH, HEIGHT = 640, 200
LEFT, BOTTOM, TOP = 44, 22, 8  # room for the y labels, the x labels, the top label
MOST_BAR_WIDTH = 56  # a few bars stay bars, not walls


@dataclass(frozen=True)
class Series:
    """One colour of a chart: ``key`` names its class (``series-<key>``) and data attribute;
    ``name`` is what staff read; ``values`` one per label."""

    key: str
    name: str
    values: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.values)


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def bar_chart(
    labels: Sequence[str], series: Sequence[Series], *, title: str, chart_id: str
) -> Markup:
    """A stacked bar chart: one bar per label, the series stacked in their order, with a legend
    of the series' totals. Empty (no bars) when every value is 0."""
    for one in series:
        if len(one.values) != len(labels):
            raise ValueError(f"series {one.key!r} has {len(one.values)} values for {len(labels)}")
    heights = [sum(one.values[i] for one in series) for i in range(len(labels))]
    top = max(heights, default=0)
    plot_w, plot_h = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    slot = plot_w / len(labels) if labels else plot_w
    bar = min(max(slot * 0.8, 1.0), MOST_BAR_WIDTH)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        f' class="chart" id="{_attr(chart_id)}" data-bars="{len(labels)}" data-max="{top}"'
        f' aria-label="{_attr(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH}" y2="{TOP + plot_h}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 10}" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for j, one in enumerate(series):
        parts.append(
            f'<g class="series series-{_attr(one.key)}" data-series="{_attr(one.key)}"'
            f' data-total="{one.total}">'
        )
        for i, value in enumerate(one.values):
            if not value:
                continue
            below = sum(other.values[i] for other in series[:j])
            y0 = TOP + plot_h - plot_h * (below + value) / top
            h = plot_h * value / top
            parts.append(
                f'<rect x="{LEFT + i * slot + (slot - bar) / 2:.1f}" y="{y0:.1f}"'
                f' width="{bar:.1f}" height="{h:.1f}" data-label="{_attr(labels[i])}"'
                f' data-value="{value}"><title>{escape(labels[i])} · {escape(one.name)}:'
                f" {value:,}</title></rect>"
            )
        parts.append("</g>")
    for i in _label_positions(len(labels)):
        # The outermost labels lean inwards, so that none reaches past the picture's edge.
        x, anchor = LEFT + i * slot + slot / 2, "middle"
        if len(labels) > 1 and i == 0:
            x, anchor = LEFT + i * slot, "start"
        elif len(labels) > 1 and i == len(labels) - 1:
            x, anchor = LEFT + (i + 1) * slot, "end"
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="{anchor}">'
            f"{escape(labels[i])}</text>"
        )
    parts.append("</svg>")
    legend = "".join(
        f'<li class="series-{_attr(one.key)}" data-series="{_attr(one.key)}">'
        f'<span class="swatch"></span>{escape(one.name)} <strong>{one.total:,}</strong></li>'
        for one in series
    )
    return Markup(
        f'<figure class="chart">{"".join(parts)}'
        f'<figcaption><ul class="legend">{legend}</ul></figcaption></figure>'
    )


def _label_positions(count: int) -> list[int]:
    """Which bars get a label under them: the first, the last, and up to three between."""
    if count <= 5:
        return list(range(count))
    return sorted({0, count // 4, count // 2, 3 * count // 4, count - 1})


@dataclass(frozen=True)
class TimeAxis:
    """Bars of ``step`` minutes from ``first`` (minutes since the epoch, UTC)."""

    first: int
    step: int
    bars: int

    def labels(self, zone: ZoneInfo) -> list[str]:
        starts = [self.first + i * self.step for i in range(self.bars)]
        moments = [datetime.fromtimestamp(m * 60, UTC).astimezone(zone) for m in starts]
        one_day = len({moment.date() for moment in moments}) <= 1
        return [moment.strftime("%H:%M" if one_day else "%m-%d %H:%M") for moment in moments]

    def values(self, per_minute: Mapping[int, int]) -> tuple[int, ...]:
        bars = [0] * self.bars
        for minute, n in per_minute.items():
            index = (minute - self.first) // self.step
            if 0 <= index < self.bars:
                bars[index] += n
        return tuple(bars)


def time_axis(*per_minute: Mapping[int, int], most: int = MOST_BARS) -> TimeAxis | None:
    """The bars that show every minute of ``per_minute`` (several series share one axis), each
    a round number of minutes wide; None when there is nothing to show."""
    minutes = [minute for series in per_minute for minute, n in series.items() if n]
    if not minutes:
        return None
    low, high = min(minutes), max(minutes)
    span = high - low + 1
    step = next((s for s in STEPS if span <= s * most), -(-span // most))
    first = low - low % step
    return TimeAxis(first, step, (high - first) // step + 1)
