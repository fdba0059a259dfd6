"""Audits drawn with known probabilities, and the estimates they make unbiased: checked on
synthetic pools whose error rates are known."""

from __future__ import annotations

import numpy as np
import pytest

from rlthf_backend.core.curation.adaptive import choose_ranking, paired_advantage, remap_ledger, settle_ledger
from rlthf_backend.core.curation.estimate import (
    beta_tail_above_half,
    hajek_rate,
    ht_total,
    kish_effective_n,
    pps_inclusion_probabilities,
    stratified_wrong_estimate,
    systematic_pps_sample,
)


def test_pps_probabilities_cap_and_sum():
    z = np.array([10.0, 1, 1, 1, 1, 1, 1, 1])
    pi = pps_inclusion_probabilities(z, 3)
    assert pi[0] == 1.0 and np.isclose(pi.sum(), 3) and np.allclose(pi[1:], 2 / 7)
    with pytest.raises(ValueError):
        pps_inclusion_probabilities(np.array([1.0, 0.0]), 1)


def test_systematic_sample_has_the_stated_inclusion_probabilities():
    rng = np.random.default_rng(0)
    z = rng.uniform(0.05, 1.0, 40)
    pi = pps_inclusion_probabilities(z, 6)
    hits = np.zeros(40)
    for _ in range(20_000):
        s = systematic_pps_sample(pi, rng)
        assert len(s) == 6 and len(np.unique(s)) == 6
        hits[s] += 1
    assert np.max(np.abs(hits / 20_000 - pi)) < 0.015


def test_ht_total_is_unbiased_under_pps_with_a_floor():
    """A pool with a known number of wrong labels; audits PPS on a noisy P(wrong) (floored):
    the HT estimate's mean over many draws is within 2% of the truth."""
    rng = np.random.default_rng(1)
    n = 1000
    p = rng.beta(1, 4, n)
    wrong = rng.random(n) < p
    model = np.clip(p + rng.normal(0, 0.1, n), 0.01, 1)
    size = np.maximum(model, 0.5 * model.mean())
    pi = pps_inclusion_probabilities(size, 60)
    est = [ht_total(wrong[s], pi[s]) for s in (systematic_pps_sample(pi, rng) for _ in range(4000))]
    assert abs(np.mean(est) / wrong.sum() - 1) < 0.02


def test_hajek_and_kish():
    assert hajek_rate([1, 0], [0.5, 0.25]) == pytest.approx(2 / 6)
    assert kish_effective_n([0.5, 0.5, 0.5]) == pytest.approx(3)
    assert kish_effective_n([1.0, 0.1]) < 2
    assert np.isnan(hajek_rate([], []))


def test_beta_tail_matches_the_integer_formula():
    from rlthf_backend.core.curation.fused import beta_tail_above_half as exact

    for k, n in ((0, 0), (3, 4), (7, 8), (2, 9)):
        assert beta_tail_above_half(k, n) == pytest.approx(exact(k, n), abs=1e-9)


def _pool(rng, n=1200):
    """True P(wrong) per pair and a model that underestimates it by 40% (as seen on unseen sets)."""
    true_p = rng.beta(1.2, 4, n)
    model_p = np.clip(0.6 * true_p + rng.normal(0, 0.03, n), 0.005, 0.99)
    return true_p, model_p


@pytest.mark.parametrize("export_rule", ["the rest", "suspects dropped"])
@pytest.mark.parametrize("miscalibration", [0.6, 1.0, 1.5])
def test_wrong_estimate_is_unbiased_and_covers(miscalibration, export_rule):
    """Audits PPS from the pool; exported: the rest, or (as the engine does) only the rest the
    model finds mild (P(wrong) < 1/3), so the audits of a stratum sit at harder pairs than its
    exported ones. Over many draws the estimate's mean is within 15% of the true count of wrong
    exported labels (at 40 audits the strata's model-centred prior still pulls a little toward a
    model that is 40% low or 50% high; 3% when it is right) and the 90% interval covers it >= 85%
    of the time."""
    rng = np.random.default_rng(2)
    ratios, covered = [], []
    for _ in range(300):
        true_p = rng.beta(1.2, 4, 1200)
        model_p = np.clip(miscalibration * true_p * np.exp(rng.normal(0, 0.3, 1200)), 0.005, 0.99)
        wrong = rng.random(1200) < true_p
        size = np.maximum(model_p, 0.5 * model_p.mean())
        pi = pps_inclusion_probabilities(size, 40)
        s = systematic_pps_sample(pi, rng)
        rest = np.setdiff1d(np.arange(1200), s)
        if export_rule == "suspects dropped":
            rest = rest[model_p[rest] < 1 / 3]
        est = stratified_wrong_estimate(model_p[rest], np.zeros(len(rest), bool), model_p[s], wrong[s].astype(float),
                                        pi[s], seed=int(rng.integers(1 << 30)), draws=2000)
        truth = wrong[rest].sum()
        ratios.append(est.mean / truth)
        covered.append(est.low <= truth <= est.high)
    assert abs(np.mean(ratios) - 1) < (0.03 if miscalibration == 1.0 else 0.15)
    assert np.mean(covered) >= 0.85


def test_audits_of_harder_pairs_shift_the_milder_exported_ones_by_the_models_error_not_their_rate():
    """Audits at P(wrong) 0.6 found wrong 60% of the time (the model is right there): exported
    pairs at 0.1 stay at about 10%, however hard the audited pairs of their stratum were."""
    audit_p = np.full(40, 0.6)
    est = stratified_wrong_estimate(np.full(500, 0.1), np.zeros(500, bool), audit_p, np.r_[np.ones(24), np.zeros(16)],
                                    np.full(40, 0.2), draws=2000)
    assert 40 < est.mean < 60 and est.low <= 50 <= est.high


def test_wrong_estimate_counts_flipped_pairs_the_other_way():
    est = stratified_wrong_estimate(np.full(100, 0.9), np.ones(100, bool), np.full(50, 0.9),
                                    np.r_[np.ones(45), np.zeros(5)], np.full(50, 0.5), draws=2000)
    assert 5 < est.mean < 16 and est.low <= 10 <= est.high


def test_ledger_grades_each_rankings_probe_exactly_and_pairs_them_by_round():
    wrong = np.full(10, np.nan)
    wrong[[0, 1, 5, 6]] = [1, 0, 1, 1]  # 7 unanswered: it grades nothing
    ledger = {"pending": {"audit_pi": {9: 0.25}, "probes": {"hardness": [0, 1], "rm": [5, 6, 7]}}}
    settled = settle_ledger(ledger, wrong)
    assert settled["rankings"]["hardness"] == {"found": 1, "asked": 2, "rounds": 1}
    assert settled["rankings"]["rm"] == {"found": 2, "asked": 2, "rounds": 1}
    assert settled["graded"] == [{"hardness": [1, 2], "rm": [2, 2]}]
    assert settled["audit_pi"] == {9: 0.25} and settled["pending"] is None
    back = remap_ledger(remap_ledger(ledger, {0: 100, 1: 101, 5: 105, 6: 106, 7: 107, 9: 109}),
                        {100: 0, 101: 1, 105: 5, 106: 6, 107: 7, 109: 9})
    assert back["pending"]["probes"] == {"hardness": [0, 1], "rm": [5, 6, 7]}
    assert back["pending"]["audit_pi"] == {9: 0.25}


def test_a_ranking_takes_the_batch_only_when_its_probes_win_round_after_round():
    rounds = lambda rm_hits: [{"hardness": [1, 2], "rm": [h, 2]} for h in rm_hits]  # noqa: E731
    name, why = choose_ranking({"graded": rounds([2, 2, 2, 2, 2, 2])}, ("hardness", "rm"), 1.0)
    assert name == "rm", why
    assert why["yields"]["rm"]["p_better"] > 0.9
    # one lucky round is not enough, nor a tie, nor a ranking that loses
    assert choose_ranking({"graded": rounds([2])}, ("hardness", "rm"), 1.0)[0] == "hardness"
    assert choose_ranking({"graded": rounds([1, 1, 1, 1])}, ("hardness", "rm"), 1.0)[0] == "hardness"
    name, why = choose_ranking({"graded": rounds([0, 0, 0, 0, 0])}, ("hardness", "rm"), 1.0)
    assert name == "hardness" and why["yields"]["rm"]["p_better"] < 0.1
    # a ranking not offered this round (its signal is constant) is never chosen
    assert choose_ranking({"graded": rounds([2] * 6)}, ("hardness",), 1.0)[0] == "hardness"


def test_paired_advantage_cancels_what_both_probes_share():
    graded = [{"a": [2, 2], "b": [1, 2]}, {"a": [1, 2], "b": [0, 2]}, {"b": [1, 1]}]
    mean, se, n = paired_advantage(graded, "a", "b")
    assert n == 2 and mean == 0.5 and 0 < se < 0.5
    assert paired_advantage(graded, "a", "missing") == (0.0, float("inf"), 0)



