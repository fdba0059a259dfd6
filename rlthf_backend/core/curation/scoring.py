"""Reward-model scores the strategies need: in-sample and cross-fitted margins.

Strategies never build reward models themselves: they get an ``rm_factory`` (a no-argument
callable returning an unfitted :class:`~rlthf_backend.core.reward.base.RewardModel`) and call
it once per fit, so the same code runs with the embedding RM, a TRL RM or a test double. A
factory may hand back the same object each time (a refit replaces the parameters), which is how
a caller shares an embedding cache or encoder between fits.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rlthf_backend.core.reward.base import RewardModel
from rlthf_backend.core.reward.factory import RewardModelFactory, RoundFactory
from rlthf_backend.core.types import Pair


def _subset(pairs: Sequence[Pair], idx: np.ndarray) -> list[Pair]:
    return [pairs[int(i)] for i in idx]


def fit_reward_model(
    rm_factory: RewardModelFactory, pairs: Sequence[Pair], a_preferred: np.ndarray, weights: np.ndarray
) -> RewardModel | None:
    """Fit a fresh RM on the pairs with positive weight (within the round's fit budget when the
    factory is a :class:`RoundFactory` that has one); None when fewer than two such pairs."""
    if isinstance(rm_factory, RoundFactory):
        weights = rm_factory.within_budget(weights)
    train = np.flatnonzero(weights > 0)
    if len(train) < 2:
        return None
    rm = rm_factory()
    rm.fit(_subset(pairs, train), np.asarray(a_preferred, bool)[train], np.asarray(weights, float)[train])
    return rm


def in_sample_margins(
    rm_factory: RewardModelFactory, pairs: Sequence[Pair], a_preferred: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Margins r(a) - r(b) of every pair under one RM fitted on all positive-weight pairs
    (the paper's setting: the RM also scores its own training pairs). Zeros if unfittable."""
    rm = fit_reward_model(rm_factory, pairs, a_preferred, weights)
    if rm is None:
        return np.zeros(len(pairs))
    return np.asarray(rm.margins(list(pairs)), dtype=float)


def fold_ids(n: int, n_folds: int, seed: int) -> np.ndarray:
    """A balanced random fold id 0..n_folds-1 per pair, fixed by ``seed``."""
    n_folds = max(1, min(n_folds, n))
    rng = np.random.default_rng(seed)
    return rng.permutation(np.arange(n) % n_folds)


def cross_fitted_margins(
    rm_factory: RewardModelFactory,
    pairs: Sequence[Pair],
    a_preferred: np.ndarray,
    weights: np.ndarray,
    n_folds: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Margins where every pair is scored by an RM that never trained on it.

    The pool is split into ``n_folds`` random folds; for each fold an RM is fitted on the
    positive-weight pairs of the other folds and scores the fold. Returns ``(margins, spread)``:
    margins r(a) - r(b) of shape (n,), and the standard deviation of the scoring RM's ensemble
    members' margins (0 for single-member RMs). A fold whose training part cannot be fitted
    scores 0 with spread 0.
    """
    n = len(pairs)
    margins = np.zeros(n)
    spread = np.zeros(n)
    if n == 0:
        return margins, spread
    folds = fold_ids(n, n_folds, seed)
    weights = np.asarray(weights, float)
    for k in np.unique(folds):
        held = np.flatnonzero(folds == k)
        train_w = np.where(folds == k, 0.0, weights)
        rm = fit_reward_model(rm_factory, pairs, a_preferred, train_w)
        if rm is None:
            continue
        members = np.atleast_2d(np.asarray(rm.member_margins(_subset(pairs, held)), dtype=float))
        margins[held] = members.mean(axis=0)
        spread[held] = members.std(axis=0) if members.shape[0] > 1 else 0.0
    return margins, spread
