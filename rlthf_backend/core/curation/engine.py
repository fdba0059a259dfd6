"""The curation engine's whole configuration, and planning the next round with it.

:class:`EngineConfig` is what a deployment runs and what ``simulate`` replays: the strategy,
every strategy's knobs, the round policy and the seed. ``Settings.engine_config()`` builds it
from the environment at one edge; nothing in the core reads settings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from rlthf_backend.core.curation.adaptive import AdaptiveConfig, plan_adaptive_round
from rlthf_backend.core.curation.baselines import (
    BaselineConfig,
    OracleConfig,
    baseline_training_weights,
    plan_llm_only_round,
    plan_oracle_round,
    plan_random_round,
    plan_swap_first_round,
)
from rlthf_backend.core.curation.fused import FusedConfig, fused_training_weights, plan_fused_round
from rlthf_backend.core.curation.loop import RoundPolicy
from rlthf_backend.core.curation.paper import PaperConfig, paper_round_weights, plan_paper_round
from rlthf_backend.core.curation.plan import RoundPlan
from rlthf_backend.core.curation.state import HUMAN_NONE, CurationState
from rlthf_backend.core.reward.factory import FitBudget, RewardModelFactory, RewardModelSpec, round_factory

#: The strategy used when none is configured.
DEFAULT_STRATEGY = "fused"


@dataclass(frozen=True)
class Strategy:
    """A round function and what it needs: ``needs_rm`` (it fits reward models),
    ``simulation_only`` (it needs the true labels: the oracle)."""

    plan: Callable[..., RoundPlan]
    needs_rm: bool = False
    simulation_only: bool = False


STRATEGIES: dict[str, Strategy] = {
    "fused": Strategy(plan_fused_round, needs_rm=True),
    "adaptive": Strategy(plan_adaptive_round, needs_rm=True),
    "paper": Strategy(plan_paper_round, needs_rm=True),
    "random": Strategy(plan_random_round),
    "llm_only": Strategy(plan_llm_only_round),
    "swap_first": Strategy(plan_swap_first_round),
    "oracle": Strategy(plan_oracle_round, simulation_only=True),
}

#: Strategies a deployment can run (the oracle needs the answers in advance).
DEPLOYABLE_STRATEGIES = tuple(name for name, s in STRATEGIES.items() if not s.simulation_only)


@dataclass(frozen=True)
class EngineConfig:
    """Strategy, its knobs, the round policy and the seed of every random choice."""

    strategy: str = DEFAULT_STRATEGY
    fused: FusedConfig = field(default_factory=FusedConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)
    rounds: RoundPolicy = field(default_factory=RoundPolicy)
    seed: int = 0
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; choose from {', '.join(sorted(STRATEGIES))}")

    def with_strategy(self, strategy: str) -> "EngineConfig":
        """The same configuration running another strategy (simulate compares them this way)."""
        return replace(self, strategy=strategy)

    def strategy_config(self, truth: np.ndarray | None = None) -> Any:
        """The config object the strategy's round function takes."""
        if self.strategy == "fused":
            return self.fused
        if self.strategy == "paper":
            return self.paper
        if self.strategy == "adaptive":
            return replace(self.adaptive, fused=self.fused)
        if self.strategy == "oracle":
            if truth is None:
                raise ValueError("the oracle strategy needs the true labels (simulation only)")
            return OracleConfig(truth_a_preferred=np.asarray(truth, bool))
        return BaselineConfig()

    def training_weights(self, state: CurationState) -> np.ndarray:
        """Per-pair reward-model training weights for ``state`` under this strategy (the paper's
        alpha schedule for ``paper``, ``human_weight`` for ``fused`` and ``adaptive``, plain labels
        otherwise)."""
        if self.strategy in ("fused", "adaptive"):
            return fused_training_weights(state, self.fused)
        if self.strategy == "paper":
            return paper_round_weights(state, self.paper)
        return baseline_training_weights(state)

    def fit_budget(self, state: CurationState) -> FitBudget:
        """The round's reward-model fit budget: human-labelled pairs always train."""
        return FitBudget(self.rounds.max_rm_pairs, state.human != HUMAN_NONE,
                         seed=self.seed * 1_000_003 + state.round_index)

    def plan(self, state: CurationState, rm_factory: RewardModelFactory | None, human_batch_size: int,
             truth: np.ndarray | None = None) -> RoundPlan:
        """One round of the configured strategy on ``state``."""
        strategy = STRATEGIES[self.strategy]
        return strategy.plan(state, rm_factory if strategy.needs_rm else None, self.strategy_config(truth),
                             human_batch_size=human_batch_size, seed=self.seed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (recorded in simulate's results.json and each round record)."""
        adaptive = {k: v for k, v in asdict(self.adaptive).items() if k != "fused"}
        return {"strategy": self.strategy, "fused": asdict(self.fused), "paper": asdict(self.paper),
                "adaptive": adaptive, "rounds": asdict(self.rounds), "seed": self.seed}


def plan_next_round(
    engine: EngineConfig,
    rm: RewardModelSpec,
    state: CurationState,
    *,
    truth: np.ndarray | None = None,
    batch_size: int | None = None,
    shared: dict[str, Any] | None = None,
) -> tuple[RoundPlan, RewardModelFactory]:
    """Plan the round ``state`` is at: the strategy's training weights, a reward-model factory
    for them (its regularisation chosen once on those labels), then the strategy's plan with a
    batch of ``batch_size`` (default: the round policy's). Returns the plan and the factory, which
    the caller reuses for the reward model it publishes. ``truth`` feeds the simulation-only
    oracle; ``shared`` carries one encoder between the factories of successive rounds."""
    weights = engine.training_weights(state)
    factory = round_factory(rm, state.pairs, state.working_a_preferred, weights, shared=shared,
                            budget=engine.fit_budget(state))
    size = engine.rounds.batch_size(len(state)) if batch_size is None else batch_size
    return engine.plan(state, factory, size, truth=truth), factory
