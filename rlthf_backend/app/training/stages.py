"""The stages of one training, in order: read -> judge -> plan -> fit -> publish -> reorder -> settle.

Each stage is a function with a typed result that the next stages take; ``pipeline.py`` runs
them, times them and says which one runs. Labels come from Label Studio (never from webhook
payloads), so a lost or repeated event can neither lose nor double-count a label.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from label_studio_sdk.core.api_error import ApiError
from sqlalchemy.exc import SQLAlchemyError

from rlthf_backend.app.errors import ProjectError
from rlthf_backend.app.project import Project, label_studio_errors
from rlthf_backend.app.training.rounds import (
    batch_disagreement,
    next_carried,
    p_label_right,
    round_record,
)
from rlthf_backend.core.curation import CurationState, EngineConfig, JudgeEvidence, RoundPlan, plan_next_round
from rlthf_backend.core.curation.state import HUMAN_NONE
from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.reward.base import FitReport, RewardModel
from rlthf_backend.core.reward.factory import RewardModelSpec, RoundFactory, round_factory
from rlthf_backend.core.types import Judgment
from rlthf_backend.labelstudio.pool import ProjectPool, pool_from_rows
from rlthf_backend.labelstudio.queue_order import (
    QueuedPrediction,
    WriteReport,
    queue_changes,
    queue_scores,
    update_round,
    write_round,
)
from rlthf_backend.labelstudio.sync import SyncReport, read_queue_predictions, sync_project
from rlthf_backend.registry.records import (
    STATE_FILE,
    CarriedState,
    RoundFileError,
    RoundLogLine,
    RoundRecord,
    append_round_log,
    read_judgments,
    write_judgments,
    write_margins,
)
from rlthf_backend.registry.versions import VersionInfo, write_json_atomic
from rlthf_backend.store.database import describe_error as describe_db_error
from rlthf_backend.store.snapshots import ProjectSnapshot

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------ read
@dataclass
class Read:
    """The project as Label Studio holds it now, and how it was read."""

    snapshot: ProjectSnapshot
    sync: SyncReport
    pool: ProjectPool


def read(project: Project, *, full: bool) -> Read:
    """Bring the stored snapshot up to date with Label Studio (only what changed, unless ``full``)
    and turn it into the engine's pool."""
    stored = _load_snapshot(project)
    shown_version = project.info.model_version
    ours = shown_version if project.registry.named_version(project.id, shown_version) else None
    with label_studio_errors(project.settings.label_studio_url, project.id):
        snapshot, sync = sync_project(project.ls, project.info, project.config, stored, full=full,
                                      server_time=lambda: project.traffic.server_time, adopt_queue_version=ours)
    pool = pool_from_rows(project.config, snapshot.rows.values())
    if len(pool) < 2:
        raise ProjectError(f"project {project.id} has {len(pool)} usable pair(s); at least 2 are needed")
    return Read(snapshot, sync, pool)


def _load_snapshot(project: Project) -> ProjectSnapshot | None:
    if project.store is None:
        return None
    try:
        return project.store.load(project.id)
    except (SQLAlchemyError, ValueError, TypeError) as exc:  # a mangled row reads as no snapshot
        log.error("project %s: stored snapshot unreadable (%s); reading Label Studio whole", project.id,
                  describe_db_error(exc))
        return None


# ----------------------------------------------------------------------------------------- judge
@dataclass
class Judged:
    judgments: list[Judgment]
    evidence: JudgeEvidence


def judge(judge: Judge, pool: ProjectPool, *, seed: int, reuse: Mapping[int, Judgment] | None = None) -> Judged:
    """The judge's verdict on every pair: ``reuse``'s by task id where given, the rest asked of
    ``judge`` (from the judgment store where judged before)."""
    reuse = reuse or {}
    ask = [i for i, t in enumerate(pool.task_ids) if t not in reuse]
    asked = dict(zip(ask, judge.judge_many([pool.pairs[i] for i in ask]))) if ask else {}
    judgments = [asked[i] if i in asked else reuse[t] for i, t in enumerate(pool.task_ids)]
    return Judged(judgments, JudgeEvidence.from_judgments(judgments, placeholder_seed=seed))


def reusable_judgments(project: Project, judge: Judge, got: Read) -> dict[int, Judgment]:
    """The last training's verdicts on the tasks this incremental read found unchanged, when the
    same judge (same fingerprint) gave them: a training then asks the judgment store only about
    what changed, O(changed) rather than O(project)."""
    if got.sync.mode != "incremental":
        return {}
    latest = project.registry.latest(project.id)
    if latest is None or latest.meta.get("judge") != judge.fingerprint():
        return {}
    try:
        stored = read_judgments(latest.path)
    except RoundFileError as exc:  # asked again instead
        log.warning("project %s: %s; judging from the store", project.id, exc)
        return {}
    changed = set(got.sync.changed)
    return {t: j for t, j in stored.items() if t not in changed and j.ok}


# ------------------------------------------------------------------------------------------ plan
@dataclass
class Planned:
    """What the reward model is fitted on, and the round's plan when one ran."""

    state: CurationState
    reason: str | None  # why a round runs now; None between rounds
    plan: RoundPlan | None
    weights: np.ndarray
    labels: np.ndarray  # a_preferred per pool pair
    factory: RoundFactory


def plan(engine: EngineConfig, reward_model: RewardModelSpec, state: CurationState, reason: str | None) -> Planned:
    """A curation round when ``reason`` says one is due; between rounds only the reward model's
    training weights, the strategy's own."""
    if reason:
        round_plan, factory = plan_next_round(engine, reward_model, state)
        return Planned(state, reason, round_plan, round_plan.train_weight, round_plan.label_a_preferred, factory)
    weights, labels = engine.training_weights(state), state.working_a_preferred
    factory = round_factory(reward_model, state.pairs, labels, weights, budget=engine.fit_budget(state))
    return Planned(state, None, None, weights, labels, factory)


# ------------------------------------------------------------------------------------------- fit
@dataclass
class Fitted:
    model: RewardModel
    report: FitReport
    margins: np.ndarray  # r(a) - r(b) for every pool pair


def fit(project_id: int, pool: ProjectPool, planned: Planned) -> Fitted:
    """Fit the reward model on the planned labels and weights; score every pool pair."""
    weights = planned.factory.within_budget(planned.weights)
    train = np.flatnonzero(weights > 0)
    if len(train) < 2:
        raise ProjectError(f"project {project_id}: fewer than 2 pairs to train the reward model on")
    model = planned.factory()
    report = model.fit([pool.pairs[i] for i in train], planned.labels[train], weights[train])
    return Fitted(model, report, np.asarray(model.margins(pool.pairs), dtype=float))


# --------------------------------------------------------------------------------------- publish
@dataclass
class Published:
    version: VersionInfo
    record: RoundRecord | None  # the round's record, when a round ran


def publish(project: Project, pool: ProjectPool, judged: Judged, carried: CarriedState, planned: Planned,
            fitted: Fitted, *, trained_from: float, judge_fingerprint: str | None = None) -> Published:
    """One new registry version: the reward model, the carried state, the round record, margins
    and judgments (written whole before it becomes visible)."""
    round_plan, ids = planned.plan, pool.task_ids
    record = None
    if round_plan is not None:
        record = round_record(pool, round_plan, fitted.margins, planned.reason, fitted.report, project.engine.as_dict())
        record.summary.update(batch_disagreement(pool, judged.evidence, carried.human_batch))

    def write_version(folder: Path, version_id: str) -> None:
        rm_dir = folder / "rm"
        rm_dir.mkdir(parents=True, exist_ok=True)
        fitted.model.save(rm_dir)
        write_json_atomic(folder / STATE_FILE, next_carried(carried, pool, round_plan, version_id).to_json())
        if record is not None:
            record.write(folder)
        write_margins(folder, ids, fitted.margins)
        write_judgments(folder, ids, judged.judgments)

    version = project.registry.publish(project.id, write_version, meta={
        "reward_model": project.reward_model.kind, "strategy": project.engine.strategy,
        "round": round_plan is not None, "round_index": round_plan.round_index if round_plan else None,
        "pool_size": len(pool), "human_labels": pool.n_human, "fit_seconds": fitted.report.seconds,
        "judge": judge_fingerprint, "trained_from": trained_from, "trained_until": time.time()})
    return Published(version, record)


# --------------------------------------------------------------------------------------- reorder
@dataclass
class Reordered:
    report: WriteReport
    human_batch: list[int]  # task ids, rank order


def reorder(project: Project, got: Read, round_plan: RoundPlan, margins: np.ndarray, version: str) -> Reordered:
    """Write the round's predictions so the label stream serves the human batch first: all of
    them the first time, then only those that must change. Keeps ``got.snapshot`` and
    ``got.sync.changed`` (the rows to store) in step with what Label Studio now shows."""
    pool, ids = got.pool, got.pool.task_ids
    scores = queue_scores(round_plan.human_rank, p_label_right(round_plan, margins))
    batch = [int(i) for i in round_plan.human_batch if pool.human[i] == HUMAN_NONE]
    in_batch = set(batch)

    def as_prediction(i: int) -> QueuedPrediction:
        return QueuedPrediction(ids[i], "a" if round_plan.label_a_preferred[i] else "b", float(scores[i]))

    first = [as_prediction(i) for i in batch]
    rest = [as_prediction(int(i)) for i in np.flatnonzero(pool.human_codes == HUMAN_NONE) if int(i) not in in_batch]
    report = _write_queue(project, got, version, first, rest)
    return Reordered(report, [ids[i] for i in batch])


def _write_queue(project: Project, got: Read, version: str, first: list[QueuedPrediction],
                 rest: list[QueuedPrediction]) -> WriteReport:
    snapshot, sync, settings = got.snapshot, got.sync, project.settings
    if snapshot.queue_version is not None:
        shown = {t: row.shown for t, row in snapshot.rows.items()}
        report = update_round(project.ls, project.id, project.config, snapshot.queue_version,
                              first=queue_changes(first, shown, settings.queue_score_tolerance),
                              rest=queue_changes(rest, shown, settings.queue_score_tolerance,
                                                 settings.queue_max_updates or None), shown=shown)
        for task_id, now_shown in report.shown.items():  # stamped: the next read refreshes them anyway
            snapshot.rows[task_id].shown = now_shown
        sync.changed = list(dict.fromkeys(sync.changed + list(report.shown)))
        return report
    report = write_round(project.ls, project.id, project.config, version, first=first, rest=rest)
    snapshot.queue_version = version
    if report.stamped_tasks:
        # Predictions created one by one stamped their tasks: read the project once more now (the queue
        # is already re-ordered), so that the next read starts after those stamps.
        got.snapshot, refresh = sync_project(project.ls, project.info, project.config, snapshot, full=True,
                                             server_time=lambda: project.traffic.server_time)
        sync.mode, sync.tasks_read, sync.changed = "full", sync.tasks_read + refresh.tasks_read, list(got.snapshot.rows)
    else:
        sync.changed = list(dict.fromkeys(
            sync.changed + read_queue_predictions(project.ls, project.id, project.config, snapshot)))
    return report


def log_round(project: Project, version: str, pool: ProjectPool, record: RoundRecord, reordered: Reordered,
              seconds: dict[str, float]) -> None:
    """One line per round in the project's round log (kept across pruning, read by the report)."""
    append_round_log(project.registry, project.id, RoundLogLine(
        version=version, at=time.time(), round_index=record.round_index, reason=record.reason or "",
        pool_size=len(pool), human_labels=pool.n_human, human_batch=reordered.human_batch,
        counts=record.counts, summary=record.summary, seconds=seconds))


# ---------------------------------------------------------------------------------------- settle
def settle(project: Project, got: Read) -> int:
    """Store what this training read. When the read began right after a change, look again first
    (nobody waits on the queue now), so the next training starts from a settled cursor. Returns
    the tasks read to settle it."""
    tasks_read = 0
    sync = got.sync
    if not sync.settled:
        try:
            got.snapshot, tail = sync_project(project.ls, project.refresh(), project.config, got.snapshot,
                                              server_time=lambda: project.traffic.server_time)
            sync.changed = list(dict.fromkeys(sync.changed + tail.changed))
            if tail.mode == "full":
                sync.mode, sync.changed = "full", list(got.snapshot.rows)
            sync.removed = sync.removed + tail.removed
            tasks_read = tail.tasks_read
        except (httpx.TransportError, ApiError) as exc:  # the next training reaches back instead
            log.warning("project %s: could not settle the read cursor (%s)", project.id, exc)
    _save_snapshot(project, got.snapshot, sync)
    return tasks_read


def _save_snapshot(project: Project, snapshot: ProjectSnapshot, sync: SyncReport) -> None:
    """Keep what this training read; a failure only costs the next training a full read."""
    if project.store is None:
        return
    try:
        project.store.save(snapshot, sync.changed, sync.removed, replace=sync.mode == "full")
    except SQLAlchemyError as exc:
        # The older snapshot left in place is still safe: reading from its older cursor re-reads more.
        log.error("project %s: could not store the snapshot (%s); the next training reads more of Label Studio",
                  snapshot.project_id, describe_db_error(exc))
