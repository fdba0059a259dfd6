"""What the report shows, gathered from the model registry (the one optional Label Studio
question, which queued tasks are answered, comes in as a function, so this stays testable).

Pure functions turn the registry's files into plain records: :func:`margin_curve` (the sorted
reward-margin curve and its strategic points), :func:`round_rows` (one line of numbers per
round, with :func:`queue_yield`, :func:`wrong_left_interval` and :func:`wrong_left`),
:func:`queue_items` (the tasks Label Studio serves next).

What is read from the registry, through the typed records of ``round_files``: the round log
(:class:`RoundLogLine`) and each round record still on disk (:class:`RoundRecord`, with its
per-task :class:`TaskDecision`). Summary keys used: ``expected_wrong_in_export`` (mean, interval,
basis), ``expected_wrong_in_export_model`` / ``_audit``, ``expected_yield_next_batch``,
``audited_pairs``, ``audited_error_rate``, ``audited_error_ci95``, ``last_batch_disagreement`` /
``last_batch_answered``, ``flip_confirmed``, ``regions.flip_candidate``. A summary value of the
wrong type, NaN or missing reads as unknown (None): the page renders over any record.
"""

from __future__ import annotations

import logging
import math
import numbers
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

    ``disagreement``: over the tasks of this round's batch people answered (``disagreement_answered``,
    targeted and audited together), the share whose human label differs from the LLM's own label
    (not the label shown, which the engine may have flipped); known once the next round ran, from
    its ``last_batch_disagreement``. ``flip_precision``: the audited share of wrong LLM labels in
    the region that was flipped, i.e. how many flips were right (``flip_audited_wrong`` of
    ``flip_audited``, where recorded). ``human_effort``: human labels so far as a share of the
    pool, when the round started.
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
    #: The LLM's error rate on every audited answer so far, all rounds (n pairs, 95% interval;
    #: adaptive weights each audit by its sampling probability, so rate * n need not be whole).
    audited_pairs: int | None = None
    audited_error_rate: float | None = None
    audited_error_ci: tuple[float, float] | None = None
    #: Where the round drew its audits: "pool" (any unlabelled pair: random order's error rate),
    #: "flip_candidates" (pairs the engine thought more likely wrong than right), or "p_wrong"
    #: (adaptive: any unlabelled pair, with probability growing with P(wrong), weighted back).
    #: Rounds recorded before the choice existed drew from the pool.
    audit_scope: str = "pool"
    #: Expected wrong labels fixed per human label in the next batch, and the engine's stop signal.
    expected_yield: float | None = None
    stop: bool | None = None
    #: This round's batch as people answered it (known once the next round ran): the targeted
    #: tasks and the audited ones, answered and contradicting the label the round showed.
    queue_yield: QueueYield | None = None
    #: The wrong labels left in the export as the round estimated them (None: no estimate).
    wrong_left: WrongLeft | None = None
    #: Audited pairs of the flip-candidate region, and how many of those the LLM got wrong.
    flip_audited: int | None = None
    flip_audited_wrong: int | None = None

    @property
    def human_effort(self) -> float:
        return self.human_labels / self.pool_size if self.pool_size else 0.0

    @property
    def disagreed(self) -> int | None:
        """How many answered batch tasks differ from the LLM's label (``disagreement`` as a count)."""
        if self.disagreement is None or self.disagreement_answered is None:
            return None
        return round(self.disagreement * self.disagreement_answered)


@dataclass(frozen=True)
class QueueYield:
    """How often people contradicted the label the round showed (the LLM's, or its flip), on a
    round's targeted tasks vs its audited ones, counted over the tasks answered by the next round:
    the first says what the queue finds, the second what the audits find (random order's rate
    where they are drawn at random from the pool)."""

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
class WrongLeft:
    """Wrong labels expected among the exported pairs no person checked, after one round.

    ``mean``, and its interval ``low``-``high`` at coverage ``level`` (None: no interval, and
    ``no_interval`` says so and why, e.g. "model estimate, no interval: no audits yet"); ``basis``:
    what the estimate rests on, in words; ``audit_based``: older records' second, audit-based
    estimate (None where the round recorded one estimate with its interval).
    """

    mean: float
    low: float | None = None
    high: float | None = None
    level: float | None = None
    basis: str = ""
    no_interval: str = ""
    audit_based: float | None = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


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
    def newest_yield(self) -> RoundRow | None:
        """The newest round whose batch's answers were read (the queue-yield table's last row)."""
        return next((r for r in reversed(self.rounds) if r.queue_yield is not None), None)

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


def _finite(v: Any) -> float | None:
    """``v`` as a finite float; None for None, NaN, infinities and non-numbers (a damaged record)."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _count(v: Any) -> int | None:
    """``v`` as a count (a whole number >= 0), else None."""
    f = _finite(v)
    return int(f) if f is not None and f >= 0 and f == int(f) else None


def _share(v: Any) -> float | None:
    """``v`` as a share in [0, 1], else None."""
    f = _finite(v)
    return f if f is not None and 0.0 <= f <= 1.0 else None


def _interval(v: Any) -> tuple[float, float] | None:
    """A recorded [low, high] pair, or None when it is not two finite numbers in order."""
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        return None
    lo, hi = _finite(v[0]), _finite(v[1])
    return (lo, hi) if lo is not None and hi is not None and lo <= hi else None


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


def _audits_phrase(n: int) -> str:
    return f"{n} audited {'pair' if n == 1 else 'pairs'}"


def _no_interval_reason(audits: int | None) -> str:
    return "none recorded for this round" if audits else "no audits yet"


def _recorded_estimate(d: Mapping[str, Any], audits: int | None) -> WrongLeft | None:
    """The round's own ``expected_wrong_in_export`` record (mean, low, high, level, basis, audits)."""
    mean = _finite(d.get("mean"))
    if mean is None:
        return None
    n = _count(d.get("audits"))
    n = audits if n is None else n
    basis = d.get("basis")
    if not isinstance(basis, str) or not basis.strip():
        basis = f"the engine's model calibrated by {_audits_phrase(n)}" if n else "the engine's model"
    bounds = _interval([d.get("low"), d.get("high")])
    level = _finite(d.get("level"))
    level = level if level is not None and 0.0 < level < 1.0 else None
    if bounds is None or not bounds[0] <= mean <= bounds[1]:
        return WrongLeft(mean, basis=basis.strip(), no_interval=f"no interval: {_no_interval_reason(n)}")
    return WrongLeft(mean, bounds[0], bounds[1], level, basis.strip())


def wrong_left(summary: Mapping[str, Any], interval: tuple[int, tuple[float, float]] | None) -> WrongLeft | None:
    """The round's estimate of the wrong labels left in the export, with what it rests on.

    The round's ``expected_wrong_in_export`` record where it has one; else (older records) the
    model's ``expected_wrong_in_export_model``, with ``interval`` (from each exported unchecked
    pair's P(wrong), :func:`wrong_left_interval`) when there is one, and the audit-based float
    beside it. None when the round recorded no estimate.
    """
    audits = _count(summary.get("audited_pairs"))
    recorded = summary.get("expected_wrong_in_export")
    if isinstance(recorded, Mapping):
        estimate = _recorded_estimate(recorded, audits)
        if estimate is not None:
            return estimate
    mean = _finite(summary.get("expected_wrong_in_export_model"))
    if mean is None:
        return None
    audit_based = _finite(summary.get("expected_wrong_in_export_audit"))
    if interval is not None and interval[1][0] <= mean <= interval[1][1]:
        n, (lo, hi) = interval
        basis = (f"the engine's P(wrong) of each of the {n} exported pairs nobody checked (the interval assumes "
                 "those probabilities are right)")
        return WrongLeft(mean, lo, hi, 0.95, basis, audit_based=audit_based)
    if audits is None and audit_based is not None:
        audits = 1  # an audit-based estimate needs audits, however many
    return WrongLeft(mean, basis="the engine's P(wrong) of each exported pair nobody checked",
                     no_interval=f"model estimate, no interval: {_no_interval_reason(audits)}", audit_based=audit_based)


def _audit_scope(record: RoundRecord | None) -> str:
    """Where ``record``'s round drew its audits (see :attr:`RoundRow.audit_scope`)."""
    if record is None:
        return "pool"
    if record.strategy == "adaptive":
        return "p_wrong"
    scope = _get(record.engine, "fused", "audit_scope")
    return scope if scope in ("pool", "flip_candidates") else "pool"


def _flip_precision(summary: Mapping[str, Any], flips: int) -> tuple[float | None, tuple[float, float] | None,
                                                                      int | None, int | None]:
    """(audited error rate of the flipped region, its 95% interval, audited pairs, of those wrong),
    all None unless the round flipped pairs on the audit's confirmation."""
    if not flips or not summary.get("flip_confirmed"):
        return None, None, None, None
    fc = _get(summary, "regions", "flip_candidate")
    rate = _share(_get(fc, "audited_error_rate"))
    if rate is None:
        return None, None, None, None
    audited = _count(_get(fc, "audited"))
    wrong = _count(_get(fc, "audited_wrong")) if audited else None
    return rate, _interval(_get(fc, "audited_error_ci95")), audited, wrong


def round_rows(log_lines: Sequence[RoundLogLine], records: Mapping[str, RoundRecord]) -> list[RoundRow]:
    """One :class:`RoundRow` per round log line; ``records``: ``round.json`` by version, where
    still on disk (pruned versions lose the audit-slice size, the interval and the queue yield)."""
    rows = []
    for i, line in enumerate(log_lines):
        summary = line.summary if isinstance(line.summary, Mapping) else {}
        counts = {str(k): _count(v) or 0 for k, v in (line.counts if isinstance(line.counts, Mapping) else {}).items()}
        record = records.get(str(line.version))
        audit_slice = None
        if record is not None:
            audit_slice = sum(1 for d in record.tasks.values() if d.audit and d.status == "human")
        next_record = records.get(str(log_lines[i + 1].version)) if i + 1 < len(log_lines) else None
        interval = wrong_left_interval(record) if record is not None else None
        following = log_lines[i + 1].summary if i + 1 < len(log_lines) else None
        flips = counts.get("flip", 0)
        precision, ci, flip_audited, flip_wrong = _flip_precision(summary, flips)
        rows.append(RoundRow(
            index=_count(line.round_index) or 0,
            version=str(line.version),
            reason=str(line.reason or ""),
            pool_size=_count(line.pool_size) or 0,
            human_labels=_count(line.human_labels) or 0,
            batch_size=len(_human_batch(line)),
            audit_slice=audit_slice,
            counts=counts,
            disagreement=_share(_get(following, "last_batch_disagreement")),
            disagreement_answered=_count(_get(following, "last_batch_answered")),
            flips=flips,
            flip_precision=precision,
            flip_precision_ci=ci,
            est_wrong_model=_finite(summary.get("expected_wrong_in_export_model")),
            est_wrong_audit=_finite(summary.get("expected_wrong_in_export_audit")),
            stop_reason=(record.stop_reason or None) if record is not None else None,
            est_wrong_interval=interval[1] if interval else None,
            unchecked_exported=interval[0] if interval else None,
            audited_pairs=_count(summary.get("audited_pairs")),
            audited_error_rate=_share(summary.get("audited_error_rate")),
            audited_error_ci=_interval(summary.get("audited_error_ci95")),
            audit_scope=_audit_scope(record),
            expected_yield=_finite(summary.get("expected_yield_next_batch")),
            stop=record.stop if record is not None else None,
            queue_yield=queue_yield(record, next_record) if record is not None and next_record is not None else None,
            wrong_left=wrong_left(summary, interval),
            flip_audited=flip_audited,
            flip_audited_wrong=flip_wrong,
        ))
    return rows


def _human_batch(line: RoundLogLine) -> list[int]:
    """The task ids a round queued for people, rank order (what is not a task id left out)."""
    batch = line.human_batch if isinstance(line.human_batch, list) else []
    return [t for t in map(_count, batch) if t is not None]


def batch_task_ids(log_lines: Sequence[RoundLogLine], limit: int = 20) -> list[int]:
    """The first ``limit`` tasks of the newest round's human batch, rank order."""
    return _human_batch(log_lines[-1])[:limit] if log_lines else []


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
