"""What the report shows, gathered from the model registry (the one optional Label Studio
question, which queued tasks are answered, comes in as a function, so this stays testable).

Pure functions turn the registry's files into plain records: :func:`margin_curve` (the sorted
reward-margin curve and its strategic points), :func:`round_rows` (one line of numbers per
round, with :func:`queue_yield` and :func:`wrong_left_interval`), :func:`queue_items` (the tasks
Label Studio serves next).

What is read from the registry, through the typed records of ``round_files``: the round log
(:class:`RoundLogLine`) and each round record still on disk (:class:`RoundRecord`, with its
per-task :class:`TaskDecision`). Summary keys used:
``expected_wrong_in_export_model`` / ``_audit``, ``expected_yield_next_batch``,
``audited_pairs``, ``audited_error_rate``, ``audited_error_ci95``, ``last_batch_disagreement`` /
``last_batch_answered``, ``flip_confirmed``, ``regions.flip_candidate``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlthf_backend.core.curation import CurvePoints, find_curve_points
from rlthf_backend.registry.records import (
    ROUND_FILE,
    QueueCheck,
    RoundFileError,
    RoundLogLine,
    RoundRecord,
    TaskDecision,
    newest_round_version,
    read_check,
    read_margins,
    read_round_log,
)
from rlthf_backend.registry.versions import ModelRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarginCurve:
    """Margins r(chosen) - r(rejected) under each pair's current label, sorted descending, with
    the task id and engine status at each rank, and the curve's elbow / knee / reflection."""

    margins: np.ndarray
    task_ids: list[int]
    statuses: list[str]
    points: CurvePoints
    version: str


@dataclass(frozen=True)
class RoundRow:
    """One curation round in numbers (None: not known for this round or strategy).

    ``disagreement``: share of this round's batch where people contradicted the LLM, known once
    the next round ran (it measures the answered batch). ``flip_precision``: the audited share of
    wrong LLM labels in the region that was flipped, i.e. how many flips were right.
    ``human_effort``: human labels so far as a share of the pool, when the round started.
    """

    index: int
    version: str
    reason: str
    pool_size: int
    human_labels: int
    batch_size: int
    audit_slice: int | None
    counts: dict[str, int]
    disagreement: float | None
    disagreement_answered: int | None
    flips: int
    flip_precision: float | None
    flip_precision_ci: tuple[float, float] | None
    est_wrong_model: float | None
    est_wrong_audit: float | None
    stop_reason: str | None
    #: 95% interval of the wrong labels left, from each exported unchecked pair's P(wrong).
    est_wrong_interval: tuple[float, float] | None = None
    #: Exported pairs nobody checked (the pairs that estimate is over).
    unchecked_exported: int | None = None
    #: The LLM's error rate on the random audit slices so far (k of n, 95% interval).
    audited_pairs: int | None = None
    audited_error_rate: float | None = None
    audited_error_ci: tuple[float, float] | None = None
    #: Where the round drew its audits: "pool" (any unlabelled pair: random order's error rate) or
    #: "flip_candidates" (pairs the engine thought more likely wrong than right). Rounds recorded
    #: before the choice existed drew from the pool.
    audit_scope: str = "pool"
    #: Expected wrong labels fixed per human label in the next batch, and the engine's stop signal.
    expected_yield: float | None = None
    stop: bool | None = None
    #: This round's batch as people answered it (known once the next round ran): the targeted
    #: tasks and the random audit ones, answered and contradicting the label the round showed.
    queue_yield: QueueYield | None = None

    @property
    def human_effort(self) -> float:
        return self.human_labels / self.pool_size if self.pool_size else 0.0


@dataclass(frozen=True)
class QueueYield:
    """How often people contradicted the label shown, on a round's targeted tasks vs its random
    audit ones: the first says what the queue finds, the second what random order would."""

    targeted_answered: int
    targeted_contradicted: int
    audit_answered: int
    audit_contradicted: int

    @property
    def targeted_rate(self) -> float | None:
        return self.targeted_contradicted / self.targeted_answered if self.targeted_answered else None

    @property
    def audit_rate(self) -> float | None:
        return self.audit_contradicted / self.audit_answered if self.audit_answered else None


@dataclass(frozen=True)
class StopSignal:
    """The engine's advice after the newest round, in numbers (the page words it)."""

    batch_size: int
    expected_fixes: float  # wrong labels the next batch is expected to fix
    per_label: float
    stop: bool
    reason: str


@dataclass(frozen=True)
class QueueItem:
    """A task of the newest round's batch; ``answered``: someone already submitted a label
    (None: Label Studio was not asked)."""

    rank: int
    task_id: int
    p_wrong: float | None
    audit: bool
    answered: bool | None = None


@dataclass
class ReportData:
    project_id: int
    latest_version: str | None
    strategy: str | None
    curve: MarginCurve | None
    rounds: list[RoundRow] = field(default_factory=list)
    queue: list[QueueItem] = field(default_factory=list)
    label_studio_url: str | None = None
    #: The demo's known-answer check of the first round (None for every real project).
    queue_check: QueueCheck | None = None

    @property
    def stop_signal(self) -> StopSignal | None:
        """From the newest round: what its next batch is expected to fix, and stop or continue."""
        last = self.rounds[-1] if self.rounds else None
        if last is None or last.expected_yield is None:
            return None
        size = last.batch_size or 1
        return StopSignal(size, last.expected_yield * size, last.expected_yield, bool(last.stop),
                          last.stop_reason or "")


def margin_curve(rm_margins: Mapping[int, float], tasks: Mapping[int, TaskDecision], version: str) -> MarginCurve:
    """The curve of a round: each task's r(a) - r(b) oriented to the round's label, sorted
    descending (ties in task-id order, so the picture is reproducible)."""
    ids = sorted(t for t in tasks if t in rm_margins)
    oriented = np.array([rm_margins[t] if tasks[t].label != "b" else -rm_margins[t] for t in ids], float)
    order = np.argsort(-oriented, kind="stable")
    return MarginCurve(
        margins=oriented[order],
        task_ids=[ids[i] for i in order],
        statuses=[tasks[ids[i]].status for i in order],
        points=find_curve_points(oriented),
        version=version,
    )


def _get(d: Mapping[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(d, Mapping):
            return None
        d = d.get(key)
    return d


def queue_yield(record: RoundRecord, following: RoundRecord) -> QueueYield:
    """People's answers to ``record``'s batch as the ``following`` round read them: a batch task
    labelled by then counts as contradicting when the human label differs from the label the
    batch's round showed (the LLM's, unless the engine had flipped it); human ties count nowhere."""
    counts = {True: [0, 0], False: [0, 0]}  # audit? -> [answered, contradicted]
    for task_id, d in record.tasks.items():
        after = following.tasks.get(task_id)
        if d.status != "human" or after is None or after.status != "labelled" or after.scores.get("human_tie"):
            continue
        tally = counts[d.audit]
        tally[0] += 1
        tally[1] += after.label != d.label
    return QueueYield(counts[False][0], counts[False][1], counts[True][0], counts[True][1])


def wrong_left_interval(record: RoundRecord) -> tuple[int, tuple[float, float]] | None:
    """(exported unchecked pairs, 95% interval of how many are wrong): each such pair is wrong
    with its P(wrong) (1 - P for a flip), independently; normal approximation of that sum,
    clipped to [0, n]. None when the round has no P(wrong) (strategies other than fused)."""
    ps = []
    for d in record.tasks.values():
        if d.status not in ("keep", "flip"):
            continue
        if d.p_wrong is None:
            return None
        ps.append(1.0 - d.p_wrong if d.status == "flip" else d.p_wrong)
    if not ps:
        return None
    p = np.asarray(ps, float)
    mean, sd = float(p.sum()), float(np.sqrt(np.sum(p * (1 - p))))
    return len(ps), (max(0.0, mean - 1.96 * sd), min(float(len(ps)), mean + 1.96 * sd))


def round_rows(log_lines: Sequence[RoundLogLine], records: Mapping[str, RoundRecord]) -> list[RoundRow]:
    """One :class:`RoundRow` per round log line; ``records``: ``round.json`` by version, where
    still on disk (pruned versions lose the audit-slice size, the interval and the queue yield)."""
    rows = []
    for i, line in enumerate(log_lines):
        summary = line.summary or {}
        counts = {k: int(v) for k, v in (line.counts or {}).items()}
        record = records.get(line.version)
        audit_slice = None
        if record is not None:
            audit_slice = sum(1 for d in record.tasks.values() if d.audit and d.status == "human")
        next_record = records.get(log_lines[i + 1].version) if i + 1 < len(log_lines) else None
        interval = wrong_left_interval(record) if record is not None else None
        audit_ci = summary.get("audited_error_ci95")
        following = log_lines[i + 1].summary if i + 1 < len(log_lines) else None
        flips = counts.get("flip", 0)
        fc = _get(summary, "regions", "flip_candidate") or {}
        precision = fc.get("audited_error_rate") if flips and summary.get("flip_confirmed") else None
        ci = fc.get("audited_error_ci95") if precision is not None else None
        rows.append(RoundRow(
            index=int(line.round_index or 0),
            version=line.version,
            reason=line.reason or "",
            pool_size=line.pool_size,
            human_labels=line.human_labels,
            batch_size=len(line.human_batch),
            audit_slice=audit_slice,
            counts=counts,
            disagreement=_get(following, "last_batch_disagreement"),
            disagreement_answered=_get(following, "last_batch_answered"),
            flips=flips,
            flip_precision=precision,
            flip_precision_ci=tuple(ci) if ci else None,
            est_wrong_model=summary.get("expected_wrong_in_export_model"),
            est_wrong_audit=summary.get("expected_wrong_in_export_audit"),
            stop_reason=(record.stop_reason or None) if record is not None else None,
            est_wrong_interval=interval[1] if interval else None,
            unchecked_exported=interval[0] if interval else None,
            audited_pairs=summary.get("audited_pairs"),
            audited_error_rate=summary.get("audited_error_rate"),
            audited_error_ci=tuple(audit_ci) if audit_ci and None not in audit_ci else None,
            audit_scope=str(_get(record.engine if record is not None else None, "fused", "audit_scope") or "pool"),
            expected_yield=summary.get("expected_yield_next_batch"),
            stop=record.stop if record is not None else None,
            queue_yield=queue_yield(record, next_record) if record is not None and next_record is not None else None,
        ))
    return rows


def batch_task_ids(log_lines: Sequence[RoundLogLine], limit: int = 20) -> list[int]:
    """The first ``limit`` tasks of the newest round's human batch, rank order."""
    return [int(t) for t in log_lines[-1].human_batch[:limit]] if log_lines else []


def queue_items(log_lines: Sequence[RoundLogLine], tasks: Mapping[int, TaskDecision],
                answered: Collection[int] | None = None, limit: int = 20) -> list[QueueItem]:
    """The newest round's human batch in the order Label Studio serves it (rank 0 first);
    ``answered``: the task ids already labelled, when known."""
    items = []
    for rank, task_id in enumerate(batch_task_ids(log_lines, limit)):
        d = tasks.get(task_id)
        items.append(QueueItem(rank, task_id, d.p_wrong if d else None, bool(d and d.audit),
                               None if answered is None else task_id in answered))
    return items


def load_report_data(
    registry: ModelRegistry,
    project_id: int,
    label_studio_url: str | None = None,
    answered: Callable[[list[int]], Collection[int] | None] | None = None,
) -> ReportData:
    """Everything the report shows for one project, read from the registry; ``answered`` (given
    the queued task ids, returns those already labelled, or None) marks the queue's progress."""
    latest = registry.latest(project_id)
    deciding = newest_round_version(registry, project_id)
    log_lines = read_round_log(registry, project_id)
    records = {}
    for v in registry.versions(project_id):
        if (v.path / ROUND_FILE).is_file():
            try:
                records[v.version] = RoundRecord.read(v)
            except RoundFileError as exc:  # a damaged version costs its row, never the page
                log.warning("report: project %s: leaving out version %s (%s)", project_id, v.version, exc)
    tasks = records[deciding.version].tasks if deciding else {}
    curve = margin_curve(read_margins(deciding.path), tasks, deciding.version) if deciding else None
    return ReportData(
        project_id=project_id,
        latest_version=latest.version if latest else None,
        strategy=(latest.meta.get("strategy") if latest else None),
        curve=curve,
        rounds=round_rows(log_lines, records),
        queue=queue_items(log_lines, tasks, answered(batch_task_ids(log_lines)) if answered else None),
        label_studio_url=label_studio_url,
        queue_check=read_check(registry.project_dir(project_id)),
    )
