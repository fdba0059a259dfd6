"""Probability sampling for audits and the estimates it makes unbiased.

Pure functions (numpy / scipy), no state. The design every function here serves:

- **Audits are drawn with known inclusion probabilities** ``pi_i > 0``: probability proportional
  to a size measure ``z_i`` (the engine's P(LLM label wrong), floored so that every pair has a
  chance), by randomised systematic PPS sampling (:func:`systematic_pps_sample`), which draws a
  fixed number of distinct pairs with exactly the first-order probabilities of
  :func:`pps_inclusion_probabilities`. A likely-wrong pair is likely audited (each audit is
  also a likely fix), and no pair is impossible (each audit is also a probability sample).
- **Horvitz-Thompson** (:func:`ht_total`): ``sum(y_i / pi_i)`` over the sample is an unbiased
  estimate of ``sum(y_i)`` over the population it was drawn from, whatever the size measure was.
  :func:`ht_variance` is the Poisson-sampling variance estimate ``sum(y_i^2 (1 - pi_i) / pi_i^2)``
  (the usual conservative stand-in for systematic designs, whose joint probabilities are unknown).
- **Hajek / Kish** (:func:`hajek_rate`, :func:`kish_effective_n`): a ratio of HT totals (the
  weighted rate) and the effective number of equally weighted observations it is worth, so a
  weighted rate can feed a Beta posterior.
- **Wrong labels left** (:func:`stratified_wrong_estimate`): audited pairs post-stratified by the
  model's P(wrong); in each stratum the audits' error rate (a Beta posterior: Hajek rate with Kish
  counts over a weak prior centred on the model's own mean for the same audits) against that
  model mean is a log-odds shift, applied to every exported unchecked pair of the stratum; the
  count of wrong labels among them is drawn from the shifted rates (rate uncertainty and the luck
  of the actual pairs both count): a mean and a central interval.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import betainc, expit, logit


def pps_inclusion_probabilities(size: np.ndarray, m: int) -> np.ndarray:
    """First-order inclusion probabilities of a without-replacement sample of ``m`` units drawn
    with probability proportional to ``size`` (all > 0): ``pi_i = m z_i / sum(z)``, except that a
    unit whose share would exceed 1 is taken with certainty (pi = 1) and the rest is re-shared
    among the others (the standard capping). ``sum(pi) == min(m, n)``."""
    z = np.asarray(size, float)
    n = len(z)
    if np.any(~np.isfinite(z)) or np.any(z <= 0):
        raise ValueError("PPS size measures must be finite and > 0")
    m = int(min(max(m, 0), n))
    pi = np.zeros(n)
    if m == 0:
        return pi
    certain = np.zeros(n, bool)
    while True:
        left = m - certain.sum()
        rest = ~certain
        pi[rest] = left * z[rest] / z[rest].sum() if left > 0 else 0.0
        pi[certain] = 1.0
        over = rest & (pi >= 1.0)
        if not over.any():
            return np.minimum(pi, 1.0)
        certain |= over


def systematic_pps_sample(pi: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of a randomised systematic sample with inclusion probabilities ``pi`` (each in
    [0, 1], summing to an integer m up to rounding): the units are put in a random order, their
    probabilities laid end to end on [0, m), and the units covering ``u, u + 1, ..., u + m - 1``
    for one uniform ``u`` are taken. Each unit is included with probability exactly ``pi_i`` and
    no unit twice. Returns the indices sorted."""
    pi = np.asarray(pi, float)
    if len(pi) == 0:
        return np.zeros(0, int)
    order = rng.permutation(len(pi))
    cum = np.cumsum(pi[order])
    m = int(round(cum[-1]))
    if m == 0:
        return np.zeros(0, int)
    points = rng.random() + np.arange(m)
    hit = np.searchsorted(cum, points, side="right")
    hit = np.minimum(hit, len(pi) - 1)
    return np.sort(order[np.unique(hit)])


def ht_total(y: np.ndarray, pi: np.ndarray) -> float:
    """Horvitz-Thompson estimate of a population total from the sampled ``y`` and their
    inclusion probabilities ``pi`` (unbiased whenever every population unit has pi > 0)."""
    y, pi = np.asarray(y, float), np.asarray(pi, float)
    return float(np.sum(y / pi)) if len(y) else 0.0


def ht_variance(y: np.ndarray, pi: np.ndarray) -> float:
    """Variance estimate of :func:`ht_total` as under Poisson sampling:
    ``sum(y^2 (1 - pi) / pi^2)`` (units taken with certainty add nothing)."""
    y, pi = np.asarray(y, float), np.asarray(pi, float)
    return float(np.sum(y * y * (1 - pi) / pi**2)) if len(y) else 0.0


def hajek_rate(y: np.ndarray, pi: np.ndarray) -> float:
    """Weighted mean ``sum(y / pi) / sum(1 / pi)`` (NaN for an empty sample): the Hajek estimate
    of the population mean, approximately unbiased, lower variance than HT / N."""
    y, pi = np.asarray(y, float), np.asarray(pi, float)
    if len(y) == 0:
        return float("nan")
    w = 1.0 / pi
    return float(np.sum(w * y) / np.sum(w))


def kish_effective_n(pi: np.ndarray) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum(w^2)`` of weights ``w = 1 / pi``: as many
    equally weighted observations as the weighted sample is worth (0 for an empty one)."""
    pi = np.asarray(pi, float)
    if len(pi) == 0:
        return 0.0
    w = 1.0 / pi
    return float(w.sum() ** 2 / np.sum(w * w))


def hajek_effective_n(y: np.ndarray, pi: np.ndarray) -> float:
    """Equally weighted observations a Hajek rate is worth, conservatively: the smallest of
    Kish's count, ``sum(w) / max(w)`` (no observation may count for more than one: with few audits
    one heavily weighted answer decides the rate, and its sampling distribution is far more skewed
    than a Beta at Kish's count says) and ``r (1 - r) / v`` with ``v`` the rate's linearised
    (with-replacement) variance estimate ``n / (n - 1) sum(w^2 (y - r)^2) / (sum w)^2``."""
    y, pi = np.asarray(y, float), np.asarray(pi, float)
    n_kish = min(kish_effective_n(pi), float(np.sum(1.0 / pi) / np.max(1.0 / pi))) if len(pi) else 0.0
    n = len(y)
    if n < 2:
        return n_kish
    w = 1.0 / pi
    r = float(np.sum(w * y) / np.sum(w))
    v = n / (n - 1) * float(np.sum(w * w * (y - r) ** 2)) / float(np.sum(w)) ** 2
    if r <= 0 or r >= 1 or v <= 0:
        return n_kish
    return float(min(n_kish, r * (1 - r) / v))


def beta_tail_above_half(wrong: float, total: float, prior: tuple[float, float] = (1.0, 1.0)) -> float:
    """P(theta > 1/2) for theta ~ Beta(prior_a + wrong, prior_b + total - wrong): counts may be
    fractional (Kish-effective counts of a weighted sample)."""
    a, b = prior[0] + wrong, prior[1] + max(total - wrong, 0.0)
    return float(1.0 - betainc(a, b, 0.5))


@dataclass(frozen=True)
class WrongEstimate:
    """Wrong labels expected among the exported unchecked pairs.

    ``mean``: the point estimate; ``low`` / ``high``: the central interval at
    ``level``; ``strata``: per stratum the P(wrong) range, exported kept / flipped pairs, audited
    pairs, their effective count and Hajek error rate, the model's mean P(wrong) over those audits
    (``audited_model_rate``) and over the exported pairs (``model_rate``), the posterior mean
    audited rate, the log-odds shift it implies and the exported pairs' mean rate after it.
    """

    mean: float
    low: float
    high: float
    level: float
    strata: list[dict]

    def as_dict(self) -> dict:
        return {"mean": self.mean, "low": self.low, "high": self.high, "level": self.level, "strata": self.strata}


#: Pseudo-labels the hardness model's own rate is worth in the engine's estimate of the wrong labels
#: left (the Beta prior of :func:`stratified_wrong_estimate`): with fewer audits than this a stratum
#: leans on the model, since a single heavily weighted answer would swing it from nothing to
#: several times the truth. Its interval is as wide as a rate measured on this many labels: a
#: model that was never checked is not known better than that (at 8, a judge wrong on 56% of a
#: pool that the prior puts at 20% left the truth outside the 90% interval in 29% of runs).
MODEL_RATE_LABELS = 4.0


def stratum_edges(placed_p: np.ndarray, n_strata: int) -> np.ndarray:
    """Inner cut points of ``n_strata`` strata of P(wrong) holding about equal numbers of the
    audited pairs' ``placed_p`` (cuts depend on where audits fell, never on their answers)."""
    placed_p = np.asarray(placed_p, float)
    if n_strata <= 1 or len(placed_p) == 0:
        return np.zeros(0)
    return np.unique(np.quantile(placed_p, np.linspace(0, 1, n_strata + 1)[1:-1]))


def stratified_wrong_estimate(
    export_p: np.ndarray,
    export_flipped: np.ndarray,
    audit_p: np.ndarray,
    audit_wrong: np.ndarray,
    audit_pi: np.ndarray,
    *,
    audits_per_stratum: int = 10,
    max_strata: int = 4,
    prior_strength: float = 2.0,
    level: float = 0.9,
    draws: int = 4000,
    seed: int = 0,
) -> WrongEstimate:
    """Wrong labels among exported unchecked pairs, with a ``level`` interval.

    ``export_p``: the model's P(LLM label wrong) of every exported pair without a human label;
    ``export_flipped``: which of them are exported with the LLM label flipped (wrong when the LLM
    was right). ``audit_p``: P(wrong) of each audited pair as an unlabelled pair with its
    evidence would get it (out of fold), ``audit_wrong`` (0/1) what people found, ``audit_pi`` the
    probability with which it was drawn (NaN: unknown, weight 1).

    Strata: ``min(max_strata, n_audits // audits_per_stratum)`` (at least 1) bands of P(wrong)
    with equal numbers of audits. Within a stratum the audits say how far the model is off, not
    what the rate is: the audited pairs and the exported ones in a band may sit at different
    P(wrong) (the export keeps the milder pairs, PPS audits favour the harder ones), so the
    audits' error rate is compared with the model's own mean P(wrong) over the same audits, and
    the difference, as a shift ``delta`` of the log-odds, is applied to every exported pair of the
    stratum: its rate is ``sigmoid(logit p + delta)``.

    Per stratum, with ``m`` the model's 1/pi-weighted mean P(wrong) over its audits (over its
    exported pairs if it has none, so delta is 0): the audited rate theta ~ Beta(1/2 + s m + k,
    1/2 + s (1 - m) + n - k) (Jeffreys' prior, whose intervals keep their coverage at small rates,
    plus ``s`` = ``prior_strength`` pseudo-labels at the model's rate; n the effective count of
    :func:`hajek_effective_n`, k the Hajek rate times n): with few audits the model stands, and
    a few more outweigh it. ``delta = logit(theta) - logit(m)``. The estimate uses the posterior
    mean ``(s m + k) / (s + n)`` (no Jeffreys half-counts, which would bias small rates up); the
    interval is simulated (``draws``, seeded): theta per stratum from its posterior, then the
    count of wrong exported pairs given the shifted rates (kept pairs wrong ~ Binomial(kept, their
    mean rate), flipped ones ~ Binomial(flipped, one minus it): a binomial at the mean rate is a
    little wider than the sum of the pairs' own Bernoulli draws, never narrower); the central
    ``level`` interval of the total.
    """
    export_p = np.clip(np.asarray(export_p, float), 1e-6, 1 - 1e-6)
    export_flipped = np.asarray(export_flipped, bool)
    audit_p = np.clip(np.asarray(audit_p, float), 1e-6, 1 - 1e-6)
    audit_wrong = np.asarray(audit_wrong, float)
    audit_pi = np.asarray(audit_pi, float)
    audit_pi = np.where(np.isfinite(audit_pi) & (audit_pi > 0), audit_pi, 1.0)
    k = max(1, min(max_strata, len(audit_p) // max(audits_per_stratum, 1)))
    edges = stratum_edges(audit_p, k)
    s_export = np.searchsorted(edges, export_p, side="right")
    s_audit = np.searchsorted(edges, audit_p, side="right")
    rng = np.random.default_rng(seed)
    total = np.zeros(draws)
    point = 0.0
    strata = []
    bounds = np.concatenate([[0.0], edges, [1.0]])
    for s in range(len(edges) + 1):
        in_e, in_a = s_export == s, s_audit == s
        kept, flipped = int(np.sum(in_e & ~export_flipped)), int(np.sum(in_e & export_flipped))
        export_mean = float(export_p[in_e].mean()) if in_e.any() else float("nan")
        if in_a.any():
            m = hajek_rate(audit_p[in_a], audit_pi[in_a])  # the model's own rate for these audits
        else:
            m = export_mean if in_e.any() else 0.5
        m = float(np.clip(m, 1e-3, 1 - 1e-3))
        rate = hajek_rate(audit_wrong[in_a], audit_pi[in_a])
        n_eff = hajek_effective_n(audit_wrong[in_a], audit_pi[in_a])
        k_eff = n_eff * rate if n_eff > 0 else 0.0
        point_rate = (prior_strength * m + k_eff) / (prior_strength + n_eff)
        shift = logit(point_rate) - logit(m)
        logit_e, flip_e = logit(export_p[in_e]), export_flipped[in_e]
        q = expit(logit_e + shift)
        point += float(np.sum(np.where(flip_e, 1 - q, q)))
        if kept + flipped:
            a, b = 0.5 + prior_strength * m + k_eff, 0.5 + prior_strength * (1 - m) + n_eff - k_eff
            shifts = logit(np.clip(rng.beta(a, b, size=draws), 1e-9, 1 - 1e-9)) - logit(m)
            kept_rate, flip_right = np.zeros(draws), np.zeros(draws)
            for lo in range(0, draws, 500):  # chunks keep the draws x pairs matrix small
                qd = expit(logit_e[None, :] + shifts[lo:lo + 500, None])
                kept_rate[lo:lo + 500] = qd[:, ~flip_e].mean(axis=1) if kept else 0.0
                flip_right[lo:lo + 500] = 1 - qd[:, flip_e].mean(axis=1) if flipped else 0.0
            # a binomial at the mean rate: a little wider than the pairs' own spread of rates allows
            total += rng.binomial(kept, kept_rate) + rng.binomial(flipped, flip_right)
        strata.append({"p_from": float(bounds[s]), "p_to": float(bounds[s + 1]), "kept": kept, "flipped": flipped,
                       "audited": int(in_a.sum()), "audited_effective": n_eff,
                       "audited_error_rate": rate, "audited_model_rate": m, "posterior_rate": point_rate,
                       "log_odds_shift": shift, "model_rate": export_mean,
                       "calibrated_rate": float(q.mean()) if len(q) else float("nan")})
    tail = (1 - level) / 2
    low, high = np.quantile(total, [tail, 1 - tail]) if draws else (float("nan"), float("nan"))
    return WrongEstimate(float(point), float(low), float(high), level, strata)


def calibrated_p_wrong(p: np.ndarray, estimate: WrongEstimate) -> np.ndarray:
    """``p`` with the log-odds shift of the stratum each value falls in applied: P(wrong) as the
    audits behind ``estimate`` correct it."""
    p = np.clip(np.asarray(p, float), 1e-6, 1 - 1e-6)
    edges = np.array([s["p_to"] for s in estimate.strata[:-1]])
    shifts = np.array([s["log_odds_shift"] for s in estimate.strata])
    return expit(logit(p) + shifts[np.searchsorted(edges, p, side="right")])
