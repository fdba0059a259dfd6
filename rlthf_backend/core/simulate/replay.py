"""Round-by-round replay of curation with people simulated by the known human labels.

Protocol (identical for every strategy, so differences come from the strategy alone):

- Per seed, a fixed random ``heldout_fraction`` of the pairs is set aside (never curated,
  never shown to people); the rest is the *pool*. Seeds and splits are shared by all strategies.
- For a budget of B% of the pool, rounds run until round(B/100 * pool) human labels are used:
  each round the strategy plans with a batch of min(its default batch, budget left); the batch
  is answered from the human labels; a final round with batch 0 gives the curated export.
- Metrics of the export (``ReplayOutcome``):
  ``curated_accuracy``: share of *exported* pairs whose label matches the human label (pairs a
  strategy drops are not counted; ``kept_fraction`` says how many stay);
  ``all_pairs_accuracy``: the same over the whole pool with every dropped pair counted with its
  LLM label (what dropping would have scored had it kept the pairs instead);
  ``flipped`` / ``flip_precision``: exported pairs whose label differs from the LLM label
  without a person, and the share of those that match the human label;
  ``heldout_rm_accuracy``: a fresh RM trained on the export (every label weight 1) scored on the
  held-out pairs: share whose margin sign matches the human label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlthf_backend.core.curation import STRATEGIES, OracleConfig, plan_round
from rlthf_backend.core.curation.plan import RoundPlan
from rlthf_backend.core.curation.scoring import RewardModelFactory, fit_reward_model
from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_B, CurationState
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
    curated_accuracy: float
    all_pairs_accuracy: float
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


def default_batch_size(strategy: str, config: Any, pool_size: int) -> int:
    """Pairs per round for ``strategy`` (its config's ``batch_fraction`` of the pool), >= 1."""
    if config is None:
        config = STRATEGIES[strategy][1]() if strategy != "oracle" else OracleConfig()
    return max(1, int(round(getattr(config, "batch_fraction", 0.04) * pool_size)))


def run_rounds(
    strategy: str,
    pool: LabelledPool,
    rm_factory: RewardModelFactory | None,
    budget_pairs: int,
    seed: int,
    config: Any = None,
) -> tuple[CurationState, RoundPlan, int]:
    """Replay rounds until ``budget_pairs`` human labels are used (or the strategy asks for
    nobody), then the final export round. Returns (final state, export plan, rounds run)."""
    if pool.evidence is None:
        raise ValueError("curation needs LLM labels; this dataset has human labels only")
    if strategy == "oracle":
        config = OracleConfig(truth_a_preferred=pool.human_a_preferred)
    state = CurationState.initial(pool.pairs, pool.evidence)
    per_round = default_batch_size(strategy, config, len(pool))
    used = rounds = 0
    while used < budget_pairs and strategy != "llm_only":
        b = min(per_round, budget_pairs - used)
        plan = plan_round(strategy, state, rm_factory, human_batch_size=b, config=config, seed=seed)
        batch = plan.human_batch
        rounds += 1
        if len(batch) == 0:
            state = state.after_plan(plan)
            break
        answers = np.where(pool.human_a_preferred[batch], HUMAN_A, HUMAN_B)
        state = state.after_plan(plan).with_human_labels(batch, answers, audited=plan.audit[batch])
        used += len(batch)
    final = plan_round(strategy, state, rm_factory, human_batch_size=0, config=config, seed=seed)
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
        "curated_accuracy": float(correct[export].mean()) if export.any() else float("nan"),
        "all_pairs_accuracy": float((all_labels == truth).mean()),
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
    strategy: str,
    pool: LabelledPool,
    heldout: LabelledPool,
    curation_rm: RewardModelFactory | None,
    eval_rm: RewardModelFactory | None,
    budget_percent: float,
    seed: int,
    config: Any = None,
) -> ReplayOutcome:
    """One strategy at one budget on one seed's pool (see the module docs). ``curation_rm``
    is what the strategy fits each round; ``eval_rm`` (None: skip) scores the export on
    ``heldout``."""
    budget_pairs = int(round(budget_percent / 100 * len(pool)))
    needs_rm = strategy in ("paper", "fused")
    state, final, rounds = run_rounds(strategy, pool, curation_rm if needs_rm else None, budget_pairs, seed, config)
    m = export_metrics(pool, state, final)
    acc = float("nan")
    if eval_rm is not None:
        acc = heldout_rm_accuracy(eval_rm, pool, final.label_a_preferred, final.in_export, heldout)
    estimates = {k: v for k, v in final.summary.items()
                 if k in ("expected_wrong_in_export_model", "expected_wrong_in_export_audit",
                          "audited_error_rate", "expected_yield_next_batch", "flip_confirmed")}
    return ReplayOutcome(
        strategy=strategy, budget_percent=budget_percent, seed=seed, pool_size=len(pool),
        human_labels=int(state.labelled.sum()), rounds=rounds, heldout_rm_accuracy=acc,
        stop_signal=bool(final.stop), estimates=estimates, **m,
    )
