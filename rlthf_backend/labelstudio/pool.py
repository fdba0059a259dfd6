"""A project's pool as the curation engine sees it: the usable pairs of a project's tasks.

One way from Label Studio tasks to a pool: every task becomes a
:class:`~rlthf_backend.store.snapshots.TaskRow` (:func:`~rlthf_backend.labelstudio.snapshot.task_row`),
and :func:`pool_from_rows` turns rows into the pool, whether they come from the training's
snapshot or from a one-off read of the project (:func:`pool_from_tasks`, the export).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlthf_backend.core.curation.state import HUMAN_NONE
from rlthf_backend.core.types import Label, Pair
from rlthf_backend.labelstudio.config import PairwiseConfig
from rlthf_backend.labelstudio.snapshot import task_row
from rlthf_backend.labelstudio.tasks import pair_from_task
from rlthf_backend.store.snapshots import TaskRow

log = logging.getLogger(__name__)


@dataclass
class ProjectPool:
    """Tasks usable as pairs, aligned arrays, and what was left out and why."""

    task_ids: list[int] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    human: list[int] = field(default_factory=list)  # HUMAN_* codes
    annotators: list[list[Any]] = field(default_factory=list)
    votes: list[list[Label]] = field(default_factory=list)
    skipped: dict[Any, str] = field(default_factory=dict)  # task id -> reason

    def __len__(self) -> int:
        return len(self.task_ids)

    @property
    def human_codes(self) -> np.ndarray:
        return np.asarray(self.human, dtype=np.int8)

    @property
    def n_human(self) -> int:
        return int(np.sum(self.human_codes != HUMAN_NONE))


def pool_from_rows(config: PairwiseConfig, rows: Iterable[TaskRow]) -> ProjectPool:
    """The engine's view of task rows: usable tasks in task-id order (stable across rounds),
    the problem tasks in ``skipped`` with their reason."""
    pool = ProjectPool()
    for row in sorted(rows, key=lambda r: r.task_id):
        if row.problem is not None:
            pool.skipped[row.task_id] = row.problem
            continue
        pool.task_ids.append(row.task_id)
        pool.pairs.append(pair_from_task(config, {"id": row.task_id, "data": row.data}))
        pool.human.append(row.human)
        pool.votes.append(list(row.votes))
        pool.annotators.append(list(row.annotators))
    if pool.skipped:
        log.warning("%d task(s) left out of the pool, e.g. %s", len(pool.skipped), next(iter(pool.skipped.values())))
    return pool


def pool_from_tasks(config: PairwiseConfig, tasks: Iterable[dict[str, Any]]) -> ProjectPool:
    """Label Studio tasks (with annotations) -> the pool, bad tasks left out with their reason."""
    return pool_from_rows(config, (task_row(config, task, queue_version=None) for task in tasks))
