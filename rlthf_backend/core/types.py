"""Plain data types shared by the judges, reward models and curation engine."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any, Literal

import numpy as np

Label = Literal["a", "b", "tie"]
LABELS: tuple[Label, ...] = ("a", "b", "tie")


@dataclass(frozen=True)
class Pair:
    """One pairwise comparison: a prompt and two candidate responses."""

    prompt: str
    response_a: str
    response_b: str
    #: Other fields of the source record (e.g. Label Studio task data); not part of identity.
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def content_key(self) -> str:
        """A stable hash of the three texts (length-prefixed, so field boundaries count)."""
        h = hashlib.sha256()
        for text in (self.prompt, self.response_a, self.response_b):
            data = text.encode("utf-8")
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
        return h.hexdigest()


@dataclass(frozen=True)
class MemberVerdict:
    """What one member of a judge panel said about a pair: its verdict in (a, b) order and in
    swapped order (mapped back to a/b); None where not asked or not readable."""

    model: str
    verdict_ab: Label | None = None
    verdict_ba: Label | None = None

    def decisive(self) -> list[str]:
        """The member's a/b verdicts (ties and missing orders left out)."""
        return [v for v in (self.verdict_ab, self.verdict_ba) if v in ("a", "b")]


class JudgeStatus(str, Enum):
    OK = "ok"
    PARSE_FAILED = "parse_failed"  # the judge answered, but not with a verdict we could read
    ERROR = "error"  # no usable answer: timeout, HTTP error, missing input...


@dataclass(frozen=True)
class Judgment:
    """What a judge said about one pair.

    ``label`` is the combined verdict over the orders that were asked; ``prob`` is the judge's
    probability for that label (for ``tie``, the probability that neither side wins clearly).
    ``verdict_ab`` is the verdict with the responses shown in (a, b) order, ``verdict_ba`` with
    the order swapped, already mapped back to a/b. ``prob_a`` is P(response a is better),
    averaged over orders when both were asked. ``panel`` holds the verdicts of every member of
    a judge panel, the primary judge first; empty for a single judge.
    """

    label: Label | None
    prob: float | None
    status: JudgeStatus
    model: str
    verdict_ab: Label | None = None
    verdict_ba: Label | None = None
    prob_a: float | None = None
    reason: str | None = None
    raw: tuple[str, ...] = ()
    truncated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    panel: tuple[MemberVerdict, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is JudgeStatus.OK and self.label is not None

    @property
    def swap_disagrees(self) -> bool:
        """True when both orders were asked and gave different verdicts."""
        return (
            self.verdict_ab is not None
            and self.verdict_ba is not None
            and self.verdict_ab != self.verdict_ba
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["status"] = self.status.value
        d["raw"] = list(self.raw)
        d["panel"] = [asdict(m) for m in self.panel]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Judgment":
        d = dict(d)
        d["status"] = JudgeStatus(d["status"])
        d["raw"] = tuple(d.get("raw") or ())
        d.setdefault("extra", {})
        d["panel"] = tuple(MemberVerdict(**m) for m in d.get("panel") or ())
        return cls(**d)

    def panel_disagreement(self) -> float | None:
        """Share of the other panel members' a/b verdicts (every member but the primary, both
        orders) that contradict this judgment's label; None without such verdicts or without an
        a/b label. The primary's own disagreement with itself is the order-swap signal."""
        if len(self.panel) < 2 or self.label not in ("a", "b"):
            return None
        votes = [v for m in self.panel[1:] for v in m.decisive()]
        return sum(v != self.label for v in votes) / len(votes) if votes else None

    @classmethod
    def failure(cls, model: str, reason: str, status: JudgeStatus = JudgeStatus.ERROR, **kw: Any) -> "Judgment":
        return cls(label=None, prob=None, status=status, model=model, reason=reason, **kw)


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps`` writes as strict JSON: numpy arrays and scalars
    become plain lists and numbers, NaN and infinities None, mapping keys strings."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value
