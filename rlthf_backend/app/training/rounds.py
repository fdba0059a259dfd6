"""The bookkeeping between a project's pool, the curation engine and the registry's records.

Pure functions over arrays and records (no Label Studio, no files): what the engine starts from,
whether a round is due, what the next training carries over, the round as a typed record, and
the probability shown to annotators.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlthf_backend.core.curation import CurationState, JudgeEvidence, RoundPlan, RoundPolicy, round_due
from rlthf_backend.core.curation.adaptive import remap_ledger
from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_B, HUMAN_NONE
from rlthf_backend.core.reward.base import FitReport
from rlthf_backend.core.types import json_safe
from rlthf_backend.labelstudio.pool import ProjectPool
from rlthf_backend.registry.records import CarriedState, RoundRecord, TaskDecision


def state_from_pool(pool: ProjectPool, evidence: JudgeEvidence, carried: CarriedState) -> CurationState:
    """The engine's state: Label Studio's labels now, the last round's decisions carried over."""
    ids = pool.task_ids
    return CurationState(
        pairs=pool.pairs,
        evidence=evidence,
        human=pool.human_codes,
        flipped=np.array([t in carried.flipped for t in ids], dtype=bool),
        rm_excluded=np.array([t in carried.rm_excluded for t in ids], dtype=bool),
        audited=np.array([t in carried.audited for t in ids], dtype=bool),
        round_index=carried.next_round_index,
        ledger=remap_ledger(carried.ledger, {t: i for i, t in enumerate(ids)}),
    )


def why_round_now(pool: ProjectPool, carried: CarriedState, policy: RoundPolicy, forced: bool) -> str | None:
    """The core's round trigger, fed with this project's numbers; None when no round is due."""
    labelled = {t for t, h in zip(pool.task_ids, pool.human) if h != HUMAN_NONE}
    present = set(pool.task_ids)
    pending = [t for t in carried.human_batch if t in present and t not in labelled]
    return round_due(
        policy,
        first_round=carried.predictions_version is None,
        batch_asked=len(carried.human_batch),
        batch_left=len(pending),
        new_labels=pool.n_human - carried.human_labels_at_round,
        forced=forced,
    )


def p_label_right(plan: RoundPlan, margins: np.ndarray) -> np.ndarray:
    """P(the label shown is right) as the engine ranks pairs for people: from its ranking score
    of P(LLM wrong) where it has one (the plug-in fit the human batch follows, so the label stream
    goes on in the engine's order after the batch), else the RM's."""
    rm_p_a = 1.0 / (1.0 + np.exp(-margins))
    p_right = np.where(plan.label_a_preferred, rm_p_a, 1.0 - rm_p_a)
    ranked_p_wrong = plan.scores.get("ranking_score")
    if ranked_p_wrong is not None:
        ranked_p_wrong = np.asarray(ranked_p_wrong, dtype=float)
        engine = np.where(plan.flipped, ranked_p_wrong, 1.0 - ranked_p_wrong)
        p_right = np.where(np.isnan(engine), p_right, engine)
    return p_right


def next_carried(carried: CarriedState, pool: ProjectPool, plan: RoundPlan | None, version: str) -> CarriedState:
    """What the next training starts from: this round's decisions (or the last round's, when no
    round ran), by task id."""
    if plan is None:
        return carried
    ids = pool.task_ids
    return CarriedState(
        next_round_index=plan.round_index + 1,
        flipped={ids[i] for i in np.flatnonzero(plan.flipped)},
        rm_excluded={ids[i] for i in np.flatnonzero(plan.rm_excluded)},
        audited=carried.audited | {ids[i] for i in np.flatnonzero(plan.audit)},
        human_batch=[ids[i] for i in plan.human_batch],
        human_labels_at_round=pool.n_human,
        predictions_version=version,
        ledger=remap_ledger(plan.ledger, dict(enumerate(ids))),
    )


def batch_disagreement(pool: ProjectPool, evidence: JudgeEvidence, batch_task_ids: list[int]) -> dict[str, Any]:
    """How often people contradicted the LLM on the previous round's batch (the paper's signal
    that more human labels still pay)."""
    where = {t: i for i, t in enumerate(pool.task_ids)}
    answered = [where[t] for t in batch_task_ids if t in where and pool.human[where[t]] in (HUMAN_A, HUMAN_B)]
    if not answered:
        return {"last_batch_answered": 0, "last_batch_disagreement": None}
    contradicted = [(pool.human[i] == HUMAN_A) != bool(evidence.llm_a_preferred[i]) for i in answered]
    return {"last_batch_answered": len(answered), "last_batch_disagreement": float(np.mean(contradicted))}


def round_record(pool: ProjectPool, plan: RoundPlan, margins: np.ndarray, reason: str | None, fit: FitReport,
                 engine: dict[str, Any]) -> RoundRecord:
    """The round as a typed record: plan summary, decision log, per-task decisions by task id."""
    plan_doc = plan.as_dict(with_pairs=False)
    per_pair = {k: np.asarray(v) for k, v in plan.scores.items() if np.ndim(v) == 1 and len(v) == len(plan.status)}
    p_wrong = per_pair.pop("p_wrong", None)
    if "margin" in per_pair:  # the margin the strategy decided on (cross-fitted for fused), beside the published one
        per_pair["round_margin"] = per_pair.pop("margin")
    tasks = {}
    for i, t in enumerate(pool.task_ids):
        tasks[t] = TaskDecision(
            status=str(plan.status[i]), label="a" if plan.label_a_preferred[i] else "b",
            rank=int(plan.human_rank[i]), audit=bool(plan.audit[i]), margin=float(margins[i]),
            p_wrong=None if p_wrong is None else json_safe(p_wrong[i]),
            scores={k: json_safe(v[i]) for k, v in per_pair.items()},
        )
    return RoundRecord(
        strategy=plan.strategy, round_index=plan.round_index, reason=reason, counts=plan_doc["counts"],
        summary=plan_doc["summary"], log=plan_doc["log"], tasks=tasks, engine=engine,
        reward_fit={"n_pairs": fit.n_pairs, "seconds": fit.seconds, "train_accuracy": fit.train_accuracy},
        stop=plan.stop, stop_reason=plan.stop_reason,
    )
