"""Strategic points on the sorted reward-margin curve (RLTHF section 3.3).

The curve: margins delta_i = r(x, current chosen) - r(x, current rejected), sorted in descending
order and indexed by rank 0..n-1. A typical curve has a steep positive head (the RM strongly agrees
with the label), a flat middle, and a steep negative tail (the RM strongly disagrees).

How each point is found (the paper only says "first-order derivative"):

1. The curve is smoothed with a centred moving average of width ``smooth_fraction * n`` (odd,
   at least 1; the ends padded by point reflection so linear ends stay linear) so that single outliers do not
   create corners.
2. The *split* is the rank where the smoothed curve is flattest (smallest absolute first
   difference, averaged over the same window); it separates the convex head from the concave tail.
3. The *elbow* is Kneedle (Satopaa et al. 2011, the ``kneed`` package, sensitivity ``S``) on the
   head ``[0, split]`` as a convex decreasing curve: where the steep head turns flat.
4. The *knee* is Kneedle on the tail ``[split, n-1]`` as a concave decreasing curve: where the
   flat middle turns into the steep negative tail.
5. The *reflection point* is the first rank at or right of the knee whose (raw) margin is
   ``<= -margin[elbow]``: the tail mirrored at zero. It is ``n`` (no pair beyond it) when no
   margin gets that low.

Degenerate curves, each recorded in :attr:`CurvePoints.notes`:

- fewer than ``min_pairs`` pairs, or all margins equal (range below ``flat_tolerance``): no
  structure to find; elbow 0, knee n, reflection n (nothing trusted by shape, nothing flipped).
- Kneedle finds no elbow: elbow 0. No knee: knee n (no steep negative tail).
- knee left of the elbow: both are set to the split (the middle region is empty).
- margin at the elbow <= 0 (no positive head): reflection n, since mirroring a non-positive
  value gives no threshold in the negative tail.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class PointsConfig:
    """Knobs of :func:`find_curve_points`."""

    #: Moving-average width as a fraction of the curve length (0 disables smoothing).
    smooth_fraction: float = 0.05
    #: Kneedle sensitivity S: larger waits for a more pronounced corner.
    sensitivity: float = 1.0
    #: Curves shorter than this are treated as having no structure.
    min_pairs: int = 8
    #: Curves whose max - min margin is below this are treated as flat.
    flat_tolerance: float = 1e-9


@dataclass(frozen=True)
class CurvePoints:
    """Ranks (0-based, into the descending curve) of the strategic points.

    ``elbow <= knee <= reflection <= n`` always holds. ``reflection == n`` means nothing lies
    beyond it. ``elbow_margin`` is the raw margin at the elbow (NaN for an empty curve) and
    ``reflection_threshold`` the mirrored value -elbow_margin used for the reflection point.
    """

    n: int
    elbow: int
    knee: int
    reflection: int
    split: int
    elbow_margin: float
    reflection_threshold: float
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "elbow": self.elbow,
            "knee": self.knee,
            "reflection": self.reflection,
            "split": self.split,
            "elbow_margin": self.elbow_margin,
            "reflection_threshold": self.reflection_threshold,
            "notes": list(self.notes),
        }


def moving_average(values: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average (same length as the input).

    The ends are padded by point reflection (2*y[0] - y[k], 2*y[-1] - y[-1-k]), which keeps a
    linear trend linear: a shrinking or edge-repeating window would flatten the steep ends of a
    margin curve and create false corners there.
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    half = min(width // 2, n - 1)
    if half < 1:
        return values.copy()
    head = 2 * values[0] - values[1 : half + 1][::-1]
    tail = 2 * values[-1] - values[-half - 1 : -1][::-1]
    padded = np.concatenate([head, values, tail])
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    return np.convolve(padded, kernel, mode="valid")


def _kneedle(y: np.ndarray, curve: str) -> int | None:
    """Kneedle on a decreasing curve ``y`` over x = 0..len-1; the corner's index, or None."""
    if len(y) < 3 or np.ptp(y) <= 0:
        return None
    from kneed import KneeLocator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kneed warns "no knee found"; None says the same
        locator = KneeLocator(np.arange(len(y), dtype=float), y, S=_kneedle.sensitivity, curve=curve,
                              direction="decreasing")
    if locator.knee is None:
        return None
    return int(round(float(locator.knee)))


_kneedle.sensitivity = 1.0  # set per call by find_curve_points (kneed takes S per locator)


def find_curve_points(margins: np.ndarray, config: PointsConfig | None = None) -> CurvePoints:
    """Elbow, knee and reflection point of the margin curve (see the module docstring).

    ``margins`` may be in any order; they are sorted in descending order here. Returns ranks
    into that sorted order.
    """
    cfg = config or PointsConfig()
    curve = np.sort(np.asarray(margins, dtype=float))[::-1]
    n = len(curve)
    notes: list[str] = []
    if n == 0:
        return CurvePoints(0, 0, 0, 0, 0, float("nan"), float("nan"), ("empty curve",))
    if n < cfg.min_pairs or np.ptp(curve) < cfg.flat_tolerance:
        notes.append("too few pairs" if n < cfg.min_pairs else "all margins equal")
        return CurvePoints(n, 0, n, n, 0, float(curve[0]), float("nan"), tuple(notes))

    width = max(1, int(round(cfg.smooth_fraction * n)))
    if width % 2 == 0:
        width += 1
    smooth = moving_average(curve, width)
    slope = moving_average(np.abs(np.diff(smooth)), width)
    split = int(np.argmin(slope))
    split = min(max(split, 1), n - 2)

    _kneedle.sensitivity = cfg.sensitivity
    elbow = _kneedle(smooth[: split + 1], "convex")
    if elbow is None:
        notes.append("no elbow found: elbow set to 0")
        elbow = 0
    knee_local = _kneedle(smooth[split:], "concave")
    if knee_local is None:
        notes.append("no knee found: knee set to n (no steep negative tail)")
        knee = n
    else:
        knee = split + knee_local
    if knee < elbow:
        notes.append(f"knee {knee} left of elbow {elbow}: both set to the split {split}")
        elbow = knee = split

    elbow_margin = float(curve[min(elbow, n - 1)])
    if elbow_margin <= 0:
        notes.append("margin at the elbow <= 0: no reflection point")
        return CurvePoints(n, elbow, knee, n, split, elbow_margin, float("nan"), tuple(notes))
    threshold = -elbow_margin
    beyond = np.flatnonzero(curve[knee:] <= threshold) if knee < n else np.array([], int)
    if len(beyond) == 0:
        notes.append("no margin reaches -margin[elbow]: nothing beyond the reflection point")
        reflection = n
    else:
        reflection = knee + int(beyond[0])
    return CurvePoints(n, elbow, knee, reflection, split, elbow_margin, threshold, tuple(notes))
