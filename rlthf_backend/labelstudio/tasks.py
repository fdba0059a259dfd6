"""Label Studio tasks as pairs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rlthf_backend.core.types import Pair
from rlthf_backend.labelstudio.config import PairwiseConfig


class TaskDataError(ValueError):
    """A task's data lacks a field the label config needs, or holds something other than text."""


def pair_from_task(config: PairwiseConfig, task: Mapping[str, Any]) -> Pair:
    """The pair a task shows, with the whole task data kept in ``Pair.extra``.

    Raises :class:`TaskDataError` naming the task and the field at fault.
    """
    task_id = task.get("id", "?") if isinstance(task, Mapping) else "?"
    data = task.get("data") if isinstance(task, Mapping) else None
    if not isinstance(data, Mapping):
        raise TaskDataError(f"task {task_id}: no 'data' object")
    texts = []
    for field_name in config.fields:
        if field_name not in data:
            raise TaskDataError(f"task {task_id}: data has no field '{field_name}' (fields: {sorted(data)})")
        value = data[field_name]
        if not isinstance(value, str):
            raise TaskDataError(
                f"task {task_id}: field '{field_name}' is {type(value).__name__}, expected text"
            )
        texts.append(value)
    return Pair(prompt=texts[0], response_a=texts[1], response_b=texts[2], extra=dict(data))
