"""Judging Label Studio tasks: tasks in, one prediction (or a per-task error) out, in order."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlthf_backend.core.judges.base import Judge
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


def predict_tasks(config: PairwiseConfig, tasks: Sequence[Mapping[str, Any]], judge: Judge) -> list[TaskPrediction]:
    """Judge each task's pair; bad tasks and failed judgments become per-task errors, never exceptions."""
    outcomes: list[TaskPrediction | None] = [None] * len(tasks)
    valid_index, valid_pairs = [], []
    for i, task in enumerate(tasks):
        task_id = task.get("id") if isinstance(task, Mapping) else None
        try:
            valid_pairs.append(pair_from_task(config, task))
            valid_index.append(i)
        except TaskDataError as exc:
            outcomes[i] = TaskPrediction(task_id, None, None, None, error=str(exc))

    judgments = judge.judge_many(valid_pairs) if valid_pairs else []
    for i, judgment in zip(valid_index, judgments):
        task_id = tasks[i].get("id")
        if not judgment.ok:
            reason = f"judge {judgment.status.value}: {judgment.reason or 'no reason given'}"
            outcomes[i] = TaskPrediction(task_id, judgment, None, None, error=f"task {task_id}: {reason}")
            continue
        label, prob = shown_label(config, judgment)
        outcomes[i] = TaskPrediction(task_id, judgment, result_for_label(config, label), round(prob, 4))
    for outcome in outcomes:
        if outcome is not None and outcome.error:
            log.warning("no prediction: %s", outcome.error)
    return [o for o in outcomes if o is not None]
