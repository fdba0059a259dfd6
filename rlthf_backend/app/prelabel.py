"""``rlthf-backend prelabel``: judge a whole project and write the predictions through the SDK.

Label Studio only asks a backend for predictions when a task is opened or "Retrieve Predictions"
is clicked, one synchronous request at a time; for a pool of thousands of pairs we push them
ourselves with ``ls.predictions.create``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from tqdm import tqdm

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.app.judges import make_judge
from rlthf_backend.app.project import open_project
from rlthf_backend.labelstudio.client import iter_tasks
from rlthf_backend.labelstudio.predict import predict_tasks
from rlthf_backend.app.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class PrelabelSummary:
    project_id: int
    model_version: str
    tasks: int = 0
    skipped: int = 0  # already held a prediction of this judge
    written: int = 0
    judged: int = 0  # judged now (paid for)
    cached: int = 0  # served from the judgment cache
    failed: int = 0
    failure_reasons: Counter = field(default_factory=Counter)

    def describe(self) -> str:
        lines = [
            f"project {self.project_id}, model_version {self.model_version}",
            f"  tasks {self.tasks}, already predicted {self.skipped}, predictions written {self.written}",
            f"  judged now {self.judged}, from cache {self.cached}, failed {self.failed}",
        ]
        for reason, count in self.failure_reasons.most_common(10):
            lines.append(f"    {count} x {reason}")
        return "\n".join(lines)


def _short_reason(error: str) -> str:
    # "task 12: judge error: timed out" -> "judge error: timed out", so identical causes group.
    return error.split(": ", 1)[1] if error.startswith("task ") and ": " in error else error


def prelabel_project(
    settings: Settings,
    project_id: int,
    *,
    judge: Judge | None = None,
    rejudge_all: bool = False,
    batch_size: int = 32,
    progress: bool = False,
) -> PrelabelSummary:
    """Judge every task without a prediction of this judge and store the predictions.

    Tasks are judged and written in batches, so an interruption keeps what was written and a
    rerun picks up the rest.
    """
    project = open_project(settings, project_id)
    ls, config = project.ls, project.config
    judge = judge or make_judge(settings)
    model_version = judge.model_version(settings.model_title)
    summary = PrelabelSummary(project_id, model_version)

    todo = []
    for task in iter_tasks(ls, project_id):
        summary.tasks += 1
        versions = {p.get("model_version") for p in task.get("predictions") or []}
        if model_version in versions and not rejudge_all:
            summary.skipped += 1
        else:
            todo.append(task)

    bar = tqdm(total=len(todo), desc=f"prelabel project {project_id}", unit="task", disable=not progress)
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        for outcome in predict_tasks(config, batch, judge):
            if not outcome.ok:
                summary.failed += 1
                summary.failure_reasons[_short_reason(outcome.error or "")] += 1
                continue
            summary.cached += outcome.cached
            summary.judged += not outcome.cached
            ls.predictions.create(
                task=outcome.task_id,
                result=outcome.result,
                score=outcome.score,
                model_version=model_version,
            )
            summary.written += 1
        bar.update(len(batch))
    bar.close()

    if summary.written or summary.skipped:
        # Label Studio shows (and pre-fills annotations from) the predictions of project.model_version.
        ls.projects.update(id=project_id, model_version=model_version)
    log.info("prelabel done: %s", summary.describe().replace("\n", ";"))
    return summary
