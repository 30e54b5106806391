"""Refusals per hour by reason, drawn as inline SVG on the audit log's changelist.

Server-rendered, so it needs no script, no stylesheet of its own and nothing from another
site: colours and sizes are SVG presentation attributes (``fill=``, ``font-size=``), which a
``style-src 'self'`` Content Security Policy allows, where ``style=`` attributes are blocked.
One aggregate query (``TruncHour``, ``Sum("count")``) feeds both charts: the last 24 hours
and the last 7 days, one bar per hour, stacked by reason. Hours are UTC.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from .models import Outcome, Reason

DAY_HOURS = 24
WEEK_HOURS = 7 * DAY_HOURS
# Okabe-Ito: told apart with the common colour-vision deficiencies; the last is "other".
PALETTE = ("#E69F00", "#56B4E9", "#009E73", "#D55E00", "#0072B2", "#CC79A7", "#F0E442")
OTHER_COLOUR = "#999999"
OTHER_REASONS = "Other reasons"
NO_REASON = "No reason given"
REFUSALS = (Outcome.DENIED, Outcome.FAILURE)

# The drawing's own units; it scales to the width of the page.
WIDTH, HEIGHT = 480, 190
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 26
FONT_SIZE = 12


@dataclass(frozen=True)
class Series:
    label: str
    colour: str
    per_hour: tuple[int, ...]

    @property
    def total(self) -> int:
        return sum(self.per_hour)


def reason_label(code: str) -> str:
    if not code:
        return NO_REASON
    try:
        return str(Reason(code).label)
    except ValueError:
        return code


def refusals_per_hour(
    queryset: QuerySet, *, now: datetime, hours: int = WEEK_HOURS
) -> tuple[list[datetime], dict[str, list[int]]]:
    """The last ``hours`` hours (UTC, the current one last) and each reason's refusals in each.

    One aggregate query over ``queryset``: each row counts ``count`` refusals, in the hour its
    first one happened.
    """
    last = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    slots = [last - timedelta(hours=ago) for ago in range(hours - 1, -1, -1)]
    index = {slot: position for position, slot in enumerate(slots)}
    rows = (
        queryset.filter(outcome__in=REFUSALS, occurred_at__gte=slots[0])
        .annotate(hour=TruncHour("occurred_at", tzinfo=UTC))
        .values("hour", "reason")
        .annotate(refusals=Sum("count"))
        .order_by()
    )
    by_reason: dict[str, list[int]] = {}
    for row in rows:
        position = index.get(row["hour"].astimezone(UTC))
        if position is not None:
            by_reason.setdefault(row["reason"], [0] * hours)[position] += row["refusals"] or 0
    return slots, by_reason


def series_for(
    by_reason: dict[str, list[int]], colours: dict[str, str], *, last: int
) -> list[Series]:
    """The last ``last`` hours of each reason, in the order (and colours) of ``colours``;
    reasons without a colour of their own are summed as "Other reasons"."""
    series: list[Series] = []
    other = [0] * last
    for code, counts in by_reason.items():
        if code not in colours:
            other = [a + b for a, b in zip(other, counts[-last:], strict=True)]
    for code, colour in colours.items():
        counts = by_reason.get(code, [0] * last)[-last:]
        series.append(Series(reason_label(code), colour, tuple(counts)))
    if any(other):
        series.append(Series(OTHER_REASONS, OTHER_COLOUR, tuple(other)))
    return series


def colours_by_reason(by_reason: dict[str, list[int]]) -> dict[str, str]:
    """The most frequent reasons, each with a colour of its own, most frequent first."""
    ranked = sorted(by_reason, key=lambda code: (-sum(by_reason[code]), reason_label(code)))
    return dict(zip(ranked, PALETTE, strict=False))


def charts(queryset: QuerySet, *, now: datetime) -> SafeString:
    """Both charts, with their legend, as HTML for the changelist."""
    slots, by_reason = refusals_per_hour(queryset, now=now, hours=WEEK_HOURS)
    colours = colours_by_reason(by_reason)
    week_series = series_for(by_reason, colours, last=WEEK_HOURS)
    day = chart_svg(
        "entra-audit-chart-24h",
        "Refusals per hour, last 24 hours",
        slots[-DAY_HOURS:],
        series_for(by_reason, colours, last=DAY_HOURS),
        tick_every=6,
        tick_format="%H:%M",
    )
    week = chart_svg(
        "entra-audit-chart-7d",
        "Refusals per hour, last 7 days",
        slots,
        week_series,
        tick_every=DAY_HOURS,
        tick_format="%b %d",
    )
    legend = format_html_join(
        "",
        '<li><svg width="12" height="12" viewBox="0 0 12 12" aria-hidden="true" focusable="false">'
        '<rect width="12" height="12" fill="{}"/></svg> {} ({})</li>',
        ((s.colour, s.label, s.total) for s in week_series if s.total),
    )
    return format_html(
        '<details class="entra-audit-charts" open>'
        "<summary>Refusals per hour by reason (UTC, matching the filters)</summary>"
        '<div class="entra-audit-chart-row">'
        "<figure>{}<figcaption>Last 24 hours</figcaption></figure>"
        "<figure>{}<figcaption>Last 7 days</figcaption></figure>"
        "</div>"
        '<ul class="entra-audit-legend">{}</ul>'
        "</details>",
        day,
        week,
        legend or mark_safe("<li>No refusals in the last 7 days.</li>"),
    )


def chart_svg(
    chart_id: str,
    title: str,
    slots: list[datetime],
    series: list[Series],
    *,
    tick_every: int,
    tick_format: str,
) -> SafeString:
    """One stacked bar per hour; every bar segment titled with its hour, reason and count."""
    hours = len(slots)
    totals = [sum(s.per_hour[i] for s in series) for i in range(hours)]
    top = _axis_top(max(totals, default=0))
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    slot_width = plot_width / hours
    bar_width = slot_width * (0.8 if hours <= 48 else 0.9)
    parts: list[str] = []

    def y(value: float) -> float:
        return TOP + plot_height - plot_height * value / top

    step = top / 2
    for tick in (0, step, top):
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            'stroke="currentColor" stroke-opacity="0.25" stroke-width="1"/>'
            f'<text x="{LEFT - 4}" y="{y(tick) + 4:.1f}" text-anchor="end" '
            f'font-size="{FONT_SIZE}" fill="currentColor">{_number(tick)}</text>'
        )
    for position, slot in enumerate(slots):
        x = LEFT + position * slot_width + (slot_width - bar_width) / 2
        base = 0
        hour = f"{slot:%b %d %H:%M} to {slot + timedelta(hours=1):%H:%M} UTC"
        for s in series:
            value = s.per_hour[position]
            if not value:
                continue
            parts.append(
                f'<rect class="bar" x="{x:.2f}" y="{y(base + value):.2f}" '
                f'width="{bar_width:.2f}" height="{y(base) - y(base + value):.2f}" '
                f'fill="{s.colour}"><title>{escape(hour)}: {escape(s.label)}, {value}</title>'
                "</rect>"
            )
            base += value
        if slot.hour % tick_every == 0:
            parts.append(
                f'<text x="{LEFT + position * slot_width:.1f}" y="{HEIGHT - 8}" '
                f'font-size="{FONT_SIZE}" fill="currentColor">{escape(slot.strftime(tick_format))}'
                "</text>"
            )
    summary = _summary(series)
    return format_html(
        '<svg class="entra-audit-chart" id="{}" xmlns="http://www.w3.org/2000/svg" '
        'viewBox="0 0 {} {}" role="img" aria-labelledby="{}-title {}-desc">'
        '<title id="{}-title">{}</title><desc id="{}-desc">{}</desc>{}</svg>',
        chart_id,
        WIDTH,
        HEIGHT,
        chart_id,
        chart_id,
        chart_id,
        title,
        chart_id,
        summary,
        mark_safe("".join(parts)),  # noqa: S308  (built above: numbers and escaped text)
    )


def _summary(series: Iterable[Series]) -> str:
    counted = [s for s in series if s.total]
    if not counted:
        return "No refusals."
    total = sum(s.total for s in counted)
    return f"{total} refusals: " + ", ".join(f"{s.label} {s.total}" for s in counted) + "."


def _axis_top(highest: int) -> int:
    """A round number at or above ``highest``, halved into round ticks (1, 2, 4, 10, 20…)."""
    if highest <= 2:
        return 2
    magnitude = 10 ** math.floor(math.log10(highest))
    for factor in (1, 2, 4, 5, 10):
        if factor * magnitude >= highest and (factor * magnitude) % 2 == 0:
            return factor * magnitude
    return 10 * magnitude


def _number(value: float) -> str:
    """An axis label short enough for the margin: 40, 2.5k, 20k, 5M."""
    for unit, size in (("M", 1_000_000), ("k", 1_000)):
        if value >= 10 * size or (value >= size and value % (size // 10) == 0):
            return f"{value / size:.1f}".removesuffix(".0") + unit
    return f"{value:.1f}".removesuffix(".0")
