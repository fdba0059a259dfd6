"""Evidence features for "is this LLM label wrong?" and a small Bayesian logistic regression.

Every feature is oriented so that larger means "more doubt about the LLM label":

================  =====================================================================
``rm_disagree``   minus the cross-fitted RM margin in favour of the LLM label, in pool SDs
``rm_spread``     the scoring RM's ensemble spread, in pool SDs (0 for single-member RMs)
``longer_chosen`` log length ratio (characters) of the LLM-preferred response over the
                  other, in pool SDs: LLM judges have a documented verbosity bias (Zheng et
                  al. 2023, "Judging LLM-as-a-judge"); its sign is left to the data
``swap``          1 if the judge's two presentation orders disagreed
``swap_unknown``  1 if only one order was asked or readable (no position-bias check)
``judge_doubt``   logit(1 - judge probability of its label), in pool SDs; 0 where unknown
``prob_unknown``  1 if the judge gave no probability
``tie``           1 if the judge called the pair a tie in some order
``parse_failed``  1 if the judge gave no readable verdict in some order
``panel``         share of the other panel judges' a/b verdicts against the label (0 unknown)
``panel_unknown`` 1 if no other panel judge gave an a/b verdict
================  =====================================================================

Continuous features are standardised over the whole pool (labelled or not, so the scaling never
depends on which pairs people saw); flags stay 0/1 so their weights read as log-odds per flag.
A feature that is constant over the pool is set to 0 (it carries no information).
Each evidence set's model P(wrong | x) = sigmoid(b + w.x) is fitted by MAP with a Gaussian
prior centred on documented prior weights (:data:`PRIOR_WEIGHTS`): with no human labels it *is*
the prior, and as labels arrive the data take over. It predicts with the Laplace posterior
predictive, not the MAP plug-in: the logit's posterior variance ``s2`` at x moderates it to
``sigmoid(z / sqrt(1 + pi s2 / 8))`` (MacKay 1992). Answers arrive where the targeted batches
look, so the weights are pinned down there and extrapolated elsewhere, where the plug-in is
overconfident (on the single-judge file its mildest pairs, P(wrong) ~3%, were 8-9% wrong, and the
wrong labels left in the export were underestimated by a quarter); the moderated P(wrong) is
nearer 1/2 exactly as far as the weights are unsure there. The sets are then averaged with weights
proportional to their marginal likelihood (Laplace approximation), so a signal that does not
predict this project's mistakes (a weak reward model, a judge verbosity effect of the other
sign) loses its say, and one that does gains it, with no constant tuned to any dataset.
Because selection of pairs for people depends only on x (past scores), the conditional models
stay consistent under that selection (what a targeted answer says is still P(wrong | x)); the
random audit slice keeps every region of x represented.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from rlthf_backend.core.curation.state import JudgeEvidence

FEATURES = (
    "rm_disagree", "rm_spread", "longer_chosen",
    "swap", "swap_unknown", "judge_doubt", "prob_unknown", "tie", "parse_failed",
    "panel", "panel_unknown",
)

#: Which features each evidence set uses. The judge's own signals are in every set; the reward
#: model's and the length ratio's enter only through the sets that name them, so they weigh in
#: only as far as the project's answers favour those sets (:func:`fit_wrong_label_model`).
EVIDENCE_SETS: dict[str, tuple[str, ...]] = {
    "judge": ("swap", "swap_unknown", "judge_doubt", "prob_unknown", "tie", "parse_failed", "panel", "panel_unknown"),
    "judge+rm": ("swap", "swap_unknown", "judge_doubt", "prob_unknown", "tie", "parse_failed", "panel",
                 "panel_unknown", "rm_disagree", "rm_spread"),
    "judge+length": ("swap", "swap_unknown", "judge_doubt", "prob_unknown", "tie", "parse_failed", "panel",
                     "panel_unknown", "longer_chosen"),
    "judge+rm+length": FEATURES,
}

#: Prior log-odds weights, chosen before looking at any data, from what each signal means.
#: A judge that contradicts itself when the order is swapped, or a placeholder label where the
#: judge gave no readable verdict, is a coin flip: +1.4 moves a 20% prior error rate to ~50%.
#: A tie hands the label to a weaker source (another order, another judge): halfway, +0.7.
#: Panel disagreement is the share of the other judges' verdicts against the label: all of them
#: against counts as much as a self-contradiction. One SD of RM disagreement or judge doubt
#: counts +0.5 a priori (the direction is known; how informative the project's RM and judge
#: probabilities are is not, so the data decide). Spread, the length ratio and the "unknown"
#: indicators carry no direction a priori. No in-sample RM margin: for human-labelled pairs it
#: would encode their own human label (the RM trains on it), leaking the answer.
PRIOR_WEIGHTS = {
    "rm_disagree": 0.5,
    "rm_spread": 0.0,
    "longer_chosen": 0.0,
    "swap": 1.4,
    "swap_unknown": 0.0,
    "judge_doubt": 0.5,
    "prob_unknown": 0.0,
    "tie": 0.7,
    "parse_failed": 1.4,
    "panel": 1.4,
    "panel_unknown": 0.0,
}


def check_prior_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """``weights`` as prior log-odds weights, or a ValueError naming what is wrong: a feature this
    model does not know (a misspelt name would otherwise be ignored) or a weight that is not finite."""
    if not isinstance(weights, Mapping):
        raise ValueError(f"expected a mapping of feature -> weight, got {type(weights).__name__}")
    unknown = sorted(set(weights) - set(PRIOR_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown feature(s) {', '.join(map(repr, unknown))}; known: {', '.join(PRIOR_WEIGHTS)}")
    out = {}
    for name, value in weights.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"the weight of {name!r} must be a finite number")
        out[name] = float(value)
    return out


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 1e-12 else np.zeros_like(x)


def length_log_ratio(pairs) -> np.ndarray:
    """log(1 + len(response a)) - log(1 + len(response b)) per pair, in characters."""
    return np.array([np.log1p(len(p.response_a)) - np.log1p(len(p.response_b)) for p in pairs], dtype=float)


def evidence_features(
    llm_margin: np.ndarray,
    spread: np.ndarray,
    evidence: JudgeEvidence,
    length_ratio: np.ndarray | None = None,
) -> np.ndarray:
    """The (n, len(FEATURES)) feature matrix (see the module docstring).

    ``llm_margin``: cross-fitted RM margin in favour of the LLM label; ``spread``: ensemble
    spread of the scoring RM; ``length_ratio``: :func:`length_log_ratio` (a over b), absent
    (a zero column) when None.
    """
    n = len(evidence)
    llm_a = np.asarray(evidence.llm_a_preferred, bool)
    longer = np.zeros(n) if length_ratio is None else np.where(llm_a, 1.0, -1.0) * np.asarray(length_ratio, float)
    prob = np.asarray(evidence.prob, float)
    known = np.isfinite(prob)
    doubt = np.zeros(n)
    if known.any():
        p = np.clip(prob[known], 1e-4, 1 - 1e-4)
        doubt[known] = _standardise(np.log((1 - p) / p))
    cols = {
        "rm_disagree": _standardise(-np.asarray(llm_margin, float)),
        "rm_spread": _standardise(np.asarray(spread, float)),
        "longer_chosen": _standardise(longer),
        "swap": evidence.swap_disagrees.astype(float),
        "swap_unknown": (~evidence.swap_known).astype(float),
        "judge_doubt": doubt,
        "prob_unknown": (~known).astype(float),
        "tie": evidence.tie.astype(float),
        "parse_failed": evidence.parse_failed.astype(float),
        "panel": np.nan_to_num(np.asarray(evidence.panel_disagreement, float), nan=0.0),
        "panel_unknown": np.isnan(np.asarray(evidence.panel_disagreement, float)).astype(float),
    }
    if n == 0:
        return np.zeros((0, len(FEATURES)))
    x = np.column_stack([cols[f] for f in FEATURES])
    # A column that is the same for every pair (e.g. no judge probabilities at all) says
    # nothing and would only compete with the intercept: zero it.
    x[:, x.std(axis=0) < 1e-12] = 0.0
    return x


@dataclass(frozen=True)
class EvidenceSetFit:
    """One evidence set's MAP logistic model, the Laplace covariance of its coefficients and its
    log marginal likelihood.

    ``covariance``: (1 + len(FEATURES)) square, intercept first, the inverse Hessian of the
    penalised likelihood at the MAP; rows and columns of features outside the set are 0.
    """

    name: str
    intercept: float
    weights: np.ndarray  # one per FEATURES entry; 0 for features outside the set
    log_evidence: float
    covariance: np.ndarray

    def logit_mean_and_variance(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The logit's MAP value and its posterior variance at each row of ``x``."""
        design = np.column_stack([np.ones(len(x)), x])
        return self.intercept + x @ self.weights, np.einsum("ij,jk,ik->i", design, self.covariance, design)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Posterior predictive P(wrong) (the probit approximation of the logistic-normal mean)."""
        z, var = self.logit_mean_and_variance(x)
        return _sigmoid(z / np.sqrt(1.0 + np.pi * np.maximum(var, 0.0) / 8.0))


@dataclass(frozen=True)
class WrongLabelModel:
    """P(LLM label wrong | features): the evidence sets' models averaged by posterior weight."""

    fits: tuple[EvidenceSetFit, ...]
    posterior: np.ndarray  # model probabilities, aligned with fits
    n_labels: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(LLM label wrong): the sets' posterior predictives, averaged by posterior weight."""
        x = np.asarray(x, float).reshape(-1, len(FEATURES))
        return sum(w * f.predict(x) for w, f in zip(self.posterior, self.fits))

    def ranking_score(self, x: np.ndarray) -> np.ndarray:
        """The order in which to ask people: the sets' MAP plug-in P(wrong), averaged by posterior
        weight. Not a probability to count with (:meth:`predict` is); moderation would rank the
        pairs by how sure the weights are about them as much as by how strong their evidence is,
        and under the vague prior of round 0 that reorders them by how many signals they carry."""
        x = np.asarray(x, float).reshape(-1, len(FEATURES))
        return sum(w * _sigmoid(f.intercept + x @ f.weights) for w, f in zip(self.posterior, self.fits))

    @property
    def weights(self) -> np.ndarray:
        """Posterior-averaged feature weights (a summary: prediction averages probabilities)."""
        return sum(w * f.weights for w, f in zip(self.posterior, self.fits))

    def as_dict(self) -> dict:
        return {
            "n_labels": self.n_labels,
            "evidence_sets": {f.name: float(w) for f, w in zip(self.fits, self.posterior)},
            "weights": dict(zip(FEATURES, self.weights.tolist())),
            "per_set": {f.name: {"intercept": f.intercept, "weights": dict(zip(FEATURES, f.weights.tolist()))}
                        for f in self.fits},
        }


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _prior_means(prior_error_rate: float, prior_weights: Mapping[str, float] | None) -> np.ndarray:
    """Prior means of [intercept, *FEATURES]: logit(prior_error_rate), then the feature weights."""
    pw = PRIOR_WEIGHTS if prior_weights is None else {**PRIOR_WEIGHTS, **prior_weights}
    return np.array([np.log(prior_error_rate / (1 - prior_error_rate))] + [pw[f] for f in FEATURES])


def _set_columns(name: str) -> list[int]:
    """Columns of [intercept, *FEATURES] that evidence set ``name`` uses."""
    return [0] + [1 + FEATURES.index(f) for f in EVIDENCE_SETS[name]]


def pool_prior_intercepts(
    pool_x: np.ndarray,
    prior_error_rate: float,
    prior_weights: Mapping[str, float] | None = None,
    prior_sd: float = 1.0,
) -> dict[str, float]:
    """Per evidence set, the prior mean of the intercept under which the prior predictive P(wrong),
    averaged over the pool's evidence ``pool_x`` (every pair, labelled or not), is
    ``prior_error_rate`` (the features' prior means as in :func:`fit_wrong_label_model`, every
    coefficient's prior SD ``prior_sd``). An intercept of logit(prior_error_rate) would put the
    rate at the pool's average evidence instead, and the pool's mean P(wrong) above it: P(wrong)
    is convex where it is small. Depends on the pool alone, so one round computes it once."""
    pool = np.asarray(pool_x, float).reshape(-1, len(FEATURES))
    design = np.column_stack([np.ones(len(pool)), pool])
    mean = _prior_means(prior_error_rate, prior_weights)
    out = {}
    for name in EVIDENCE_SETS:
        cols = _set_columns(name)
        z_rest = design[:, cols[1:]] @ mean[cols[1:]]
        scale = 1.0 / np.sqrt(1.0 + np.pi * prior_sd**2 * np.sum(design[:, cols] ** 2, axis=1) / 8.0)
        out[name] = float(brentq(lambda b: np.mean(_sigmoid((b + z_rest) * scale)) - prior_error_rate, -1e3, 1e3))
    return out


def _fit_set(name: str, x: np.ndarray, y: np.ndarray, prior: np.ndarray, prior_sd: float, iterations: int,
             intercept_prior: float | None) -> EvidenceSetFit:
    """MAP fit of the features in ``EVIDENCE_SETS[name]`` (others held at 0), the inverse Hessian
    at it (the Laplace covariance) and its Laplace log evidence:
    log p(y | b) + log N(b; prior, sd^2) + (d/2) log 2 pi - (1/2) log det H.
    ``intercept_prior`` (if not None) replaces the intercept's prior mean."""
    cols = _set_columns(name)
    design = np.column_stack([np.ones(len(x)), x])[:, cols]
    mu = prior[cols].copy()
    if intercept_prior is not None:
        mu[0] = intercept_prior
    precision = 1.0 / prior_sd**2

    def penalised(b: np.ndarray) -> float:
        z = design @ b
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * precision * np.sum((b - mu) ** 2))

    beta = mu.copy()
    current = penalised(beta)
    for _ in range(iterations if len(y) else 0):
        p = _sigmoid(design @ beta)
        grad = design.T @ (p - y) + precision * (beta - mu)
        hess = (design * (p * (1 - p))[:, None]).T @ design + precision * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        # damped Newton: halve the step until the objective decreases (plain Newton can
        # overshoot on near-separable data)
        t = 1.0
        while t > 1e-6:
            candidate = beta - t * step
            value = penalised(candidate)
            if value <= current:
                break
            t /= 2
        else:
            break
        beta, current = candidate, value
        if np.max(np.abs(t * step)) < 1e-8:
            break
    p = _sigmoid(design @ beta)
    hess = (design * (p * (1 - p))[:, None]).T @ design + precision * np.eye(len(beta))
    # -current = log-likelihood + log prior up to the prior's normaliser (-d log sd - d/2 log 2pi)
    log_evidence = -current - len(beta) * np.log(prior_sd) - 0.5 * np.linalg.slogdet(hess)[1]
    weights = np.zeros(len(FEATURES))
    weights[[c - 1 for c in cols[1:]]] = beta[1:]
    covariance = np.zeros((1 + len(FEATURES), 1 + len(FEATURES)))
    covariance[np.ix_(cols, cols)] = np.linalg.inv(hess)
    return EvidenceSetFit(name, float(beta[0]), weights, float(log_evidence), covariance)


def fit_wrong_label_model(
    x: np.ndarray,
    wrong: np.ndarray,
    prior_error_rate: float,
    prior_weights: dict[str, float] | None = None,
    prior_sd: float = 1.0,
    iterations: int = 50,
    prior_intercepts: Mapping[str, float] | None = None,
) -> WrongLabelModel:
    """Bayesian model average over :data:`EVIDENCE_SETS` of MAP logistic regressions of
    ``wrong`` (0/1) on ``x``.

    Prior per set: weight_j ~ N(prior_weights[j], prior_sd^2) for the set's features, and the
    intercept ~ N(b0, prior_sd^2) with b0 the set's entry of ``prior_intercepts``
    (:func:`pool_prior_intercepts`: the prior predictive then averages ``prior_error_rate`` over
    the pool), or logit(prior_error_rate) without it (the rate at the average evidence). Every set
    equally likely a priori.
    Posterior set probabilities are proportional to the Laplace approximation of each set's
    marginal likelihood. With no rows every set is its prior and they weigh the same.
    """
    prior = _prior_means(prior_error_rate, prior_weights)
    x = np.asarray(x, float).reshape(-1, len(FEATURES))
    y = np.asarray(wrong, float)
    fits = tuple(_fit_set(name, x, y, prior, prior_sd, iterations, None if prior_intercepts is None
                          else prior_intercepts[name]) for name in EVIDENCE_SETS)
    log_ev = np.array([f.log_evidence for f in fits])
    post = np.exp(log_ev - log_ev.max()) if len(y) else np.ones(len(fits))
    return WrongLabelModel(fits, post / post.sum(), int(len(y)))


def out_of_fold_p_wrong(
    x: np.ndarray,
    wrong: np.ndarray,
    n_folds: int,
    seed: int,
    prior_error_rate: float,
    prior_weights: dict[str, float] | None = None,
    prior_sd: float = 1.0,
    prior_intercepts: Mapping[str, float] | None = None,
) -> np.ndarray:
    """P(wrong) for each labelled row from a model fitted without that row's fold (each fit with
    the same prior as :func:`fit_wrong_label_model`'s, ``prior_intercepts`` included).

    Judging a region by the labels of pairs the hardness model was fitted on would be
    optimistic (the model bends toward them); out-of-fold predictions place each labelled pair
    where an unlabelled pair with the same evidence would land.
    """
    n = len(wrong)
    out = np.zeros(n)
    if n == 0:
        return out
    k = max(2, min(n_folds, n))
    folds = np.random.default_rng(seed).permutation(np.arange(n) % k)
    for f in range(k):
        held = folds == f
        model = fit_wrong_label_model(x[~held], wrong[~held], prior_error_rate, prior_weights, prior_sd,
                                      prior_intercepts=prior_intercepts)
        out[held] = model.predict(x[held])
    return out


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` for the 0/1 ``positive`` (ties count half);
    NaN when one class is missing."""
    score = np.asarray(score, float)
    positive = np.asarray(positive, bool)
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    # average ranks over ties
    i = 0
    while i < len(score):
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
