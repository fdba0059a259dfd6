"""The RLTHF curation engine: which LLM labels to keep, which to ask people about, which to
flip or drop. Pure core (numpy / torch via the reward model); no web or Label Studio code.

A deployment and ``simulate`` run the same loop (:mod:`.loop`, :mod:`.engine`)::

    plan, factory = plan_next_round(engine, rm_spec, state)
    # people answer plan.human_batch, then
    state = state.after_plan(plan).with_human_labels(indices, answers, audited=plan.audit[indices])

and the newest plan is the export (``plan.in_export``, ``plan.label_a_preferred``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rlthf_backend.core.curation.baselines import (
    BaselineConfig,
    OracleConfig,
    plan_llm_only_round,
    plan_oracle_round,
    plan_random_round,
    plan_swap_first_round,
)
from rlthf_backend.core.curation.fused import FusedConfig, plan_fused_round
from rlthf_backend.core.curation.loop import RoundPolicy, round_due
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


@dataclass(frozen=True)
class Strategy:
    """A round function and what it needs: ``needs_rm`` (it fits reward models),
    ``simulation_only`` (it needs the true labels: the oracle)."""

    plan: Callable[..., RoundPlan]
    needs_rm: bool = False
    simulation_only: bool = False


STRATEGIES: dict[str, Strategy] = {
    "fused": Strategy(plan_fused_round, needs_rm=True),
    "paper": Strategy(plan_paper_round, needs_rm=True),
    "random": Strategy(plan_random_round),
    "llm_only": Strategy(plan_llm_only_round),
    "swap_first": Strategy(plan_swap_first_round),
    "oracle": Strategy(plan_oracle_round, simulation_only=True),
}

#: Strategies a deployment can run (the oracle needs the answers in advance).
DEPLOYABLE_STRATEGIES = tuple(name for name, s in STRATEGIES.items() if not s.simulation_only)

from rlthf_backend.core.curation.engine import DEFAULT_STRATEGY, EngineConfig, plan_next_round  # noqa: E402

__all__ = [
    "BaselineConfig", "CurationState", "CurvePoints", "DEFAULT_STRATEGY", "DEPLOYABLE_STRATEGIES", "Decision",
    "EngineConfig", "FusedConfig", "HUMAN_A", "HUMAN_B", "HUMAN_NONE", "HUMAN_TIE", "JudgeEvidence",
    "OracleConfig", "PaperConfig", "PointsConfig", "RewardModelFactory", "RoundPlan", "RoundPolicy", "STATUSES",
    "STRATEGIES", "Strategy", "find_curve_points", "plan_next_round", "round_due",
]
