"""One training of a project: Label Studio -> reward model -> curation round -> re-ordered queue.

The stages of :mod:`rlthf_backend.app.training.stages`, run in order, each timed and announced
(``on_stage``: the RQ job shows it in ``/jobs``). A training reads only the tasks that changed
since the last one into the project's snapshot in the shared database, or the whole project when
there is no snapshot, it disagrees with Label Studio, or ``full_sync`` asks for it. The round loop
is the core's, with the engine and reward model the settings configure, exactly as ``simulate``
replays it: when a round is due (first round, the human batch done, Train, or enough new labels)
it plans one and writes the predictions that order the label stream. Every run fits the reward
model on the current labels and publishes a registry version. The RQ job around it is ``job.py``.
"""

from __future__ import annotations

import json
import logging
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from rlthf_backend.app.judges import make_judge
from rlthf_backend.app.project import Project, open_project
from rlthf_backend.app.settings import Settings
from rlthf_backend.app.training import stages
from rlthf_backend.app.training.rounds import state_from_pool, why_round_now
from rlthf_backend.core.judges.base import Judge
from rlthf_backend.registry.records import CarriedState

log = logging.getLogger(__name__)


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
    seconds: dict[str, float] = field(default_factory=dict)  # per stage, and the totals
    round_summary: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: float = 0.0  # of the process that ran the training (memory per worker)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StageClock:
    """Announces each stage as it starts and records its seconds under its name."""

    def __init__(self, on_stage: Callable[[str], None], started_at: float | None = None) -> None:
        self.on_stage = on_stage
        self.started_at = started_at if started_at is not None else time.perf_counter()
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str, doing: str) -> Iterator[float]:
        """Run one stage: ``doing`` is what ``/jobs`` shows meanwhile; yields its start time."""
        self.on_stage(doing)
        start = time.perf_counter()
        try:
            yield start
        finally:
            self.seconds[name] = round(time.perf_counter() - start, 3)

    def since_start(self, at: float) -> float:
        return at - self.started_at


def run_training(
    settings: Settings,
    project_id: int,
    *,
    force_round: bool = False,
    full_sync: bool = False,
    on_stage: Callable[[str], None] = lambda stage: None,
    started_at: float | None = None,
) -> TrainingOutcome:
    """One training of one project, from Label Studio's current state. Callers hold the lock."""
    clock = StageClock(on_stage, started_at)
    with clock.stage("open", "opening the project"):
        project = open_project(settings, project_id, timeout=settings.label_studio_timeout, with_store=True)
    return train(project, make_judge(settings), clock, force_round=force_round, full_sync=full_sync)


def train(project: Project, judge: Judge, clock: StageClock, *, force_round: bool = False,
          full_sync: bool = False) -> TrainingOutcome:
    """The stages, in order, on an opened project."""
    trained_from = time.time()
    with clock.stage("read", "reading Label Studio"):
        got = stages.read(project, full=full_sync)
    pool = got.pool
    with clock.stage("judge", "judging"):
        reuse = stages.reusable_judgments(project, judge, got)
        judged = stages.judge(judge, pool, seed=project.engine.seed, reuse=reuse)

    carried = CarriedState.newest(project.registry, project.id)
    state = state_from_pool(pool, judged.evidence, carried)
    reason = why_round_now(pool, carried, project.engine.rounds, force_round)
    doing = f"planning round {state.round_index} ({reason})" if reason else "planning: no round due"
    with clock.stage("plan", doing):
        planned = stages.plan(project.engine, project.reward_model, state, reason)
    with clock.stage("fit", "fitting the reward model"):
        fitted = stages.fit(project.id, pool, planned)
    with clock.stage("publish", "publishing the model version"):
        published = stages.publish(project, pool, judged, carried, planned, fitted, trained_from=trained_from,
                                   judge_fingerprint=judge.fingerprint())

    version = published.version.version
    outcome = TrainingOutcome(
        project_id=project.id, version=version, round_run=planned.plan is not None, round_reason=reason or "",
        round_index=planned.plan.round_index if planned.plan else None, pool_size=len(pool),
        human_labels=pool.n_human, skipped_tasks=len(pool.skipped), seconds=clock.seconds)
    if planned.plan is not None and published.record is not None:
        with clock.stage("reorder", "re-ordering the label stream") as start:
            reordered = stages.reorder(project, got, planned.plan, fitted.margins, version)
        report = reordered.report
        clock.seconds["to_reordered_queue"] = round(clock.since_start(start) + report.seconds_to_reorder, 3)
        clock.seconds["to_whole_batch"] = round(clock.since_start(start) + report.seconds_batch, 3)
        outcome.reordered_at = report.reordered_at
        outcome.human_batch = reordered.human_batch
        outcome.predictions_written = report.written
        outcome.model_version_in_label_studio = got.snapshot.queue_version
        outcome.round_summary = published.record.summary
        stages.log_round(project, version, pool, published.record, reordered, dict(clock.seconds))
    with clock.stage("settle", "settling the read cursor"):
        outcome.sync_settle_tasks_read = stages.settle(project, got)

    sync = got.sync
    outcome.sync = {"mode": sync.mode, "reason": sync.reason, "tasks_read": sync.tasks_read,
                    "changed": len(sync.changed), "removed": len(sync.removed)}
    outcome.label_studio_requests = project.traffic.requests
    clock.seconds["total"] = round(time.perf_counter() - clock.started_at, 3)
    outcome.peak_rss_mb = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB

    pruned = project.registry.prune(project.id, project.settings.keep_versions)
    if pruned:
        log.info("project %s: pruned versions %s", project.id, ", ".join(pruned))
    log.info("project %s: trained %s (%s)", project.id, version, json.dumps(outcome.seconds))
    return outcome
