"""``curated_dataset``: a project's curated preference pairs, read through the Label Studio SDK.

Tasks, annotations and predictions come from ``ls.tasks.list(fields="all")`` (the same read the
training job makes), not from Label Studio's export endpoints: ``exports.as_json`` cannot filter
and ``download_sync(ids=...)`` ignores its ids (see the notes on 1.23), while the task list
gives every annotation of every task, paged. Human labels are Label Studio's annotations at the
moment of the export, so a label made after the last round still wins over the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from label_studio_sdk.core.api_error import ApiError

from rlthf_backend.core.types import Judgment
from rlthf_backend.export.deciding import load_deciding_round, stored_judgments
from rlthf_backend.export.rows import (
    DecidingRound,
    ExportRow,
    build_rows,
    pool_tasks,
    select_rows,
    source_counts,
)
from rlthf_backend.app.judges import make_judge
from rlthf_backend.labelstudio.client import LabelStudioNotConfigured, describe_api_error, iter_tasks, make_client
from rlthf_backend.labelstudio.config import LabelConfigError, parse_label_config
from rlthf_backend.labelstudio.pool import ProjectPool, build_pool
from rlthf_backend.registry.versions import ModelRegistry
from rlthf_backend.app.settings import Settings


class ExportError(RuntimeError):
    """The project cannot be exported as asked; the message says why."""


@dataclass
class CuratedDataset:
    """The exported rows and the numbers that describe how they were chosen.

    ``rows``: the selected rows (dropped ones only with ``include_dropped``; ties included,
    marked ``tie``). ``counts``: rows per source (plus ``tie`` and ``dropped``).
    ``left_out``: pairs not in ``rows`` and why (``dropped``, ``low_confidence``, ``no_label``:
    nobody labelled it and the judge gave no verdict). ``skipped_tasks``: tasks that are not
    usable pairs (missing fields), by task id.
    """

    project_id: int
    rows: list[ExportRow]
    counts: dict[str, int]
    pool_size: int
    left_out: dict[str, int]
    model_version: str | None
    round_index: int | None
    include_dropped: bool = False
    min_confidence: float | None = None
    skipped_tasks: dict[Any, str] = field(default_factory=dict)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.rows]

    def describe(self) -> str:
        """One line per number, for people."""
        lines = [
            f"project {self.project_id}: {len(self.rows)} of {self.pool_size} pairs exported"
            f" (decided by {self.model_version or 'no round yet'}"
            + (f", round {self.round_index})" if self.round_index is not None else ")"),
        ]
        lines += [f"  {name:<20} {n}" for name, n in self.counts.items()]
        lines += [f"  left out, {name:<10} {n}" for name, n in self.left_out.items() if n]
        return "\n".join(lines)


def assemble(
    project_id: int,
    pool: ProjectPool,
    judgments: list[Judgment | None],
    deciding: DecidingRound,
    include_dropped: bool = False,
    min_confidence: float | None = None,
) -> CuratedDataset:
    """The curated dataset from already-read inputs (pure: no I/O)."""
    if min_confidence is not None and not 0.0 <= min_confidence <= 1.0:
        raise ExportError(f"min_confidence must be within [0, 1], got {min_confidence}")
    every = build_rows(pool_tasks(pool), judgments, deciding)
    after_drop = select_rows(every, include_dropped=include_dropped)
    chosen = select_rows(after_drop, include_dropped=True, min_confidence=min_confidence)
    return CuratedDataset(
        project_id=project_id,
        rows=chosen,
        counts=source_counts(chosen),
        pool_size=len(pool),
        left_out={
            "dropped": len(every) - len(after_drop),
            "low_confidence": len(after_drop) - len(chosen),
            "no_label": len(pool) - len(every),
        },
        model_version=deciding.version,
        round_index=deciding.round_index,
        include_dropped=include_dropped,
        min_confidence=min_confidence,
        skipped_tasks=dict(pool.skipped),
    )


def curated_dataset(
    settings: Settings,
    project_id: int,
    include_dropped: bool = False,
    min_confidence: float | None = None,
) -> CuratedDataset:
    """Read the project from Label Studio, its judgments (from the judge's cache when judged
    before) and its deciding round from the registry, and build the curated dataset."""
    try:
        ls = make_client(settings)
        project = ls.projects.get(id=project_id)
        config = parse_label_config(project.label_config)
        pool = build_pool(config, iter_tasks(ls, project_id))
    except LabelStudioNotConfigured as exc:
        raise ExportError(str(exc)) from exc
    except httpx.TransportError as exc:
        raise ExportError(f"Label Studio unreachable at {settings.label_studio_url}: {exc}") from exc
    except ApiError as exc:
        raise ExportError(f"Label Studio refused project {project_id}: {describe_api_error(exc)}") from exc
    except LabelConfigError as exc:
        raise ExportError(f"project {project_id} has no pairwise label config this backend reads: {exc}") from exc
    registry = ModelRegistry(settings.resolved_model_dir, settings.model_title)
    deciding = load_deciding_round(registry, project_id)
    return assemble(project_id, pool, judgments_for(settings, registry, project_id, pool), deciding, include_dropped,
                    min_confidence)


def judgments_for(settings: Settings, registry: ModelRegistry, project_id: int,
                  pool: ProjectPool) -> list[Judgment | None]:
    """The judge's verdict per pool task: as the newest training stored it; only tasks added
    since (which no training has seen) are judged now."""
    stored = stored_judgments(registry, project_id)
    missing = [i for i, t in enumerate(pool.task_ids) if t not in stored]
    fresh = make_judge(settings).judge_many([pool.pairs[i] for i in missing]) if missing else []
    by_index = dict(zip(missing, fresh))
    return [stored.get(t) if i not in by_index else by_index[i] for i, t in enumerate(pool.task_ids)]
