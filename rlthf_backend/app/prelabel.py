"""Pre-labelling: judge tasks and write their predictions to Label Studio as they come.

Two ways in:

- ``rlthf-backend prelabel`` (:func:`prelabel_project`): a whole project, with a progress bar. The
  recommended route for a large pool: Label Studio only asks a backend for predictions when a task
  is opened or "Retrieve Predictions" is clicked, one synchronous request that it abandons after
  100 s.
- :func:`prelabel_tasks_job`, the background job a ``/predict`` queues for the tasks it could not
  judge within its time budget (``RLTHF_PREDICT_BUDGET_S``): one click on "Retrieve Predictions"
  gets every prediction, the rest arriving in Label Studio while they are judged.

Either way each judgment is stored in the judgment store the moment it arrives (an interrupted run
resumes without asking the judge again), predictions are written in bulk every few seconds, and
progress (done / total, rate, time left, requests and tokens paid for) is logged every
``report_every_s`` seconds and, for the job, recorded for ``/jobs``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any

from label_studio_sdk import LabelStudio
from tqdm import tqdm

from rlthf_backend.app.judges import make_judge, process_judge
from rlthf_backend.app.project import open_project
from rlthf_backend.app.settings import Settings, get_settings
from rlthf_backend.core.judges.base import Judge, JudgeCall, judge_call
from rlthf_backend.jobs.status import PrelabelProgress
from rlthf_backend.core.types import Pair
from rlthf_backend.labelstudio.client import iter_tasks
from rlthf_backend.labelstudio.config import PairwiseConfig
from rlthf_backend.labelstudio.predict import prediction_for
from rlthf_backend.labelstudio.queue_order import QueuedPrediction, write_predictions
from rlthf_backend.labelstudio.results import shown_label
from rlthf_backend.labelstudio.tasks import TaskDataError, pair_from_task

log = logging.getLogger(__name__)

#: Predictions written to Label Studio in one go at most, and the longest a judged task waits to be written.
WRITE_EVERY_TASKS = 500
WRITE_EVERY_S = 3.0


@dataclass
class PrelabelSummary:
    project_id: int
    model_version: str
    tasks: int = 0
    skipped: int = 0  # already held a prediction of this judge
    written: int = 0
    judged: int = 0  # judged now (paid for)
    cached: int = 0  # served from the judgment cache
    failed: int = 0
    failure_reasons: Counter = field(default_factory=Counter)
    interrupted: bool = False
    progress: PrelabelProgress | None = None

    def describe(self) -> str:
        lines = [
            f"project {self.project_id}, model_version {self.model_version}",
            f"  tasks {self.tasks}, already predicted {self.skipped}, predictions written {self.written}",
            f"  judged now {self.judged}, from cache {self.cached}, failed {self.failed}",
        ]
        if self.progress is not None:
            lines.append(f"  {self.progress.describe()}")
        if self.interrupted:
            lines.append("  interrupted: run it again to judge the rest (nothing judged is asked again)")
        for reason, count in self.failure_reasons.most_common(10):
            lines.append(f"    {count} x {reason}")
        return "\n".join(lines)


def _short_reason(error: str) -> str:
    # "task 12: judge error: timed out" -> "judge error: timed out", so identical causes group.
    return error.split(": ", 1)[1] if error.startswith("task ") and ": " in error else error


class ProgressMeter:
    """Judged / total, rate, time left and cost of one run: logged every ``every_s`` seconds and
    handed to ``on_report`` (``/jobs``) every ``record_every_s``.

    The cost is what the judge paid while the run lasted: where the judge is shared (the server's,
    in embedded mode) it includes the requests of /predict calls made meanwhile.
    """

    def __init__(self, total: int, judge: Judge, *, every_s: float = 10.0, record_every_s: float = 2.0,
                 job_id: str | None = None, on_report: Callable[[PrelabelProgress], None] | None = None,
                 label: str = "prelabel") -> None:
        self.total, self.judge, self.every_s, self.job_id, self.on_report = total, judge, every_s, job_id, on_report
        self.record_every_s = record_every_s
        self.label = label
        self.started = time.monotonic()
        self.usage_at_start = judge.usage()
        self.last_log = self.last_record = self.started

    def snapshot(self, summary: PrelabelSummary, state: str = "running", reason: str | None = None) -> PrelabelProgress:
        now = time.monotonic()
        done = summary.judged + summary.cached + summary.failed
        seconds = now - self.started
        rate = done / seconds if seconds > 0 and done else None
        eta = (self.total - done) / rate if rate else None
        usage = {k: v - self.usage_at_start.get(k, 0) for k, v in self.judge.usage().items()}
        return PrelabelProgress(
            total=self.total, done=done, judged=summary.judged, cached=summary.cached, failed=summary.failed,
            written=summary.written, seconds=round(seconds, 2), rate_per_s=round(rate, 3) if rate else None,
            eta_s=round(eta, 1) if eta is not None else None, requests=usage.get("requests", 0),
            prompt_tokens=usage.get("prompt_tokens") or None, completion_tokens=usage.get("completion_tokens") or None,
            state=state, job_id=self.job_id, reason=reason)

    def report(self, summary: PrelabelSummary, state: str = "running", reason: str | None = None,
               force: bool = False) -> PrelabelProgress | None:
        now = time.monotonic()
        log_now = force or now - self.last_log >= self.every_s
        record_now = self.on_report is not None and (force or now - self.last_record >= self.record_every_s)
        if not (log_now or record_now):
            return None
        progress = self.snapshot(summary, state, reason)
        if log_now:
            self.last_log = now
            log.info("%s project %s: %s", self.label, summary.project_id, progress.describe())
        if record_now and self.on_report is not None:
            self.last_record = now
            try:
                self.on_report(progress)
            except Exception as exc:  # progress must never stop the work
                log.warning("progress not recorded: %s", exc)
        return progress


@contextlib.contextmanager
def _ctrl_c_stops(call: JudgeCall, enabled: bool) -> Iterator[None]:
    """First Ctrl-C: start no new judge request, finish (and keep) those in flight, write what was
    judged. A second Ctrl-C quits at once."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def stop(signum: int, frame: Any) -> None:
        if call.stopped:
            raise KeyboardInterrupt
        call.cancel()
        log.warning("interrupted: finishing the judge requests in flight and writing what was judged "
                    "(Ctrl-C again quits now)")

    signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def prelabel_project(
    settings: Settings,
    project_id: int,
    *,
    judge: Judge | None = None,
    rejudge_all: bool = False,
    task_ids: Collection[int] | None = None,
    progress: bool = False,
    report_every_s: float = 10.0,
    on_report: Callable[[PrelabelProgress], None] | None = None,
    job_id: str | None = None,
    set_project_version: bool = True,
    stop_on_ctrl_c: bool | None = None,
) -> PrelabelSummary:
    """Judge every task without a prediction of this judge (only ``task_ids``, when given) and
    write the predictions to Label Studio as they are judged.

    Each judgment is stored as it arrives and predictions are written every few seconds, so an
    interruption keeps what was paid for and a rerun picks up the rest without asking again.
    ``progress``: a progress bar (and Ctrl-C stops gracefully, unless ``stop_on_ctrl_c`` is False).
    ``set_project_version``: point the project at this judge's model_version at the end (Label
    Studio shows, and pre-fills annotations from, the predictions of project.model_version).
    """
    project = open_project(settings, project_id)
    ls, config = project.ls, project.config
    judge = judge or make_judge(settings)
    model_version = judge.model_version(settings.model_title)
    summary = PrelabelSummary(project_id, model_version)
    todo, predictions_at_start = _tasks_to_judge(ls, project_id, model_version, summary,
                                                 set(task_ids) if task_ids is not None else None, rejudge_all)
    pairs, pair_tasks = _pairs_of(config, todo, summary)

    meter = ProgressMeter(len(todo), judge, every_s=report_every_s, job_id=job_id, on_report=on_report)
    bar = tqdm(total=len(todo), initial=summary.failed, desc=f"prelabel project {project_id}", unit="task",
               disable=not progress)
    unwritten: list[QueuedPrediction] = []
    last_write = time.monotonic()

    def flush() -> None:
        nonlocal last_write
        if unwritten:
            fresh = still_unpredicted(ls, project_id, unwritten, predictions_at_start)
            summary.skipped += len(unwritten) - len(fresh)
            summary.written += write_predictions(ls, project_id, config, model_version, fresh) if fresh else 0
            unwritten.clear()
        last_write = time.monotonic()

    call = JudgeCall()
    state, reason = "finished", None
    meter.report(summary, force=True)
    try:
        with _ctrl_c_stops(call, progress if stop_on_ctrl_c is None else stop_on_ctrl_c), judge_call(call), \
                contextlib.closing(judge.judge_stream(pairs)) as stream:
            for i, judgment in stream:
                if judgment.extra.get("not_asked"):
                    summary.interrupted = True
                    continue
                outcome = prediction_for(config, pair_tasks[i], judgment)
                if not outcome.ok:
                    summary.failed += 1
                    summary.failure_reasons[_short_reason(outcome.error or "")] += 1
                else:
                    summary.cached += outcome.cached
                    summary.judged += not outcome.cached
                    label, _ = shown_label(config, judgment)
                    unwritten.append(QueuedPrediction(int(pair_tasks[i]), label, float(outcome.score or 0.5)))
                bar.update(1)
                if len(unwritten) >= WRITE_EVERY_TASKS or time.monotonic() - last_write >= WRITE_EVERY_S:
                    flush()
                meter.report(summary)
        if summary.interrupted:
            state, reason = "interrupted", "stopped before every task was judged; run again for the rest"
    except BaseException as exc:
        summary.interrupted = True
        state, reason = ("interrupted", "interrupted") if isinstance(exc, KeyboardInterrupt) else (
            "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        bar.close()
        try:
            flush()
        except Exception as exc:  # noqa: BLE001 - the judgments are stored; a rerun writes them
            log.warning("project %s: %d predictions not written (%s); a rerun writes them from the judgment "
                        "store", project_id, len(unwritten), exc)
        summary.progress = meter.report(summary, state, reason, force=True)

    if set_project_version and (summary.written or summary.skipped):
        ls.projects.update(id=project_id, model_version=model_version)
    log.info("prelabel done: %s", summary.describe().replace("\n", ";"))
    return summary


def _tasks_to_judge(ls: LabelStudio, project_id: int, model_version: str, summary: PrelabelSummary,
                    wanted: set[int] | None, rejudge_all: bool) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """The tasks without a prediction of ``model_version`` (every ``wanted`` one with ``rejudge_all``),
    and how many predictions each held when read (see :func:`still_unpredicted`)."""
    todo, predictions_at_start = [], {}
    for task in iter_tasks(ls, project_id):
        if wanted is not None and task.get("id") not in wanted:
            continue
        summary.tasks += 1
        versions = {p.get("model_version") for p in task.get("predictions") or []}
        if model_version in versions and not rejudge_all:
            summary.skipped += 1
        else:
            todo.append(task)
            predictions_at_start[int(task["id"])] = len(task.get("predictions") or [])
    return todo, predictions_at_start


def _pairs_of(config: PairwiseConfig, tasks: list[dict[str, Any]],
              summary: PrelabelSummary) -> tuple[list[Pair], list[int]]:
    """The pairs of ``tasks`` and their task ids; a task that is no pair counts as failed, with its reason."""
    pairs, pair_tasks = [], []
    for task in tasks:
        try:
            pairs.append(pair_from_task(config, task))
            pair_tasks.append(task.get("id"))
        except TaskDataError as exc:
            summary.failed += 1
            summary.failure_reasons[_short_reason(str(exc))] += 1
    return pairs, pair_tasks


def still_unpredicted(ls: LabelStudio, project_id: int, items: list[QueuedPrediction],
                      predictions_at_start: dict[int, int]) -> list[QueuedPrediction]:
    """``items`` whose task still exists and got no prediction since this run read it: a task an
    annotator opened meanwhile got its own from Label Studio's single-task ``/predict`` (one light
    listing per write)."""
    chosen = {"selectedItems": {"all": False, "included": [p.task_id for p in items]}}
    now = {int(t["id"]): int(t.get("total_predictions") or 0)
           for t in iter_tasks(ls, project_id, query=chosen, include="id,total_predictions")}
    return [p for p in items if p.task_id in now and now[p.task_id] <= predictions_at_start.get(p.task_id, 0)]


def prelabel_tasks_job(project_id: int, task_ids: list[int], model_version: str) -> dict[str, Any]:
    """The RQ job a ``/predict`` queues for the tasks it answered "not yet": judge them (the judgment
    store already holds what the request judged) and write their predictions to Label Studio."""
    from rq import get_current_job

    from rlthf_backend.jobs import status

    settings = get_settings()
    job = get_current_job()
    redis = job.connection if job is not None else None
    job_id = job.id if job is not None else None

    def record(progress: PrelabelProgress) -> None:
        if redis is not None:
            status.record_prelabel(redis, project_id, progress)

    judge = process_judge(settings)  # the server's own in embedded mode: one bound, one urgent lane
    ours = judge.model_version(settings.model_title)
    if ours != model_version:
        log.warning("project %s: /predict answered as %s but this worker's judge is %s: its predictions are written "
                    "as %s (configure the server and workers alike)", project_id, model_version, ours, ours)
    try:
        summary = prelabel_project(settings, project_id, judge=judge, task_ids=task_ids, on_report=record,
                                   job_id=job_id, set_project_version=False, stop_on_ctrl_c=False)
    except Exception as exc:
        record(PrelabelProgress(total=len(task_ids), state="failed", job_id=job_id,
                                reason=f"{type(exc).__name__}: {exc}"))
        raise
    return {"project_id": project_id, "tasks": summary.tasks, "written": summary.written, "judged": summary.judged,
            "cached": summary.cached, "failed": summary.failed, "skipped": summary.skipped}
