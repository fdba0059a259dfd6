"""The demo's check of the first round: are the tasks the queue serves first the LLM's mistakes?

The demo knows the answers (the shipped pairs carry the human labels, kept out of the task data),
so after the first round it can say how many of the first tasks of Label Studio's queue are pairs
the judge got wrong, against the share random order would give. A real project learns the same
from the audit slice and people's answers (the report's queue-yield table).

The queue is read as Label Studio serves it under uncertainty sampling: unlabelled tasks whose
prediction has the project's ``model_version``, lowest score first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rlthf_backend.labelstudio.config import PairwiseConfig
from rlthf_backend.labelstudio.results import label_from_result
from rlthf_backend.registry.records import QueueCheck

#: How many of the queue's first tasks the check looks at.
FIRST_TASKS = 10


def check_queue(
    config: PairwiseConfig,
    tasks: Iterable[Mapping[str, Any]],
    *,
    queue_version: str,
    judge_version: str,
    human_labels: Mapping[str, str],
    judge: str,
    first: int = FIRST_TASKS,
) -> QueueCheck | None:
    """The check for a project's tasks (dicts with ``data``, ``predictions``, ``annotations``).

    ``queue_version``: the project's model_version (the round's predictions); ``judge_version``:
    the judge's predictions, whose label is the LLM's; ``human_labels``: the truth by
    ``data["pair_id"]``. None when no task is in the queue.
    """
    queued: list[tuple[float, bool]] = []
    for task in tasks:
        if task.get("annotations"):
            continue
        truth = human_labels.get(str((task.get("data") or {}).get("pair_id")))
        by_version = {p.get("model_version"): p for p in task.get("predictions") or []}
        served, judged = by_version.get(queue_version), by_version.get(judge_version)
        if truth is None or served is None or served.get("score") is None or judged is None:
            continue
        llm = label_from_result(config, judged.get("result") or [])
        queued.append((float(served["score"]), llm != truth))
    if not queued:
        return None
    queued.sort(key=lambda item: item[0])  # stable: equal scores keep Label Studio's id order
    head = queued[:first]
    batch = [wrong for score, wrong in queued if score < 0.5]
    return QueueCheck(
        first=len(head), wrong_in_first=sum(w for _, w in head), batch=len(batch), wrong_in_batch=sum(batch),
        pool=len(queued), wrong_in_pool=sum(w for _, w in queued), judge=judge,
    )
