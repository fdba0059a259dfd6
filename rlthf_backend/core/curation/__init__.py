"""The RLTHF curation engine: which LLM labels to keep, which to ask people about, which to
flip or drop. Pure core (numpy / torch via the reward model); no web or Label Studio code.

The active-learning loop calls, once per round::

    plan = plan_round("fused", state, rm_factory, human_batch_size=..., seed=...)
    # ask people about plan.human_batch, then
    state = state.after_plan(plan).with_human_labels(indices, answers, audited=plan.audit[indices])

and a final ``plan_round(..., human_batch_size=0)`` gives the export (``plan.in_export``,
``plan.label_a_preferred``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlthf_backend.core.curation.baselines import (
    BaselineConfig,
    OracleConfig,
    plan_llm_only_round,
    plan_oracle_round,
    plan_random_round,
)
from rlthf_backend.core.curation.fused import FusedConfig, plan_fused_round
from rlthf_backend.core.curation.paper import PaperConfig, plan_paper_round
from rlthf_backend.core.curation.plan import STATUSES, Decision, RoundPlan
from rlthf_backend.core.curation.points import CurvePoints, PointsConfig, find_curve_points
from rlthf_backend.core.curation.scoring import RewardModelFactory
from rlthf_backend.core.curation.state import (
    HUMAN_A,
    HUMAN_B,
    HUMAN_NONE,
    HUMAN_TIE,
    CurationState,
    JudgeEvidence,
)

#: The strategy used when none is configured.
DEFAULT_STRATEGY = "fused"

#: name -> (round function, config class). ``oracle`` needs the true labels: simulation only.
STRATEGIES: dict[str, tuple[Callable[..., RoundPlan], type]] = {
    "fused": (plan_fused_round, FusedConfig),
    "paper": (plan_paper_round, PaperConfig),
    "random": (plan_random_round, BaselineConfig),
    "llm_only": (plan_llm_only_round, BaselineConfig),
    "oracle": (plan_oracle_round, OracleConfig),
}


def plan_round(
    strategy: str,
    state: CurationState,
    rm_factory: RewardModelFactory | None,
    human_batch_size: int | None = None,
    config: Any = None,
    seed: int = 0,
) -> RoundPlan:
    """Run one round of ``strategy`` on ``state`` (see :data:`STRATEGIES`)."""
    try:
        fn, _ = STRATEGIES[strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}") from None
    return fn(state, rm_factory, config, human_batch_size=human_batch_size, seed=seed)


__all__ = [
    "BaselineConfig", "CurationState", "CurvePoints", "DEFAULT_STRATEGY", "Decision", "FusedConfig",
    "HUMAN_A", "HUMAN_B", "HUMAN_NONE", "HUMAN_TIE", "JudgeEvidence", "OracleConfig", "PaperConfig",
    "PointsConfig", "RewardModelFactory", "RoundPlan", "STATUSES", "STRATEGIES", "find_curve_points",
    "plan_round",
]
