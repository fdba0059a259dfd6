"""Reference strategies: LLM labels only, random human batches, and an oracle.

They share the round API of the real strategies so the simulator treats every strategy alike.
None of them fits a reward model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlthf_backend.core.curation.plan import RoundPlan, assign_human_batch, empty_plan
from rlthf_backend.core.curation.scoring import RewardModelFactory
from rlthf_backend.core.curation.state import CurationState


@dataclass(frozen=True)
class BaselineConfig:
    """Knobs shared by the baselines."""

    #: Human batch per round as a fraction of the pool.
    batch_fraction: float = 0.04


@dataclass(frozen=True)
class OracleConfig(BaselineConfig):
    """The oracle knows the true labels (simulation only): it asks people exactly about the
    LLM labels that are wrong, in random order, then about random others."""

    truth_a_preferred: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


def _batch_size(state: CurationState, cfg: BaselineConfig, human_batch_size: int | None, n_cand: int) -> int:
    b = int(round(cfg.batch_fraction * len(state))) if human_batch_size is None else int(human_batch_size)
    return max(0, min(b, n_cand))


def plan_llm_only_round(
    state: CurationState, rm_factory: RewardModelFactory | None = None, config: BaselineConfig | None = None,
    human_batch_size: int | None = None, seed: int = 0,
) -> RoundPlan:
    """Keep every LLM label; ask nobody."""
    plan = empty_plan("llm_only", state)
    plan.stop, plan.stop_reason = True, "llm_only never asks people"
    return plan


def plan_random_round(
    state: CurationState, rm_factory: RewardModelFactory | None = None, config: BaselineConfig | None = None,
    human_batch_size: int | None = None, seed: int = 0,
) -> RoundPlan:
    """Ask people about a uniformly random batch of the unlabelled pairs; keep the rest."""
    cfg = config or BaselineConfig()
    plan = empty_plan("random", state)
    cand = np.flatnonzero(~state.labelled)
    b = _batch_size(state, cfg, human_batch_size, len(cand))
    rng = np.random.default_rng([seed, state.round_index, 2])
    batch = rng.choice(cand, size=b, replace=False) if b else np.zeros(0, int)
    assign_human_batch(plan, batch, np.ones(len(batch), bool))
    return plan


def plan_oracle_round(
    state: CurationState, rm_factory: RewardModelFactory | None = None, config: OracleConfig | None = None,
    human_batch_size: int | None = None, seed: int = 0,
) -> RoundPlan:
    """Ask people about wrong LLM labels first (needs ``config.truth_a_preferred``)."""
    if config is None or len(config.truth_a_preferred) != len(state):
        raise ValueError("the oracle needs OracleConfig(truth_a_preferred=...) covering the pool")
    plan = empty_plan("oracle", state)
    cand = np.flatnonzero(~state.labelled)
    b = _batch_size(state, config, human_batch_size, len(cand))
    rng = np.random.default_rng([seed, state.round_index, 3])
    cand = cand[rng.permutation(len(cand))]
    wrong = config.truth_a_preferred[cand] != state.evidence.llm_a_preferred[cand]
    batch = cand[np.argsort(~wrong, kind="stable")][:b]
    assign_human_batch(plan, batch)
    return plan
