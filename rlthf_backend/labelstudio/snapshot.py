"""A Label Studio task as the project snapshot keeps it (:class:`~rlthf_backend.store.snapshots.TaskRow`).

Every reader of tasks goes through :func:`task_row`: the training's snapshot (kept up to date
by :mod:`rlthf_backend.labelstudio.sync`) and the export's one-off read alike, so both see the
same pair, the same people's label and the same problems (:mod:`rlthf_backend.labelstudio.pool`).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_B, HUMAN_NONE, HUMAN_TIE
from rlthf_backend.core.types import Label
from rlthf_backend.labelstudio.config import PairwiseConfig
from rlthf_backend.labelstudio.results import label_from_result
from rlthf_backend.labelstudio.tasks import TaskDataError, pair_from_task
from rlthf_backend.store.snapshots import ShownPrediction, TaskRow

_HUMAN_CODE = {"a": HUMAN_A, "b": HUMAN_B, "tie": HUMAN_TIE}


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


