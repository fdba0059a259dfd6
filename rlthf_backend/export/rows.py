"""One exported row per pair, built from what people said, what the judge said and what the
engine decided: a pure function, no Label Studio or disk access.

Which label a pair gets, in order of precedence:

1. a person's label (the majority of the submitted annotations) always wins, whatever the
   engine decided; a split vote is a tie;
2. otherwise the label the deciding curation round gave it: the judge's label, or its opposite
   where the round flipped it; a pair the round dropped keeps the judge's label and is marked
   ``dropped``;
3. a pair the judge could not judge (and nobody labelled) has no label and no row.

``source`` says which of these produced the label: ``human`` (a person, agreeing with the judge
or where the judge gave no a/b verdict), ``human_overrode_llm`` (a person contradicted the
judge's a/b verdict), ``llm_kept`` (the judge's label), ``llm_flipped`` (the judge's label
reversed by the engine, no person involved).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_B, HUMAN_NONE, HUMAN_TIE
from rlthf_backend.core.types import Judgment, Pair
from rlthf_backend.registry.records import TaskDecision

SOURCES = ("human", "human_overrode_llm", "llm_kept", "llm_flipped")

_HUMAN_LABEL = {HUMAN_A: "a", HUMAN_B: "b", HUMAN_TIE: "tie"}
_OTHER = {"a": "b", "b": "a"}


@dataclass(frozen=True)
class DecidingRound:
    """The round whose decisions the export follows, and what the registry knows per task.

    ``rm_margins``: r(a) - r(b) of that version's reward model per task id.
    ``asked_in``: task id -> (round index, version) of the latest round whose human batch held it.
    Every field may be empty: a project without any finished round exports judge labels and
    human labels only.
    """

    version: str | None = None
    round_index: int | None = None
    decisions: Mapping[int, TaskDecision] = field(default_factory=dict)
    rm_margins: Mapping[int, float] = field(default_factory=dict)
    asked_in: Mapping[int, tuple[int, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolTask:
    """One pool task as the row builder needs it (see :func:`pool_tasks`)."""

    task_id: int
    pair: Pair
    human: int  # HUMAN_* code
    votes: Sequence[str] = ()
    annotators: Sequence[Any] = ()


@dataclass(frozen=True)
class ExportRow:
    """One pair of the curated dataset with its provenance.

    ``chosen`` / ``rejected`` follow ``label`` (for a tie: response a, then b, and ``tie`` is
    set). ``margin`` is the reward model's r(chosen) - r(rejected); ``rm_margin`` is r(a) - r(b).
    ``confidence`` is the probability that the label is right as far as the backend knows:
    the annotators' agreement for people, the engine's 1 - P(wrong) (P(wrong) for a flip) where
    the round computed it, else the reward model's sigmoid(margin), else the judge's probability.
    ``round`` / ``model_version``: for a person's label the round that queued the task to people
    (None if nobody queued it), for an LLM label the deciding round.
    """

    task_id: int
    pair_id: Any
    prompt: str
    chosen: str
    rejected: str
    label: str
    source: str
    tie: bool
    dropped: bool
    margin: float | None
    rm_margin: float | None
    confidence: float | None
    annotators: list[Any]
    human_votes: list[str]
    agreement: float | None
    judge_model: str | None
    judge_label: str | None
    judge_prob: float | None
    judge_verdict_ab: str | None
    judge_verdict_ba: str | None
    engine_status: str | None
    p_wrong: float | None
    audit: bool
    round: int | None
    model_version: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def pool_tasks(pool: Any) -> list[PoolTask]:
    """The tasks of a :class:`~rlthf_backend.labelstudio.pool.ProjectPool`, one per pair."""
    return [
        PoolTask(t, p, int(h), tuple(v), tuple(a))
        for t, p, h, v, a in zip(pool.task_ids, pool.pairs, pool.human, pool.votes, pool.annotators)
    ]


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _agreement(votes: Sequence[str]) -> float | None:
    """Share of the votes that agree with the most common one (None without votes)."""
    if not votes:
        return None
    return Counter(votes).most_common(1)[0][1] / len(votes)


def _judge_ab(judgment: Judgment | None) -> str | None:
    """The judge's a/b label, or None (no judgment, a failure, or a tie)."""
    if judgment is None or not judgment.ok or judgment.label not in ("a", "b"):
        return None
    return judgment.label


def build_row(task: PoolTask, judgment: Judgment | None, deciding: DecidingRound) -> ExportRow | None:
    """The row of one task (see the module docstring), or None when the pair has no label."""
    decision = deciding.decisions.get(task.task_id)
    judge_ab = _judge_ab(judgment)
    judge_tie = judgment is not None and judgment.ok and judgment.label == "tie"
    rm_margin = deciding.rm_margins.get(task.task_id)
    p_wrong = decision.p_wrong if decision else None
    dropped = False
    round_index, version = deciding.round_index, deciding.version

    if task.human != HUMAN_NONE:
        label = _HUMAN_LABEL[task.human]
        source = "human_overrode_llm" if judge_ab and label in ("a", "b") and label != judge_ab else "human"
        confidence = _agreement(task.votes)
        round_index, version = deciding.asked_in.get(task.task_id, (None, None))
    elif judge_ab is not None:
        flipped = decision is not None and decision.label in ("a", "b") and decision.label != judge_ab
        label = _OTHER[judge_ab] if flipped else judge_ab
        source = "llm_flipped" if flipped else "llm_kept"
        dropped = decision is not None and decision.status == "drop"
        if decision is None:
            round_index, version = None, None
        if p_wrong is not None:
            confidence = p_wrong if flipped else 1.0 - p_wrong
        elif rm_margin is not None:
            confidence = _sigmoid(rm_margin if label == "a" else -rm_margin)
        else:
            confidence = judgment.prob if judgment is not None else None
    elif judge_tie:
        label, source, confidence = "tie", "llm_kept", judgment.prob
    else:
        return None

    a, b = task.pair.response_a, task.pair.response_b
    chosen, rejected = (b, a) if label == "b" else (a, b)
    margin = None if rm_margin is None else (-rm_margin if label == "b" else rm_margin)
    extra = task.pair.extra or {}
    return ExportRow(
        task_id=task.task_id,
        pair_id=extra.get("pair_id", extra.get("id")),
        prompt=task.pair.prompt,
        chosen=chosen,
        rejected=rejected,
        label=label,
        source=source,
        tie=label == "tie",
        dropped=dropped,
        margin=margin,
        rm_margin=rm_margin,
        confidence=confidence,
        annotators=list(task.annotators),
        human_votes=list(task.votes),
        agreement=_agreement(task.votes),
        judge_model=judgment.model if judgment is not None else None,
        judge_label=judgment.label if judgment is not None else None,
        judge_prob=judgment.prob if judgment is not None else None,
        judge_verdict_ab=judgment.verdict_ab if judgment is not None else None,
        judge_verdict_ba=judgment.verdict_ba if judgment is not None else None,
        engine_status=decision.status if decision else None,
        p_wrong=p_wrong,
        audit=bool(decision.audit) if decision else False,
        round=round_index,
        model_version=version,
    )


def build_rows(
    tasks: Sequence[PoolTask], judgments: Sequence[Judgment | None], deciding: DecidingRound
) -> list[ExportRow]:
    """Rows of every task that has a label (human, judge or tie), in pool order, nothing filtered."""
    if len(tasks) != len(judgments):
        raise ValueError(f"{len(tasks)} tasks but {len(judgments)} judgments")
    rows = (build_row(t, j, deciding) for t, j in zip(tasks, judgments))
    return [r for r in rows if r is not None]


def select_rows(
    rows: Sequence[ExportRow], include_dropped: bool = False, min_confidence: float | None = None
) -> list[ExportRow]:
    """The rows that go into the export: dropped pairs only when ``include_dropped``; with
    ``min_confidence``, only rows whose ``confidence`` is known and at least that (ties stay:
    the writers that cannot use them leave them out)."""
    out = []
    for row in rows:
        if row.dropped and not include_dropped:
            continue
        if min_confidence is not None and (row.confidence is None or row.confidence < min_confidence):
            continue
        out.append(row)
    return out


def source_counts(rows: Sequence[ExportRow]) -> dict[str, int]:
    """Rows per source (every source listed, ties and dropped rows counted separately too)."""
    counts = {s: 0 for s in SOURCES}
    for row in rows:
        counts[row.source] += 1
    counts["tie"] = sum(r.tie for r in rows)
    counts["dropped"] = sum(r.dropped for r in rows)
    return counts
