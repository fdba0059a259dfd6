"""The curated dataset of a project, assembled from what was read (``app/export.py`` reads it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rlthf_backend.core.types import Judgment
from rlthf_backend.export.rows import (
    DecidingRound,
    ExportRow,
    build_rows,
    pool_tasks,
    select_rows,
    source_counts,
)
from rlthf_backend.labelstudio.pool import ProjectPool


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
