"""The geometry of the dashboard's charts, drawn by the templates as inline SVG.

Rules:

- Charts are computed here and drawn by ``templates/dashboard/_charts.html``;
  their many repeated marks (a year of daily bars and points) are written here
  as SVG (``*_svg``: f-strings, only the text escaped, since a template loop or
  ``Markup.format`` over thousands of marks would cost most of the page's time).
  No JavaScript, no inline ``style`` (the Content-Security-Policy forbids both):
  colours come from classes in ``portal.css``.
- The value axis always starts at zero and ends at a "nice" number (1, 2 or 5
  times a power of ten, times the tick count), so bars compare honestly.
- Every bar and point keeps its label and value: the templates give each a
  ``<title>`` and ``data-`` attributes, and the same numbers go into the data
  table printed beside each chart (the accessible alternative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from collections.abc import Sequence

WIDTH: Final = 720
HEIGHT: Final = 240
MARGIN_LEFT: Final = 64
MARGIN_RIGHT: Final = 12
MARGIN_TOP: Final = 12
MARGIN_BOTTOM: Final = 36
VALUE_TICKS: Final = 4
BAR_FILL: Final = 0.8
STACK_ROW_HEIGHT: Final = 28
STACK_ROW_GAP: Final = 12
STACK_LABEL_WIDTH: Final = 200


def _round(value: float) -> float:
    return round(value, 2)


def nice_scale(maximum: int, ticks: int = VALUE_TICKS) -> tuple[int, int]:
    """``(top, step)`` of a value axis for counts up to ``maximum``: ``step`` is a
    whole 1, 2 or 5 times a power of ten and ``top`` the first multiple of it
    that reaches ``maximum`` (at least one step).
    """
    raw = max(maximum, 1) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    whole = max(1, math.ceil(step))
    return whole * max(1, math.ceil(maximum / whole)), whole


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Frame:
    """The plot area (``left``..``right``, ``top``..``bottom``) and its axes."""

    width: int
    height: int
    left: float
    top: float
    right: float
    bottom: float
    top_value: int
    value_ticks: tuple[Tick, ...]
    category_ticks: tuple[Tick, ...]

    @property
    def plot_width(self) -> float:
        return self.right - self.left

    @property
    def plot_height(self) -> float:
        return self.bottom - self.top

    def y_of(self, value: int) -> float:
        return _round(self.bottom - value / self.top_value * self.plot_height)


def _frame(maximum: int, category_ticks: Sequence[tuple[float, str]], height: int) -> Frame:
    top_value, step = nice_scale(maximum)
    left, right = float(MARGIN_LEFT), float(WIDTH - MARGIN_RIGHT)
    top, bottom = float(MARGIN_TOP), float(height - MARGIN_BOTTOM)
    plot_height = bottom - top
    value_ticks = tuple(
        Tick(_round(bottom - value / top_value * plot_height), f"{value:,}")
        for value in range(0, top_value + 1, step)
    )
    ticks = tuple(
        Tick(_round(left + fraction * (right - left)), label) for fraction, label in category_ticks
    )
    return Frame(WIDTH, height, left, top, right, bottom, top_value, value_ticks, ticks)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class BarChart:
    frame: Frame
    bars: tuple[Bar, ...]

    def bars_svg(self, kind: str) -> Markup:
        """One ``<rect>`` per bar, each with its label and value as ``<title>``
        and ``data-label``/``data-value`` (for people hovering, and for tests).
        """
        kind = escape(kind)
        return Markup(  # noqa: S704 (its only texts, kind and labels, are escaped)
            "\n".join(
                f'<rect class="chart-bar chart-bar-{kind}" x="{bar.x}" y="{bar.y}" '
                f'width="{bar.width}" height="{bar.height}" data-label="{label}" '
                f'data-value="{bar.value}"><title>{label}: {bar.value:,}</title></rect>'
                for bar in self.bars
                for label in (escape(bar.label),)
            )
        )


def bar_chart(
    labels: Sequence[str],
    values: Sequence[int],
    *,
    category_ticks: Sequence[tuple[float, str]] = (),
    height: int = HEIGHT,
) -> BarChart:
    """One bar per value; ``category_ticks`` are (fraction of the width, label)."""
    frame = _frame(max(values, default=0), category_ticks, height)
    band = frame.plot_width / max(len(values), 1)
    bars = []
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = frame.y_of(value)
        bars.append(
            Bar(
                x=_round(frame.left + index * band + band * (1 - BAR_FILL) / 2),
                y=y,
                width=_round(band * BAR_FILL),
                height=_round(frame.bottom - y),
                label=label,
                value=value,
            )
        )
    return BarChart(frame, tuple(bars))


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str
    value: int


@dataclass(frozen=True)
class Line:
    key: str
    name: str
    points: tuple[Point, ...]

    @property
    def path(self) -> str:
        """The ``points`` attribute of an SVG polyline."""
        return " ".join(f"{point.x},{point.y}" for point in self.points)

    def points_svg(self) -> Markup:
        """One ``<circle>`` per point, with its label and value like ``bars_svg``."""
        key, name = escape(self.key), escape(self.name.lower())
        return Markup(  # noqa: S704 (its only texts, key, name and labels, are escaped)
            "\n".join(
                f'<circle class="chart-point chart-point-{key}" cx="{point.x}" cy="{point.y}" '
                f'r="2.5" data-label="{label}" data-value="{point.value}">'
                f"<title>{label}: {point.value:,} {name}</title></circle>"
                for point in self.points
                for label in (escape(point.label),)
            )
        )


@dataclass(frozen=True)
class LineChart:
    frame: Frame
    lines: tuple[Line, ...]


def line_chart(
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[int]]],
    *,
    category_ticks: Sequence[tuple[float, str]] = (),
    height: int = HEIGHT,
) -> LineChart:
    """One line per ``(key, name, values)`` of ``series``, points at band centres."""
    maximum = max((max(values, default=0) for _, _, values in series), default=0)
    frame = _frame(maximum, category_ticks, height)
    band = frame.plot_width / max(len(labels), 1)
    lines = tuple(
        Line(
            key,
            name,
            tuple(
                Point(_round(frame.left + (index + 0.5) * band), frame.y_of(value), label, value)
                for index, (label, value) in enumerate(zip(labels, values, strict=True))
            ),
        )
        for key, name, values in series
    )
    return LineChart(frame, lines)


def band_centre(index: int, count: int) -> float:
    """The fraction of the width at the middle of band ``index`` of ``count``."""
    return (index + 0.5) / max(count, 1)


@dataclass(frozen=True)
class Segment:
    x: float
    width: float
    key: str
    name: str
    value: int
    share: float


@dataclass(frozen=True)
class StackedRow:
    label: str
    y: float
    height: float
    total: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class StackedChart:
    width: int
    height: int
    label_width: int
    rows: tuple[StackedRow, ...]


def stacked_bars(rows: Sequence[tuple[str, Sequence[tuple[str, str, int]]]]) -> StackedChart:
    """One full-width bar per row, split into its ``(key, name, value)`` parts in
    proportion; a row whose parts are all zero has no segments.
    """
    left, right = float(STACK_LABEL_WIDTH), float(WIDTH - MARGIN_RIGHT)
    drawn = []
    for number, (label, parts) in enumerate(rows):
        total = sum(value for _, _, value in parts)
        x = left
        segments = []
        for key, name, value in parts:
            if total <= 0 or value <= 0:
                continue
            width = (right - left) * value / total
            segments.append(Segment(_round(x), _round(width), key, name, value, value / total))
            x += width
        drawn.append(
            StackedRow(
                label=label,
                y=float(number * (STACK_ROW_HEIGHT + STACK_ROW_GAP)),
                height=float(STACK_ROW_HEIGHT),
                total=total,
                segments=tuple(segments),
            )
        )
    height = max(1, len(rows)) * (STACK_ROW_HEIGHT + STACK_ROW_GAP)
    return StackedChart(WIDTH, height, STACK_LABEL_WIDTH, tuple(drawn))
