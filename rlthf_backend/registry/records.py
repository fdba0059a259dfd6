"""What a training leaves in the model registry, as typed records, and how it is read back.

The training (``rlthf_backend/app/training``) writes these files; the next training, the export
and the report read them through the records here, never as loose dicts. This module stays
light (no SDK, no RQ, no torch) so a report request does not pay for those.

Per version folder:

- ``state.json``: :class:`CarriedState`, what the round decided that the next one starts from;
- ``round.json``: :class:`RoundRecord`, only when a curation round ran: the plan's numbers, its
  decision log, the engine configuration and the per-task decisions;
- ``judgments.jsonl``: the judge's evidence per task id (:func:`write_judgments`), so export and
  report never ask the judge again;
- ``margins.npy`` + ``task_ids.json``: the reward model's r(a) - r(b) for every pool task.

Per project folder: ``rounds.jsonl``, one :class:`RoundLogLine` per round, kept across pruning;
``queue_check.json``, the demo's :class:`QueueCheck` (only in the demo's project).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_backend.core.types import Judgment, json_safe
from rlthf_backend.registry.versions import ModelRegistry, VersionInfo, write_json_atomic

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
ROUND_FILE = "round.json"
ROUNDS_LOG = "rounds.jsonl"
JUDGMENTS_FILE = "judgments.jsonl"
MARGINS_FILE = "margins.npy"
TASK_IDS_FILE = "task_ids.json"


class RoundFileError(ValueError):
    """A registry file exists but cannot be read as its record (corrupt or from elsewhere)."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RoundFileError(f"{path}: unreadable ({exc})") from exc


@dataclass
class CarriedState:
    """What the last round decided that the next round starts from, by task id."""

    next_round_index: int = 0
    flipped: set[int] = field(default_factory=set)
    rm_excluded: set[int] = field(default_factory=set)
    audited: set[int] = field(default_factory=set)
    human_batch: list[int] = field(default_factory=list)  # rank order
    human_labels_at_round: int = 0
    predictions_version: str | None = None
    #: the adaptive strategy's ledger (audit probabilities, ranking grades), pairs by task id
    ledger: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("flipped", "rm_excluded", "audited"):
            d[name] = sorted(d[name])
        return d

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> CarriedState:
        try:
            return cls(
                next_round_index=int(raw.get("next_round_index", 0)),
                flipped={int(t) for t in raw.get("flipped") or ()},
                rm_excluded={int(t) for t in raw.get("rm_excluded") or ()},
                audited={int(t) for t in raw.get("audited") or ()},
                human_batch=[int(t) for t in raw.get("human_batch") or ()],
                human_labels_at_round=int(raw.get("human_labels_at_round", 0)),
                predictions_version=raw.get("predictions_version"),
                ledger=dict(raw.get("ledger") or {}),
            )
        except (TypeError, ValueError, AttributeError) as exc:
            raise RoundFileError(f"{STATE_FILE}: not a carried state ({exc})") from exc

    @classmethod
    def read(cls, version: VersionInfo | None) -> CarriedState:
        """The state a version left (a fresh one when there is no version or no state file)."""
        if version is None or not (version.path / STATE_FILE).is_file():
            return cls()
        return cls.from_json(_read_json(version.path / STATE_FILE))

    @classmethod
    def newest(cls, registry: ModelRegistry, project_id: int) -> CarriedState:
        """The state of the newest version whose ``state.json`` reads: a damaged or missing one
        (garbage, truncated, a version with only ``meta.json``) falls back to the version before it,
        with a warning, so a training neither fails for ever nor forgets earlier rounds."""
        for version in reversed(registry.versions(project_id)):
            try:
                if (version.path / STATE_FILE).is_file():
                    return cls.from_json(_read_json(version.path / STATE_FILE))
                log.warning("project %s: version %s has no %s; using the version before it", project_id,
                            version.version, STATE_FILE)
            except RoundFileError as exc:
                log.warning("project %s: %s; using the version before it", project_id, exc)
        return cls()


@dataclass(frozen=True)
class TaskDecision:
    """What a round decided for one task: ``status`` (a RoundPlan status), ``rank`` in the human
    batch (-1 outside it), ``audit`` (drawn at random), ``label`` (a/b, flips included),
    ``margin`` (the published RM's r(a) - r(b)), ``p_wrong`` (the engine's P(LLM label wrong)
    where the strategy computes one) and the strategy's other per-pair ``scores``."""

    status: str
    label: str
    rank: int = -1
    audit: bool = False
    margin: float | None = None
    p_wrong: float | None = None
    scores: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.scores, "status": self.status, "label": self.label, "rank": self.rank, "audit": self.audit,
                "margin": self.margin, "p_wrong": self.p_wrong}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> TaskDecision:
        own = {f.name for f in fields(cls)} - {"scores"}
        p = raw.get("p_wrong")
        m = raw.get("margin")
        return cls(status=str(raw.get("status")), label=str(raw.get("label")), rank=int(raw.get("rank", -1)),
                   audit=bool(raw.get("audit")), margin=None if m is None else float(m),
                   p_wrong=None if p is None else float(p),
                   scores={k: v for k, v in raw.items() if k not in own})


@dataclass(frozen=True)
class RoundRecord:
    """One curation round as published with its version (``round.json``)."""

    strategy: str
    round_index: int
    reason: str | None
    counts: dict[str, int]
    summary: dict[str, Any]
    log: list[dict[str, Any]]
    tasks: dict[int, TaskDecision]
    engine: dict[str, Any] = field(default_factory=dict)
    reward_fit: dict[str, Any] = field(default_factory=dict)
    stop: bool = False
    stop_reason: str = ""

    def to_json(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "tasks"}
        d["tasks"] = {str(t): decision.to_json() for t, decision in self.tasks.items()}
        return json_safe(d)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RoundRecord:
        try:
            return cls(
                strategy=str(raw["strategy"]), round_index=int(raw["round_index"]), reason=raw.get("reason"),
                counts=dict(raw.get("counts") or {}), summary=dict(raw.get("summary") or {}),
                log=list(raw.get("log") or []),
                tasks={int(t): TaskDecision.from_json(d) for t, d in (raw.get("tasks") or {}).items()},
                engine=dict(raw.get("engine") or {}), reward_fit=dict(raw.get("reward_fit") or {}),
                stop=bool(raw.get("stop")), stop_reason=str(raw.get("stop_reason") or ""),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RoundFileError(f"{ROUND_FILE}: not a round record ({exc})") from exc

    def write(self, version_dir: Path) -> None:
        write_json_atomic(version_dir / ROUND_FILE, self.to_json())

    @classmethod
    def read(cls, version: VersionInfo) -> RoundRecord:
        return cls.from_json(_read_json(version.path / ROUND_FILE))


@dataclass(frozen=True)
class RoundLogLine:
    """One line of the project's round log: which round asked which tasks, and its numbers."""

    version: str
    at: float
    round_index: int | None
    reason: str
    pool_size: int
    human_labels: int
    human_batch: list[int]
    counts: dict[str, int] | None = None
    summary: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> RoundLogLine:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


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
    except (OSError, ValueError) as exc:
        raise RoundFileError(f"{version_dir}: unreadable margins ({exc})") from exc
    return {int(t): float(m) for t, m in zip(ids, margins)}


def write_judgments(version_dir: Path, task_ids: Iterable[int], judgments: Iterable[Judgment | None]) -> None:
    """The judge's verdicts per task, as the training read them (raw answers left out)."""
    lines = []
    for task_id, judgment in zip(task_ids, judgments):
        if judgment is not None:
            d = judgment.to_dict()
            d["raw"] = []
            lines.append(json.dumps({"task_id": int(task_id), "judgment": d}, default=str))
    tmp = version_dir / (JUDGMENTS_FILE + ".tmp")
    tmp.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    tmp.replace(version_dir / JUDGMENTS_FILE)


def read_judgments(version_dir: Path) -> dict[int, Judgment]:
    """Task id -> the judgment the version's training used ({} for versions without the file)."""
    path = version_dir / JUDGMENTS_FILE
    if not path.is_file():
        return {}
    out = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.strip():
            try:
                line = json.loads(raw)
                out[int(line["task_id"])] = Judgment.from_dict(line["judgment"])
            except (KeyError, TypeError, ValueError) as exc:
                raise RoundFileError(f"{path}: unreadable line ({exc})") from exc
    return out


def newest_round_version(registry: ModelRegistry, project_id: int) -> VersionInfo | None:
    """The newest published version holding an intact round: a ``round.json`` and margins that
    read (a damaged one is passed over with a warning), or None."""
    for version in reversed(registry.versions(project_id)):
        if not (version.path / ROUND_FILE).is_file():
            continue
        try:
            RoundRecord.read(version)
            read_margins(version.path)
            return version
        except RoundFileError as exc:
            log.warning("project %s: passing over version %s (%s)", project_id, version.version, exc)
    return None


def append_round_log(registry: ModelRegistry, project_id: int, line: RoundLogLine) -> None:
    with open(registry.project_dir(project_id) / ROUNDS_LOG, "a", encoding="utf-8") as f:
        f.write(json.dumps(json_safe(asdict(line)), default=str) + "\n")


def read_round_log(registry: ModelRegistry, project_id: int) -> list[RoundLogLine]:
    """Every line of the project's round log, oldest first (a torn line is skipped)."""
    path = registry.project_dir(project_id) / ROUNDS_LOG
    if not path.is_file():
        return []
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip():
            continue
        try:
            lines.append(RoundLogLine.from_json(json.loads(raw)))
        except (json.JSONDecodeError, TypeError) as exc:
            log.warning("%s: skipping an unreadable line (%s)", path, exc)  # a writer killed mid-line
    return lines


#: Where the demo keeps its queue check for the report, in the project's registry folder.
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


def write_check(project_dir: Path, check: QueueCheck) -> None:
    project_dir.mkdir(parents=True, exist_ok=True)
    (project_dir / CHECK_FILE).write_text(json.dumps(check.as_dict()), encoding="utf-8")


def read_check(project_dir: Path) -> QueueCheck | None:
    """The queue check the demo left for a project, or None (every real project)."""
    try:
        raw = json.loads((project_dir / CHECK_FILE).read_text(encoding="utf-8"))
        return QueueCheck(**{k: raw[k] for k in QueueCheck.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None
