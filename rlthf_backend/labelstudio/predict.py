"""Judging Label Studio tasks: tasks in, one prediction (or a per-task error) out, in order."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlthf_backend.core.judges.base import Judge, JudgeCall, judge_call
from rlthf_backend.core.types import Judgment
from rlthf_backend.labelstudio.config import PairwiseConfig
from rlthf_backend.labelstudio.results import result_for_label, shown_label
from rlthf_backend.labelstudio.tasks import TaskDataError, pair_from_task

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskPrediction:
    """The outcome for one task: a prediction, or the reason there is none."""

    task_id: Any
    judgment: Judgment | None
    result: list[dict[str, Any]] | None
    score: float | None
    error: str | None = None
    #: Not judged yet (the time budget ran out or the call was stopped): not a failure.
    pending: bool = False

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def cached(self) -> bool:
        return bool(self.judgment and self.judgment.extra.get("cached"))

    def wire(self, model_version: str) -> dict[str, Any]:
        """The item of the ``/predict`` answer for this task.

        A failed task gets no ``result`` key: Label Studio then stores nothing for it and asks
        again next time, instead of keeping an empty prediction forever.
        """
        if self.result is None:
            return {"model_version": model_version, "error": self.error}
        return {"result": self.result, "score": self.score, "model_version": model_version}


#: The answer's ``error`` for a task left for the background job.
NOT_YET = "not judged yet: the time budget of this request ran out; judging continues in the background"


def predict_tasks(config: PairwiseConfig, tasks: Sequence[Mapping[str, Any]], judge: Judge, *,
                  budget_s: float | None = None, urgent: bool = False) -> list[TaskPrediction]:
    """Judge each task's pair; bad tasks and failed judgments become per-task errors, never exceptions.

    ``budget_s``: answer within this many seconds with what is ready (stored judgments and those
    judged in time); the rest come back ``pending`` (their judging stops: no new request starts
    after the budget, the ones in flight finish and are stored by a caching judge). ``urgent``: a
    person waits for this answer (an opened task): the judge serves it ahead of bulk work.
    """
    outcomes: list[TaskPrediction | None] = [None] * len(tasks)
    valid_index, valid_pairs = [], []
    for i, task in enumerate(tasks):
        task_id = task.get("id") if isinstance(task, Mapping) else None
        try:
            valid_pairs.append(pair_from_task(config, task))
            valid_index.append(i)
        except TaskDataError as exc:
            outcomes[i] = TaskPrediction(task_id, None, None, None, error=str(exc))

    judgments = _judge_within(judge, valid_pairs, budget_s, urgent) if valid_pairs else {}
    pending = 0
    for j, i in enumerate(valid_index):
        judgment = judgments.get(j)
        task_id = tasks[i].get("id")
        if judgment is None or judgment.extra.get("not_asked"):
            outcomes[i] = TaskPrediction(task_id, judgment, None, None, error=NOT_YET, pending=True)
            pending += 1
        else:
            outcomes[i] = prediction_for(config, task_id, judgment)
    for outcome in outcomes:
        if outcome is not None and outcome.error and not outcome.pending:
            log.warning("no prediction: %s", outcome.error)
    if pending:
        log.info("%d of %d tasks not judged within the %g s budget", pending, len(tasks), budget_s or 0)
    return [o for o in outcomes if o is not None]


def prediction_for(config: PairwiseConfig, task_id: Any, judgment: Judgment) -> TaskPrediction:
    """The prediction a judgment makes for a task (an error when the judgment failed)."""
    if not judgment.ok:
        reason = f"judge {judgment.status.value}: {judgment.reason or 'no reason given'}"
        return TaskPrediction(task_id, judgment, None, None, error=f"task {task_id}: {reason}")
    label, prob = shown_label(config, judgment)
    return TaskPrediction(task_id, judgment, result_for_label(config, label), round(prob, 4))


def _judge_within(judge: Judge, pairs: Sequence[Any], budget_s: float | None, urgent: bool) -> dict[int, Judgment]:
    """Index -> judgment of what ``judge`` answered within ``budget_s`` (everything when None)."""
    call = JudgeCall(urgent=urgent)
    got: dict[int, Judgment] = {}
    if budget_s is None:
        with judge_call(call):
            got.update(judge.judge_stream(pairs))
        return got
    lock, finished = threading.Lock(), threading.Event()

    def run() -> None:
        try:
            with judge_call(call):
                for i, judgment in judge.judge_stream(pairs):
                    with lock:
                        got[i] = judgment
        except Exception:  # the contract says judges do not raise per pair; report anything else
            log.exception("judging a /predict request failed")
        finally:
            finished.set()

    # In a thread of its own, so that the answer leaves on time even while requests are in flight
    # (they finish after the answer, and a caching judge stores them).
    threading.Thread(target=run, name="predict-judge", daemon=True).start()
    finished.wait(budget_s)
    call.cancel()
    with lock:
        return dict(got)
