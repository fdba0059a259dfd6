"""Round-by-round replay of curation with people simulated by the known human labels.

The replay runs the deployment's loop (:mod:`rlthf_backend.core.curation.engine`): the same
engine configuration, round policy and reward model, rounds planned by
:func:`~rlthf_backend.core.curation.engine.plan_next_round`; people answer each round's whole
batch, which is the "human batch done" trigger that starts the next round.

Protocol (identical for every strategy, so differences come from the strategy alone):

- Per seed, a fixed random ``heldout_fraction`` of the pairs is set aside (never curated,
  never shown to people); the rest is the *pool*. Seeds and splits are shared by all strategies.
- For a budget of B% of the pool, rounds run until round(B/100 * pool) human labels are used
  (the last batch cut to what is left); then the round the last answers trigger is planned, as
  a deployment would, and its plan is the export (its new batch not yet answered).
- Metrics of the export (``ReplayOutcome``):
  ``all_pairs_accuracy`` (the headline): share of the *whole pool* whose label matches the human
  label, every pair a strategy left out counted with its LLM label: leaving a pair out fixes
  nothing, so it cannot score;
  ``kept_precision``: the same share over the exported pairs only, with ``kept_fraction``
  saying how many those are;
  ``flipped`` / ``flip_precision``: exported pairs whose label differs from the LLM label
  without a person, and the share of those that match the human label;
  ``heldout_rm_accuracy``: a fresh RM trained on the export (every label weight 1) scored on the
  held-out pairs: share whose margin sign matches the human label.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from rlthf_backend.core.curation.engine import EngineConfig, plan_next_round
from rlthf_backend.core.curation.plan import RoundPlan
from rlthf_backend.core.curation.scoring import RewardModelFactory, fit_reward_model
from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_B, CurationState
from rlthf_backend.core.reward.factory import RewardModelSpec
from rlthf_backend.core.simulate.data import LabelledPool


@dataclass
class ReplayOutcome:
    """Metrics of one (strategy, budget, seed) replay."""

    strategy: str
    budget_percent: float
    seed: int
    pool_size: int
    human_labels: int
    rounds: int
    all_pairs_accuracy: float
    kept_precision: float
    kept_fraction: float
    flipped: int
    flip_precision: float
    wrong_in_export: int
    heldout_rm_accuracy: float = float("nan")
    stop_signal: bool = False
    estimates: dict[str, Any] = field(default_factory=dict)


def split_pool(n: int, heldout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(pool indices, held-out indices): a seeded random split, the same for every strategy."""
    perm = np.random.default_rng([seed, 17]).permutation(n)
    n_held = int(round(heldout_fraction * n))
    return np.sort(perm[n_held:]), np.sort(perm[:n_held])


def run_rounds(
    engine: EngineConfig,
    rm: RewardModelSpec,
    pool: LabelledPool,
    budget_pairs: int,
    shared: dict[str, Any] | None = None,
) -> tuple[CurationState, RoundPlan, int]:
    """Replay the deployment's rounds until ``budget_pairs`` human labels are used, then plan the
    round those answers trigger. Returns (final state, that round's plan = the export, rounds
    answered)."""
    if pool.evidence is None:
        raise ValueError("curation needs LLM labels; this dataset has human labels only")
    state = CurationState.initial(pool.pairs, pool.evidence)
    truth = pool.human_a_preferred
    used = rounds = 0
    while used < budget_pairs:
        batch_size = min(engine.rounds.batch_size(len(pool)), budget_pairs - used)
        plan, _ = plan_next_round(engine, rm, state, truth=truth, batch_size=batch_size, shared=shared)
        batch = plan.human_batch
        if len(batch) == 0:  # the strategy asks nobody (llm_only, or every pair answered)
            break
        rounds += 1
        answers = np.where(truth[batch], HUMAN_A, HUMAN_B)
        state = state.after_plan(plan).with_human_labels(batch, answers, audited=plan.audit[batch])
        used += len(batch)
    final, _ = plan_next_round(engine, rm, state, truth=truth, shared=shared)
    return state, final, rounds


def export_metrics(pool: LabelledPool, state: CurationState, final: RoundPlan) -> dict[str, Any]:
    """Accuracy numbers of an export plan against the human labels (see the module docs)."""
    truth = pool.human_a_preferred
    llm = pool.evidence.llm_a_preferred
    export = final.in_export
    labels = final.label_a_preferred
    correct = labels == truth
    flipped = export & (labels != llm) & ~state.labelled
    all_labels = np.where(export, labels, llm)
    return {
        "all_pairs_accuracy": float((all_labels == truth).mean()),
        "kept_precision": float(correct[export].mean()) if export.any() else float("nan"),
        "kept_fraction": float(export.mean()),
        "flipped": int(flipped.sum()),
        "flip_precision": float(correct[flipped].mean()) if flipped.any() else float("nan"),
        "wrong_in_export": int((export & ~correct).sum()),
    }


def heldout_rm_accuracy(
    rm_factory: RewardModelFactory,
    train_pool: LabelledPool,
    labels: np.ndarray,
    include: np.ndarray,
    heldout: LabelledPool,
) -> float:
    """Train a fresh RM on ``train_pool`` pairs where ``include`` with ``labels``; the share of
    held-out pairs whose margin sign matches the human label (NaN if it cannot be fitted)."""
    rm = fit_reward_model(rm_factory, train_pool.pairs, labels, np.asarray(include, float))
    if rm is None or len(heldout) == 0:
        return float("nan")
    margins = np.asarray(rm.margins(heldout.pairs), float)
    return float(np.mean((margins > 0) == heldout.human_a_preferred))


def replay(
    engine: EngineConfig,
    rm: RewardModelSpec,
    pool: LabelledPool,
    heldout: LabelledPool,
    eval_rm: RewardModelFactory | None,
    budget_percent: float,
    seed: int,
    shared: dict[str, Any] | None = None,
) -> ReplayOutcome:
    """``engine``'s strategy at one budget on one seed's pool (see the module docs), the engine's
    seed set to ``seed``. ``eval_rm`` (None: skip) scores the export on ``heldout``."""
    engine = replace(engine, seed=seed)
    budget_pairs = int(round(budget_percent / 100 * len(pool)))
    state, final, rounds = run_rounds(engine, rm, pool, budget_pairs, shared=shared)
    m = export_metrics(pool, state, final)
    acc = float("nan")
    if eval_rm is not None:
        acc = heldout_rm_accuracy(eval_rm, pool, final.label_a_preferred, final.in_export, heldout)
    estimates = {k: v for k, v in final.summary.items()
                 if k in ("expected_wrong_in_export_model", "expected_wrong_in_export_audit",
                          "expected_wrong_in_export", "audited_error_rate", "expected_yield_next_batch",
                          "flip_confirmed")}
    if "ranking" in final.summary:
        estimates["rankings_chosen"] = list(final.ledger.get("chosen", []))
        estimates["ranking_yields"] = {k: v["yield"] for k, v in final.summary["ranking"].get("yields", {}).items()}
    if "hardness_model" in final.summary:
        estimates["evidence_sets"] = final.summary["hardness_model"].get("evidence_sets")
    return ReplayOutcome(
        strategy=engine.strategy, budget_percent=budget_percent, seed=seed, pool_size=len(pool),
        human_labels=int(state.labelled.sum()), rounds=rounds, heldout_rm_accuracy=acc,
        stop_signal=bool(final.stop), estimates=estimates, **m,
    )
