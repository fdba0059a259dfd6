"""What the backend keeps of a Label Studio project between rounds, so a round reads only changes.

A :class:`ProjectSnapshot` holds, per task, what Label Studio said when the task was last read:
its data, the people's label, Label Studio's own annotation counters and the prediction of the
queue version (the one the label stream is ordered by). Label Studio stays the source of truth:
every field here is a copy of something read from it (``labelstudio/snapshot.py`` turns a task
into a :class:`TaskRow`; ``labelstudio/sync.py`` keeps the snapshot up to date), kept in the
shared database by :mod:`rlthf_backend.store.projects`, and the whole snapshot can be re-read at
any time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rlthf_backend.core.curation.state import HUMAN_NONE
from rlthf_backend.core.types import Label


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
