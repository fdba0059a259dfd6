"""Reference strategies: LLM labels only, random human batches, order-swap disagreements first,
and an oracle.

They share the round API of the real strategies so the simulator treats every strategy alike.
None of them fits a reward model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlthf_backend.core.curation.plan import RoundPlan, assign_human_batch, empty_plan
from rlthf_backend.core.curation.scoring import RewardModelFactory
from rlthf_backend.core.curation.state import HUMAN_TIE, CurationState


@dataclass(frozen=True)
class BaselineConfig:
    """The baselines have no knobs of their own (the round policy sizes their batches)."""


@dataclass(frozen=True)
class OracleConfig(BaselineConfig):
    """The oracle knows the true labels (simulation only): it asks people exactly about the
    LLM labels that are wrong, in random order, then about random others."""

    truth_a_preferred: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def _batch_size(human_batch_size: int, n_cand: int) -> int:
    return max(0, min(int(human_batch_size), n_cand))


def baseline_training_weights(state: CurationState) -> np.ndarray:
    """RM weights when no strategy-specific weighting applies: 1 per label (human or LLM), 0
    for human ties and pairs an earlier round left out."""
    return np.where(state.rm_excluded | (state.human == HUMAN_TIE), 0.0, 1.0)


def plan_llm_only_round(
    state: CurationState, rm_factory: RewardModelFactory | None = None, config: BaselineConfig | None = None,
    human_batch_size: int = 0, seed: int = 0,
) -> RoundPlan:
    """Keep every LLM label; ask nobody."""
    plan = empty_plan("llm_only", state)
    plan.stop, plan.stop_reason = True, "llm_only never asks people"
    return plan


def plan_random_round(
    state: CurationState, rm_factory: RewardModelFactory | None = None, config: BaselineConfig | None = None,
    human_batch_size: int = 0, seed: int = 0,
) -> RoundPlan:
    """Ask people about a uniformly random batch of the unlabelled pairs; keep the rest."""
    plan = empty_plan("random", state)
    cand = np.flatnonzero(~state.labelled)
    b = _batch_size(human_batch_size, len(cand))
    rng = np.random.default_rng([seed, state.round_index, 2])
    batch = rng.choice(cand, size=b, replace=False) if b else np.zeros(0, int)
    assign_human_batch(plan, batch, np.ones(len(batch), bool))
    return plan


def plan_swap_first_round(
    state: CurationState, rm_factory: RewardModelFactory | None = None, config: BaselineConfig | None = None,
    human_batch_size: int = 0, seed: int = 0,
) -> RoundPlan:
    """Ask people first about the pairs where the judge changed its verdict when the order was
    swapped (random order among them), then about random others; keep the rest. The one-line
    baseline every evidence-based strategy has to beat."""
    plan = empty_plan("swap_first", state)
    cand = np.flatnonzero(~state.labelled)
    b = _batch_size(human_batch_size, len(cand))
    rng = np.random.default_rng([seed, state.round_index, 4])
    cand = cand[rng.permutation(len(cand))]
    batch = cand[np.argsort(~state.evidence.swap_disagrees[cand], kind="stable")][:b]
    assign_human_batch(plan, batch)
    return plan


def plan_oracle_round(
    state: CurationState, rm_factory: RewardModelFactory | None = None, config: OracleConfig | None = None,
    human_batch_size: int = 0, seed: int = 0,
) -> RoundPlan:
    """Ask people about wrong LLM labels first (needs ``config.truth_a_preferred``)."""
    if config is None or len(config.truth_a_preferred) != len(state):
        raise ValueError("the oracle needs OracleConfig(truth_a_preferred=...) covering the pool")
    plan = empty_plan("oracle", state)
    cand = np.flatnonzero(~state.labelled)
    b = _batch_size(human_batch_size, len(cand))
    rng = np.random.default_rng([seed, state.round_index, 3])
    cand = cand[rng.permutation(len(cand))]
    wrong = config.truth_a_preferred[cand] != state.evidence.llm_a_preferred[cand]
    batch = cand[np.argsort(~wrong, kind="stable")][:b]
    assign_human_batch(plan, batch)
    return plan
