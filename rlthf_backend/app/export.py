"""``curated_dataset``: a project's curated preference pairs, read through the Label Studio SDK.

Tasks, annotations and predictions come from ``ls.tasks.list(fields="all")`` (the same read the
training job makes), not from Label Studio's export endpoints: ``exports.as_json`` cannot filter
and ``download_sync(ids=...)`` ignores its ids (see the notes on 1.23), while the task list
gives every annotation of every task, paged. Human labels are Label Studio's annotations at the
moment of the export, so a label made after the last round still wins over the engine.
"""

from __future__ import annotations


from rlthf_backend.app.judges import make_judge
from rlthf_backend.app.project import Project, label_studio_errors, open_project
from rlthf_backend.app.settings import Settings
from rlthf_backend.core.types import Judgment
from rlthf_backend.export.dataset import CuratedDataset, assemble
from rlthf_backend.export.deciding import load_deciding_round, stored_judgments
from rlthf_backend.labelstudio.client import iter_tasks
from rlthf_backend.labelstudio.pool import ProjectPool, pool_from_tasks


def curated_dataset(
    settings: Settings,
    project_id: int,
    include_dropped: bool = False,
    min_confidence: float | None = None,
) -> CuratedDataset:
    """Read the project from Label Studio, its judgments (from the judge's cache when judged
    before) and its deciding round from the registry, and build the curated dataset.
    Raises :class:`ProjectError` when the project cannot be read."""
    project = open_project(settings, project_id)
    with label_studio_errors(settings.label_studio_url, project_id):
        pool = pool_from_tasks(project.config, iter_tasks(project.ls, project_id))
    deciding = load_deciding_round(project.registry, project_id)
    return assemble(project_id, pool, judgments_for(project, pool), deciding, include_dropped, min_confidence)


def judgments_for(project: Project, pool: ProjectPool) -> list[Judgment | None]:
    """The judge's verdict per pool task: as the newest training stored it; only tasks added
    since (which no training has seen) are judged now."""
    stored = stored_judgments(project.registry, project.id)
    missing = [i for i, t in enumerate(pool.task_ids) if t not in stored]
    fresh = make_judge(project.settings).judge_many([pool.pairs[i] for i in missing]) if missing else []
    by_index = dict(zip(missing, fresh))
    return [stored.get(t) if i not in by_index else by_index[i] for i, t in enumerate(pool.task_ids)]
