"""The demo's check of the first round: are the tasks the queue serves first the LLM's mistakes?

The demo knows the answers (the shipped pairs carry the human labels, kept out of the task data),
so after the first round it can say how many of the first tasks of Label Studio's queue are pairs
the judge got wrong, against the share random order would give. A real project learns the same
from the audit slice and people's answers (the report's queue-yield table).

The queue is read as Label Studio serves it under uncertainty sampling: unlabelled tasks whose
prediction has the project's ``model_version``, lowest score first.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlthf_backend.labelstudio.config import PairwiseConfig
from rlthf_backend.labelstudio.results import label_from_result

#: How many of the queue's first tasks the check looks at.
FIRST_TASKS = 10
#: Where the check is kept for the report, in the project's registry folder.
CHECK_FILE = "queue_check.json"


@dataclass(frozen=True)
class QueueCheck:
    first: int  # tasks looked at (FIRST_TASKS, or fewer in a small queue)
    wrong_in_first: int  # of those, pairs the judge got wrong
    batch: int  # the round's human batch (scores below 0.5): the tasks queued for a person
    wrong_in_batch: int
    pool: int  # unlabelled tasks in the queue
    wrong_in_pool: int  # what random order would serve, on average, per task
    judge: str

    @property
    def share_first(self) -> float:
        return self.wrong_in_first / self.first if self.first else float("nan")

    @property
    def share_random(self) -> float:
        return self.wrong_in_pool / self.pool if self.pool else float("nan")

    def describe(self) -> str:
        return (
            f"Of the first {self.first} tasks the queue serves, {self.wrong_in_first} "
            f"({self.share_first:.0%}) are pairs the judge ({self.judge}) got wrong; random order would give "
            f"{self.share_random:.0%} ({self.wrong_in_pool} of {self.pool}). "
            f"The round's human batch: {self.wrong_in_batch} of {self.batch} wrong."
        )

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share_first": self.share_first, "share_random": self.share_random}


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


def write_check(project_dir: Path, check: QueueCheck) -> None:
    project_dir.mkdir(parents=True, exist_ok=True)
    (project_dir / CHECK_FILE).write_text(json.dumps(check.as_dict()), encoding="utf-8")


def read_check(project_dir: Path) -> QueueCheck | None:
    """The check the demo left for a project, or None (every real project)."""
    try:
        raw = json.loads((project_dir / CHECK_FILE).read_text(encoding="utf-8"))
        return QueueCheck(**{k: raw[k] for k in QueueCheck.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None
