"""What a training leaves in the model registry, and how it is read back.

The training job (``jobs/training.py``) writes these files; the export and the report read them.
This module stays light (no SDK, no RQ, no torch) so a report request does not pay for those.

Per version folder: ``state.json`` (per-task round state carried to the next training),
``round.json`` (only when a curation round ran: the plan, its numbers and per-task decisions),
``margins.npy`` + ``task_ids.json`` (the reward model's r(a) - r(b) for every pool task).
Per project folder: ``rounds.jsonl``, one line per round, kept across pruning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_backend.registry import ModelRegistry, VersionInfo, write_json_atomic

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
ROUND_FILE = "round.json"
ROUNDS_LOG = "rounds.jsonl"
MARGINS_FILE = "margins.npy"
TASK_IDS_FILE = "task_ids.json"


def write_margins(version_dir: Path, task_ids: list[int], margins: np.ndarray) -> None:
    np.save(version_dir / MARGINS_FILE, np.asarray(margins, dtype=float))
    write_json_atomic(version_dir / TASK_IDS_FILE, list(task_ids))


def read_margins(version_dir: Path) -> dict[int, float]:
    """r(a) - r(b) per task id, as the version's reward model scored the pool."""
    try:
        ids = json.loads((version_dir / TASK_IDS_FILE).read_text())
        margins = np.load(version_dir / MARGINS_FILE)
    except FileNotFoundError:
        return {}
    return {int(t): float(m) for t, m in zip(ids, margins)}


def newest_round_version(registry: ModelRegistry, project_id: int) -> VersionInfo | None:
    """The newest published version holding a ``round.json``, or None."""
    for version in reversed(registry.versions(project_id)):
        if (version.path / ROUND_FILE).is_file():
            return version
    return None


def append_round_log(registry: ModelRegistry, project_id: int, line: dict[str, Any]) -> None:
    with open(registry.project_dir(project_id) / ROUNDS_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(line, default=str) + "\n")


def read_round_log(registry: ModelRegistry, project_id: int) -> list[dict[str, Any]]:
    """Every line of the project's round log, oldest first (a torn last line is skipped)."""
    path = registry.project_dir(project_id) / ROUNDS_LOG
    if not path.is_file():
        return []
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip():
            continue
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            log.warning("%s: skipping an unreadable line", path)  # a writer killed mid-line
    return lines
