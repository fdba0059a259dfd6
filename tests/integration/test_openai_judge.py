"""The openai judge through the real `openai` client against a real local HTTP server.

The fake server (tests/fakes/openai_server.py) prefers the longer response, with
P(first better) = (len1 + 1) / (len1 + len2 + 2), so every expected number below is computed
from the texts.
"""

from __future__ import annotations

import threading
import time

import pytest

from rlthf_backend.core.judges.openai_judge import OpenAIJudge
from rlthf_backend.core.types import JudgeStatus, Pair
from rlthf_backend.app.judges import make_judge, openai_judge_config
from rlthf_backend.app.settings import Settings
from tests.fakes.openai_server import FakeOpenAIServer, longer_wins

pytestmark = pytest.mark.integration

LONG, SHORT = "a long and careful answer", "short"


@pytest.fixture
def server():
    with FakeOpenAIServer() as s:
        yield s


def _judge(server, tmp_path=None, **overrides) -> OpenAIJudge:
    values = {
        "judge": "openai",
        "openai_base_url": server.base_url,
        "openai_model": "fake-judge",
        **overrides,
    }
    if tmp_path is not None:
        values["data_dir"] = tmp_path
    return OpenAIJudge(openai_judge_config(Settings(**values)), retry_base_delay=0.01, retry_max_delay=0.05)


def test_both_orders_with_logprob_probabilities(server):
    [j] = _judge(server).judge_many([Pair("q", LONG, SHORT)])
    expected = longer_wins(LONG, SHORT)  # in the swapped order, 1 - P(first=SHORT) is the same
    assert j.ok and j.label == "a" and j.model == "fake-judge"
    assert (j.verdict_ab, j.verdict_ba, j.swap_disagrees) == ("a", "a", False)
    assert j.prob_a == pytest.approx(expected, rel=1e-4)
    assert j.prob == pytest.approx(expected, rel=1e-4)
    assert j.extra["prob_source"] == "token_probs"
    assert j.raw == (
        "Response A is more complete.\nPreference: A",
        "Response B is more complete.\nPreference: B",
    )
    assert server.stats.requests == 2
    # The two orders run concurrently, so they may arrive in either order.
    shown_first = sorted(
        "long" if (c := b["messages"][0]["content"]).index(LONG) < c.index(SHORT) else "short"
        for b in server.stats.bodies
    )
    assert shown_first == ["long", "short"]
    assert all(
        b["logprobs"] is True and b["top_logprobs"] == 5 and b["model"] == "fake-judge"
        for b in server.stats.bodies
    )


def test_b_wins_and_results_keep_input_order(server):
    pairs = [Pair("q", SHORT, LONG), Pair("q", LONG, SHORT), Pair("q", "x", "yy")]
    results = _judge(server).judge_many(pairs)
    assert [r.label for r in results] == ["b", "a", "b"]
    assert results[0].prob_a == pytest.approx(1 - longer_wins(LONG, SHORT), rel=1e-4)


def test_equal_texts_expose_position_bias_as_a_tie(server):
    [with_probs] = _judge(server).judge_many([Pair("q", "same", "SAME")])
    assert with_probs.label == "tie" and with_probs.prob_a == pytest.approx(0.5)
    [without] = _judge(server, openai_logprobs=False).judge_many([Pair("q", "same", "SAME")])
    assert (without.label, without.prob, without.verdict_ab, without.verdict_ba) == ("tie", 0.5, "a", "b")
    assert without.swap_disagrees and without.extra["prob_source"] == "verdicts"
    assert "logprobs" not in server.stats.bodies[-1]


def test_server_without_logprobs_falls_back_to_verdicts(server):
    server.behaviour.logprobs = False
    [j] = _judge(server).judge_many([Pair("q", LONG, SHORT)])
    assert (j.label, j.prob, j.prob_a) == ("a", 1.0, 1.0)


def test_server_rejecting_logprobs_is_asked_again_without(server):
    server.behaviour.reject_logprobs = True
    judge = _judge(server, judge_both_orders=False)
    [j] = judge.judge_many([Pair("q", LONG, SHORT)])
    assert j.ok and j.label == "a" and j.prob == 1.0
    assert server.stats.statuses == [400, 200]
    judge.judge_many([Pair("q2", LONG, SHORT)])
    assert server.stats.statuses == [400, 200, 200]  # remembered: no second rejection


def test_single_order(server):
    [j] = _judge(server, judge_both_orders=False).judge_many([Pair("q", SHORT, LONG)])
    assert (j.label, j.verdict_ab, j.verdict_ba) == ("b", "b", None)
    assert server.stats.requests == 1


def test_retries_after_rate_limits(server):
    server.behaviour.fail_first = [429, 429, 503]
    [j] = _judge(server, judge_both_orders=False, judge_max_retries=4).judge_many([Pair("q", LONG, SHORT)])
    assert j.ok and j.label == "a"
    assert server.stats.statuses == [429, 429, 503, 200]


def test_persistent_server_errors_become_a_failure_with_the_count(server):
    server.behaviour.always_status = 500
    [j] = _judge(server, judge_both_orders=False, judge_max_retries=2).judge_many([Pair("q", LONG, SHORT)])
    assert j.status is JudgeStatus.ERROR and j.label is None
    assert j.reason.startswith("HTTP 500") and j.reason.endswith("after 2 retries")
    assert server.stats.requests == 3


def test_client_errors_are_not_retried(server):
    server.behaviour.always_status = 404
    [j] = _judge(server, judge_both_orders=False).judge_many([Pair("q", LONG, SHORT)])
    assert j.status is JudgeStatus.ERROR and j.reason.startswith("HTTP 404") and "retr" not in j.reason
    assert server.stats.requests == 1


def test_both_orders_failing_reports_both(server):
    server.behaviour.always_status = 500
    [j] = _judge(server, judge_max_retries=0).judge_many([Pair("q", LONG, SHORT)])
    assert not j.ok and "(a, b) order: HTTP 500" in j.reason and "(b, a) order: HTTP 500" in j.reason


def test_one_failed_order_keeps_the_other(server):
    server.behaviour.fail_first = [500]
    [j] = _judge(server, judge_max_retries=0, judge_concurrency=1).judge_many([Pair("q", LONG, SHORT)])
    assert j.ok and j.label == "a" and j.verdict_ab is None and j.verdict_ba == "a"
    assert j.extra["failed_orders"]["ab"].startswith("error: HTTP 500")


def test_timeouts_become_an_error_status(server):
    server.behaviour.hang_s = 2.0
    judge = _judge(server, judge_both_orders=False, judge_timeout=0.3, judge_max_retries=1)
    start = time.monotonic()
    [j] = judge.judge_many([Pair("q", LONG, SHORT)])
    assert time.monotonic() - start < 1.9
    assert j.status is JudgeStatus.ERROR
    assert j.reason == "timed out after 0.3 s after 1 retry"
    assert server.stats.requests == 2


def test_unreachable_server_is_an_error_not_an_exception():
    with FakeOpenAIServer() as s:
        url = s.base_url  # a port that is closed once the server stops
    judge = OpenAIJudge(
        openai_judge_config(
            Settings(judge="openai", openai_base_url=url, judge_both_orders=False, judge_max_retries=1)
        ),
        retry_base_delay=0.01,
    )
    [j] = judge.judge_many([Pair("q", LONG, SHORT)])
    assert (
        j.status is JudgeStatus.ERROR
        and j.reason.startswith("connection error")
        and j.reason.endswith("after 1 retry")
    )


def test_garbage_answers_are_parse_failures(server):
    server.behaviour.garbage = True
    [j] = _judge(server).judge_many([Pair("q", LONG, SHORT)])
    assert j.status is JudgeStatus.PARSE_FAILED and j.label is None
    assert "I cannot decide between them." in j.reason
    assert len(j.raw) == 2 and "cannot decide" in j.raw[0]
    assert server.stats.requests == 2  # a readable but wrong answer is not retried


def test_concurrency_is_bounded_across_calls(server):
    server.behaviour.latency_ms = 60
    judge = _judge(server, judge_concurrency=3)
    pairs = [Pair(f"q{i}", LONG, SHORT) for i in range(8)]
    results: list = []
    threads = [threading.Thread(target=lambda: results.extend(judge.judge_many(pairs))) for _ in range(2)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    judge.close()
    assert len(results) == 16 and all(r.ok for r in results)
    assert server.stats.requests == 32
    assert server.stats.max_in_flight == 3  # reached, and never exceeded, by two callers together
    assert elapsed >= 32 / 3 * 0.06 * 0.9


def test_huge_inputs_are_truncated_before_sending(server):
    huge = "word " * 200_000  # 1 MB
    [j] = _judge(server, judge_max_chars=5000).judge_many([Pair("q", huge, SHORT)])
    assert j.ok and j.truncated and j.label == "a"
    assert all(len(b["messages"][0]["content"]) < 5000 * 3 for b in server.stats.bodies)


def test_make_judge_serves_repeats_from_the_cache(server, tmp_path):
    settings = Settings(judge="openai", openai_base_url=server.base_url, data_dir=tmp_path)
    pairs = [Pair("q", LONG, SHORT), Pair("q", SHORT, LONG)]
    first = make_judge(settings).judge_many(pairs)
    again = make_judge(settings).judge_many(pairs)  # a new judge, as after a restart
    assert server.stats.requests == 4
    assert [j.label for j in again] == [j.label for j in first] == ["a", "b"]
    assert all(j.extra["cached"] for j in again)


def test_single_pair_calls_from_many_threads_share_the_bound(server):
    server.behaviour.latency_ms = 50
    judge = _judge(server, judge_concurrency=2, judge_both_orders=False)
    threads = [threading.Thread(target=judge.judge, args=(Pair(f"q{i}", LONG, SHORT),)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    judge.close()
    assert server.stats.requests == 6
    assert server.stats.max_in_flight == 2


def test_a_panel_of_two_models_asks_each_in_both_orders_and_caches_each(server, tmp_path):
    """RLTHF_JUDGES: two OpenAI-compatible models (here one local server playing both), each
    asked in both orders and cached under its own fingerprint; a restart asks nobody again."""
    settings = Settings(judges="openai:judge-large,openai:judge-small", openai_base_url=server.base_url,
                        data_dir=tmp_path, _env_file=None)
    pairs = [Pair("q", LONG, SHORT), Pair("q", SHORT, LONG)]
    first = make_judge(settings).judge_many(pairs)
    assert server.stats.requests == 8  # 2 models x 2 pairs x 2 orders
    assert sorted({b["model"] for b in server.stats.bodies}) == ["judge-large", "judge-small"]
    assert [j.label for j in first] == ["a", "b"]
    assert [m.model for m in first[0].panel] == ["judge-large", "judge-small"]
    assert first[0].panel_disagreement() == 0.0  # both models follow the same rule
    again = make_judge(settings).judge_many(pairs)
    assert server.stats.requests == 8 and [j.label for j in again] == ["a", "b"]
    one = make_judge(Settings(judge="openai", openai_model="judge-small", openai_base_url=server.base_url,
                              data_dir=tmp_path, _env_file=None)).judge_many(pairs)
    assert server.stats.requests == 8 and all(j.extra["cached"] for j in one)  # the member's own cache entry
