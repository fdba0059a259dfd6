"""Judge panels: the panel's label (by the primary or the majority) and its disagreement, kept through
the judgment cache, read from the precomputed judge's task data and from a simulate dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rlthf_backend.core.curation import JudgeEvidence
from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.judges.panel import JudgePanel, combine_panel
from rlthf_backend.core.judges.precomputed import PrecomputedJudge
from rlthf_backend.core.simulate.data import load_pool
from rlthf_backend.core.types import JudgeStatus, Judgment, MemberVerdict, Pair


class FixedJudge(Judge):
    """A judge that answers from a table (test double for a live model)."""

    kind = "fixed"

    def __init__(self, name: str, verdicts: dict[str, tuple[str | None, str | None]]):
        self.name, self.verdicts, self.calls = name, verdicts, 0

    def config(self):
        return {"kind": self.kind, "model": self.name}

    def judge_many(self, pairs):
        self.calls += 1
        out = []
        for p in pairs:
            ab, ba = self.verdicts[p.prompt]
            if ab is None and ba is None:
                out.append(Judgment.failure(self.name, "no answer"))
                continue
            label = ab if ab == ba or ba is None else "tie"
            out.append(Judgment(label=label, prob=1.0 if label != "tie" else 0.5, status=JudgeStatus.OK,
                                model=self.name, verdict_ab=ab, verdict_ba=ba))
        return out


def test_panel_labels_by_the_primary_or_the_majority_and_reports_disagreement():
    pairs = [Pair("p1", "x", "y"), Pair("p2", "x", "y"), Pair("p3", "x", "y")]
    primary = FixedJudge("big", {"p1": ("a", "a"), "p2": ("a", "a"), "p3": (None, None)})
    second = FixedJudge("small", {"p1": ("a", "a"), "p2": ("b", "b"), "p3": ("b", "b")})
    third = FixedJudge("other", {"p1": ("a", "b"), "p2": ("b", "b"), "p3": ("b", None)})
    by_primary = JudgePanel([primary, second, third]).judge_many(pairs)
    assert [j.label for j in by_primary[:2]] == ["a", "a"] and not by_primary[2].ok
    assert by_primary[0].panel_disagreement() == pytest.approx(1 / 4)
    assert by_primary[1].panel_disagreement() == pytest.approx(1.0)
    assert [m.model for m in by_primary[0].panel] == ["big", "small", "other"]
    by_majority = JudgePanel([primary, second, third], label_rule="majority").judge_many(pairs)
    assert by_majority[1].label == "b" and by_majority[1].prob == pytest.approx(4 / 6)
    assert by_majority[2].label == "b"  # the primary failed; the others agree
    ev = JudgeEvidence.from_judgments(by_primary)
    assert ev.panel_disagreement[:2].tolist() == pytest.approx([0.25, 1.0])
    # one judge alone: no panel evidence at all
    alone = JudgeEvidence.from_judgments(primary.judge_many(pairs))
    assert np.isnan(alone.panel_disagreement).all()
    with pytest.raises(ValueError, match="two judges"):
        JudgePanel([primary])


def test_panel_judgments_survive_the_cache_round_trip():
    j = combine_panel(Judgment("a", 1.0, JudgeStatus.OK, "big", "a", "a"),
                      [MemberVerdict("big", "a", "a"), MemberVerdict("small", "b", None)])
    again = Judgment.from_dict(json.loads(json.dumps(j.to_dict())))
    assert again == j and again.panel_disagreement() == 1.0


def test_precomputed_judge_reads_several_verdicts_per_task():
    judge = PrecomputedJudge()
    data = {"llm_labels": {"GPT-4": {"ab": "a", "ba": "a"}, "ChatGPT": {"ab": "b", "ba": "a"}}}
    j = judge.judge(Pair("p", "x", "y", extra=data))
    assert j.label == "a" and j.model == "GPT-4" and j.panel_disagreement() == pytest.approx(0.5)
    with_label = judge.judge(Pair("p", "x", "y", extra={"llm_label": "b", **data}))
    assert with_label.label == "b" and [m.model for m in with_label.panel][1:] == ["GPT-4", "ChatGPT"]
    assert with_label.panel_disagreement() == pytest.approx(3 / 4)
    broken = judge.judge(Pair("p", "x", "y", extra={"llm_labels": ["a"]}))
    assert not broken.ok and "llm_labels" in broken.reason


def test_simulate_builds_a_panel_from_a_dataset(tmp_path):
    rows = [
        {"prompt": "p1", "response_a": "x", "response_b": "y", "human_label": "a",
         "llm_labels": {"J1": {"ab": "a", "ba": "a"}, "J2": {"ab": "b", "ba": "b"}}},
        {"prompt": "p2", "response_a": "x", "response_b": "y", "human_label": "b",
         "llm_labels": {"J1": {"ab": "b", "ba": "b"}, "J2": {"ab": "b", "ba": None}}},
        {"prompt": "p3", "response_a": "x", "response_b": "y", "human_label": "b",
         "llm_labels": {"J2": {"ab": "a", "ba": "a"}}},
    ]
    path = tmp_path / "judged.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pool = load_pool(path, judges=["J1", "J2"])
    assert len(pool) == 2 and pool.skipped_without_judge == 1  # J1 never saw p3
    assert pool.evidence.panel_disagreement.tolist() == pytest.approx([1.0, 0.0])
    single = load_pool(path, judges=["J1"])
    assert np.isnan(single.evidence.panel_disagreement).all()
    either = load_pool(path, judges=["J1|J2"])  # alternatives: J2 supplies the label where J1 is absent
    assert len(either) == 3 and either.judge_counts == {"J1": 2, "J2": 1}
