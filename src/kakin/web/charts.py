"""Charts drawn on the server as SVG for the operator console (issue 12: nothing from a CDN, no JavaScript).

Each chart is an ``<svg role="img">`` labelled by its ``<title>`` and described by a ``<desc>`` that lists every
point, so a screen reader reads the figures the picture shows; each bar or point also carries its own ``<title>``
(a tooltip). Every text is escaped. Coordinates are whole numbers computed with integer arithmetic.
"""

from __future__ import annotations

import hashlib
from html import escape

WIDTH, HEIGHT = 640, 240  # the drawing's size in user units (it scales with CSS)
LEFT, RIGHT, TOP, BOTTOM = 72, 16, 16, 40  # margins: the value labels left, the point labels below


def _number(value: int) -> str:
    return f"{value:,}"


def _id(kind: str, title: str, points: list[tuple[str, int]]) -> str:
    """An id for the chart's title and description, the same for the same chart, unlikely to clash on a page."""
    return f"chart-{kind}-" + hashlib.sha256(repr((title, points)).encode()).hexdigest()[:10]


def _check(points: list[tuple[str, int]]) -> None:
    for label, value in points:
        if not isinstance(label, str) or isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"a chart point is (label, whole number), not ({label!r}, {value!r})")


class _Frame:
    """The value axis of a chart: from min(0, lowest) to max(0, highest), mapped onto the plot's height."""

    def __init__(self, points: list[tuple[str, int]]) -> None:
        values = [v for _, v in points]
        self.low = min([0, *values])
        self.high = max([0, *values])
        self.ticks = sorted({self.low, 0, self.high})  # the values labelled on the axis
        if self.high == self.low:
            self.high = self.low + 1  # all zero: a flat chart, not a division by zero
        self.plot_height = HEIGHT - TOP - BOTTOM
        self.plot_width = WIDTH - LEFT - RIGHT

    def y(self, value: int) -> int:
        return TOP + (self.high - value) * self.plot_height // (self.high - self.low)

    def axes(self, unit: str) -> list[str]:
        unit_text = f" {escape(unit)}" if unit else ""
        zero = self.y(0)
        parts = [f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{HEIGHT - BOTTOM}" stroke="currentColor"/>',
                 f'<line class="axis" x1="{LEFT}" y1="{zero}" x2="{WIDTH - RIGHT}" y2="{zero}" stroke="currentColor"/>']
        shown: list[int] = []
        for value in sorted(self.ticks, key=lambda v: v != 0):  # zero first; a label too close to one shown is left out
            if any(abs(self.y(value) - self.y(other)) < 14 for other in shown):
                continue
            shown.append(value)
            parts.append(f'<text class="value-label" x="{LEFT - 6}" y="{self.y(value) + 4}" text-anchor="end" '
                         f'font-size="11">{_number(value)}{unit_text}</text>')
        return parts


def _open(kind: str, title: str, unit: str, points: list[tuple[str, int]]) -> list[str]:
    _check(points)
    ident = _id(kind, title, points)
    unit_text = f" {unit}" if unit else ""
    described = "; ".join(f"{label}: {_number(value)}{unit_text}" for label, value in points) or "no data"
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" role="img" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" aria-labelledby="{ident}-title {ident}-desc">',
            f'<title id="{ident}-title">{escape(title)}</title>',
            f'<desc id="{ident}-desc">{escape(described)}</desc>']


def _label(x: int, label: str, shown: bool) -> str:
    if not shown:
        return ""
    return (f'<text class="point-label" x="{x}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'font-size="11">{escape(label)}</text>')


def _every(points: list[tuple[str, int]], slot: int) -> int:
    """Label every k-th point so that labels (about 7 units a character at font size 11) do not overlap."""
    widest = max((len(label) for label, _ in points), default=1) * 7 + 8
    return max(1, -(-widest // max(1, slot)))


def bar_chart(points: list[tuple[str, int]], *, title: str, unit: str = "") -> str:
    """A bar chart of ``points`` (label, whole-number value), in order, as an accessible SVG string.

    ``title`` names the chart (its ``<title>``); ``unit`` follows each value in the description and the tooltips
    (``円``, ``通``). Negative values draw below the zero line. Raises ValueError for a point that is not
    (str, int)."""
    parts = _open("bar", title, unit, points)
    frame = _Frame(points)
    parts += frame.axes(unit)
    unit_text = f" {unit}" if unit else ""
    n = max(1, len(points))
    slot = frame.plot_width // n
    every = _every(points, slot)
    for i, (label, value) in enumerate(points):
        x = LEFT + i * slot + slot // 8
        top, bottom = sorted((frame.y(value), frame.y(0)))
        parts.append(f'<rect class="bar" x="{x}" y="{top}" width="{max(1, slot * 3 // 4)}" height="{bottom - top}" '
                     f'fill="currentColor"><title>{escape(f"{label}: {_number(value)}{unit_text}")}</title></rect>')
        parts.append(_label(x + slot * 3 // 8, label, i % every == 0))
    parts.append("</svg>")
    return "".join(p for p in parts if p)


def line_chart(points: list[tuple[str, int]], *, title: str, unit: str = "") -> str:
    """A line chart of ``points`` (label, whole-number value), in order, as an accessible SVG string: a polyline
    through the points, each marked by a circle with its own tooltip. Arguments and errors as :func:`bar_chart`."""
    parts = _open("line", title, unit, points)
    frame = _Frame(points)
    parts += frame.axes(unit)
    unit_text = f" {unit}" if unit else ""
    n = len(points)
    step = frame.plot_width // max(1, n)
    every = _every(points, step)
    xy = [(LEFT + i * step + step // 2, frame.y(value)) for i, (_, value) in enumerate(points)]
    if xy:
        parts.append('<polyline class="line" fill="none" stroke="currentColor" stroke-width="2" points="'
                     + " ".join(f"{x},{y}" for x, y in xy) + '"/>')
    for i, ((label, value), (x, y)) in enumerate(zip(points, xy, strict=True)):
        parts.append(f'<circle class="point" cx="{x}" cy="{y}" r="3" fill="currentColor">'
                     f'<title>{escape(f"{label}: {_number(value)}{unit_text}")}</title></circle>')
        parts.append(_label(x, label, i % every == 0))
    parts.append("</svg>")
    return "".join(p for p in parts if p)
