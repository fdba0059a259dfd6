"""What the backend keeps of a Label Studio project between rounds, so a round reads only changes.

A :class:`ProjectSnapshot` holds, per task, what Label Studio said when the task was last read:
its data, the people's label, Label Studio's own annotation counters and the prediction of the
queue version (the one the label stream is ordered by). Label Studio stays the source of truth:
every field here is a copy of something read from it, refreshed whenever the task changes there
(see :mod:`rlthf_backend.labelstudio.sync`), and the whole snapshot can be re-read at any time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from rlthf_backend.core.curation.state import HUMAN_NONE
from rlthf_backend.core.types import Label
from rlthf_backend.labelstudio.config import PairwiseConfig
from rlthf_backend.labelstudio.pool import ProjectPool, human_label
from rlthf_backend.labelstudio.results import label_from_result
from rlthf_backend.labelstudio.tasks import TaskDataError, pair_from_task


@dataclass(frozen=True)
class ShownPrediction:
    """The prediction Label Studio holds for a task under the queue version."""

    prediction_id: int
    label: Label | None
    score: float | None


@dataclass
class TaskRow:
    """One task as last read. ``problem`` is set (and the pair unusable) when its data does not
    fit the label config; ``total_annotations`` / ``cancelled_annotations`` are Label Studio's
    counters, summed to check that nothing changed unseen."""

    task_id: int
    data: dict[str, Any]
    updated_at: str
    total_annotations: int = 0
    cancelled_annotations: int = 0
    human: int = HUMAN_NONE
    votes: list[Label] = field(default_factory=list)
    annotators: list[Any] = field(default_factory=list)
    problem: str | None = None
    shown: ShownPrediction | None = None


def stamp_text(value: object) -> str:
    """A Label Studio timestamp (ISO text or a datetime, as the SDK gives it) as fixed-width UTC
    text, ``2026-12-01T10:00:00.000000Z``: such texts order as the times do."""
    if value is None or value == "":
        return ""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def config_key(config: PairwiseConfig) -> str:
    """Changes when the label config's meaning changes (fields, kind, labels): then every stored
    label was read under another config and the snapshot is re-read whole."""
    return hashlib.sha256(repr(config).encode()).hexdigest()[:16]


def task_row(config: PairwiseConfig, task: Mapping[str, Any], queue_version: str | None) -> TaskRow:
    """A task as Label Studio returns it with ``fields=all`` -> its row."""
    data = task.get("data")
    row = TaskRow(
        task_id=int(task["id"]),
        data=dict(data) if isinstance(data, Mapping) else {},
        updated_at=stamp_text(task.get("updated_at")),
        total_annotations=int(task.get("total_annotations") or 0),
        cancelled_annotations=int(task.get("cancelled_annotations") or 0),
    )
    try:
        pair_from_task(config, task)
    except TaskDataError as exc:
        row.problem = str(exc)
        return row
    row.human, row.votes, row.annotators = human_label(config, task.get("annotations") or [])
    if queue_version is not None:
        row.shown = shown_prediction(config, task.get("predictions") or [], queue_version)
    return row


def shown_prediction(config: PairwiseConfig, predictions: Iterable[Mapping[str, Any]],
                     queue_version: str) -> ShownPrediction | None:
    """The newest prediction of ``queue_version`` among a task's predictions."""
    ours = [p for p in predictions if p.get("model_version") == queue_version and p.get("id") is not None]
    if not ours:
        return None
    newest = max(ours, key=lambda p: int(p["id"]))
    score = newest.get("score")
    return ShownPrediction(
        prediction_id=int(newest["id"]),
        label=label_from_result(config, newest.get("result") or []),
        score=None if score is None else float(score),
    )


@dataclass
class ProjectSnapshot:
    """A project's tasks as last read, and where the next incremental read starts.

    ``cursor`` is the newest task ``updated_at`` in Label Studio just before the last read began
    (Label Studio's clock, ISO text): every later change is stamped after it. ``queue_version``
    the model version the label stream is ordered by (None before the first round's predictions).
    """

    project_id: int
    config_key: str
    cursor: str | None = None
    queue_version: str | None = None
    rows: dict[int, TaskRow] = field(default_factory=dict)

    def apply(self, rows: Iterable[TaskRow]) -> list[int]:
        """Insert or replace rows; returns their task ids (the caller moves the cursor)."""
        ids = []
        for row in rows:
            self.rows[row.task_id] = row
            ids.append(row.task_id)
        return ids

    def remove(self, task_ids: Iterable[int]) -> list[int]:
        return [t for t in task_ids if self.rows.pop(t, None) is not None]

    def totals(self) -> tuple[int, int, int]:
        """(tasks, submitted annotations, skipped annotations), as Label Studio counts them."""
        rows = self.rows.values()
        return (len(self.rows), sum(r.total_annotations for r in rows), sum(r.cancelled_annotations for r in rows))

    def pool(self, config: PairwiseConfig) -> ProjectPool:
        """The engine's view: usable tasks in task-id order (stable across rounds), problems aside."""
        pool = ProjectPool()
        for task_id in sorted(self.rows):
            row = self.rows[task_id]
            if row.problem is not None:
                pool.skipped[task_id] = row.problem
                continue
            pool.task_ids.append(task_id)
            pool.pairs.append(pair_from_task(config, {"id": task_id, "data": row.data}))
            pool.human.append(row.human)
            pool.votes.append(list(row.votes))
            pool.annotators.append(list(row.annotators))
        return pool
