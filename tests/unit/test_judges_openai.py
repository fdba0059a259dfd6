"""The openai judge against the fake chat-completions server (tests/fakes/openai_server.py): the answer
budget it asks for, an endless answer, token probabilities that disagree with the verdict. Its orders,
retries, errors and concurrency: tests/integration/test_openai_judge.py."""

from __future__ import annotations

import pytest

from rlthf_backend.core.judges.openai_judge import OpenAIJudge, OpenAIJudgeConfig
from rlthf_backend.core.types import JudgeStatus, Pair
from tests.fakes.openai_server import Behaviour, FakeOpenAIServer

# --- the openai judge: answer budget, and token probabilities never override the verdict -------


@pytest.fixture
def fake_openai():
    with FakeOpenAIServer(Behaviour()) as server:
        yield server


def _openai_judge(server, **kw) -> OpenAIJudge:
    return OpenAIJudge(OpenAIJudgeConfig(base_url=server.base_url, max_retries=0, **kw))


def test_openai_judge_bounds_the_answer_it_asks_for(fake_openai):
    judge = _openai_judge(fake_openai, max_tokens=333)
    assert judge.judge(Pair("q", "a longer answer", "short")).ok
    assert {body.get("max_tokens") for body in fake_openai.stats.bodies} == {333}
    assert judge.config()["max_tokens"] == 333  # a new budget is a new judge (new cache keys)


def test_an_endless_answer_is_a_parse_failure_not_a_stall(fake_openai):
    fake_openai.behaviour.answer_text = "Preference: A" + " " * 300_000 + "*x"
    judgment = _openai_judge(fake_openai).judge(Pair("q", "a", "b"))
    assert judgment.status is JudgeStatus.PARSE_FAILED


def test_token_probabilities_never_override_the_parsed_verdict(fake_openai):
    fake_openai.behaviour.logprobs_disagree = True
    judge = _openai_judge(fake_openai, both_orders=False)
    judgment = judge.judge(Pair("q", "a much much longer and better answer", "no"))
    assert judgment.verdict_ab == "a"
    assert judgment.label == "a", judgment
    assert judgment.extra["order_ab"]["token_probs_disagree"] is True
