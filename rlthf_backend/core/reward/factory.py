"""Factories of fresh reward models for callers that fit many (curation rounds, simulations)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlthf_backend.core.reward.base import RewardModel
from rlthf_backend.core.types import Pair

RewardModelFactory = Callable[[], RewardModel]


@dataclass(frozen=True)
class RewardModelSpec:
    """Which reward model a deployment fits: its kind (``embedding`` or ``trl``) and the fields of
    that kind's config (``EmbeddingRewardConfig`` / ``TrlRewardConfig``) that differ from their
    defaults. ``Settings.reward_model_spec()`` builds it."""

    kind: str = "embedding"
    options: dict[str, Any] = field(default_factory=dict)


def reward_model_factory(
    kind: str, overrides: dict[str, Any], shared: dict[str, Any] | None = None
) -> RewardModelFactory:
    """A factory of fresh, unfitted reward models of ``kind``.

    Embedding models made by one factory share one encoder, and so its in-memory and disk caches:
    only the first fit of a process pays for loading the encoder. Pass the same ``shared`` dict
    to several factories to share it between them too.
    """
    from rlthf_backend.core.reward import make_reward_model

    shared = {} if shared is None else shared

    def factory() -> RewardModel:
        if kind == "embedding":
            from rlthf_backend.core.reward.embedding import EmbeddingRewardConfig, EmbeddingRewardModel

            # the config's `encoder` field is the encoder's name; the `encoder` argument shares a loaded one
            rm = EmbeddingRewardModel(EmbeddingRewardConfig.from_dict(overrides), encoder=shared.get("encoder"))
            shared.setdefault("encoder", rm.encoder)
            return rm
        return make_reward_model(kind, **overrides)

    return factory


def with_fixed_weight_decay(
    kind: str,
    options: dict[str, Any],
    pairs: Sequence[Pair],
    a_preferred: np.ndarray,
    weights: np.ndarray | None = None,
    shared: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``options`` with the embedding RM's L2 coefficient chosen once and then held fixed.

    The embedding RM can choose its coefficient by cross-validation on every fit, which costs
    ~30x a plain fit; a round fits one RM per cross-fitting fold. One tuned fit on the given
    labels chooses it for all of them. Other kinds, or options that switch tuning off, pass
    through unchanged.
    """
    if kind != "embedding" or not options.get("tune_weight_decay", True) or len(pairs) < 2:
        return dict(options)
    probe = reward_model_factory(kind, {**options, "n_ensemble": 1}, shared=shared)()
    report = probe.fit(pairs, np.asarray(a_preferred, bool), weights)
    chosen = report.details.get("weight_decay")
    if chosen is None:
        return dict(options)
    return {**options, "tune_weight_decay": False, "weight_decay": float(chosen)}


@dataclass(frozen=True)
class FitBudget:
    """The most pairs one reward-model fit of a round trains on.

    A fit over more positive-weight pairs than ``max_pairs`` keeps every pair of ``keep`` (the
    human-labelled ones) and a uniform random sample of the rest, whose weights are scaled by the
    inverse of the sampling rate so that the weighted loss keeps its expectation. This bounds a
    round's fitting time on a large pool (a frozen-encoder head gains little from the 80,001st
    LLM-labelled pair); a pool within the budget trains on everything, unchanged. ``max_pairs`` 0
    means no limit. ``keep`` is aligned with the pool.
    """

    max_pairs: int
    keep: np.ndarray
    seed: int = 0

    def apply(self, weights: np.ndarray) -> np.ndarray:
        """``weights`` (pool-aligned) within the budget."""
        w = np.asarray(weights, dtype=float)
        positive = w > 0
        if self.max_pairs <= 0 or int(positive.sum()) <= self.max_pairs:
            return w
        kept = positive & np.asarray(self.keep, dtype=bool)
        rest = np.flatnonzero(positive & ~kept)
        room = max(0, self.max_pairs - int(kept.sum()))
        out = np.where(kept, w, 0.0)
        if room > 0:
            chosen = np.random.default_rng(self.seed).choice(rest, size=room, replace=False)
            out[chosen] = w[chosen] * (len(rest) / room)
        return out


class RoundFactory:
    """Reward models of ``spec`` for one curation round, and the round's :class:`FitBudget`.

    The embedding RM's L2 coefficient is chosen once on the round's labels (positive ``weights``,
    within the budget) and held for every fit of the round. The choice is made on the first call,
    so a round that fits nothing pays nothing.
    """

    def __init__(self, spec: RewardModelSpec, pairs: Sequence[Pair], a_preferred: np.ndarray,
                 weights: np.ndarray, shared: dict[str, Any] | None = None, budget: FitBudget | None = None):
        self.spec, self.pairs, self.budget = spec, pairs, budget
        self.a_preferred = np.asarray(a_preferred, bool)
        self.weights = self.within_budget(weights)
        self.shared = {} if shared is None else shared
        self._factory: RewardModelFactory | None = None

    def within_budget(self, weights: np.ndarray) -> np.ndarray:
        """``weights`` (pool-aligned) as a fit of this round uses them."""
        return self.budget.apply(weights) if self.budget is not None else np.asarray(weights, float)

    def __call__(self) -> RewardModel:
        if self._factory is None:
            train = np.flatnonzero(self.weights > 0)
            options = with_fixed_weight_decay(self.spec.kind, self.spec.options, [self.pairs[i] for i in train],
                                              self.a_preferred[train], self.weights[train], shared=self.shared)
            self._factory = reward_model_factory(self.spec.kind, options, shared=self.shared)
        return self._factory()


def round_factory(
    spec: RewardModelSpec,
    pairs: Sequence[Pair],
    a_preferred: np.ndarray,
    weights: np.ndarray,
    shared: dict[str, Any] | None = None,
    budget: FitBudget | None = None,
) -> RoundFactory:
    """A :class:`RoundFactory` (see there)."""
    return RoundFactory(spec, pairs, a_preferred, weights, shared=shared, budget=budget)
