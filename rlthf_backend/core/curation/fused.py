"""The default strategy: fused hardness, audited regions, no flip without evidence.

One round:

1. **Cross-fitted RM margins.** The pool is split into ``n_folds`` folds; each fold is scored by
   an RM trained on the other folds' current labels (human labels weighted ``human_weight``,
   pairs the previous round left out weighted 0, the rest 1). No pair is scored by an RM that
   memorised its label. The ensemble spread of the scoring RM comes along.
2. **Hardness = P(LLM label wrong | evidence)**: logistic regressions over the evidence sets of
   :mod:`rlthf_backend.core.curation.hardness`, fitted on every pair a person has labelled so far
   (MAP with a documented prior, so round 0 runs on the prior alone) and averaged by how well
   each set explains this project's answers so far. P(wrong) is their posterior predictive (a
   probability to count with); the batch is ordered by their plug-in fit (the ranking score).
3. **Human batch.** ``audit_fraction`` of the batch is drawn uniformly at random (the audit
   slice) until ``audit_enough`` audited answers exist; after that one pair per round keeps the
   estimate current. By default (``audit_scope`` "pool") the draw is from every unlabelled pair:
   an unbiased sample of everything exported unchecked, which is what calibrates the estimate of
   the wrong labels left (step 5) where the model was never checked, among the mild pairs the
   targeted batches never reach. ``audit_scope`` "flip_candidates" draws only from the pairs a
   flip could touch, the unlabelled ones with P(wrong) > 1/2 (more flips confirmed, no audit while
   that region is empty, and an estimate that rests on the model alone). The rest of the batch
   are the candidates with the highest ranking score. Audit pairs are interleaved into the ranking so
   a person who stops early still leaves a random sample.
4. **Regions** of the remaining unlabelled pairs by hardness p:
   ``trusted`` p < ``drop_threshold``; ``suspect`` drop_threshold <= p <= 0.5; ``flip_candidate``
   p > 0.5. The error rate of each region is estimated from the audited pairs falling in it
   (placed by out-of-fold P(wrong), so the hardness model never grades its own training data).
   A flip-candidate region is flipped only if the audits as mild as its current pairs say its
   error rate is above 50% with posterior probability >= ``flip_confidence`` (Beta(1, 1) prior, at least
   ``min_audit_for_flip`` audited pairs); otherwise it is treated as suspect.
   Suspects follow ``suspect_policy``: ``drop`` (leave out of export and RM training), ``flip``,
   ``keep``, or ``ask`` (leave out until a person answers; listed in ``summary["ask_queue"]``).
   At most ``max_drop_fraction`` of the pool is dropped (the most suspect first), so the export
   never collapses onto the easy pairs.
5. **Estimates and stopping.** Expected wrong labels left in the export, with a 90% interval
   (:func:`~.estimate.stratified_wrong_estimate`: the pool audits, stratified by P(wrong), shift
   the model's log-odds by how far it was off on them), and a stop signal, read off the same
   calibrated rates, when the next batch is expected to fix fewer than ``stop_min_yield`` wrong
   labels per human label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import comb
from typing import Literal

import numpy as np

from rlthf_backend.core.curation.estimate import (
    MODEL_RATE_LABELS,
    WrongEstimate,
    calibrated_p_wrong,
    stratified_wrong_estimate,
)
from rlthf_backend.core.curation.hardness import (
    FEATURES,
    PRIOR_WEIGHTS,
    WrongLabelModel,
    evidence_features,
    fit_wrong_label_model,
    length_log_ratio,
    out_of_fold_p_wrong,
    pool_prior_intercepts,
)
from rlthf_backend.core.curation.plan import RoundPlan, assign_human_batch, empty_plan
from rlthf_backend.core.curation.scoring import RewardModelFactory, cross_fitted_margins
from rlthf_backend.core.curation.state import HUMAN_TIE, CurationState

SuspectPolicy = Literal["drop", "flip", "keep", "ask"]
AuditScope = Literal["flip_candidates", "pool"]


@dataclass(frozen=True)
class FusedConfig:
    """Knobs of the fused strategy (each documented once, in its ``help``)."""

    audit_fraction: float = field(default=0.05, metadata={"help": (
        "Share of each human batch drawn uniformly at random (the audit slice, in expectation), until "
        "audit_enough audited answers exist; then one pair per round. Each audit is a random pair, about as "
        "often wrong as the pool, where a targeted pair is far more often wrong: audits buy unbiased "
        "estimates at the price of fixes.")})
    audit_scope: AuditScope = field(default="pool", metadata={"help": (
        "Where audits are drawn: 'pool' (every unlabelled pair: an unbiased sample of all that is exported "
        "unchecked, which calibrates the estimate of wrong labels left and the stop signal) or 'flip_candidates' "
        "(unlabelled pairs with P(wrong) > 1/2, the region a flip needs audited evidence for: more flips "
        "confirmed, no audit while it is empty, and an estimate resting on the hardness model alone).")})
    audit_enough: int = field(default=40, metadata={"help": (
        "Audited answers after which the audit slice shrinks to one pair per round (about a +-0.12 interval "
        "on a 20% error rate).")})
    n_folds: int = field(default=5, metadata={"help": (
        "Cross-fitting folds: each pair is scored by a reward model trained on the other folds.")})
    use_length_ratio: bool = field(default=True, metadata={"help": (
        "Offer the judge-verbosity signal (length ratio of the chosen response) to the hardness model.")})
    human_weight: float = field(default=3.0, metadata={"help": (
        "Weight of a human label relative to an LLM label in reward-model training (a label wrong with "
        "probability e carries (1 - 2e)^2 of a clean one's information; e ~ 0.2 gives ~2.8).")})
    prior_error_rate: float = field(default=0.2, metadata={"help": (
        "Prior LLM error rate over the pool: before any human label the hardness model's P(wrong) averages this "
        "over the pool's pairs.")})
    prior_weights: dict[str, float] = field(default_factory=lambda: dict(PRIOR_WEIGHTS), metadata={"help": (
        "Prior log-odds weights of the evidence features (see core/curation/hardness.py PRIOR_WEIGHTS).")})
    prior_sd: float = field(default=1.0, metadata={"help": (
        "Prior standard deviation of every hardness coefficient (smaller: trust the prior longer).")})
    drop_threshold: float = field(default=1.0 / 3.0, metadata={"help": (
        "Unchecked pairs with estimated P(LLM wrong) at least this are suspects (at odds of 1:2 a label "
        "carries at most 1/9 of a clean label's information).")})
    suspect_policy: SuspectPolicy = field(default="drop", metadata={"help": (
        "What happens to suspects and unconfirmed flip candidates: drop (left out of export and RM "
        "training), flip, keep, or ask (left out until a person answers).")})
    max_drop_fraction: float = field(default=0.2, metadata={"help": (
        "Never drop more than this share of the pool (most suspect first).")})
    flip_confidence: float = field(default=0.95, metadata={"help": (
        "Posterior probability that a flip region's audited error rate exceeds 50% needed to flip it.")})
    min_audit_for_flip: int = field(default=8, metadata={"help": (
        "Audited pairs a flip region needs before it may be flipped.")})
    stop_min_yield: float = field(default=0.25, metadata={"help": (
        "Stop signal when the next batch is expected to fix fewer wrong labels per human label.")})


def beta_tail_above_half(wrong: int, total: int) -> float:
    """P(theta > 0.5 | wrong of total) under a Beta(1, 1) prior (exact, via the binomial sum:
    for integer parameters, P(Beta(a, b) > 1/2) = P(Binomial(a + b - 1, 1/2) < a))."""
    a, b = wrong + 1, total - wrong + 1
    m = a + b - 1
    return float(sum(comb(m, k) for k in range(a)) / 2**m)


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion k/n ((nan, nan) for n == 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return float(centre - half), float(centre + half)


REGIONS = ("trusted", "suspect", "flip_candidate")


def region_of(p_wrong: np.ndarray, drop_threshold: float) -> np.ndarray:
    """Region name per pair: ``flip_candidate`` if p > 0.5, ``suspect`` if p >= drop_threshold,
    else ``trusted``."""
    p = np.asarray(p_wrong, float)
    return np.where(p > 0.5, "flip_candidate", np.where(p >= drop_threshold, "suspect", "trusted")).astype(object)


def fused_training_weights(state: CurationState, config: FusedConfig) -> np.ndarray:
    """RM weights: ``human_weight`` for human labels, 0 for human ties and pairs the previous
    round left out, 1 otherwise."""
    w = np.where(state.rm_excluded, 0.0, 1.0)
    w[state.human_decisive] = config.human_weight
    w[state.human == HUMAN_TIE] = 0.0
    return w


def audit_size(config: FusedConfig, batch: int, audited_so_far: int, rng: np.random.Generator) -> int:
    """Pairs of a batch of ``batch`` drawn at random (see :class:`FusedConfig`): in expectation
    ``audit_fraction`` of the batch (a fractional count rounds up with the probability of its
    fraction, so small batches still audit the configured share on average), one pair once
    ``audit_enough`` audited answers exist."""
    if config.audit_fraction <= 0 or batch < 2:
        return 0
    expected = 1.0 if audited_so_far >= config.audit_enough else config.audit_fraction * batch
    return min(batch, round_at_random(expected, rng))


def round_at_random(expected: float, rng: np.random.Generator) -> int:
    """``expected`` as a whole count that is right on average: its fraction rounds up with the
    probability of that fraction (one draw from ``rng``)."""
    whole = int(np.floor(expected))
    return whole + int(rng.random() < expected - whole)


def _interleave(targeted: np.ndarray, audit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One ranking with the audit pairs spread evenly among the targeted ones."""
    n = len(targeted) + len(audit)
    slots = np.zeros(n, bool)
    if len(audit):
        slots[np.linspace(0, n - 1, len(audit) + 2)[1:-1].round().astype(int)] = True
        # linspace may collide for dense audits: fix the count exactly
        extra = len(audit) - slots.sum()
        if extra > 0:
            slots[np.flatnonzero(~slots)[-extra:]] = True
    order = np.empty(n, dtype=int)
    order[slots] = audit
    order[~slots] = targeted
    return order, slots


@dataclass
class _HardnessFit:
    """Steps 1-2 of a fused round: the cross-fitted RM evidence and P(LLM label wrong) per pair.

    ``weights``: the RM training weights of this round (:func:`fused_training_weights`).
    ``margins``: cross-fitted RM margin in favour of response a; ``llm_margin`` the same in
    favour of the LLM's label; ``spread`` the scoring ensemble's spread. ``x``: the evidence
    features (:func:`~rlthf_backend.core.curation.hardness.evidence_features`). ``known``: 1.0
    where a person found the LLM label wrong, 0.0 where right, NaN without a human answer
    (``has_label`` marks the finite ones). ``model``: the fitted hardness model; ``p_wrong`` its
    in-sample P(LLM label wrong), ``ranking_score`` the order of the targeted batch
    (:meth:`~.hardness.WrongLabelModel.ranking_score`). ``prior_intercepts``: the hardness prior's
    intercepts for this pool (:func:`~.hardness.pool_prior_intercepts`), shared by the out-of-fold
    fits. ``audited``: audited pairs with a human answer, ``audit_wrong`` of the ``audit_total``
    found the LLM wrong.
    """

    weights: np.ndarray
    margins: np.ndarray
    llm_margin: np.ndarray
    spread: np.ndarray
    x: np.ndarray
    known: np.ndarray
    has_label: np.ndarray
    model: WrongLabelModel
    p_wrong: np.ndarray
    ranking_score: np.ndarray
    prior_intercepts: dict[str, float]
    audited: np.ndarray
    audit_wrong: int
    audit_total: int


def _fit_hardness(state: CurationState, rm_factory: RewardModelFactory, cfg: FusedConfig, seed: int) -> _HardnessFit:
    """Steps 1-2: cross-fitted RM margins on the current labels, then the hardness model fitted
    on every pair a person has answered and its P(LLM label wrong) for every pair."""
    r = state.round_index
    ev = state.evidence
    weights = fused_training_weights(state, cfg)
    margins, spread = cross_fitted_margins(
        rm_factory, state.pairs, state.working_a_preferred, weights, cfg.n_folds, seed=seed * 1_000_003 + 7919 * r
    )
    llm_margin = np.where(ev.llm_a_preferred, margins, -margins)
    length = length_log_ratio(state.pairs) if cfg.use_length_ratio else None
    x = evidence_features(llm_margin, spread, ev, length)
    known = state.llm_wrong_where_known()
    has_label = np.isfinite(known)
    intercepts = pool_prior_intercepts(x, cfg.prior_error_rate, cfg.prior_weights, cfg.prior_sd)
    model = fit_wrong_label_model(x[has_label], known[has_label], cfg.prior_error_rate, cfg.prior_weights, cfg.prior_sd,
                                  prior_intercepts=intercepts)
    audited = state.audited & has_label
    return _HardnessFit(weights, margins, llm_margin, spread, x, known, has_label, model, model.predict(x),
                        model.ranking_score(x), intercepts, audited, int(known[audited].sum()), int(audited.sum()))


def _choose_human_batch(
    cand: np.ndarray, p_wrong: np.ndarray, ranking_score: np.ndarray, batch: int, audited_so_far: int,
    cfg: FusedConfig, rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """Step 3: the ranked human batch of ``batch`` pairs out of the unlabelled ``cand``, and its
    audit mask: a random audit slice (:func:`audit_size`, drawn from ``cfg.audit_scope``, whose
    "flip_candidates" are the pairs with ``p_wrong`` > 1/2) spread among the remaining candidates
    with the highest ``ranking_score``. Draws from ``rng`` in a fixed order: the audit size,
    the audit pairs, then the tie-breaking shuffle."""
    audit_pool = cand if cfg.audit_scope == "pool" else cand[p_wrong[cand] > 0.5]
    n_audit = min(audit_size(cfg, batch, audited_so_far, rng), len(audit_pool))
    audit = rng.choice(audit_pool, size=n_audit, replace=False) if n_audit else np.zeros(0, int)
    rest = np.setdiff1d(cand, audit)
    # hardest first; ties broken by a seeded shuffle, not file order
    shuffled = rest[rng.permutation(len(rest))]
    targeted = shuffled[np.argsort(-ranking_score[shuffled], kind="stable")][: batch - n_audit]
    return _interleave(targeted, audit)


@dataclass
class _Regions:
    """Step 4's audit: the unchecked pairs of each of :data:`REGIONS` (``members``), per region
    the audited pairs placed in it and their error rate (``stats``, as in ``summary["regions"]``),
    and whether the audit confirms the flip region (``flip_confirmed``)."""

    members: dict[str, np.ndarray]
    stats: dict[str, dict]
    flip_confirmed: bool
    placed: np.ndarray


def placed_p_wrong(fit: _HardnessFit, cfg: FusedConfig, seed: int, round_index: int) -> np.ndarray:
    """P(wrong) per pair, out of fold for the labelled ones: where an unlabelled pair with the same
    evidence would land, so the hardness model never grades its own training data."""
    p = fit.p_wrong.copy()
    if fit.has_label.any():
        p[fit.has_label] = out_of_fold_p_wrong(fit.x[fit.has_label], fit.known[fit.has_label], cfg.n_folds,
                                               seed * 31 + round_index, cfg.prior_error_rate, cfg.prior_weights,
                                               cfg.prior_sd, prior_intercepts=fit.prior_intercepts)
    return p


def _audit_regions(fit: _HardnessFit, unchecked: np.ndarray, cfg: FusedConfig, seed: int, round_index: int) -> _Regions:
    """Step 4, the audit per region: ``unchecked`` split by P(wrong); the audited pairs placed by
    out-of-fold P(wrong) (so the hardness model never grades its own training data), with each
    region's error rate, its Wilson interval and the posterior probability that it exceeds 1/2.
    The flip region is confirmed with ``min_audit_for_flip`` audits and ``flip_confidence``."""
    region = region_of(fit.p_wrong, cfg.drop_threshold)
    members = {name: unchecked[region[unchecked] == name] for name in REGIONS}
    p_placed = placed_p_wrong(fit, cfg, seed, round_index)
    region_placed = region_of(p_placed, cfg.drop_threshold)
    stats = {}
    for name in REGIONS:
        in_region = fit.audited & (region_placed == name)
        if name == "flip_candidate" and len(members[name]):
            # only audits as mild as the pairs a flip would touch now: earlier audits of the hardest
            # pairs say little about the milder ones the targeted batches left behind
            in_region &= p_placed <= fit.p_wrong[members[name]].max()
        k, m = int(fit.known[in_region].sum()), int(in_region.sum())
        stats[name] = {
            "pairs": len(members[name]),
            "audited": m,
            "audited_wrong": k,
            "audited_error_rate": k / m if m else float("nan"),
            "audited_error_ci95": wilson_interval(k, m),
            "mean_p_wrong": float(fit.p_wrong[members[name]].mean()) if len(members[name]) else float("nan"),
            "p_error_above_half": beta_tail_above_half(k, m),
        }
    fc = stats["flip_candidate"]
    flip_confirmed = fc["audited"] >= cfg.min_audit_for_flip and fc["p_error_above_half"] >= cfg.flip_confidence
    return _Regions(members, stats, flip_confirmed, p_placed)


def _apply_regions(
    plan: RoundPlan, regions: _Regions, p_wrong: np.ndarray, cfg: FusedConfig
) -> tuple[np.ndarray, list[int]]:
    """Step 4, the decisions: trusted pairs kept, the flip region flipped if the audit confirmed
    it, suspects (and an unconfirmed flip region) handled by ``cfg.suspect_policy``, at most
    ``max_drop_fraction`` of the pool dropped, most suspect first. Sets ``plan.status``; returns
    the per-pair flip mask and the ask queue."""
    n = len(plan.status)
    members, flip_confirmed = regions.members, regions.flip_confirmed
    flip = members["flip_candidate"] if flip_confirmed else np.zeros(0, int)
    suspects = np.concatenate([members["suspect"], np.zeros(0, int) if flip_confirmed else members["flip_candidate"]])
    suspects = suspects[np.argsort(-p_wrong[suspects], kind="stable")]
    plan.status[members["trusted"]] = "keep"
    flipped = np.zeros(n, bool)
    flipped[flip] = True
    plan.status[flip] = "flip"
    policy = cfg.suspect_policy
    ask_queue: list[int] = []
    if policy == "flip":
        flipped[suspects] = True
        plan.status[suspects] = "flip"
    elif policy == "keep":
        plan.status[suspects] = "keep"
    else:
        cap = int(np.floor(cfg.max_drop_fraction * n))
        dropped, kept = suspects[:cap], suspects[cap:]
        plan.status[dropped] = "drop"
        plan.status[kept] = "keep"
        if policy == "ask":
            ask_queue = dropped.tolist()
        plan.note("suspects", {"policy": policy, "drop_threshold": cfg.drop_threshold, "cap": cap},
                  {"dropped": len(dropped), "kept_over_cap": len(kept)})
    return flipped, ask_queue


def _set_labels_and_weights(plan: RoundPlan, state: CurationState, flipped: np.ndarray, cfg: FusedConfig) -> None:
    """The exported labels (human answers, else the LLM label with ``flipped`` applied) and the
    next round's RM weights (0 for dropped pairs and human ties, ``human_weight`` for answers)."""
    plan.flipped = flipped
    plan.label_a_preferred = np.where(state.human_decisive, state.working_a_preferred,
                                      state.evidence.llm_a_preferred ^ flipped)
    plan.rm_excluded = (plan.status == "drop") | (state.human == HUMAN_TIE)
    plan.train_weight = np.where(plan.rm_excluded, 0.0, 1.0)
    plan.train_weight[state.human_decisive] = cfg.human_weight


def _summarise_round(
    plan: RoundPlan, state: CurationState, fit: _HardnessFit, regions: _Regions, remaining: np.ndarray, batch: int,
    ask_queue: list[int], cfg: FusedConfig,
) -> None:
    """Step 5: ``plan.summary`` (wrong labels expected in the export, by the model and by the
    audit; the yield expected of the next batch of ``batch`` pairs, from the ``remaining``
    unlabelled ones) and the stop signal."""
    p_wrong = fit.p_wrong
    # the pending batch is exported with its current labels until people answer it, as the export has it
    exported_unchecked = np.flatnonzero(plan.in_export & ~state.labelled)
    p_export_wrong = np.where(plan.flipped, 1 - p_wrong, p_wrong)
    estimate, est = _wrong_left(plan, fit, regions, exported_unchecked, cfg, state.round_index)
    # the stop signal reads the same audit-calibrated rates as the estimate
    next_batch = np.sort(calibrated_p_wrong(p_wrong[remaining], est))[::-1][: max(batch, 1)]
    expected_yield = float(next_batch.mean()) if len(next_batch) else 0.0
    plan.summary = {
        "hardness_model": fit.model.as_dict(),
        "expected_wrong_in_export": estimate,
        "regions": regions.stats,
        "flip_confirmed": bool(regions.flip_confirmed),
        "audited_pairs": fit.audit_total,
        "audited_error_rate": fit.audit_wrong / fit.audit_total if fit.audit_total else float("nan"),
        "audited_error_ci95": wilson_interval(fit.audit_wrong, fit.audit_total),
        "expected_wrong_in_export_model": float(p_export_wrong[exported_unchecked].sum()),
        "expected_wrong_in_export_audit": _audit_based_wrong(regions.stats, plan, regions.members),
        "expected_yield_next_batch": expected_yield,
        "ask_queue": ask_queue,
        "features": list(FEATURES),
    }
    if state.labelled.all():
        plan.stop, plan.stop_reason = True, "every pair has a human label"
    elif expected_yield < cfg.stop_min_yield:
        plan.stop = True
        plan.stop_reason = (f"next batch expected to fix {expected_yield:.2f} wrong labels per human label "
                            f"(< stop_min_yield {cfg.stop_min_yield})")


def plan_fused_round(
    state: CurationState,
    rm_factory: RewardModelFactory,
    config: FusedConfig | None = None,
    human_batch_size: int = 0,
    seed: int = 0,
) -> RoundPlan:
    """One round of the fused strategy (see the module docstring).

    ``human_batch_size`` 0 gives an export-only round. Deterministic for a given ``seed`` and state.
    """
    cfg = config or FusedConfig()
    r = state.round_index
    fit = _fit_hardness(state, rm_factory, cfg, seed)
    plan = empty_plan("fused", state)
    plan.scores.update({"margin": fit.margins, "llm_margin": fit.llm_margin, "spread": fit.spread,
                        "p_wrong": fit.p_wrong, "ranking_score": fit.ranking_score})
    plan.note("fit", {"round": r, "n_folds": cfg.n_folds, "human_weight": cfg.human_weight,
                      "n_trained": int(np.sum(fit.weights > 0)), "n_human": int(state.human_decisive.sum())},
              {"hardness_model": fit.model.as_dict(), "audited": fit.audit_total, "audited_wrong": fit.audit_wrong})

    cand = np.flatnonzero(~state.labelled)
    b = max(0, min(int(human_batch_size), len(cand)))
    rng = np.random.default_rng([seed, r, 1])  # the batch's own stream: the RM folds use other seeds
    order, is_audit = _choose_human_batch(cand, fit.p_wrong, fit.ranking_score, b, fit.audit_total, cfg, rng)
    assign_human_batch(plan, order, is_audit)

    unchecked = np.setdiff1d(cand, order)
    regions = _audit_regions(fit, unchecked, cfg, seed, r)
    fc = regions.stats["flip_candidate"]
    plan.note("flip region", {"audited": fc["audited"], "audited_wrong": fc["audited_wrong"],
                              "flip_confidence": cfg.flip_confidence, "min_audit_for_flip": cfg.min_audit_for_flip},
              {"flip": bool(regions.flip_confirmed), "pairs": len(regions.members["flip_candidate"])})
    flipped, ask_queue = _apply_regions(plan, regions, fit.p_wrong, cfg)
    _set_labels_and_weights(plan, state, flipped, cfg)
    # the yield of the next batch is read off the pairs this batch left unchecked
    _summarise_round(plan, state, fit, regions, unchecked, b, ask_queue, cfg)
    return plan


def _wrong_left(plan: RoundPlan, fit: _HardnessFit, regions: _Regions, exported_unchecked: np.ndarray,
                cfg: FusedConfig, round_index: int) -> tuple[dict, WrongEstimate]:
    """Wrong labels expected among the exported pairs without a human answer (the pending batch
    included: it is exported with its current labels until answered), with a 90% interval
    and what it rests on (:func:`~.estimate.stratified_wrong_estimate`), as the summary's record
    and as the estimate itself (whose strata calibrate the stop signal). Audits drawn from the
    whole pool (``audit_scope`` "pool") are a uniform sample of what is exported and calibrate the
    model; flip-candidate audits are not (they sample only the region a flip would touch), so
    with them the estimate is the hardness model's alone, its interval as wide as a model
    rate worth :data:`~.estimate.MODEL_RATE_LABELS` labels allows."""
    audited = np.flatnonzero(fit.audited) if cfg.audit_scope == "pool" else np.zeros(0, int)
    est = stratified_wrong_estimate(
        fit.p_wrong[exported_unchecked], plan.flipped[exported_unchecked], regions.placed[audited], fit.known[audited],
        np.full(len(audited), np.nan), prior_strength=MODEL_RATE_LABELS, seed=round_index)
    basis = (f"hardness model calibrated by {len(audited)} audits drawn at random from the pool" if len(audited)
             else "hardness model alone (no audit samples the exported pairs)")
    return {"mean": est.mean, "low": est.low, "high": est.high, "level": est.level, "audits": int(len(audited)),
            "basis": basis}, est


def _audit_based_wrong(region_stats: dict, plan: RoundPlan, regions: dict) -> float:
    """Audit-based estimate of wrong labels among the regions' exported pairs (the pending batch
    aside): each region's exported count times its audited error rate (1 - rate for flipped
    pairs); NaN if a region with exported pairs has no audit yet."""
    total = 0.0
    for name, idx in regions.items():
        if len(idx) == 0:
            continue
        rate = region_stats[name]["audited_error_rate"]
        kept = int(np.sum(plan.status[idx] == "keep"))
        flipped = int(np.sum(plan.status[idx] == "flip"))
        if kept + flipped == 0:
            continue
        if not np.isfinite(rate):
            return float("nan")
        total += kept * rate + flipped * (1 - rate)
    return total
