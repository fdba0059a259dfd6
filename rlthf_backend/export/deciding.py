"""Reading the deciding round of a project from the model registry.

The export follows the newest version that ran a curation round (``round.json``): trainings
without a round only refit the reward model and decide nothing. The round log
(``rounds.jsonl``, kept across pruning) says which round queued each task to people, and the
newest version's stored judgments say what the judge said, so the export never asks it again.
"""

from __future__ import annotations

import logging

from rlthf_backend.core.types import Judgment
from rlthf_backend.export.rows import DecidingRound
from rlthf_backend.registry.records import (
    RoundFileError,
    RoundLogLine,
    RoundRecord,
    newest_round_version,
    read_judgments,
    read_margins,
    read_round_log,
)
from rlthf_backend.registry.versions import ModelRegistry

log = logging.getLogger(__name__)


def asked_in(round_log: list[RoundLogLine]) -> dict[int, tuple[int, str]]:
    """Task id -> (round index, version) of the latest round whose human batch held it."""
    out: dict[int, tuple[int, str]] = {}
    for line in round_log:
        for task_id in line.human_batch:
            out[int(task_id)] = (line.round_index, line.version)
    return out


def load_deciding_round(registry: ModelRegistry, project_id: int) -> DecidingRound:
    """The :class:`DecidingRound` of a project (empty when no round has run yet)."""
    version = newest_round_version(registry, project_id)
    log_lines = read_round_log(registry, project_id)
    if version is None:
        return DecidingRound(asked_in=asked_in(log_lines))
    record = RoundRecord.read(version)
    return DecidingRound(
        version=version.version,
        round_index=record.round_index,
        decisions=record.tasks,
        rm_margins=read_margins(version.path),
        asked_in=asked_in(log_lines),
    )


def stored_judgments(registry: ModelRegistry, project_id: int) -> dict[int, Judgment]:
    """The judge's verdicts the newest training used, by task id ({} before any training)."""
    for version in reversed(registry.versions(project_id)):
        try:
            return read_judgments(version.path)
        except RoundFileError as exc:  # judged again below rather than failing the export
            log.warning("project %s: passing over version %s (%s)", project_id, version.version, exc)
    return {}
