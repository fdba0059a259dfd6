"""Reading the deciding round of a project from the model registry.

The export follows the newest version that ran a curation round (``round.json``): trainings
without a round only refit the reward model and decide nothing. The round log
(``rounds.jsonl``, kept across pruning) says which round queued each task to people.
"""

from __future__ import annotations

import json
from typing import Any

from rlthf_backend.export.rows import DecidingRound, TaskDecision
from rlthf_backend.registry import ModelRegistry
from rlthf_backend.round_files import (
    ROUND_FILE,
    newest_round_version,
    read_margins,
    read_round_log,
)


def decisions_of(round_record: dict[str, Any]) -> dict[int, TaskDecision]:
    """The per-task decisions of a ``round.json``."""
    out = {}
    for task_id, d in (round_record.get("tasks") or {}).items():
        p = d.get("p_wrong")
        out[int(task_id)] = TaskDecision(
            status=str(d.get("status")), label=str(d.get("label")),
            p_wrong=None if p is None else float(p), audit=bool(d.get("audit")),
        )
    return out


def asked_in(round_log: list[dict[str, Any]]) -> dict[int, tuple[int, str]]:
    """Task id -> (round index, version) of the latest round whose human batch held it."""
    out: dict[int, tuple[int, str]] = {}
    for line in round_log:
        for task_id in line.get("human_batch") or ():
            out[int(task_id)] = (line.get("round_index"), line.get("version"))
    return out


def load_deciding_round(registry: ModelRegistry, project_id: int) -> DecidingRound:
    """The :class:`DecidingRound` of a project (empty when no round has run yet)."""
    version = newest_round_version(registry, project_id)
    log_lines = read_round_log(registry, project_id)
    if version is None:
        return DecidingRound(asked_in=asked_in(log_lines))
    record = json.loads((version.path / ROUND_FILE).read_text())
    return DecidingRound(
        version=version.version,
        round_index=record.get("round_index"),
        decisions=decisions_of(record),
        rm_margins=read_margins(version.path),
        asked_in=asked_in(log_lines),
    )
