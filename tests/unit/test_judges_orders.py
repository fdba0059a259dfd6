"""Combining the (a, b) and (b, a) answers of an LLM judge into one judgment."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rlthf_backend.core.judges.orders import OrderAnswer, PromptedJudge, combine
from rlthf_backend.core.judges.prompt import DEFAULT_TEMPLATE
from rlthf_backend.core.types import JudgeStatus, Pair

OK = JudgeStatus.OK


def test_two_agreeing_verdicts_without_probabilities():
    j = combine("m", OrderAnswer(OK, "A"), OrderAnswer(OK, "B"))  # B in the swapped order is a
    assert (j.label, j.prob, j.prob_a) == ("a", 1.0, 1.0)
    assert (j.verdict_ab, j.verdict_ba, j.swap_disagrees) == ("a", "a", False)
    assert j.extra["prob_source"] == "verdicts"


def test_position_bias_becomes_a_tie():
    j = combine("m", OrderAnswer(OK, "A"), OrderAnswer(OK, "A"))  # "the first one" both times
    assert (j.label, j.prob, j.prob_a) == ("tie", 0.5, 0.5)
    assert (j.verdict_ab, j.verdict_ba, j.swap_disagrees) == ("a", "b", True)


def test_token_probabilities_are_averaged_after_mapping_back():
    j = combine("m", OrderAnswer(OK, "B", p_first=0.3), OrderAnswer(OK, "A", p_first=0.9))
    # P(a) is 0.3 in the first order and 1 - 0.9 = 0.1 in the swapped one.
    assert j.prob_a == pytest.approx(0.2)
    assert j.label == "b" and j.prob == pytest.approx(0.8)
    assert j.extra["prob_a_by_order"] == pytest.approx({"ab": 0.3, "ba": 0.1})
    assert j.extra["prob_source"] == "token_probs"


def test_an_order_without_probabilities_counts_as_certain():
    j = combine("m", OrderAnswer(OK, "A", p_first=0.6), OrderAnswer(OK, "B"))
    assert j.prob_a == pytest.approx(0.8) and j.extra["prob_source"] == "mixed"


def test_one_failed_order_leaves_the_other_to_decide():
    j = combine(
        "m", OrderAnswer.failed("HTTP 500 after 4 retries"), OrderAnswer(OK, "A", p_first=0.8, raw="x")
    )
    assert j.ok and j.label == "b" and j.prob == pytest.approx(0.8)
    assert j.verdict_ab is None and j.verdict_ba == "b"
    assert j.extra["failed_orders"] == {"ab": "error: HTTP 500 after 4 retries"}
    assert j.raw == ("", "x")


def test_both_orders_failing_is_a_failure_with_both_reasons():
    j = combine(
        "m",
        OrderAnswer.failed("no verdict", JudgeStatus.PARSE_FAILED),
        OrderAnswer.failed("timed out after 60 s"),
    )
    assert not j.ok and j.status is JudgeStatus.ERROR and j.label is None
    assert "no verdict" in j.reason and "timed out after 60 s" in j.reason
    both_parse = combine("m", *(OrderAnswer.failed("x", JudgeStatus.PARSE_FAILED) for _ in range(2)))
    assert both_parse.status is JudgeStatus.PARSE_FAILED


def test_single_order():
    j = combine("m", OrderAnswer(OK, "B", p_first=0.4), None)
    assert (j.label, j.verdict_ab, j.verdict_ba) == ("b", "b", None)
    assert j.prob == pytest.approx(0.6) and not j.swap_disagrees
    failed = combine("m", OrderAnswer.failed("boom"), None)
    assert failed.reason == "boom"


class _ScriptedJudge(PromptedJudge):
    """Answers "A" exactly when the first response shown is the text "good..."."""

    kind = "scripted"

    def __init__(self, both_orders=True, max_chars=100):
        super().__init__(
            model="scripted",
            template=DEFAULT_TEMPLATE,
            criteria="c",
            both_orders=both_orders,
            max_chars=max_chars,
        )
        self.prompts: list[str] = []

    def config(self):
        return self.prompt_config()

    def _ask_many(self, prompts: Sequence[str]) -> list[OrderAnswer]:
        self.prompts.extend(prompts)
        return [OrderAnswer(OK, "A" if "[Response A]\ngood" in p else "B") for p in prompts]


def test_prompted_judge_asks_both_orders_and_maps_back():
    judge = _ScriptedJudge()
    results = judge.judge_many([Pair("p", "good", "bad"), Pair("p", "bad", "good")])
    assert [r.label for r in results] == ["a", "b"]
    assert all(not r.swap_disagrees for r in results)
    assert len(judge.prompts) == 4
    assert "[Response A]\ngood" in judge.prompts[0] and "[Response A]\nbad" in judge.prompts[1]


def test_prompted_judge_flags_truncation_and_single_order():
    judge = _ScriptedJudge(both_orders=False, max_chars=100)
    [r] = judge.judge_many([Pair("p", "good" + "x" * 500, "bad")])
    assert r.truncated is True and len(judge.prompts) == 1 and r.verdict_ba is None
    assert judge.judge_many([]) == []
