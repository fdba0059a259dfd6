"""The precomputed judge: verdicts read from the task data stored with each pair."""

from __future__ import annotations

import pytest

from rlthf_backend.core.judges.precomputed import PrecomputedJudge
from rlthf_backend.core.types import JudgeStatus, Pair


def _judge(**data):
    return PrecomputedJudge().judge(Pair("p", "a", "b", extra=data))


def test_label_alone_is_certain():
    j = _judge(llm_label="b")
    assert j.ok and (j.label, j.prob, j.prob_a) == ("b", 1.0, 0.0)
    assert (j.verdict_ab, j.verdict_ba) == ("b", None)
    assert j.model == "precomputed"


def test_stored_probability_is_used():
    j = _judge(llm_label="a", llm_prob=0.7, llm_model="gpt-4o")
    assert (j.label, j.prob, j.prob_a, j.model) == ("a", 0.7, 0.7, "gpt-4o")
    j = _judge(llm_label="b", llm_prob="0.8")  # task data imported from CSV arrives as text
    assert j.prob == pytest.approx(0.8) and j.prob_a == pytest.approx(0.2)


def test_swapped_verdict_is_recorded_and_lowers_confidence_when_it_disagrees():
    agree = _judge(llm_label="a", llm_label_swapped="a")
    assert agree.prob == 1.0 and not agree.swap_disagrees
    disagree = _judge(llm_label="a", llm_label_swapped="b")
    assert disagree.label == "a" and disagree.prob == 0.5 and disagree.swap_disagrees
    assert (disagree.verdict_ab, disagree.verdict_ba) == ("a", "b")


def test_tie_and_case_and_blank_optional_fields():
    j = _judge(llm_label=" TIE ", llm_label_swapped="", llm_prob=None)
    assert j.ok and j.label == "tie" and j.prob_a == 0.5 and j.verdict_ba is None


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({}, "missing field 'llm_label'"),
        ({"llm_label": ""}, "missing field 'llm_label'"),
        ({"llm_label": "A+"}, "'llm_label' must be one of a, b, tie; got 'A+'"),
        ({"llm_label": 1}, "'llm_label' must be one of a, b, tie; got 1"),
        (
            {"llm_label": "a", "llm_label_swapped": "left"},
            "'llm_label_swapped' must be one of a, b, tie; got 'left'",
        ),
        ({"llm_label": "a", "llm_prob": 1.5}, "'llm_prob' must be a number in [0, 1]; got 1.5"),
        ({"llm_label": "a", "llm_prob": "high"}, "'llm_prob' must be a number in [0, 1]; got 'high'"),
        ({"llm_label": "a", "llm_prob": float("nan")}, "'llm_prob' must be a number in [0, 1]; got nan"),
        ({"llm_label": "a", "llm_prob": True}, "'llm_prob' must be a number in [0, 1]; got True"),
    ],
)
def test_bad_data_is_an_error_naming_the_field_and_value(data, fragment):
    j = _judge(**data)
    assert j.status is JudgeStatus.ERROR and j.label is None
    assert fragment in j.reason


def test_one_bad_task_does_not_spoil_the_batch():
    pairs = [
        Pair("p", "a", "b", extra={"llm_label": "a"}),
        Pair("p", "a", "b"),
        Pair("p", "a", "b", extra={"llm_label": "b"}),
    ]
    results = PrecomputedJudge().judge_many(pairs)
    assert [r.label for r in results] == ["a", None, "b"]


def test_not_cacheable_and_stable_config():
    judge = PrecomputedJudge()
    assert judge.cacheable is False
    assert judge.fingerprint() == PrecomputedJudge().fingerprint()
    assert judge.model_version("rlthf").startswith("rlthf-judge-precomputed-precomputed-")
