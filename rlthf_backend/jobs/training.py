"""The training job: Label Studio -> reward model -> curation round -> re-ordered label stream.

Every run reads the project's tasks, annotations and predictions from Label Studio (never from
webhook payloads), so a lost or repeated event can neither lose nor double-count a label. It
fits the reward model on the current labels and publishes a registry version; when a curation
round is due (the current human batch is done, Train was clicked, or enough new labels arrived)
it also plans a round and writes predictions that put the round's chosen tasks first.
"""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from label_studio_sdk.core.api_error import ApiError
from rq import get_current_job

from rlthf_backend.core.curation import CurationState, JudgeEvidence, RoundPlan, plan_round
from rlthf_backend.core.curation.fused import FusedConfig, fused_training_weights
from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_B, HUMAN_NONE
from rlthf_backend.core.judges import make_judge
from rlthf_backend.core.reward.factory import RewardModelFactory, reward_model_factory, with_fixed_weight_decay
from rlthf_backend.jobs import status
from rlthf_backend.jobs.queue import claim_pending, clear_force_round, project_lock, wait_for_quiet
from rlthf_backend.labelstudio.client import iter_tasks, make_client
from rlthf_backend.labelstudio.config import parse_label_config
from rlthf_backend.labelstudio.pool import ProjectPool, build_pool
from rlthf_backend.labelstudio.queue_order import QueuedPrediction, queue_scores, write_round
from rlthf_backend.registry import ModelRegistry, VersionInfo, write_json_atomic
from rlthf_backend.round_files import ROUND_FILE, STATE_FILE, append_round_log, write_margins
from rlthf_backend.settings import Settings, get_settings

log = logging.getLogger(__name__)



class TrainingError(RuntimeError):
    """The project cannot be trained as it is; the message says why."""


class ProjectNotFound(TrainingError):
    """Label Studio has no such project (deleted, or a stray event): retrying cannot help."""


@dataclass
class TrainingOutcome:
    project_id: int
    version: str
    round_run: bool
    round_reason: str
    round_index: int | None
    pool_size: int
    human_labels: int
    skipped_tasks: int
    human_batch: list[int] = field(default_factory=list)  # task ids, rank order
    predictions_written: int = 0
    model_version_in_label_studio: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    round_summary: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: float = 0.0  # of the process that ran the training (memory per worker)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _CarriedState:
    """What the previous run decided, per task id."""

    next_round_index: int = 0
    flipped: dict[int, bool] = field(default_factory=dict)
    rm_excluded: dict[int, bool] = field(default_factory=dict)
    audited: dict[int, bool] = field(default_factory=dict)
    human_batch: list[int] = field(default_factory=list)
    human_labels_at_round: int = 0
    predictions_version: str | None = None

    @classmethod
    def load(cls, version: VersionInfo | None) -> "_CarriedState":
        if version is None or not (version.path / STATE_FILE).is_file():
            return cls()
        raw = json.loads((version.path / STATE_FILE).read_text())

        def to_map(d: dict | None) -> dict[int, bool]:
            return {int(k): bool(v) for k, v in (d or {}).items()}

        return cls(
            next_round_index=int(raw.get("next_round_index", 0)),
            flipped=to_map(raw.get("flipped")),
            rm_excluded=to_map(raw.get("rm_excluded")),
            audited=to_map(raw.get("audited")),
            human_batch=[int(t) for t in raw.get("human_batch", [])],
            human_labels_at_round=int(raw.get("human_labels_at_round", 0)),
            predictions_version=raw.get("predictions_version"),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "next_round_index": self.next_round_index,
            "flipped": {str(k): v for k, v in self.flipped.items() if v},
            "rm_excluded": {str(k): v for k, v in self.rm_excluded.items() if v},
            "audited": {str(k): v for k, v in self.audited.items() if v},
            "human_batch": self.human_batch,
            "human_labels_at_round": self.human_labels_at_round,
            "predictions_version": self.predictions_version,
        }


def _reward_model_factory(settings: Settings, state: CurationState, weights: np.ndarray) -> RewardModelFactory:
    """Fresh reward models of the configured kind for this training: one encoder, one disk
    embedding cache, and the L2 coefficient chosen once on the current labels (not per fold)."""
    overrides: dict[str, Any] = {"seed": settings.seed}
    if settings.reward_model == "embedding":
        overrides["cache_dir"] = str(settings.data_dir / "embeddings")
    train = np.flatnonzero(weights > 0)
    overrides = with_fixed_weight_decay(settings.reward_model, overrides, [state.pairs[i] for i in train],
                                        state.working_a_preferred[train], weights[train])
    return reward_model_factory(settings.reward_model, overrides)


def _round_due(pool: ProjectPool, carried: _CarriedState, settings: Settings, force: bool) -> str | None:
    """Why a curation round runs now, or None."""
    if force:
        return "train requested"
    if carried.predictions_version is None:
        return "first round"
    labelled = {t for t, h in zip(pool.task_ids, pool.human) if h != HUMAN_NONE}
    pending = [t for t in carried.human_batch if t in set(pool.task_ids) and t not in labelled]
    if carried.human_batch and not pending:
        return "human batch done"
    new = pool.n_human - carried.human_labels_at_round
    if settings.round_every_n_labels and new >= settings.round_every_n_labels:
        return f"{new} new human labels"
    return None


def _p_label_right(plan: RoundPlan, margins: np.ndarray) -> np.ndarray:
    """P(the label shown is right): the engine's P(LLM wrong) where it has one, else the RM's."""
    rm_p_a = 1.0 / (1.0 + np.exp(-margins))
    p_right = np.where(plan.label_a_preferred, rm_p_a, 1.0 - rm_p_a)
    p_wrong = plan.scores.get("p_wrong")
    if p_wrong is not None:
        p_wrong = np.asarray(p_wrong, dtype=float)
        engine = np.where(plan.flipped, p_wrong, 1.0 - p_wrong)
        p_right = np.where(np.isnan(engine), p_right, engine)
    return p_right


def run_training(
    settings: Settings,
    project_id: int,
    *,
    force_round: bool = False,
    on_stage: Callable[[str], None] = lambda stage: None,
    started_at: float | None = None,
) -> TrainingOutcome:
    """One training of one project, from Label Studio's current state. Callers hold the lock."""
    t_start = started_at if started_at is not None else time.perf_counter()
    trained_from = time.time()
    seconds: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        seconds[name] = round(now - mark, 3)
        mark = now

    on_stage("reading Label Studio")
    ls = make_client(settings)
    try:
        project = ls.projects.get(id=project_id)
        config = parse_label_config(project.label_config)
        pool = build_pool(config, iter_tasks(ls, project_id))
    except httpx.TransportError as exc:
        raise TrainingError(f"Label Studio unreachable at {settings.label_studio_url}: {exc}") from exc
    except ApiError as exc:
        if exc.status_code == 404:
            raise ProjectNotFound(f"Label Studio has no project {project_id}") from exc
        raise TrainingError(f"Label Studio answered {exc.status_code} for project {project_id}: {exc.body}") from exc
    if len(pool) < 2:
        raise TrainingError(f"project {project_id} has {len(pool)} usable pair(s); at least 2 are needed")
    lap("read")

    on_stage("judging")
    judgments = make_judge(settings).judge_many(pool.pairs)
    evidence = JudgeEvidence.from_judgments(judgments, placeholder_seed=settings.seed)
    lap("judge")

    registry = ModelRegistry(settings.resolved_model_dir, settings.model_title)
    carried = _CarriedState.load(registry.latest(project_id))
    ids = pool.task_ids
    state = CurationState(
        pairs=pool.pairs,
        evidence=evidence,
        human=pool.human_codes,
        flipped=np.array([carried.flipped.get(t, False) for t in ids]),
        rm_excluded=np.array([carried.rm_excluded.get(t, False) for t in ids]),
        audited=np.array([carried.audited.get(t, False) for t in ids]),
        round_index=carried.next_round_index,
    )
    reason = _round_due(pool, carried, settings, force_round)
    # Current labels and weights: human labels count more, earlier exclusions stay out.
    weights = fused_training_weights(state, FusedConfig().human_weight)
    labels = state.working_a_preferred
    on_stage("choosing the reward model's regularisation")
    factory = _reward_model_factory(settings, state, weights)
    lap("tune")

    plan: RoundPlan | None = None
    if reason:
        on_stage(f"planning round {state.round_index} ({reason})")
        batch = max(1, math.ceil(settings.human_batch_fraction * len(pool)))
        plan = plan_round(settings.strategy, state, factory, human_batch_size=batch, seed=settings.seed + state.round_index)
        weights, labels = plan.train_weight, plan.label_a_preferred
        lap("plan")

    on_stage("fitting the reward model")
    rm = factory()
    train = np.flatnonzero(weights > 0)
    if len(train) < 2:
        raise TrainingError(f"project {project_id}: fewer than 2 pairs to train the reward model on")
    fit = rm.fit([pool.pairs[i] for i in train], labels[train], weights[train])
    margins = np.asarray(rm.margins(pool.pairs), dtype=float)
    lap("fit")

    round_record = None
    if plan is not None:
        round_record = _round_record(pool, plan, margins, reason, fit)
        round_record["summary"].update(_batch_disagreement(pool, evidence, carried.human_batch))

    def write_version(folder: Path, version_id: str) -> None:
        rm.save(_mkdir(folder / "rm"))
        write_json_atomic(folder / STATE_FILE, _next_carried(carried, pool, plan, version_id).as_json())
        if round_record is not None:
            write_json_atomic(folder / ROUND_FILE, round_record)
        write_margins(folder, ids, margins)

    on_stage("publishing the model version")
    version = registry.publish(
        project_id,
        write_version,
        meta={"reward_model": settings.reward_model, "strategy": settings.strategy, "round": plan is not None,
              "round_index": plan.round_index if plan else None, "pool_size": len(pool),
              "human_labels": pool.n_human, "fit_seconds": fit.seconds,
              "trained_from": trained_from, "trained_until": time.time()},
    )
    lap("publish")

    outcome = TrainingOutcome(
        project_id=project_id, version=version.version, round_run=plan is not None, round_reason=reason or "",
        round_index=plan.round_index if plan else None, pool_size=len(pool), human_labels=pool.n_human,
        skipped_tasks=len(pool.skipped), seconds=seconds,
    )
    if plan is not None:
        on_stage("re-ordering the label stream")
        unlabelled = np.flatnonzero(pool.human_codes == HUMAN_NONE)
        scores = queue_scores(plan.human_rank, _p_label_right(plan, margins))
        batch_idx = [int(i) for i in plan.human_batch if pool.human[i] == HUMAN_NONE]
        in_batch = set(batch_idx)
        as_prediction = lambda i: QueuedPrediction(  # noqa: E731
            ids[i], "a" if plan.label_a_preferred[i] else "b", float(scores[i]))
        report = write_round(
            ls, project_id, config, version.version,
            first=[as_prediction(i) for i in batch_idx],
            rest=[as_prediction(int(i)) for i in unlabelled if int(i) not in in_batch],
        )
        seconds["write"] = round(report.seconds_total, 3)
        seconds["to_reordered_queue"] = round(mark - t_start + report.seconds_to_reorder, 3)
        outcome.human_batch = [ids[i] for i in batch_idx]
        outcome.predictions_written = report.written
        outcome.model_version_in_label_studio = version.version
        outcome.round_summary = round_record["summary"] if round_record else {}
        append_round_log(registry, project_id, _round_log_line(version.version, outcome, round_record))
    seconds["total"] = round(time.perf_counter() - t_start, 3)
    outcome.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB

    pruned = registry.prune(project_id, settings.keep_versions)
    if pruned:
        log.info("project %s: pruned versions %s", project_id, ", ".join(pruned))
    log.info("project %s: trained %s (%s)", project_id, version.version, json.dumps(outcome.seconds))
    return outcome


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _next_carried(carried: _CarriedState, pool: ProjectPool, plan: RoundPlan | None, version: str) -> _CarriedState:
    if plan is None:
        return carried
    ids = pool.task_ids
    audited = dict(carried.audited)
    for i in np.flatnonzero(plan.audit):
        audited[ids[i]] = True
    return _CarriedState(
        next_round_index=plan.round_index + 1,
        flipped={ids[i]: True for i in np.flatnonzero(plan.flipped)},
        rm_excluded={ids[i]: True for i in np.flatnonzero(plan.rm_excluded)},
        audited=audited,
        human_batch=[ids[i] for i in plan.human_batch],
        human_labels_at_round=pool.n_human,
        predictions_version=version,
    )


def _batch_disagreement(pool: ProjectPool, evidence: JudgeEvidence, batch_task_ids: list[int]) -> dict[str, Any]:
    """How often people contradicted the LLM on the previous round's batch (the paper's signal
    that more human labels still pay)."""
    where = {t: i for i, t in enumerate(pool.task_ids)}
    answered = [where[t] for t in batch_task_ids if t in where and pool.human[where[t]] in (HUMAN_A, HUMAN_B)]
    if not answered:
        return {"last_batch_answered": 0, "last_batch_disagreement": None}
    contradicted = [(pool.human[i] == HUMAN_A) != bool(evidence.llm_a_preferred[i]) for i in answered]
    return {"last_batch_answered": len(answered), "last_batch_disagreement": float(np.mean(contradicted))}


def _round_record(pool: ProjectPool, plan: RoundPlan, margins: np.ndarray, reason: str | None, fit) -> dict[str, Any]:
    """The round as JSON: plan summary, decision log, and per-task decisions keyed by task id."""
    record = plan.as_dict(with_pairs=False)
    record["reason"] = reason
    record["reward_fit"] = {"n_pairs": fit.n_pairs, "seconds": fit.seconds, "train_accuracy": fit.train_accuracy}
    record["tasks"] = {
        str(t): {
            "status": str(plan.status[i]),
            "rank": int(plan.human_rank[i]),
            "audit": bool(plan.audit[i]),
            "label": "a" if plan.label_a_preferred[i] else "b",
            "margin": float(margins[i]),
            **{k: _num(v[i]) for k, v in plan.scores.items() if np.ndim(v) == 1 and len(v) == len(plan.status)},
        }
        for i, t in enumerate(pool.task_ids)
    }
    return record


def _num(value: Any) -> Any:
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    return None if math.isnan(f) else f


def _round_log_line(version: str, outcome: TrainingOutcome, record: dict[str, Any] | None) -> dict[str, Any]:
    return {"version": version, "at": time.time(), "round_index": outcome.round_index,
            "reason": outcome.round_reason, "pool_size": outcome.pool_size, "human_labels": outcome.human_labels,
            "human_batch": outcome.human_batch, "counts": (record or {}).get("counts"),
            "summary": (record or {}).get("summary"), "seconds": outcome.seconds}


def train_project_job(project_id: int) -> dict[str, Any]:
    """The RQ job: claim the pending slot, take the project's lock, train, record the status."""
    settings = get_settings()
    job = get_current_job()
    redis = job.connection
    t0 = time.perf_counter()
    started = time.time()

    def on_stage(stage: str) -> None:
        log.info("project %s: %s", project_id, stage)
        status.record(redis, project_id, "running", {"job_id": job.id, "started_at": started, "stage": stage})

    on_stage("waiting for annotations to settle")
    waited = wait_for_quiet(redis, project_id, settings.debounce_seconds, settings.debounce_max_seconds)
    forced = claim_pending(redis, project_id, job.id)
    status.clear(redis, project_id, "queued")

    on_stage("waiting for the project lock")
    try:
        with project_lock(redis, settings, project_id):
            outcome = run_training(settings, project_id, force_round=bool(forced), on_stage=on_stage, started_at=t0)
        if forced:
            clear_force_round(redis, project_id, forced)
        outcome.seconds["debounce"] = round(waited, 3)
    except Exception as exc:
        final = isinstance(exc, ProjectNotFound)  # retrying cannot bring a project back
        status.record(redis, project_id, "last_failed", {
            "job_id": job.id, "reason": f"{type(exc).__name__}: {exc}", "started_at": started,
            "seconds": round(time.perf_counter() - t0, 3), "retries_left": 0 if final else job.retries_left})
        status.clear(redis, project_id, "running")
        status.count_job(redis, "failed", time.perf_counter() - t0)
        if final:
            log.warning("project %s: %s; not retrying", project_id, exc)
            return {"project_id": project_id, "error": str(exc)}
        raise
    status.count_job(redis, "finished", time.perf_counter() - t0)
    result = outcome.as_dict()
    status.record(redis, project_id, "last_finished", {"job_id": job.id, "started_at": started, **result})
    status.clear(redis, project_id, "running")
    return result
