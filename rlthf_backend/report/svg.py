"""A few SVG primitives for the report's charts: strings in, strings out, every text escaped.

Hand-written SVG instead of matplotlib: the page stays small, sharp at any zoom, searchable,
and each mark can carry a hover title without any script.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Linear:
    """Maps [lo, hi] in data units onto [start, end] in pixels (either may be reversed)."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, v: float) -> float:
        span = self.hi - self.lo
        t = 0.5 if span == 0 else (v - self.lo) / span
        return self.start + t * (self.end - self.start)


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.0f}"


def document(width: int, height: int, body: Sequence[str], label: str, element_id: str) -> str:
    """An ``<svg>`` element that scales with its container, described for screen readers."""
    return (
        f'<svg id="{escape(element_id)}" class="chart" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>" + "".join(body) + "</svg>"
    )


def rect(x: float, y: float, w: float, h: float, fill: str, title: str | None = None, opacity: float = 1.0,
         cls: str | None = None) -> str:
    attrs = f'x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0))}" height="{_num(max(h, 0))}" fill="{fill}"'
    if opacity != 1.0:
        attrs += f' fill-opacity="{opacity}"'
    if cls:
        attrs += f' class="{escape(cls)}"'
    if title:
        return f"<rect {attrs}><title>{escape(title)}</title></rect>"
    return f"<rect {attrs}/>"


def line(x1: float, y1: float, x2: float, y2: float, stroke: str, width: float = 1.0, dash: str | None = None,
         cls: str | None = None) -> str:
    extra = (f' stroke-dasharray="{dash}"' if dash else "") + (f' class="{escape(cls)}"' if cls else "")
    return (f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" '
            f'stroke="{stroke}" stroke-width="{width}"{extra}/>')


def polyline(points: Sequence[tuple[float, float]], stroke: str, width: float = 2.0, cls: str | None = None) -> str:
    coords = " ".join(f"{_num(x)},{_num(y)}" for x, y in points)
    extra = f' class="{escape(cls)}"' if cls else ""
    return f'<polyline points="{coords}" fill="none" stroke="{stroke}" stroke-width="{width}"{extra}/>'


def circle(x: float, y: float, r: float, fill: str, title: str | None = None, cls: str | None = None) -> str:
    attrs = f'cx="{_num(x)}" cy="{_num(y)}" r="{r}" fill="{fill}"' + (f' class="{escape(cls)}"' if cls else "")
    return f"<circle {attrs}><title>{escape(title)}</title></circle>" if title else f"<circle {attrs}/>"


def text(x: float, y: float, content: str, size: int = 12, anchor: str = "start", fill: str = "#333",
         weight: str = "normal", rotate: float | None = None) -> str:
    transform = f' transform="rotate({rotate} {_num(x)} {_num(y)})"' if rotate is not None else ""
    return (f'<text x="{_num(x)}" y="{_num(y)}" font-size="{size}" text-anchor="{anchor}" fill="{fill}" '
            f'font-weight="{weight}"{transform}>{escape(content)}</text>')


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if hi <= lo:
        return [lo]
    import math

    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    v = first
    while v <= hi + 1e-9 * step:
        ticks.append(round(v, 10))
        v += step
    return ticks
