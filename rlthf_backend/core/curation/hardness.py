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
================  =====================================================================

Continuous features are standardised over the whole pool (labelled or not, so the scaling never
depends on which pairs people saw); flags stay 0/1 so their weights read as log-odds per flag.
A feature that is constant over the pool is set to 0 (it carries no information).
The model P(wrong | x) = sigmoid(b + w.x) is fitted by MAP with a Gaussian prior centred on
documented prior weights (:data:`PRIOR_WEIGHTS`): with no human labels it *is* the prior, and as
labels arrive the data take over. Because selection of pairs for people depends only on x (past
scores), the conditional model stays consistent under that selection; the random audit slice
keeps every region of x represented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlthf_backend.core.curation.state import JudgeEvidence

FEATURES = (
    "rm_disagree", "rm_spread", "longer_chosen",
    "swap", "swap_unknown", "judge_doubt", "prob_unknown", "tie", "parse_failed",
)

#: Prior log-odds weights, chosen before looking at any data, from what each signal means:
#: a self-contradicting, tie-calling or unreadable judge is about as likely wrong as right
#: (+1 log-odds moves a 20% prior to ~40%); one SD of RM disagreement or judge doubt counts half
#: of that, because both are noisy for weak RMs / uncalibrated judges; spread and the
#: "unknown" indicators carry no direction a priori, nor does the length ratio (its sign depends
#: on the data). No in-sample RM margin: for human-labelled pairs it would encode their own
#: human label (the RM trains on it), leaking the answer into the hardness model.
PRIOR_WEIGHTS = {
    "rm_disagree": 0.5,
    "rm_spread": 0.0,
    "longer_chosen": 0.0,
    "swap": 1.0,
    "swap_unknown": 0.0,
    "judge_doubt": 0.5,
    "prob_unknown": 0.0,
    "tie": 1.0,
    "parse_failed": 1.0,
}


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
    }
    if n == 0:
        return np.zeros((0, len(FEATURES)))
    x = np.column_stack([cols[f] for f in FEATURES])
    # A column that is the same for every pair (e.g. no judge probabilities at all) says
    # nothing and would only compete with the intercept: zero it.
    x[:, x.std(axis=0) < 1e-12] = 0.0
    return x


@dataclass(frozen=True)
class WrongLabelModel:
    """Fitted P(LLM label wrong | features): intercept and one weight per feature."""

    intercept: float
    weights: np.ndarray
    n_labels: int

    def predict(self, x: np.ndarray) -> np.ndarray:
        return _sigmoid(self.intercept + x @ self.weights)

    def as_dict(self) -> dict:
        return {"intercept": self.intercept, "weights": dict(zip(FEATURES, self.weights.tolist())), "n_labels": self.n_labels}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def fit_wrong_label_model(
    x: np.ndarray,
    wrong: np.ndarray,
    prior_error_rate: float,
    prior_weights: dict[str, float] | None = None,
    prior_sd: float = 1.0,
    iterations: int = 50,
) -> WrongLabelModel:
    """MAP logistic regression of ``wrong`` (0/1) on ``x`` with a Gaussian prior.

    Prior: intercept ~ N(logit(prior_error_rate), prior_sd^2), weight_j ~ N(prior_weights[j],
    prior_sd^2). Damped Newton on the penalised log-likelihood (strictly concave, so it
    converges from the prior mean). With no rows it returns the prior mean.
    """
    pw = PRIOR_WEIGHTS if prior_weights is None else {**PRIOR_WEIGHTS, **prior_weights}
    prior = np.array([np.log(prior_error_rate / (1 - prior_error_rate))] + [pw[f] for f in FEATURES])
    x = np.asarray(x, float).reshape(-1, len(FEATURES))
    y = np.asarray(wrong, float)
    design = np.column_stack([np.ones(len(x)), x])
    precision = 1.0 / prior_sd**2

    def objective(b: np.ndarray) -> float:
        z = design @ b
        # log(1 + e^z) - y z, computed stably
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * precision * np.sum((b - prior) ** 2))

    beta = prior.copy()
    current = objective(beta)
    for _ in range(iterations if len(y) else 0):
        p = _sigmoid(design @ beta)
        grad = design.T @ (p - y) + precision * (beta - prior)
        hess = (design * (p * (1 - p))[:, None]).T @ design + precision * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        # damped Newton: halve the step until the objective decreases (plain Newton can
        # overshoot on near-separable data)
        t = 1.0
        while t > 1e-6:
            candidate = beta - t * step
            value = objective(candidate)
            if value <= current:
                break
            t /= 2
        else:
            break
        beta, current = candidate, value
        if np.max(np.abs(t * step)) < 1e-8:
            break
    return WrongLabelModel(float(beta[0]), beta[1:].copy(), int(len(y)))


def out_of_fold_p_wrong(
    x: np.ndarray,
    wrong: np.ndarray,
    n_folds: int,
    seed: int,
    prior_error_rate: float,
    prior_weights: dict[str, float] | None = None,
    prior_sd: float = 1.0,
) -> np.ndarray:
    """P(wrong) for each labelled row from a model fitted without that row's fold.

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
        model = fit_wrong_label_model(x[~held], wrong[~held], prior_error_rate, prior_weights, prior_sd)
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
