"""Factories of fresh reward models for callers that fit many (curation rounds, simulations)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rlthf_backend.core.reward.base import RewardModel
from rlthf_backend.core.types import Pair

RewardModelFactory = Callable[[], RewardModel]


def reward_model_factory(kind: str, overrides: dict[str, Any]) -> RewardModelFactory:
    """A factory of fresh, unfitted reward models of ``kind``.

    Embedding models made by one factory share one encoder, and so its in-memory and disk caches:
    only the first fit of a process pays for loading the encoder.
    """
    from rlthf_backend.core.reward import make_reward_model

    shared: dict[str, Any] = {}

    def factory() -> RewardModel:
        if kind == "embedding":
            from rlthf_backend.core.reward.embedding import EmbeddingRewardModel

            rm = EmbeddingRewardModel(encoder=shared.get("encoder"), **overrides)
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
) -> dict[str, Any]:
    """``options`` with the embedding RM's L2 coefficient chosen once and then held fixed.

    The embedding RM can choose its coefficient by cross-validation on every fit, which costs
    ~30x a plain fit; a round fits one RM per cross-fitting fold. One tuned fit on the given
    labels chooses it for all of them. Other kinds, or options that switch tuning off, pass
    through unchanged.
    """
    if kind != "embedding" or not options.get("tune_weight_decay", True) or len(pairs) < 2:
        return dict(options)
    probe = reward_model_factory(kind, {**options, "n_ensemble": 1})()
    report = probe.fit(pairs, np.asarray(a_preferred, bool), weights)
    chosen = report.details.get("weight_decay")
    if chosen is None:
        return dict(options)
    return {**options, "tune_weight_decay": False, "weight_decay": float(chosen)}
