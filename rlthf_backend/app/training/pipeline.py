"""One training of a project: Label Studio -> reward model -> curation round -> re-ordered queue.

Labels come from Label Studio (never from webhook payloads), so a lost or repeated event can
neither lose nor double-count a label. A training reads only the tasks that changed since the
last one (:mod:`rlthf_backend.labelstudio.sync`) into the project's snapshot in the shared
database, or the whole project when there is no snapshot, it disagrees with Label Studio, or a
full read is asked for. The round loop is the core's (:mod:`rlthf_backend.core.curation.loop` and
``.engine``), with the engine and reward model the settings configure, exactly as ``simulate``
replays it: when a round is due (first round, the human batch done, Train, or enough new labels)
it plans one and writes the predictions that order the label stream: all of them the first time,
then only those that must change (:mod:`rlthf_backend.labelstudio.queue_order`). Every run fits
the reward model on the current labels and publishes a registry version with the typed records
of :mod:`rlthf_backend.registry.records`. The RQ job around it is ``jobs/training.py``.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from label_studio_sdk.core.api_error import ApiError
from sqlalchemy.exc import SQLAlchemyError

from rlthf_backend.core.curation import (
    CurationState,
    JudgeEvidence,
    RoundPlan,
    RoundPolicy,
    plan_next_round,
    round_due,
)
from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_B, HUMAN_NONE
from rlthf_backend.core.reward.factory import round_factory
from rlthf_backend.app.judges import make_judge
from rlthf_backend.labelstudio.client import Traffic, describe_api_error, make_client
from rlthf_backend.labelstudio.config import PairwiseConfig, parse_label_config
from rlthf_backend.labelstudio.pool import ProjectPool
from rlthf_backend.labelstudio.queue_order import (
    QueuedPrediction,
    WriteReport,
    queue_changes,
    queue_scores,
    update_round,
    write_round,
)
from rlthf_backend.labelstudio.snapshot import ProjectSnapshot
from rlthf_backend.labelstudio.sync import SyncReport, read_queue_predictions, sync_project
from rlthf_backend.registry.versions import ModelRegistry, write_json_atomic
from rlthf_backend.registry.records import (
    STATE_FILE,
    CarriedState,
    RoundLogLine,
    RoundRecord,
    TaskDecision,
    append_round_log,
    write_judgments,
    write_margins,
)
from rlthf_backend.app.settings import Settings
from rlthf_backend.store.database import DatabaseUnavailable, open_database
from rlthf_backend.store.database import describe_error as describe_db_error
from rlthf_backend.store.projects import ProjectStore

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
    sync: dict[str, Any] = field(default_factory=dict)  # full or incremental read, why, tasks read
    reordered_at: float | None = None  # unix time the label stream started serving this round's batch
    sync_settle_tasks_read: int = 0  # tasks read after the queue was written, to settle the read cursor
    label_studio_requests: int = 0
    model_version_in_label_studio: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    round_summary: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: float = 0.0  # of the process that ran the training (memory per worker)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    )


def why_round_now(pool: ProjectPool, carried: CarriedState, policy: RoundPolicy, forced: bool) -> str | None:
    """The core's round trigger, fed with this project's numbers."""
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
    full_sync: bool = False,
    on_stage: Callable[[str], None] = lambda stage: None,
    started_at: float | None = None,
) -> TrainingOutcome:
    """One training of one project, from Label Studio's current state (``full_sync``: re-read the
    whole project rather than what changed). Callers hold the lock."""
    t_start = started_at if started_at is not None else time.perf_counter()
    trained_from = time.time()
    seconds: dict[str, float] = {}
    mark = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        seconds[name] = round(now - mark, 3)
        mark = now

    engine = settings.engine_config()
    rm_spec = settings.reward_model_spec()

    on_stage("reading Label Studio")
    traffic = Traffic()
    ls = make_client(settings, timeout=settings.label_studio_timeout, traffic=traffic)
    store = _project_store(settings)
    stored = _load_snapshot(store, project_id)
    registry = ModelRegistry(settings.resolved_model_dir, settings.model_title)
    lap("load_snapshot")
    try:
        project = ls.projects.get(id=project_id)
        config = parse_label_config(project.label_config)
        ours = project.model_version if registry.named_version(project_id, project.model_version) else None
        snapshot, sync = sync_project(ls, project, config, stored, full=full_sync,
                                      server_time=lambda: traffic.server_time, adopt_queue_version=ours)
    except httpx.TransportError as exc:
        raise TrainingError(f"Label Studio unreachable at {settings.label_studio_url}: {exc}") from exc
    except ApiError as exc:
        if exc.status_code == 404:
            raise ProjectNotFound(f"Label Studio has no project {project_id}") from exc
        raise TrainingError(f"Label Studio refused project {project_id}: {describe_api_error(exc)}") from exc
    pool = snapshot.pool(config)
    if len(pool) < 2:
        raise TrainingError(f"project {project_id} has {len(pool)} usable pair(s); at least 2 are needed")
    lap("read")

    on_stage("judging")
    judgments = make_judge(settings).judge_many(pool.pairs)
    evidence = JudgeEvidence.from_judgments(judgments, placeholder_seed=settings.seed)
    lap("judge")

    carried = CarriedState.read(registry.latest(project_id))
    state = state_from_pool(pool, evidence, carried)
    reason = why_round_now(pool, carried, engine.rounds, force_round)

    plan: RoundPlan | None = None
    if reason:
        on_stage(f"planning round {state.round_index} ({reason})")
        plan, factory = plan_next_round(engine, rm_spec, state)
        weights, labels = plan.train_weight, plan.label_a_preferred
        lap("plan")
    else:
        # Between rounds only the reward model is refreshed, with the strategy's own weights.
        weights, labels = engine.training_weights(state), state.working_a_preferred
        factory = round_factory(rm_spec, state.pairs, labels, weights, budget=engine.fit_budget(state))

    on_stage("fitting the reward model")
    weights = factory.within_budget(weights)
    train = np.flatnonzero(weights > 0)
    if len(train) < 2:
        raise TrainingError(f"project {project_id}: fewer than 2 pairs to train the reward model on")
    rm = factory()
    fit = rm.fit([pool.pairs[i] for i in train], labels[train], weights[train])
    margins = np.asarray(rm.margins(pool.pairs), dtype=float)
    lap("fit")

    ids = pool.task_ids
    record = None
    if plan is not None:
        record = round_record(pool, plan, margins, reason, fit, engine.as_dict())
        record.summary.update(batch_disagreement(pool, evidence, carried.human_batch))

    def write_version(folder: Path, version_id: str) -> None:
        rm.save(_mkdir(folder / "rm"))
        write_json_atomic(folder / STATE_FILE, next_carried(carried, pool, plan, version_id).to_json())
        if record is not None:
            record.write(folder)
        write_margins(folder, ids, margins)
        write_judgments(folder, ids, judgments)

    on_stage("publishing the model version")
    version = registry.publish(
        project_id,
        write_version,
        meta={"reward_model": rm_spec.kind, "strategy": engine.strategy, "round": plan is not None,
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
    if plan is not None and record is not None:
        on_stage("re-ordering the label stream")
        unlabelled = np.flatnonzero(pool.human_codes == HUMAN_NONE)
        scores = queue_scores(plan.human_rank, p_label_right(plan, margins))
        batch_idx = [int(i) for i in plan.human_batch if pool.human[i] == HUMAN_NONE]
        in_batch = set(batch_idx)

        def as_prediction(i: int) -> QueuedPrediction:
            return QueuedPrediction(ids[i], "a" if plan.label_a_preferred[i] else "b", float(scores[i]))

        snapshot, report = reorder_queue(
            ls, project, config, snapshot, sync, version.version,
            first=[as_prediction(i) for i in batch_idx],
            rest=[as_prediction(int(i)) for i in unlabelled if int(i) not in in_batch],
            score_tolerance=settings.queue_score_tolerance, max_moves=settings.queue_max_updates or None,
            server_time=lambda: traffic.server_time)
        outcome.reordered_at = report.reordered_at
        seconds["write"] = round(report.seconds_total, 3)
        seconds["to_reordered_queue"] = round(mark - t_start + report.seconds_to_reorder, 3)
        seconds["to_whole_batch"] = round(mark - t_start + report.seconds_batch, 3)
        outcome.human_batch = [ids[i] for i in batch_idx]
        outcome.predictions_written = report.written
        outcome.model_version_in_label_studio = snapshot.queue_version
        outcome.round_summary = record.summary
        append_round_log(registry, project_id, RoundLogLine(
            version=version.version, at=time.time(), round_index=outcome.round_index, reason=outcome.round_reason,
            pool_size=outcome.pool_size, human_labels=outcome.human_labels, human_batch=outcome.human_batch,
            counts=record.counts, summary=record.summary, seconds=outcome.seconds))
    if not sync.settled:
        # The read began right after a change, so the next one would reach back over it: look again now,
        # while nobody waits on the queue, and the next training starts from a settled cursor.
        try:
            snapshot, tail = sync_project(ls, ls.projects.get(id=project_id), config, snapshot,
                                          server_time=lambda: traffic.server_time)
            sync.changed = list(dict.fromkeys(sync.changed + tail.changed))
            if tail.mode == "full":
                sync.mode, sync.changed = "full", list(snapshot.rows)
            sync.removed = sync.removed + tail.removed
            outcome.sync_settle_tasks_read = tail.tasks_read
        except (httpx.TransportError, ApiError) as exc:  # the next training reaches back instead
            log.warning("project %s: could not settle the read cursor (%s)", project_id, exc)
    _save_snapshot(store, snapshot, sync)
    outcome.sync = {"mode": sync.mode, "reason": sync.reason, "tasks_read": sync.tasks_read,
                    "changed": len(sync.changed), "removed": len(sync.removed)}
    outcome.label_studio_requests = traffic.requests
    seconds["total"] = round(time.perf_counter() - t_start, 3)
    outcome.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB

    pruned = registry.prune(project_id, settings.keep_versions)
    if pruned:
        log.info("project %s: pruned versions %s", project_id, ", ".join(pruned))
    log.info("project %s: trained %s (%s)", project_id, version.version, json.dumps(outcome.seconds))
    return outcome


def reorder_queue(ls, project: Any, config: PairwiseConfig, snapshot: ProjectSnapshot, sync: SyncReport,
                  new_version: str, *, first: list[QueuedPrediction], rest: list[QueuedPrediction],
                  score_tolerance: float, max_moves: int | None,
                  server_time: Callable[[], Any]) -> tuple[ProjectSnapshot, WriteReport]:
    """Write a round's predictions: every one under ``new_version`` when the project has no queue
    version yet, else only those that change (:func:`queue_changes`, at most ``max_moves`` of the
    optional ones). Keeps the snapshot, and
    ``sync.changed`` (the rows to store), in step with what Label Studio now shows."""
    if snapshot.queue_version is not None:
        shown = {t: row.shown for t, row in snapshot.rows.items()}
        report = update_round(ls, project.id, config, snapshot.queue_version,
                              first=queue_changes(first, shown, score_tolerance),
                              rest=queue_changes(rest, shown, score_tolerance, max_moves), shown=shown)
        for task_id, now_shown in report.shown.items():  # stamped: the next read refreshes them anyway
            snapshot.rows[task_id].shown = now_shown
        sync.changed = list(dict.fromkeys(sync.changed + list(report.shown)))
        return snapshot, report
    report = write_round(ls, project.id, config, new_version, first=first, rest=rest)
    snapshot.queue_version = new_version
    if report.stamped_tasks:
        # Predictions created one by one stamped their tasks: read the project once more now (the queue
        # is already re-ordered), so that the next read starts after those stamps.
        snapshot, refresh = sync_project(ls, project, config, snapshot, full=True, server_time=server_time)
        sync.mode, sync.tasks_read, sync.changed = "full", sync.tasks_read + refresh.tasks_read, list(snapshot.rows)
    else:
        sync.changed = list(dict.fromkeys(sync.changed + read_queue_predictions(ls, project.id, config, snapshot)))
    return snapshot, report


def _project_store(settings: Settings) -> ProjectStore | None:
    """The shared database's project snapshots; None (and a full read) when it cannot be opened."""
    try:
        return ProjectStore(open_database(settings.database_url_resolved()).engine)
    except DatabaseUnavailable as exc:
        log.error("state database unavailable (%s): reading Label Studio whole this time", exc)
        return None


def _load_snapshot(store: ProjectStore | None, project_id: int) -> ProjectSnapshot | None:
    if store is None:
        return None
    try:
        return store.load(project_id)
    except (SQLAlchemyError, ValueError, TypeError) as exc:  # a mangled row reads as no snapshot
        log.error("project %s: stored snapshot unreadable (%s); reading Label Studio whole", project_id,
                  describe_db_error(exc))
        return None


def _save_snapshot(store: ProjectStore | None, snapshot: ProjectSnapshot, sync: SyncReport) -> None:
    """Keep what this training read; a failure only costs the next training a full read."""
    if store is None:
        return
    try:
        store.save(snapshot, sync.changed, sync.removed, replace=sync.mode == "full")
    except SQLAlchemyError as exc:
        # The older snapshot left in place is still safe: reading from its older cursor re-reads more.
        log.error("project %s: could not store the snapshot (%s); the next training reads more of Label Studio",
                  snapshot.project_id, describe_db_error(exc))


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


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


def round_record(pool: ProjectPool, plan: RoundPlan, margins: np.ndarray, reason: str | None, fit,
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
            p_wrong=None if p_wrong is None else _number(p_wrong[i]),
            scores={k: _number(v[i]) for k, v in per_pair.items()},
        )
    return RoundRecord(
        strategy=plan.strategy, round_index=plan.round_index, reason=reason, counts=plan_doc["counts"],
        summary=plan_doc["summary"], log=plan_doc["log"], tasks=tasks, engine=engine,
        reward_fit={"n_pairs": fit.n_pairs, "seconds": fit.seconds, "train_accuracy": fit.train_accuracy},
        stop=plan.stop, stop_reason=plan.stop_reason,
    )


def _number(value: Any) -> Any:
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    return None if np.isnan(f) else f
