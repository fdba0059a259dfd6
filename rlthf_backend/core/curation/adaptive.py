"""The adaptive strategy: each project learns, from its own answers, which evidence ranks its LLM
mistakes best, and a few audits drawn with known probabilities say how many wrong labels are left.

One round:

1. **Evidence** as in :mod:`.fused`: cross-fitted RM margins and the hardness model P(LLM label
   wrong | evidence) fitted on every answer so far.
2. **Grade the last round's probes.** The candidate rankings (:data:`RANKINGS`: the hardness
   model, the RM margin as ``paper`` uses it, the order swap, the judge's own doubt, the panel)
   probed last round had their top ``probe`` pairs in the batch, so how many of them people found
   wrong is known exactly (:func:`settle_ledger`).
3. **Choose the ranking that fills the batch.** The hardness ranking (the incumbent, which
   already weighs every signal by how well it predicted this project's answers) unless another
   ranking's probes beat it, round by round, by ``switch_z`` standard errors
   (:func:`choose_ranking`, :func:`paired_advantage`). The targeted part of the batch is the
   probes (asked first) of the chosen ranking, of hardness and of one other ranking drawn by
   Thompson sampling (:func:`challenger_to_probe`), filled up from the chosen ranking's top. Ties
   within a discrete signal (swap, panel) are broken by hardness.
4. **Audits** (``audit_fraction`` of the batch): a systematic PPS sample of the other unlabelled
   pairs with size ``max(P(wrong), audit_floor x mean P(wrong))`` (:func:`draw_audits`): each audit
   is a likely fix and, weighted by ``1 / pi``, an unbiased sample of what is left. The
   inclusion probabilities are kept in the ledger.
5. **Regions, flips and drops** as in :mod:`.fused`, but the flip region's audited error rate is
   the Hajek (1/pi-weighted) rate at its Kish effective count, over the audits no more suspect
   than the region's current pairs, so flips need audited evidence that pairs like them are
   mostly wrong.
6. **Wrong labels left in the export**, with a ``interval_level`` interval
   (:func:`~.estimate.stratified_wrong_estimate`: the audits post-stratified by out-of-fold
   P(wrong), each stratum's rate calibrating the model), over every exported pair without a human
   answer (the pending batch included). The stop signal reads the same calibrated rates: stop when
   the next batch is expected to fix fewer than ``fused.stop_min_yield`` wrong labels per label.

The ledger (``RoundPlan.ledger`` -> ``CurationState.ledger``) refers to pairs by pool index; a
deployment stores it by task id (:func:`remap_ledger`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from math import erf
from typing import Any

import numpy as np

from rlthf_backend.core.curation.estimate import (
    MODEL_RATE_LABELS,
    WrongEstimate,
    beta_tail_above_half,
    calibrated_p_wrong,
    hajek_rate,
    kish_effective_n,
    pps_inclusion_probabilities,
    stratified_wrong_estimate,
    systematic_pps_sample,
)
from rlthf_backend.core.curation.fused import (
    REGIONS,
    FusedConfig,
    _apply_regions,
    _fit_hardness,
    _HardnessFit,
    _interleave,
    _Regions,
    _set_labels_and_weights,
    placed_p_wrong,
    round_at_random,
    region_of,
    wilson_interval,
)
from rlthf_backend.core.curation.hardness import FEATURES
from rlthf_backend.core.curation.plan import RoundPlan, assign_human_batch, empty_plan
from rlthf_backend.core.curation.scoring import RewardModelFactory
from rlthf_backend.core.curation.state import CurationState

#: Candidate rankings of the unlabelled pairs by "LLM label likely wrong" (larger first):
#: ``hardness`` the fused model's P(wrong); ``rm`` minus the cross-fitted RM margin in favour of
#: the LLM label (the paper's evidence, without its memorisation); ``swap`` order-swap
#: disagreements first; ``judge`` the judge's doubt in its own label; ``panel`` the share of the
#: other panel judges against the label. A ranking whose signal is constant over the candidates
#: (a one-order judge has no swap, a single judge no panel) is not offered that round.
RANKINGS = ("hardness", "rm", "swap", "judge", "panel")


@dataclass(frozen=True)
class AdaptiveConfig:
    """Knobs of the adaptive strategy (each documented once, in its ``help``); the evidence,
    regions, flip and stop knobs it shares with the fused strategy come from ``fused``."""

    audit_fraction: float = field(default=0.05, metadata={"help": (
        "Share of every human batch drawn as audits: probability proportional to P(LLM wrong) (floored), "
        "with the probabilities kept, so each audit is a likely fix and an unbiased sample of what is left; "
        "they estimate the wrong labels left in the export and confirm flips.")})
    audit_floor: float = field(default=1.0, metadata={"help": (
        "Smallest audit size measure, as a share of the mean P(LLM wrong) of the pairs audits are drawn from: "
        "every pair keeps a chance of at least this share of an average pair's (1: pairs below the mean are "
        "drawn uniformly, where most of the export and most of its wrong labels are; the 1/pi weights then "
        "vary only as far as P(wrong) rises above its mean).")})
    probe_fraction: float = field(default=0.05, metadata={"help": (
        "Share of the targeted batch given to a ranking's own top pairs (at least one pair): its probe, graded "
        "exactly by the answers. Every round probes the chosen ranking, hardness and one other (drawn by "
        "Thompson sampling): how the project learns which evidence ranks its LLM mistakes best.")})
    switch_z: float = field(default=1.0, metadata={"help": (
        "Standard errors by which another ranking's probes must beat the hardness model's, round by round, "
        "before that ranking fills the targeted batch.")})
    rankings: tuple[str, ...] = field(default=RANKINGS, metadata={"help": (
        "Candidate rankings of the LLM's likely mistakes: hardness, rm, swap, judge, panel "
        "(core/curation/adaptive.py RANKINGS).")})
    interval_level: float = field(default=0.9, metadata={"help": (
        "Coverage of the interval on the wrong labels left in the export.")})
    audits_per_stratum: int = field(default=10, metadata={"help": (
        "Audited pairs per P(wrong) stratum of the wrong-label estimate (fewer audits: fewer strata).")})
    max_strata: int = field(default=4, metadata={"help": (
        "Most P(wrong) strata of the wrong-label estimate.")})
    prior_strength: float = field(default=MODEL_RATE_LABELS, metadata={"help": (
        "Pseudo-labels of the hardness model's own rate in each stratum of the wrong-label estimate: the "
        "audits outweigh the model once a stratum holds more than this many effective audits (with fewer, a "
        "single heavily weighted answer would swing the estimate from nothing to several times the truth).")})
    fused: FusedConfig = field(default_factory=FusedConfig, metadata={"help": (
        "The fused strategy's knobs used for the evidence, regions, flips, drops and the stop signal.")})

    def __post_init__(self) -> None:
        unknown = set(self.rankings) - set(RANKINGS)
        if unknown or "hardness" not in self.rankings:
            raise ValueError(f"rankings must include 'hardness' and name only {RANKINGS}; got {self.rankings}")


# --- the ledger ---------------------------------------------------------------------------------

def _pair_dict(d: Mapping | None) -> dict[int, float]:
    return {int(k): float(v) for k, v in (d or {}).items()}


def settle_ledger(ledger: Mapping[str, Any] | None, wrong: np.ndarray) -> dict[str, Any]:
    """The ledger with the last round's probes graded.

    ``wrong``: per pair 1.0 where a person contradicted the LLM label, 0.0 where they agreed, NaN
    without a decisive answer. The pending entry names, per ranking, its probe: its top pairs of
    that round, every one of them in the batch, so each is graded exactly (no sampling weight).
    Per ranking the round adds ``[wrong found, probes answered]`` to ``graded`` (one dict per
    round, so rankings can be compared on the same rounds) and to its running ``found`` /
    ``asked``. The audits' inclusion probabilities move from the pending entry to ``audit_pi``.
    Returns a new dict (the input is not changed)."""
    ledger = dict(ledger or {})
    audit_pi = _pair_dict(ledger.get("audit_pi"))
    rankings = {k: dict(v) for k, v in (ledger.get("rankings") or {}).items()}
    graded = [dict(g) for g in ledger.get("graded") or []]
    pending = ledger.get("pending")
    if pending:
        y = np.asarray(wrong, float)
        this_round = {}
        for name, probe in (pending.get("probes") or {}).items():
            answers = y[[int(i) for i in probe]] if len(probe) else np.zeros(0)
            answers = answers[np.isfinite(answers)]
            found, asked = int(answers.sum()), int(len(answers))
            if asked == 0:
                continue
            this_round[name] = [found, asked]
            rec = rankings.setdefault(name, {"found": 0, "asked": 0, "rounds": 0})
            rec["found"] += found
            rec["asked"] += asked
            rec["rounds"] += 1
        if this_round:
            graded.append(this_round)
        audit_pi.update(_pair_dict(pending.get("audit_pi")))
    return {"audit_pi": audit_pi, "rankings": rankings, "graded": graded, "pending": None,
            "chosen": list(ledger.get("chosen") or [])}


def paired_advantage(graded: list[Mapping[str, list]], challenger: str, incumbent: str,
                     prior_variance: float = 0.25) -> tuple[float, float, int]:
    """How much more often ``challenger``'s probes found a wrong label than ``incumbent``'s, over
    the rounds both were graded: (mean per-round difference of their hit rates, its standard
    error, rounds). Pairs in both probes count for both, so they cancel: the comparison rests on
    where the rankings differ. The variance carries ``prior_variance`` as one pseudo-round (a
    quarter: a single hit rate's variance at one half), so two lucky rounds never read as
    certainty."""
    d = np.array([g[challenger][0] / g[challenger][1] - g[incumbent][0] / g[incumbent][1]
                  for g in graded if challenger in g and incumbent in g])
    if len(d) == 0:
        return 0.0, float("inf"), 0
    var = (float(np.sum((d - d.mean()) ** 2)) + prior_variance) / len(d)
    return float(d.mean()), float(np.sqrt(var / len(d))), len(d)


def choose_ranking(ledger: Mapping[str, Any], offered: tuple[str, ...], switch_z: float,
                   min_rounds: int = 2) -> tuple[str, dict[str, Any]]:
    """The ranking to fill the targeted batch: the offered one whose probes beat ``hardness``'s
    (the incumbent, which already weighs every signal by how well it predicted this project's
    answers) by the largest paired margin, if that margin exceeds ``switch_z`` standard errors
    over at least ``min_rounds`` shared rounds (:func:`paired_advantage`); else ``hardness``.
    Returns the name and the figures behind the choice, with per ranking ``p_better``: the normal
    approximation of P(it beats hardness)."""
    graded = ledger.get("graded") or []
    rankings = ledger.get("rankings") or {}
    yields = {name: {"yield": rec["found"] / rec["asked"], "found": rec["found"], "asked": rec["asked"],
                     "rounds": rec.get("rounds", 0)}
              for name, rec in rankings.items() if name in offered and rec.get("asked", 0) > 0}
    best, best_margin, why = "hardness", 0.0, "no ranking graded above hardness yet"
    for name in offered:
        if name == "hardness":
            continue
        mean, se, rounds = paired_advantage(graded, name, "hardness")
        entry = yields.setdefault(name, {"yield": float("nan"), "found": 0, "asked": 0, "rounds": 0})
        entry.update(advantage=mean, se=se, shared_rounds=rounds,
                     p_better=0.5 if not np.isfinite(se) else float(0.5 * (1 + erf(mean / se / np.sqrt(2)))))
        if rounds >= min_rounds and mean > switch_z * se and mean > best_margin:
            best, best_margin = name, mean
            why = f"{name} found {mean:+.3f} more wrong labels per probe than hardness (> {switch_z:g} x se {se:.3f})"
    return best, {"yields": yields, "reason": why}


def challenger_to_probe(why: Mapping[str, Any], offered: tuple[str, ...], chosen: str,
                        rng: np.random.Generator) -> str | None:
    """The one other ranking probed this round beside the chosen one and hardness: the offered
    ranking with the largest draw from N(advantage over hardness, se) (Thompson sampling; an
    ungraded ranking draws from N(0, 1)), so the promising ones are probed often and the beaten ones
    rarely but still now and then, and a round costs at most one probe of a likely worse ranking."""
    others = [name for name in offered if name not in (chosen, "hardness")]
    if not others:
        return None
    draws = {}
    for name in others:
        info = why["yields"].get(name, {})
        se = info.get("se", float("inf"))
        draws[name] = rng.normal(info.get("advantage", 0.0), se if np.isfinite(se) else 1.0)
    return max(draws, key=draws.get)


def remap_ledger(ledger: Mapping[str, Any] | None, mapping: Mapping[int, int]) -> dict[str, Any]:
    """The ledger with every pair reference passed through ``mapping`` (pool index -> task id to
    store it, task id -> pool index to read it back); pairs ``mapping`` lacks are left out."""
    if not ledger:
        return {}

    def ids(seq):
        return [mapping[int(i)] for i in seq if int(i) in mapping]

    def pis(d):
        return {mapping[int(i)]: float(v) for i, v in (d or {}).items() if int(i) in mapping}

    out = {"audit_pi": pis(ledger.get("audit_pi")), "rankings": ledger.get("rankings") or {},
           "graded": list(ledger.get("graded") or []), "chosen": list(ledger.get("chosen") or []), "pending": None}
    pending = ledger.get("pending")
    if pending:
        out["pending"] = {"audit_pi": pis(pending.get("audit_pi")),
                          "probes": {k: ids(v) for k, v in (pending.get("probes") or {}).items()}}
    return out


# --- rankings and the batch ---------------------------------------------------------------------

def candidate_scores(fit: _HardnessFit, evidence, offered: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Per ranking a per-pair score (larger: more likely wrong). Discrete signals are broken by
    hardness (a small multiple of its ranking score that never reorders distinct signal values)."""
    p = fit.ranking_score
    panel = np.asarray(evidence.panel_disagreement, float)
    prob = np.asarray(evidence.prob, float)
    raw = {
        "hardness": p,
        "rm": -fit.llm_margin,
        "swap": evidence.swap_disagrees.astype(float),
        "judge": np.where(np.isfinite(prob), 1.0 - prob, np.nan),
        "panel": panel,
    }
    out = {}
    for name in offered:
        s = raw[name]
        if name == "judge":  # an unknown probability ranks with the median doubt
            known = np.isfinite(s)
            if known.sum() < 2:
                continue
            s = np.where(known, s, np.median(s[known]))
        if name == "panel":
            if np.isfinite(s).sum() < 2:
                continue
            s = np.nan_to_num(s, nan=0.0)
        if name != "hardness" and np.ptp(s) < 1e-12:
            continue
        if name in ("swap", "panel", "judge"):
            gaps = np.diff(np.unique(s))
            s = s + (gaps.min() if len(gaps) else 1.0) * 0.5 * p
        out[name] = s
    return out


def ranked(score: np.ndarray, cand: np.ndarray, shuffle: np.ndarray) -> np.ndarray:
    """``cand`` by ``score``, largest first, ties in the seeded order ``shuffle``."""
    ordered = cand[shuffle]
    return ordered[np.argsort(-score[ordered], kind="stable")]


def audit_count(fraction: float, batch: int, rng: np.random.Generator) -> int:
    """Audits in a batch of ``batch``: ``fraction * batch`` in expectation (the fraction rounds up
    with its own probability), at least one in a batch of two or more when ``fraction > 0``."""
    if fraction <= 0 or batch < 2:
        return 0
    return int(min(batch, max(1, round_at_random(fraction * batch, rng))))


def probe_size(fraction: float, slots: int, rankings: int) -> int:
    """Pairs of each ranking's top asked every round: ``fraction`` of the ``slots`` for targeted
    pairs, at least one, and no more than lets every one of ``rankings`` have its probe (0 with a
    single ranking, or no room for one pair each)."""
    if rankings < 2 or fraction <= 0:
        return 0
    return min(max(1, int(round(fraction * slots))), slots // rankings)


def targeted_batch(orders: dict[str, np.ndarray], chosen: str, slots: int, probe: int
                   ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The targeted part of a batch: the top ``probe`` pairs of every ranking in ``orders`` (its
    probe, asked first, rankings taking turns, so a person who stops early still grades them),
    filled up to ``slots`` from the ``chosen`` ranking's order. Returns the pairs in asking order
    and each ranking's probe."""
    probes = {name: order[:probe] for name, order in orders.items()}
    names = [chosen, *(n for n in orders if n != chosen)]
    picked: dict[int, None] = {}
    for k in range(probe):
        for name in names:
            if k < len(probes[name]):
                picked.setdefault(int(probes[name][k]), None)
    for i in orders[chosen]:
        if len(picked) >= slots:
            break
        picked.setdefault(int(i), None)
    return np.fromiter(picked, int, len(picked)), probes


def draw_audits(rest: np.ndarray, p_wrong: np.ndarray, n_audit: int, floor: float,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_audit`` audits among ``rest`` by systematic PPS with size ``max(p, floor x mean p)``:
    likely-wrong pairs are likely audited and every pair keeps a chance. Returns (audited
    indices, their inclusion probabilities)."""
    if n_audit <= 0 or len(rest) == 0:
        return np.zeros(0, int), np.zeros(0)
    p = np.clip(p_wrong[rest], 1e-6, 1.0)
    size = np.maximum(p, max(floor * p.mean(), 1e-6))
    pi = pps_inclusion_probabilities(size, n_audit)
    picked = systematic_pps_sample(pi, rng)
    return rest[picked], pi[picked]


# --- regions and estimates ----------------------------------------------------------------------

def _weighted_regions(fit: _HardnessFit, unchecked: np.ndarray, audit_pi: dict[int, float], p_placed: np.ndarray,
                      cfg: FusedConfig) -> _Regions:
    """Fused's regions with 1/pi-weighted audit statistics (Hajek rate, Kish effective count)."""
    region = region_of(fit.p_wrong, cfg.drop_threshold)
    members = {name: unchecked[region[unchecked] == name] for name in REGIONS}
    placed = region_of(p_placed, cfg.drop_threshold)
    audited = np.flatnonzero(fit.audited)
    pi_all = np.array([audit_pi.get(int(i), 1.0) for i in audited])
    stats = {}
    for name in REGIONS:
        sel = placed[audited] == name
        if name == "flip_candidate" and len(members[name]):
            # only audits as suspect as the pairs a flip would touch now: earlier rounds' audits of
            # the hardest pairs say little about the milder ones the targeted batches left behind
            top = fit.p_wrong[members[name]].max()
            sel &= p_placed[audited] <= top
        y, pi = fit.known[audited[sel]], pi_all[sel]
        n_eff = kish_effective_n(pi)
        rate = hajek_rate(y, pi)
        k_eff = n_eff * rate if n_eff else 0.0
        stats[name] = {
            "pairs": len(members[name]), "audited": int(sel.sum()), "audited_wrong": int(np.sum(y)),
            "audited_effective": n_eff, "audited_error_rate": rate,
            "audited_error_ci95": wilson_interval(int(round(k_eff)), int(round(n_eff))),
            "mean_p_wrong": float(fit.p_wrong[members[name]].mean()) if len(members[name]) else float("nan"),
            "p_error_above_half": beta_tail_above_half(k_eff, n_eff),
        }
    fc = stats["flip_candidate"]
    confirmed = fc["audited"] >= cfg.min_audit_for_flip and fc["p_error_above_half"] >= cfg.flip_confidence
    return _Regions(members, stats, confirmed, p_placed)


def wrong_left_estimate(plan: RoundPlan, state: CurationState, fit: _HardnessFit, p_placed: np.ndarray,
                        audit_pi: dict[int, float], cfg: AdaptiveConfig, seed: int) -> WrongEstimate:
    """Step 6: :func:`~.estimate.stratified_wrong_estimate` over the exported pairs without a human
    answer (pending batch included) and every audit so far."""
    export = np.flatnonzero(plan.in_export & ~state.labelled)
    audited = np.flatnonzero(fit.audited)
    return stratified_wrong_estimate(
        fit.p_wrong[export], plan.flipped[export], p_placed[audited], fit.known[audited],
        np.array([audit_pi.get(int(i), np.nan) for i in audited]),
        audits_per_stratum=cfg.audits_per_stratum, max_strata=cfg.max_strata, prior_strength=cfg.prior_strength,
        level=cfg.interval_level, seed=seed * 7 + state.round_index,
    )


def plan_adaptive_round(
    state: CurationState,
    rm_factory: RewardModelFactory,
    config: AdaptiveConfig | None = None,
    human_batch_size: int = 0,
    seed: int = 0,
) -> RoundPlan:
    """One round of the adaptive strategy (see the module docstring). ``human_batch_size`` 0 gives
    an export-only round. Deterministic for a given ``seed`` and state."""
    cfg = config or AdaptiveConfig()
    fc = cfg.fused
    r = state.round_index
    fit = _fit_hardness(state, rm_factory, fc, seed)
    ledger = settle_ledger(state.ledger, fit.known)
    audit_pi = ledger["audit_pi"]
    plan = empty_plan("adaptive", state)
    plan.scores.update({"margin": fit.margins, "llm_margin": fit.llm_margin, "spread": fit.spread,
                        "p_wrong": fit.p_wrong, "ranking_score": fit.ranking_score})

    scores = candidate_scores(fit, state.evidence, cfg.rankings)
    chosen, why = choose_ranking(ledger, tuple(scores), cfg.switch_z)
    cand = np.flatnonzero(~state.labelled)
    b = max(0, min(int(human_batch_size), len(cand)))
    rng = np.random.default_rng([seed, r, 5])
    n_audit = audit_count(cfg.audit_fraction, b, rng)
    shuffle = rng.permutation(len(cand))
    challenger = challenger_to_probe(why, tuple(scores), chosen, rng)
    orders = {name: ranked(s, cand, shuffle) for name, s in scores.items()
              if name in (chosen, "hardness", challenger)}
    probe = probe_size(cfg.probe_fraction, b - n_audit, len(orders))
    targeted, probes = targeted_batch(orders, chosen, b - n_audit, probe)
    audit, pi = draw_audits(np.setdiff1d(cand, targeted), fit.p_wrong, n_audit, cfg.audit_floor, rng)
    order, is_audit = _interleave(targeted, audit)
    assign_human_batch(plan, order, is_audit)
    plan.note("batch", {"round": r, "offered": list(scores), "ranking": chosen, "why": why["reason"]},
              {"targeted": len(targeted), "probe_per_ranking": probe, "audits": len(audit)})

    p_placed = placed_p_wrong(fit, fc, seed, r)
    unchecked = np.setdiff1d(cand, order)
    regions = _weighted_regions(fit, unchecked, audit_pi, p_placed, fc)
    flipped, ask_queue = _apply_regions(plan, regions, fit.p_wrong, fc)
    _set_labels_and_weights(plan, state, flipped, fc)
    plan.strategy = "adaptive"

    est = wrong_left_estimate(plan, state, fit, p_placed, audit_pi, cfg, seed)
    cal = calibrated_p_wrong(fit.p_wrong, est)
    batch = plan.human_batch
    expected_yield = float(cal[batch].mean()) if len(batch) else float("nan")
    audited = np.flatnonzero(fit.audited)
    a_pi = np.array([audit_pi.get(int(i), 1.0) for i in audited])
    rate = hajek_rate(fit.known[audited], a_pi)
    n_eff = kish_effective_n(a_pi)
    export_unchecked = plan.in_export & ~state.labelled
    p_export_wrong = np.where(plan.flipped, 1 - fit.p_wrong, fit.p_wrong)
    plan.summary = {
        "hardness_model": fit.model.as_dict(),
        "ranking": {"chosen": chosen, **why, "offered": list(scores)},
        "regions": regions.stats,
        "flip_confirmed": bool(regions.flip_confirmed),
        "audited_pairs": int(len(audited)),
        "audited_error_rate": rate,
        "audited_error_ci95": wilson_interval(int(round(n_eff * rate)) if n_eff else 0, int(round(n_eff))),
        "expected_wrong_in_export_model": float(p_export_wrong[export_unchecked].sum()),
        "expected_wrong_in_export_audit": est.mean,
        "expected_wrong_in_export": {"mean": est.mean, "low": est.low, "high": est.high, "level": est.level,
                                     "audits": int(len(audited)),
                                     "basis": (f"hardness model calibrated by {len(audited)} audits drawn with known "
                                               f"probabilities" if len(audited) else
                                               "hardness model alone (no audits yet)")},
        "wrong_estimate_strata": est.strata,
        "expected_yield_next_batch": expected_yield,
        "ask_queue": ask_queue,
        "features": list(FEATURES),
    }
    if state.labelled.all():
        plan.stop, plan.stop_reason = True, "every pair has a human label"
    elif np.isfinite(expected_yield) and expected_yield < fc.stop_min_yield:
        plan.stop = True
        plan.stop_reason = (f"next batch expected to fix {expected_yield:.2f} wrong labels per human label "
                            f"(audit-calibrated; < stop_min_yield {fc.stop_min_yield})")
    plan.ledger = {**ledger, "chosen": ledger["chosen"] + [chosen],
                   "pending": {"audit_pi": {int(i): float(v) for i, v in zip(audit, pi)},
                               "probes": {k: [int(i) for i in v] for k, v in probes.items()}}}
    return plan
