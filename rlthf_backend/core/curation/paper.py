"""The RLTHF paper's round (arXiv 2502.13417, section 3), implemented as described.

One round, for the pairs without a human label ("candidates"):

1. Fit one RM on the current labels: human labels weighted alpha_r (amplification), pairs the
   previous round held out of training weighted 0, everything else (LLM labels, earlier flips)
   weighted 1. The RM then scores the same pairs it trained on, as in the paper.
2. delta_i = margin in favour of the current label; sort candidates by delta, descending.
3. Find elbow, knee and reflection point (:mod:`rlthf_backend.core.curation.points`).
4. Regions by rank, left to right:
   - ``keep``: ranks below ``knee - beta_r * (knee - elbow)`` (top down to the knee, backed off
     by beta toward the elbow), cut where the human batch starts;
   - ``hold``: the rest of the middle: left out of the next RM's training, re-scored next round;
   - ``human``: the batch, starting at the reflection point and moving left (the pair just left
     of the reflection point is asked first);
   - ``flip``: ranks at or beyond the reflection point: the current label is flipped.
5. The schedules index by round and repeat their last value: alpha 4, 4, 4, 2, 1, 1...;
   beta 60%, 60%, 60%, 40%, 20%, 10%, 10%...

A final round with a human batch of 0 gives the export (holds exported with their current label,
as the paper exports the whole curated corpus).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rlthf_backend.core.curation.plan import RoundPlan, assign_human_batch, empty_plan
from rlthf_backend.core.curation.points import CurvePoints, PointsConfig, find_curve_points
from rlthf_backend.core.curation.scoring import RewardModelFactory, in_sample_margins
from rlthf_backend.core.curation.state import HUMAN_TIE, CurationState


@dataclass(frozen=True)
class PaperConfig:
    """Knobs of the paper's strategy (defaults: the paper's values; its batch is the round
    policy's, 4% of the shard per round in the paper)."""

    alpha_schedule: tuple[float, ...] = field(default=(4, 4, 4, 2, 1), metadata={"help": (
        "Weight of every human label in reward-model training, by round; the last value repeats.")})
    beta_schedule: tuple[float, ...] = field(default=(0.6, 0.6, 0.6, 0.4, 0.2, 0.1), metadata={"help": (
        "Back-off of the keep region from the knee toward the elbow, by round; the last value repeats.")})
    flip_beyond_reflection: bool = field(default=True, metadata={"help": (
        "Flip the current label of pairs at or beyond the reflection point (no person asked).")})
    points: PointsConfig = field(default_factory=PointsConfig, metadata={"help": (
        "How the curve points are found (core/curation/points.py).")})


def check_schedule(schedule: Sequence[float]) -> tuple[float, ...]:
    """``schedule`` as a by-round schedule, or a ValueError: it needs at least one value, and every
    value finite and >= 0."""
    values = tuple(schedule)
    if not values:
        raise ValueError("needs at least one value (the last one repeats)")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"every value must be a finite number >= 0, got {value!r}")
    return tuple(float(v) for v in values)


def schedule_value(schedule: tuple[float, ...], round_index: int) -> float:
    """The schedule's value at ``round_index`` (0-based); the last value repeats."""
    return float(schedule[min(round_index, len(schedule) - 1)])


def descending_order(values: np.ndarray, seed: int) -> np.ndarray:
    """Indices sorting ``values`` in descending order; equal values in a seeded random order
    (so an all-equal curve does not silently favour the first pairs of the file)."""
    values = np.asarray(values, dtype=float)
    shuffle = np.random.default_rng(seed).permutation(len(values))
    return shuffle[np.argsort(-values[shuffle], kind="stable")]


def paper_training_weights(state: CurationState, alpha: float) -> np.ndarray:
    """RM training weights for a paper round: alpha for human labels, 0 for held-out pairs and
    human ties, 1 otherwise."""
    w = np.where(state.rm_excluded, 0.0, 1.0)
    w[state.human_decisive] = alpha
    w[state.human == HUMAN_TIE] = 0.0
    return w


def paper_round_weights(state: CurationState, config: PaperConfig) -> np.ndarray:
    """The training weights of the round ``state`` is at (alpha from the schedule)."""
    return paper_training_weights(state, schedule_value(config.alpha_schedule, state.round_index))


@dataclass(frozen=True)
class _PaperRegions:
    """Step 4's regions, as pair indices: ``keep``, ``hold``, the human ``batch`` (in asking
    order) and ``beyond`` (at or beyond the reflection point); ``batch_size``, and the ranks
    where the batch starts (``batch_start``) and the keep region ends (``keep_end``)."""

    keep: np.ndarray
    hold: np.ndarray
    batch: np.ndarray
    beyond: np.ndarray
    batch_size: int
    batch_start: int
    keep_end: int


def _split_regions(order: np.ndarray, pts: CurvePoints, human_batch_size: int, beta: float) -> _PaperRegions:
    """Step 4: cut the candidates ranked by ``order`` (delta descending) at the curve points
    ``pts``: keep up to the knee backed off by ``beta`` toward the elbow, the batch of at most
    ``human_batch_size`` just left of the reflection point, hold in between, beyond after it."""
    b = max(0, min(int(human_batch_size), pts.reflection))
    batch_start = pts.reflection - b
    keep_end = int(round(pts.knee - beta * (pts.knee - pts.elbow)))
    keep_end = min(keep_end, batch_start)
    ranks = np.arange(len(order))
    return _PaperRegions(
        keep=order[ranks < keep_end],
        hold=order[(ranks >= keep_end) & (ranks < batch_start)],
        batch=order[batch_start : pts.reflection][::-1],  # moving left from the reflection point
        beyond=order[pts.reflection :],
        batch_size=b,
        batch_start=batch_start,
        keep_end=keep_end,
    )


def _apply_paper_regions(plan: RoundPlan, state: CurationState, regions: _PaperRegions, cfg: PaperConfig) -> None:
    """Step 4 on the plan: statuses, the human batch, flips beyond the reflection point (if
    ``flip_beyond_reflection``), the exported labels, and the next round's RM weights (holds and
    human ties at 0, human labels at the next round's alpha)."""
    plan.status[regions.keep] = "keep"
    plan.status[regions.hold] = "hold"
    assign_human_batch(plan, regions.batch)
    flipped = state.flipped.copy()
    beyond = regions.beyond
    if cfg.flip_beyond_reflection and len(beyond):
        plan.status[beyond] = "flip"
        flipped[beyond] = ~flipped[beyond]
    else:
        plan.status[beyond] = "keep"
    plan.flipped = flipped & ~state.human_decisive
    plan.label_a_preferred = np.where(state.human_decisive, state.working_a_preferred,
                                      state.evidence.llm_a_preferred ^ plan.flipped)
    # "flip" in the export means: differs from the LLM label without a person.
    plan.rm_excluded = np.zeros(len(state), bool)
    plan.rm_excluded[regions.hold] = True
    plan.rm_excluded |= state.human == HUMAN_TIE
    plan.train_weight = np.where(plan.rm_excluded, 0.0, 1.0)
    plan.train_weight[state.human_decisive] = schedule_value(cfg.alpha_schedule, state.round_index + 1)


def plan_paper_round(
    state: CurationState,
    rm_factory: RewardModelFactory,
    config: PaperConfig | None = None,
    human_batch_size: int = 0,
    seed: int = 0,
) -> RoundPlan:
    """One RLTHF round as in the paper (see the module docstring). ``human_batch_size`` 0 gives
    an export-only round."""
    cfg = config or PaperConfig()
    r = state.round_index
    alpha = schedule_value(cfg.alpha_schedule, r)
    beta = schedule_value(cfg.beta_schedule, r)
    weights = paper_round_weights(state, cfg)
    labels = state.working_a_preferred
    margins = in_sample_margins(rm_factory, state.pairs, labels, weights)
    delta = np.where(labels, margins, -margins)

    plan = empty_plan("paper", state)
    plan.scores["margin"] = margins
    plan.scores["delta"] = delta
    plan.note("fit", {"round": r, "alpha": alpha, "n_trained": int(np.sum(weights > 0)),
                      "n_human": int(state.human_decisive.sum()), "n_excluded": int(np.sum(weights == 0))}, {})

    cand = np.flatnonzero(~state.labelled)
    if len(cand) == 0:
        plan.stop, plan.stop_reason = True, "every pair has a human label"
        plan.train_weight = paper_training_weights(state, schedule_value(cfg.alpha_schedule, r + 1))
        return plan
    order = cand[descending_order(delta[cand], seed=seed * 1_000_003 + r)]
    pts = find_curve_points(delta[order], cfg.points)
    n_c = len(order)
    regions = _split_regions(order, pts, human_batch_size, beta)
    _apply_paper_regions(plan, state, regions, cfg)

    plan.summary = {"points": pts.as_dict(), "alpha": alpha, "beta": beta, "keep_end": regions.keep_end,
                    "batch_start": regions.batch_start, "n_candidates": n_c}
    plan.note("curve points", {"n_candidates": n_c, "config": vars(cfg.points)}, pts.as_dict())
    plan.note("regions", {"beta": beta, "batch_size": regions.batch_size, "keep_end": regions.keep_end,
                          "reflection": pts.reflection},
              {"keep": len(regions.keep), "hold": len(regions.hold), "human": len(regions.batch),
               "flip": len(regions.beyond) if cfg.flip_beyond_reflection else 0})
    if regions.batch_size > 0 and len(regions.batch) == 0:
        plan.stop, plan.stop_reason = True, "no pairs left of the reflection point to ask"
    return plan
