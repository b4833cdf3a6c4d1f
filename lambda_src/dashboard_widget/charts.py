"""Charts for the custom widgets, rendered on the server as inline SVG and plain HTML: no script, nothing fetched.

CloudWatch shows a custom widget's HTML after removing any script and a few tags (<iframe>, <use>); CSS in a
<style> element and inline SVG are allowed. So every chart here is static markup sized in pixels for the box the
widget was given (`widgetContext.width` and `height`), and every number stays readable as text: axis labels,
legends with totals, and an SVG <title> on each column or point that a hover shows.

Colours: text, axes and grid lines use `currentColor`, so they follow CloudWatch's light or dark text colour;
series colours come from a palette per theme (`widgetContext.theme`), picked to stay distinct on a white and on
a dark background. Every value that comes from the data is escaped here; callers pass plain text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

FONT_PX = 12
CHAR_PX = 7.0
"""A generous average width of one character at FONT_PX, for fitting labels (the console's sans-serif is narrower)."""
ROW_PX = 23
"""Height of one table row at FONT_PX (line height plus padding and border)."""
LINE_PX = 18
"""Height of one line of text at FONT_PX."""
SAFETY_PX = 6
"""Kept free on the right and at the bottom: a box is never filled to the last pixel."""

PALETTES = {
    # The categorical colours of CloudWatch's own graphs (light), and lighter versions of them for dark mode.
    "light": (
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    ),
    "dark": (
        "#5aa9e6", "#ffa64d", "#5cc95c", "#f06262", "#b899dd", "#c49a86", "#f0a3d8", "#a6a6a6", "#d6d74a", "#4fd6e3",
    ),
}  # fmt: skip
OTHER = 7
"""The palette index of "the rest": grey."""
GOOD, WARN, BAD = 2, 1, 3
SEQUENTIAL = {
    # Fast to slow, for latency bins: green through yellow to red, readable on white and on dark.
    "light": (
        "#1a9850", "#66bd63", "#a6d96a", "#d9ef8b", "#fee08b", "#fdae61", "#f46d43", "#d73027", "#a50026", "#67001f",
    ),
    "dark": (
        "#33b36b", "#7fcf7a", "#b5e08a", "#e2f3a0", "#ffe69c", "#fdb877", "#f7815f", "#e5514a", "#cc2c4a", "#a3223f",
    ),
}  # fmt: skip


def css() -> str:
    """The widgets' stylesheet: layout in pixels, text and lines in currentColor, series colours per theme."""
    rules = [
        f".cw{{font-size:{FONT_PX}px;line-height:1.35;box-sizing:border-box}}",
        ".cw *{box-sizing:border-box}",
        ".cw p{margin:0 0 4px 0}",
        ".muted{opacity:.72}",
        ".cw .one{white-space:nowrap;overflow:hidden;text-overflow:ellipsis;"
        f"height:{LINE_PX}px;line-height:{LINE_PX}px}}",
        ".cw .big{font-size:20px;font-weight:600;line-height:1.15}",
        ".cw .kpis{display:flex;flex-wrap:wrap;gap:2px 18px;margin:0 0 4px 0}",
        ".cw .kpi{white-space:nowrap}",
        ".cw .kpi small{display:block;opacity:.72;font-size:11px}",
        ".cw svg{display:block;overflow:visible}",
        ".cw svg text{fill:currentColor;font-size:11px}",
        ".cw .axis{stroke:currentColor;stroke-opacity:.35;stroke-width:1}",
        ".cw .grid{stroke:currentColor;stroke-opacity:.12;stroke-width:1}",
        ".cw .hit{fill:transparent}",
        ".cw .hit:hover{fill:currentColor;fill-opacity:.08}",
        ".cw .line{fill:none;stroke-width:1.5}",
        ".cw .legend{display:flex;flex-wrap:wrap;gap:0 14px;margin:2px 0}",
        ".cw .legend span{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}",
        ".cw .sw{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:4px;vertical-align:-1px}",
        ".cw table.t{width:100%;table-layout:fixed;border-collapse:collapse;margin:0}",
        ".cw table.t th,.cw table.t td{padding:2px 6px;height:" + str(ROW_PX) + "px;white-space:nowrap;overflow:hidden;"
        "text-overflow:ellipsis;text-align:right;border:0;border-bottom:1px solid rgba(127,127,127,.2);"
        "font-size:" + str(FONT_PX) + "px;font-weight:normal;vertical-align:middle}",
        ".cw table.t th{opacity:.72;font-size:11px}",
        ".cw table.t .l{text-align:left}",
        ".cw table.t td.bar{padding-right:4px}",
        ".cw .hb{display:flex;height:10px;width:100%;border-radius:1px;overflow:hidden}",
        ".cw .hb span{display:block;height:100%}",
        ".cw .track{background:rgba(127,127,127,.16)}",
        ".cw .gauge{position:relative;height:10px;width:100%;background:rgba(127,127,127,.16);border-radius:1px}",
        ".cw .gauge span{position:absolute;top:0;left:0;height:100%}",
        ".cw .gauge i{position:absolute;top:-2px;height:14px;width:0;border-left:2px solid currentColor;opacity:.75}",
        ".cw .gauge b{position:absolute;top:-2px;height:14px;width:0;border-left:2px dotted currentColor;opacity:.6}",
        ".cw a.u{cursor:pointer;text-decoration:none;color:inherit;border-bottom:1px dotted currentColor}",
        ".cw h5{font-size:11px;font-weight:600;margin:4px 0 2px 0;opacity:.8;text-transform:uppercase;"
        "letter-spacing:.03em}",
    ]
    for theme, palette in PALETTES.items():
        for index, colour in enumerate(palette):
            rules.append(f".{theme} .s{index}{{fill:{colour};stroke:{colour};background:{colour}}}")
        for index, colour in enumerate(SEQUENTIAL[theme]):
            rules.append(f".{theme} .q{index}{{fill:{colour};background:{colour}}}")
    return "<style>" + "".join(rules) + "</style>"


def esc(value: Any) -> str:
    return html.escape(str(value))


def fits(text: str, px: float) -> bool:
    return len(text) * CHAR_PX <= px


def clip(text: str, px: float) -> str:
    """Plain text cut to about `px` pixels, with an ellipsis (SVG text cannot ellipsize itself)."""
    chars = max(1, int(px // CHAR_PX))
    return text if len(text) <= chars else text[: max(1, chars - 1)] + "…"


def compact(value: float, unit: str = "") -> str:
    """A number short enough for an axis or a narrow column: 1.2M, 35.4k, $1.2k, $0.42."""
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    prefix = "$" if unit == "$" else ""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if magnitude >= size:
            scaled = magnitude / size
            digits = 0 if scaled >= 100 else 1
            return f"{sign}{prefix}{scaled:.{digits}f}{suffix}"
    if unit == "$":
        return f"{sign}${magnitude:.2f}" if magnitude < 100 else f"{sign}${magnitude:.0f}"
    if float(magnitude).is_integer() or magnitude >= 100:
        return f"{sign}{magnitude:.0f}"
    return f"{sign}{magnitude:.1f}"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k at or above value (at least 1 for counts)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


# Time series ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """One column of a time chart: what its <title> calls it and, when it starts a tick, the tick's text."""

    label: str
    tick: str | None = None
    rank: int = 0
    """Ticks of a lower rank win when ticks crowd (a new day over 6-hourly over hourly ...)."""


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    colour: int


def time_chart(
    slots: Sequence[Slot],
    series: Sequence[Series],
    width: float,
    height: float,
    unit: str = "",
    area: bool = False,
    what: str = "",
    centred: bool = False,
) -> str:
    """Stacked columns (or stacked areas, for many slots) over time, with a y axis and time ticks.

    Each slot carries a <title> with every series' value and the total, so the numbers behind the picture stay
    readable; `what` names the measure in it."""
    width, height = max(width, 120.0), max(height, 60.0)
    totals = [sum(s.values[i] for s in series) for i in range(len(slots))]
    top = nice_ceiling(max(totals, default=0.0))
    tick_labels = [compact(top * k / 2, unit) for k in range(3)]
    left = max(len(label) for label in tick_labels) * CHAR_PX + 6
    count = max(len(slots), 1)
    longest_total = max((len(compact(t, unit)) for t in totals), default=1)
    labelled = not area and (width - left - 2) / count >= longest_total * CHAR_PX + 4
    """Columns wide enough carry their total as text on top."""
    bottom, pad_top = 16.0, 16.0 if labelled else 6.0
    plot_w, plot_h = width - left - 2, height - bottom - pad_top
    step = plot_w / count
    parts = [
        f'<svg width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img">',
    ]
    for k, label in enumerate(tick_labels):
        y = pad_top + plot_h - plot_h * k / 2
        parts.append(f'<line class="grid" x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(f'<text x="{left - 4:.1f}" y="{y + 4:.1f}" text-anchor="end">{esc(label)}</text>')

    def y_of(value: float) -> float:
        return pad_top + plot_h - plot_h * value / top

    if area and len(slots) > 1:
        base = [0.0] * len(slots)
        for s in series:
            upper = [base[i] + s.values[i] for i in range(len(slots))]
            xs = [left + step * (i + 0.5) for i in range(len(slots))]
            outline = " ".join(f"{x:.1f},{y_of(v):.1f}" for x, v in zip(xs, upper, strict=True))
            under = " ".join(f"{x:.1f},{y_of(v):.1f}" for x, v in reversed(list(zip(xs, base, strict=True))))
            parts.append(f'<polygon class="s{s.colour}" fill-opacity=".28" stroke="none" points="{outline} {under}"/>')
            parts.append(f'<polyline class="line s{s.colour}" style="fill:none" points="{outline}"/>')
            base = upper
    else:
        gap = 1.0 if step >= 4 else 0.0
        for i in range(len(slots)):
            y = pad_top + plot_h
            for s in series:
                value = s.values[i]
                if value <= 0:
                    continue
                h = plot_h * value / top
                y -= h
                parts.append(
                    f'<rect class="s{s.colour}" x="{left + step * i + gap / 2:.1f}" y="{y:.1f}" '
                    f'width="{max(step - gap, 0.5):.1f}" height="{h:.1f}"/>'
                )
    if labelled:
        for i, total in enumerate(totals):
            if total > 0:
                parts.append(
                    f'<text x="{left + step * (i + 0.5):.1f}" y="{y_of(total) - 3:.1f}" text-anchor="middle">'
                    f"{esc(compact(total, unit))}</text>"
                )
    parts.append(
        f'<line class="axis" x1="{left:.1f}" x2="{left + plot_w:.1f}" '
        f'y1="{pad_top + plot_h:.1f}" y2="{pad_top + plot_h:.1f}"/>'
    )
    for i, slot in enumerate(slots):  # hover targets carry the numbers
        lines = [slot.label]
        if len(series) > 1:
            lines += [f"{s.name}: {compact_exact(s.values[i], unit)}" for s in series if s.values[i]]
            lines.append(f"total: {compact_exact(totals[i], unit)}")
        else:
            lines[0] += f": {compact_exact(totals[i], unit)}" + (f" {what}" if what else "")
        parts.append(
            f'<rect class="hit" x="{left + step * i:.1f}" y="{pad_top:.1f}" width="{step:.1f}" height="{plot_h:.1f}">'
            f"<title>{esc(chr(10).join(lines))}</title></rect>"
        )
    parts.extend(_time_ticks(slots, left + (step / 2 if centred else 0.0), step, pad_top + plot_h + 12, width))
    parts.append("</svg>")
    return "".join(parts)


def _time_ticks(slots: Sequence[Slot], left: float, step: float, y: float, width: float) -> list[str]:
    """Tick labels that do not overlap, rank by rank: every tick of the lowest rank that fits (days), then each
    further rank only if all its ticks fit, so that the ticks stay evenly spaced."""
    placed: list[tuple[float, float]] = []
    chosen: list[tuple[float, str]] = []
    for rank in sorted({slot.rank for slot in slots if slot.tick is not None}):
        wanted = []
        for i, slot in enumerate(slots):
            if slot.tick is None or slot.rank != rank:
                continue
            x = left + step * i
            half = len(slot.tick) * CHAR_PX / 2 + 4
            if x - half < 0 or x + half > width:
                continue
            wanted.append((x - half, x + half, x, slot.tick))
        clear = [
            w
            for w in wanted
            if all(w[1] < a or w[0] > b for a, b in placed)
            and all(w is v or w[1] < v[0] or w[0] > v[1] for v in wanted)
        ]
        if placed and len(clear) < len(wanted):
            break
        for start, end, x, tick in clear:
            placed.append((start, end))
            chosen.append((x, tick))
    return [
        f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{y - 12:.1f}" y2="{y - 9:.1f}"/>'
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">{esc(tick)}</text>'
        for x, tick in chosen
    ]


def compact_exact(value: float, unit: str = "") -> str:
    """A value as a hover shows it: exact enough to read off (thousands separators, cents)."""
    if unit == "$":
        return f"${value:,.2f}"
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.2f}"


# Legends, bars and sparklines -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    name: str
    value: str
    colour: int
    sequential: bool = False


def _legend_item_px(entries: Sequence[Entry], width: float) -> float:
    return min(max(len(e.name) + len(e.value) + 2 for e in entries) * CHAR_PX + 26, width)


def legend(entries: Sequence[Entry], width: float, lines: int = 2) -> str:
    """Swatch, name and value per entry, wrapped over at most `lines` lines; the rest are counted."""
    if not entries:
        return ""
    item_px = _legend_item_px(entries, width)
    per_line = max(1, int(width // item_px))
    shown = entries if len(entries) <= per_line * lines else entries[: per_line * lines - 1]
    cells = [
        f'<span style="max-width:{item_px - 14:.0f}px" title="{esc(e.name)}: {esc(e.value)}">'
        f'<i class="sw {"q" if e.sequential else "s"}{e.colour}"></i>{esc(e.name)} <b>{esc(e.value)}</b></span>'
        for e in shown
    ]
    if len(shown) < len(entries):
        cells.append(f'<span class="muted">+{len(entries) - len(shown)} more</span>')
    return f'<div class="legend" style="max-width:{width:.0f}px">{"".join(cells)}</div>'


def legend_lines(entries: Sequence[Entry], width: float, lines: int = 2) -> int:
    """How many lines legend() takes."""
    if not entries:
        return 0
    per_line = max(1, int(width // _legend_item_px(entries, width)))
    return min(lines, math.ceil(len(entries) / per_line))


@dataclass(frozen=True)
class Segment:
    value: float
    colour: int
    label: str
    sequential: bool = False


def hbar(segments: Sequence[Segment], largest: float) -> str:
    """A horizontal bar growing rightwards from the left edge of its cell, one coloured part per segment, on a
    faint track; each part's <title> holds its number."""
    if largest <= 0:
        return '<div class="hb track"></div>'
    parts = []
    used = 0.0
    for segment in segments:
        if segment.value <= 0:
            continue
        share = min(100.0 * segment.value / largest, 100.0 - used)
        used += share
        kind = "q" if segment.sequential else "s"
        parts.append(
            f'<span class="{kind}{segment.colour}" style="width:{share:.2f}%" title="{esc(segment.label)}"></span>'
        )
    return f'<div class="hb track">{"".join(parts)}</div>'


def gauge(percent: float, colour: int, marker: float | None, label: str, scale: float = 150.0) -> str:
    """A bar from 0 to `scale` percent with a line at 100% (the limit) and a dotted one at `marker` (projected)."""
    filled = min(max(percent, 0.0), scale) * 100 / scale
    limit = 100 * 100 / scale
    projected = "" if marker is None else f'<b style="left:{min(max(marker, 0.0), scale) * 100 / scale:.1f}%"></b>'
    return (
        f'<div class="gauge" title="{esc(label)}"><span class="s{colour}" style="width:{filled:.1f}%"></span>'
        f'<i style="left:{limit:.1f}%"></i>{projected}</div>'
    )


def sparkline(values: Sequence[float], labels: Sequence[str], width: float, height: float, colour: int) -> str:
    """Tiny columns, one per value, scaled to the largest; each column's <title> (its label) says its value."""
    if not values:
        return ""
    top = max(values) or 1.0
    step = width / len(values)
    gap = 1.0 if step >= 3 else 0.0
    parts = [f'<svg width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" role="img">']
    parts.append(f'<line class="grid" x1="0" x2="{width:.0f}" y1="{height - 0.5:.1f}" y2="{height - 0.5:.1f}"/>')
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        h = max((height - 1) * value / top, 1.0 if value > 0 else 0.0)
        parts.append(
            f'<rect class="s{colour}" x="{step * i + gap / 2:.1f}" y="{height - 1 - h:.1f}" '
            f'width="{max(step - gap, 0.5):.1f}" height="{h:.1f}"><title>{esc(label)}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)


# Tables ------------------------------------------------------------------------------------------------------


@dataclass
class Column:
    """A table column: its header, its width in pixels (None: what is left) and its alignment."""

    header: str
    px: float | None
    left: bool = False
    cells: list[str] = field(default_factory=list)
    """Cell markup, already escaped."""


def table(columns: Sequence[Column], width: float) -> str:
    """A fixed-layout table as wide as the box: the columns without a width share what the others leave, so
    nothing scrolls sideways; cells cut long text with an ellipsis (the full text is in their title)."""
    fixed = sum(c.px for c in columns if c.px is not None)
    flexible = [c for c in columns if c.px is None]
    rest = max(width - fixed, 40.0 * len(flexible)) / max(len(flexible), 1)
    widths = [c.px if c.px is not None else rest for c in columns]
    cols = "".join(f'<col style="width:{w:.0f}px">' for w in widths)
    head = "".join(f'<th class="{"l" if c.left else ""}">{esc(c.header)}</th>' for c in columns)
    rows = len(columns[0].cells) if columns else 0
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if c.left else ""}">{c.cells[r]}</td>' for c in columns) + "</tr>"
        for r in range(rows)
    )
    return (
        f'<table class="t" style="width:{sum(widths):.0f}px"><colgroup>{cols}</colgroup>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )
