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


def round_factory(
    spec: RewardModelSpec,
    pairs: Sequence[Pair],
    a_preferred: np.ndarray,
    weights: np.ndarray,
    shared: dict[str, Any] | None = None,
) -> RewardModelFactory:
    """Reward models of ``spec`` for one curation round: the embedding RM's L2 coefficient is
    chosen once on the round's labels (positive ``weights``) and held for every fit of the round.
    The choice is made on the first call, so a round that fits nothing pays nothing."""
    shared = {} if shared is None else shared
    made: list[RewardModelFactory] = []

    def factory() -> RewardModel:
        if not made:
            train = np.flatnonzero(np.asarray(weights) > 0)
            options = with_fixed_weight_decay(spec.kind, spec.options, [pairs[i] for i in train],
                                              np.asarray(a_preferred, bool)[train],
                                              np.asarray(weights, float)[train], shared=shared)
            made.append(reward_model_factory(spec.kind, options, shared=shared))
        return made[0]()

    return factory
