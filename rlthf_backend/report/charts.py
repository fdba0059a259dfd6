"""The report's pictures, as inline SVG: the margin curve and the per-round charts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlthf_backend.report import svg
from rlthf_backend.report.data import MarginCurve, RoundRow

#: Colour of each engine status (dots on the curve, segments of the round bars).
STATUS_COLOURS = {
    "labelled": "#1f63b4",
    "human": "#8e44ad",
    "keep": "#4c9a4c",
    "hold": "#c9a227",
    "flip": "#d9480f",
    "drop": "#7a7a7a",
}
STATUS_MEANING = {
    "labelled": "a person labelled it",
    "human": "queued for people",
    "keep": "LLM label kept",
    "hold": "held (not trained on)",
    "flip": "LLM label flipped",
    "drop": "dropped from the export",
}
#: Regions of the curve between its strategic points: (name, fill, meaning).
REGIONS = (
    ("head", "#e4f3e1", "confident head: the RM agrees strongly with the label"),
    ("middle", "#fbf3d5", "flat middle: the RM has no strong opinion"),
    ("tail", "#fde3cc", "steep tail: the RM disagrees, the label is likely wrong"),
    ("beyond", "#f7d0d0", "beyond the reflection point: strongest disagreement"),
)
_MAX_LINE_POINTS = 1500  # the curve line is subsampled beyond this many pairs (dots are not)


def region_bounds(curve: MarginCurve) -> list[tuple[str, int, int]]:
    """(region name, first rank, end rank) of the non-empty regions, left to right."""
    p = curve.points
    edges = (0, p.elbow, p.knee, p.reflection, p.n)
    return [(name, lo, hi) for (name, _, _), lo, hi in zip(REGIONS, edges, edges[1:]) if hi > lo]


def margin_curve_svg(curve: MarginCurve, width: int = 960, height: int = 380) -> str:
    """Sorted margins as a line over coloured regions, the points as vertical rules, and every
    pair the engine did not simply keep as a dot coloured by its status (hover: task id)."""
    left, right, top, bottom = 58, 18, 50, 46
    n = len(curve.margins)
    m = curve.margins
    lo, hi = (float(m.min()), float(m.max())) if n else (-1.0, 1.0)
    pad = 0.06 * (hi - lo or 1.0)
    x = svg.Linear(0, max(n - 1, 1), left, width - right)
    y = svg.Linear(lo - pad, hi + pad, height - bottom, top)
    body: list[str] = []
    fills = {name: fill for name, fill, _ in REGIONS}
    meaning = {name: text for name, _, text in REGIONS}
    step = (x(1) - x(0)) if n > 1 else 0
    for name, a, b in region_bounds(curve):
        body.append(svg.rect(x(a) - step / 2, top, x(b - 1) - x(a) + step, height - top - bottom, fills[name],
                             title=f"{meaning[name]} (ranks {a}-{b - 1}, {b - a} pairs)", cls=f"region region-{name}"))
    for t in svg.nice_ticks(lo - pad, hi + pad, 8):
        body.append(svg.line(left, y(t), width - right, y(t), "#ddd", 0.6))
        body.append(svg.text(left - 6, y(t) + 4, f"{t:g}", 11, "end", "#555"))
    if lo - pad < 0 < hi + pad:
        body.append(svg.line(left, y(0), width - right, y(0), "#555", 1, dash="4 3"))
    idx = np.arange(n) if n <= _MAX_LINE_POINTS else np.unique(np.linspace(0, n - 1, _MAX_LINE_POINTS).astype(int))
    body.append(svg.polyline([(x(i), y(m[i])) for i in idx], "#1b2a41", 2, cls="margin-line"))
    for rank, (task_id, status) in enumerate(zip(curve.task_ids, curve.statuses)):
        if status in ("keep", "hold"):
            continue  # the line already shows them; dots mark what people or the engine changed
        colour = STATUS_COLOURS.get(status, "#000")
        title = f"task {task_id}: {STATUS_MEANING.get(status, status)}, margin {m[rank]:.3f}, rank {rank}"
        body.append(svg.circle(x(rank), y(m[rank]), 3.2, colour, cls=f"dot dot-{status}", title=title))
    p = curve.points
    last_label_x, row = -1e9, 0
    for name, rank in (("elbow", p.elbow), ("knee", p.knee), ("reflection", p.reflection)):
        if 0 < rank < n or (name == "elbow" and n):
            xr = x(min(rank, n - 1))
            row = row + 1 if xr - last_label_x < 90 else 0  # stagger labels of close points
            last_label_x = xr
            body.append(svg.line(xr, top - 4 - 13 * row, xr, height - bottom, "#333", 1.2, dash="2 2",
                                 cls=f"point point-{name}"))
            near_end = xr > width - right - 110
            body.append(svg.text(xr + (-3 if near_end else 3), top - 8 - 13 * row, f"{name} ({rank})", 11,
                                 "end" if near_end else "start", "#222", "bold"))
    body.append(svg.line(left, height - bottom, width - right, height - bottom, "#333", 1))
    body.append(svg.line(left, top, left, height - bottom, "#333", 1))
    for t in svg.nice_ticks(0, max(n - 1, 1), 8):
        body.append(svg.text(x(t), height - bottom + 16, f"{int(t)}", 11, "middle", "#555"))
    body.append(svg.text((left + width - right) / 2, height - 8,
                         "rank: pairs sorted by reward margin, most confident first", 12, "middle"))
    body.append(svg.text(14, (top + height - bottom) / 2, "r(chosen) - r(rejected)", 12, "middle", rotate=-90))
    label = (f"Sorted reward margins of {n} pairs ({curve.version}): elbow at rank {p.elbow}, "
             f"knee at {p.knee}, reflection at {p.reflection}")
    return svg.document(width, height, body, label, "margin-curve")


def round_status_svg(rounds: Sequence[RoundRow], width: int = 960) -> str:
    """One stacked bar per round: how the pool was split between people and the engine's decisions."""
    bar, gap, left, right, top = 22, 10, 84, 18, 10
    height = top + len(rounds) * (bar + gap) + 4
    body: list[str] = []
    for i, r in enumerate(rounds):
        y0 = top + i * (bar + gap)
        total = max(sum(r.counts.values()), 1)
        x = float(left)
        body.append(svg.text(left - 8, y0 + bar * 0.7, f"round {r.index}", 12, "end"))
        for status, colour in STATUS_COLOURS.items():
            k = r.counts.get(status, 0)
            if not k:
                continue
            w = (width - left - right) * k / total
            body.append(svg.rect(x, y0, w, bar, colour, title=f"round {r.index}: {k} {STATUS_MEANING[status]}",
                                 cls=f"seg seg-{status}"))
            if w > 34:
                body.append(svg.text(x + w / 2, y0 + bar * 0.7, str(k), 11, "middle", "#fff", "bold"))
            x += w
    return svg.document(width, height, body, "Decisions per round, as shares of the pool", "round-status")


#: The smallest top of a small chart's axis: 1 (a count) or 1% (a share). An empty, all-zero or
#: tiny series keeps a readable axis instead of ticks like 2e-08%.
MIN_AXIS_TOP = 1.0


def axis_top(known: Sequence[float], percent: bool) -> float:
    """The top of a bar chart's value axis: 10% above the largest value (shares in percent), at
    least :data:`MIN_AXIS_TOP`."""
    largest = max((v * 100 if percent else v for v in known), default=0.0)
    return max(largest * 1.1, MIN_AXIS_TOP)


def tick_label(t: float, percent: bool) -> str:
    """A tick value as people write it: no exponent, no trailing zeros, a % sign for shares."""
    text = f"{t:.2f}".rstrip("0").rstrip(".")
    return ("0" if text in ("-0", "") else text) + ("%" if percent else "")


def paired_bars_svg(values: Sequence[tuple[str, float | None, float | None]], title: str, element_id: str,
                    names: tuple[str, str], colours: tuple[str, str] = ("#c0392b", "#8c8c8c"),
                    width: int = 300, height: int = 180) -> str:
    """Two shares per round side by side (e.g. targeted vs random), 0-100%; unknown: a grey stub."""
    left, right, top, bottom = 38, 8, 40, 28
    y = svg.Linear(0, 100, height - bottom, top)
    slot = (width - left - right) / max(len(values), 1)
    body = [svg.text(width / 2, 15, title, 12, "middle", "#222", "bold")]
    for k, (name, colour) in enumerate(zip(names, colours)):
        x = left + k * (width - left - right) / 2
        body.append(svg.rect(x, 22, 10, 10, colour))
        body.append(svg.text(x + 14, 31, name, 10, "start", "#444"))
    for t in svg.nice_ticks(0, 100, 4):
        body.append(svg.line(left, y(t), width - right, y(t), "#e3e3e3", 0.6))
        body.append(svg.text(left - 4, y(t) + 4, tick_label(t, True), 10, "end", "#666"))
    for i, (label, first, second) in enumerate(values):
        w = slot * 0.35
        for k, (v, colour) in enumerate(zip((first, second), colours)):
            x0 = left + i * slot + slot * 0.12 + k * (w + slot * 0.06)
            if v is None:
                body.append(svg.rect(x0, y(0) - 3, w, 3, "#bbb", title=f"{label} {names[k]}: no answers yet"))
            else:
                body.append(svg.rect(x0, y(100 * v), w, y(0) - y(100 * v), colour,
                                     title=f"{label} {names[k]}: {100 * v:.0f}%", cls="bar"))
        body.append(svg.text(left + i * slot + slot / 2, height - bottom + 14, label, 10, "middle", "#555"))
    body.append(svg.line(left, y(0), width - right, y(0), "#333", 1))
    return svg.document(width, height, body, title, element_id)


def metric_bars_svg(values: Sequence[tuple[str, float | None]], title: str, element_id: str, percent: bool = False,
                    width: int = 300, height: int = 180, colour: str = "#3d6fb6") -> str:
    """A small bar chart of one number per round; unknown values are drawn as a hatched stub."""
    left, right, top, bottom = 38, 8, 26, 28
    hi = axis_top([v for _, v in values if v is not None], percent)
    y = svg.Linear(0, hi, height - bottom, top)
    slot = (width - left - right) / max(len(values), 1)
    body = [svg.text(width / 2, 15, title, 12, "middle", "#222", "bold")]
    for t in svg.nice_ticks(0, hi, 4):
        body.append(svg.line(left, y(t), width - right, y(t), "#e3e3e3", 0.6))
        body.append(svg.text(left - 4, y(t) + 4, tick_label(t, percent), 10, "end", "#666"))
    for i, (label, v) in enumerate(values):
        x0 = left + i * slot + slot * 0.15
        w = slot * 0.7
        if v is None:
            body.append(svg.rect(x0, y(0) - 3, w, 3, "#bbb", title=f"{label}: not known yet"))
        else:
            shown = v * 100 if percent else v
            body.append(svg.rect(x0, y(shown), w, y(0) - y(shown), colour,
                                 title=f"{label}: {shown:.1f}{'%' if percent else ''}", cls="bar"))
        body.append(svg.text(x0 + w / 2, height - bottom + 14, label, 10, "middle", "#555"))
    body.append(svg.line(left, y(0), width - right, y(0), "#333", 1))
    return svg.document(width, height, body, title, element_id)
