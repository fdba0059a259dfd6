"""Row building of the export: which label each pair gets, from whom, and what is left out."""

from __future__ import annotations

import pytest

from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_B, HUMAN_NONE, HUMAN_TIE
from rlthf_backend.core.types import Judgment, JudgeStatus, Pair
from rlthf_backend.export.rows import (
    DecidingRound,
    PoolTask,
    TaskDecision,
    build_row,
    build_rows,
    select_rows,
    source_counts,
)


def task(task_id: int, human: int = HUMAN_NONE, votes=(), annotators=()) -> PoolTask:
    pair = Pair(f"prompt {task_id}", f"A{task_id}", f"B{task_id}", extra={"pair_id": f"p{task_id}"})
    return PoolTask(task_id, pair, human, tuple(votes), tuple(annotators))


def judged(label: str | None, prob: float | None = 0.8, ab: str | None = None, ba: str | None = None) -> Judgment:
    if label is None:
        return Judgment.failure("judge-x", "timeout")
    return Judgment(label=label, prob=prob, status=JudgeStatus.OK, model="judge-x",
                    verdict_ab=ab or label, verdict_ba=ba or label)


ROUND = DecidingRound(
    version="rlthf-p1-v0003",
    round_index=2,
    decisions={
        1: TaskDecision("keep", "a", p_wrong=0.1),
        2: TaskDecision("flip", "b", p_wrong=0.8),
        3: TaskDecision("drop", "a", p_wrong=0.45),
        4: TaskDecision("flip", "a", p_wrong=0.9),  # the engine flipped b -> a, then a person said b
        5: TaskDecision("labelled", "a"),
    },
    rm_margins={1: 1.5, 2: -2.0, 3: 0.2, 4: 0.5, 5: -0.7},
    asked_in={5: (1, "rlthf-p1-v0002")},
)


def test_llm_label_kept_with_judge_provenance_and_oriented_margin():
    row = build_row(task(1), judged("a", 0.8, "a", "a"), ROUND)
    assert (row.source, row.label, row.chosen, row.rejected) == ("llm_kept", "a", "A1", "B1")
    assert row.margin == 1.5 and row.rm_margin == 1.5
    assert row.confidence == pytest.approx(0.9)  # 1 - P(wrong)
    assert (row.judge_model, row.judge_prob, row.judge_verdict_ab, row.judge_verdict_ba) == ("judge-x", 0.8, "a", "a")
    assert (row.round, row.model_version, row.engine_status, row.pair_id) == (2, "rlthf-p1-v0003", "keep", "p1")
    assert not row.dropped and not row.tie and row.annotators == [] and row.agreement is None


def test_flipped_label_reverses_the_judge_and_the_margin_follows_chosen():
    row = build_row(task(2), judged("a"), ROUND)
    assert (row.source, row.label, row.chosen, row.rejected) == ("llm_flipped", "b", "B2", "A2")
    assert row.margin == 2.0 and row.rm_margin == -2.0  # r(chosen) - r(rejected) = -(r(a) - r(b))
    assert row.confidence == pytest.approx(0.8)  # P(wrong) of the judge's label = P(flip right)


def test_a_flip_is_read_from_the_round_label_not_the_status():
    # The paper strategy can mark a pair "flip" that toggles an earlier flip back: label == judge.
    deciding = DecidingRound(decisions={9: TaskDecision("flip", "a")}, rm_margins={9: 1.0}, version="v", round_index=0)
    assert build_row(task(9), judged("a"), deciding).source == "llm_kept"
    # and a carried flip under status "keep" is still a flip
    deciding = DecidingRound(decisions={9: TaskDecision("keep", "b")}, version="v", round_index=0)
    assert build_row(task(9), judged("a"), deciding).source == "llm_flipped"


def test_human_label_wins_over_any_engine_decision():
    agree = build_row(task(5, HUMAN_A, ["a"], [11]), judged("a"), ROUND)
    assert (agree.source, agree.label, agree.annotators, agree.agreement) == ("human", "a", [11], 1.0)
    assert (agree.round, agree.model_version) == (1, "rlthf-p1-v0002")  # the round that asked people
    # the engine flipped the judge's b to a; a person said b (as the judge did): the flip is overruled
    overruled = build_row(task(4, HUMAN_B, ["b"], [12]), judged("b"), ROUND)
    assert (overruled.source, overruled.label, overruled.chosen) == ("human", "b", "B4")
    overrode = build_row(task(1, HUMAN_B, ["b", "b", "a"], [11, 12, 13]), judged("a"), ROUND)
    got = (overrode.source, overrode.label, overrode.chosen, overrode.rejected)
    assert got == ("human_overrode_llm", "b", "B1", "A1")
    assert overrode.agreement == pytest.approx(2 / 3) and overrode.confidence == pytest.approx(2 / 3)
    assert overrode.margin == -1.5
    # a person labelling a pair the engine dropped brings it back
    back = build_row(task(3, HUMAN_A, ["a"], [11]), judged("b"), ROUND)
    assert (back.source, back.dropped, back.label) == ("human_overrode_llm", False, "a")
    # a person's label where the judge gave no a/b verdict is plain human
    assert build_row(task(6, HUMAN_B, ["b"], [1]), judged(None), ROUND).source == "human"
    assert build_row(task(6, HUMAN_B, ["b"], [1]), judged("tie", ab="a", ba="b"), ROUND).source == "human"


def test_ties_and_unlabelled_pairs():
    split = build_row(task(7, HUMAN_TIE, ["a", "b"], [1, 2]), judged("a"), ROUND)
    assert split.tie and split.label == "tie" and split.source == "human" and split.agreement == 0.5
    assert (split.chosen, split.rejected) == ("A7", "B7")
    judge_tie = build_row(task(8), judged("tie", 0.6, "a", "b"), ROUND)
    assert judge_tie.tie and judge_tie.source == "llm_kept"
    assert build_row(task(8), judged(None), ROUND) is None
    assert build_row(task(8), None, ROUND) is None


def test_dropped_pairs_are_left_out_unless_asked_and_then_marked():
    rows = build_rows([task(1), task(2), task(3)], [judged("a"), judged("a"), judged("a")], ROUND)
    assert [r.task_id for r in select_rows(rows)] == [1, 2]
    kept = select_rows(rows, include_dropped=True)
    assert [(r.task_id, r.dropped) for r in kept] == [(1, False), (2, False), (3, True)]
    assert kept[2].label == "a" and kept[2].source == "llm_kept"
    assert source_counts(kept) == {"human": 0, "human_overrode_llm": 0, "llm_kept": 2, "llm_flipped": 1,
                                   "tie": 0, "dropped": 1}


def test_min_confidence_keeps_only_known_confident_rows():
    rows = build_rows(
        [task(1), task(2), task(5, HUMAN_A, ["a", "a", "b"], [1, 2, 3]), task(20)],
        [judged("a"), judged("a"), judged("a"), judged("b", prob=None)],
        ROUND,
    )
    assert rows[3].confidence is None  # no round decision, no margin, no judge probability
    picked = select_rows(rows, min_confidence=0.75)
    assert [r.task_id for r in picked] == [1, 2]  # 0.9, 0.8; human 2/3 agreement and unknown left out
    assert [r.task_id for r in select_rows(rows, min_confidence=0.0)] == [1, 2, 5]


def test_without_any_round_the_judge_and_people_decide():
    empty = DecidingRound()
    row = build_row(task(1), judged("b", 0.7), empty)
    assert (row.source, row.label, row.round, row.model_version, row.margin) == ("llm_kept", "b", None, None, None)
    assert row.confidence == 0.7
    # a task imported after the round: judge label, no round named
    late = build_row(task(99), judged("a"), ROUND)
    assert (late.round, late.model_version, late.engine_status) == (None, None, None)
    assert late.confidence == 0.8  # no P(wrong), no RM margin: the judge's probability


def test_build_rows_checks_alignment():
    with pytest.raises(ValueError):
        build_rows([task(1)], [], ROUND)
