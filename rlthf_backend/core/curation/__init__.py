"""The RLTHF curation engine: which LLM labels to keep, which to ask people about, which to
flip or drop. Pure core (numpy / torch via the reward model); no web or Label Studio code.

A deployment and ``simulate`` run the same loop (:mod:`.loop`, :mod:`.engine`)::

    plan, factory = plan_next_round(engine, rm_spec, state)
    # people answer plan.human_batch, then
    state = state.after_plan(plan).with_human_labels(indices, answers, audited=plan.audit[indices])

and the newest plan is the export (``plan.in_export``, ``plan.label_a_preferred``).
"""

from __future__ import annotations

from rlthf_backend.core.curation.adaptive import AdaptiveConfig
from rlthf_backend.core.curation.baselines import BaselineConfig, OracleConfig
from rlthf_backend.core.curation.engine import (
    DEFAULT_STRATEGY,
    DEPLOYABLE_STRATEGIES,
    STRATEGIES,
    EngineConfig,
    Strategy,
    plan_next_round,
)
from rlthf_backend.core.curation.fused import FusedConfig
from rlthf_backend.core.curation.loop import RoundPolicy, round_due
from rlthf_backend.core.curation.paper import PaperConfig
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


__all__ = [
    "AdaptiveConfig", "BaselineConfig", "CurationState", "CurvePoints", "DEFAULT_STRATEGY", "DEPLOYABLE_STRATEGIES",
    "Decision",
    "EngineConfig", "FusedConfig", "HUMAN_A", "HUMAN_B", "HUMAN_NONE", "HUMAN_TIE", "JudgeEvidence",
    "OracleConfig", "PaperConfig", "PointsConfig", "RewardModelFactory", "RoundPlan", "RoundPolicy", "STATUSES",
    "STRATEGIES", "Strategy", "find_curve_points", "plan_next_round", "round_due",
]
