"""A project's pool as the curation engine sees it, read from Label Studio (the source of truth)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_B, HUMAN_NONE, HUMAN_TIE
from rlthf_backend.core.types import Label, Pair
from rlthf_backend.labelstudio.config import PairwiseConfig
from rlthf_backend.labelstudio.results import label_from_result
from rlthf_backend.labelstudio.tasks import TaskDataError, pair_from_task

log = logging.getLogger(__name__)

_HUMAN_CODE = {"a": HUMAN_A, "b": HUMAN_B, "tie": HUMAN_TIE}


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


def human_label(config: PairwiseConfig, annotations: Iterable[dict[str, Any]]) -> tuple[int, list[Label], list[Any]]:
    """The people's label of a task: majority of submitted (not skipped) annotations.

    No decisive majority (e.g. one vote a, one vote b) counts as a tie: no clear winner.
    Returns (HUMAN_* code, the votes, the annotator ids).
    """
    votes: list[Label] = []
    annotators: list[Any] = []
    for ann in annotations or ():
        if ann.get("was_cancelled"):
            continue  # a skipped task is not a label
        label = label_from_result(config, ann.get("result") or [])
        if label is None:
            continue
        votes.append(label)
        annotators.append(ann.get("completed_by"))
    if not votes:
        return HUMAN_NONE, votes, annotators
    ranked = Counter(votes).most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        return HUMAN_TIE, votes, annotators
    return _HUMAN_CODE[ranked[0][0]], votes, annotators


def build_pool(config: PairwiseConfig, tasks: Iterable[dict[str, Any]]) -> ProjectPool:
    """Turn Label Studio tasks (with annotations and predictions) into a pool, skipping bad tasks."""
    pool = ProjectPool()
    for task in tasks:
        try:
            pair = pair_from_task(config, task)
        except TaskDataError as exc:
            pool.skipped[task.get("id")] = str(exc)
            continue
        code, votes, annotators = human_label(config, task.get("annotations") or [])
        pool.task_ids.append(int(task["id"]))
        pool.pairs.append(pair)
        pool.human.append(code)
        pool.votes.append(votes)
        pool.annotators.append(annotators)
    if pool.skipped:
        log.warning("%d task(s) left out of the pool, e.g. %s", len(pool.skipped), next(iter(pool.skipped.values())))
    return pool
