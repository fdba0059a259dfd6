"""The reward model's fit budget: which pairs a fit over the budget trains on, and at what weight."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rlthf_backend.core.reward.factory import FitBudget


def test_a_pool_within_the_budget_trains_on_everything():
    w = np.array([1.0, 3.0, 0.0, 1.0])
    assert np.array_equal(FitBudget(10, np.zeros(4, bool)).apply(w), w)
    assert np.array_equal(FitBudget(0, np.zeros(4, bool)).apply(w), w)  # 0: no limit


@given(n=st.integers(5, 400), cap=st.integers(1, 300), n_keep=st.integers(0, 50), seed=st.integers(0, 10))
@settings(max_examples=60, deadline=None)
def test_over_budget_keeps_every_human_pair_and_a_reweighted_sample_of_the_rest(n, cap, n_keep, seed):
    rng = np.random.default_rng(seed)
    w = np.where(rng.random(n) < 0.1, 0.0, 1.0)
    keep = np.zeros(n, bool)
    keep[rng.choice(n, size=min(n_keep, n), replace=False)] = True
    w[keep] = 3.0
    out = FitBudget(cap, keep, seed=seed).apply(w)
    positive = w > 0
    if positive.sum() <= cap:
        assert np.array_equal(out, w)
        return
    assert np.array_equal(out[keep], w[keep])  # human labels always train, at their weight
    rest = positive & ~keep
    room = max(0, cap - int(keep.sum()))
    assert int(np.sum(out[rest] > 0)) == min(room, int(rest.sum()))
    assert np.all(out[~positive] == 0)
    if room:  # the sample carries the rest's total weight: the loss keeps its expectation
        assert np.isclose(out[rest].sum(), w[rest].sum())
    assert np.array_equal(out, FitBudget(cap, keep, seed=seed).apply(w))  # deterministic
