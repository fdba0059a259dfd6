"""TrlRewardModel end to end: real TRL RewardTrainer fine-tuning of the packaged MiniLM on CPU."""

from __future__ import annotations

import numpy as np
import pytest

from rlthf_backend.core.reward import load_reward_model, make_reward_model
from rlthf_backend.core.reward.trl_reward import TrlRewardModel, repeat_counts
from rlthf_backend.core.reward.trl_tokenize import encode_pairs
from rlthf_backend.core.types import Pair

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD = "Sure, happy to help. Here is a clear and correct answer to your question about {t}."
BAD = "No. Go away."
TOPICS = ["tides", "volcanoes", "interest rates", "photosynthesis", "chess openings", "sourdough",
          "black holes", "tax returns", "guitar chords", "vaccines", "sorting algorithms", "rainbows",
          "the Roman empire", "jet lag", "compost", "electric cars"]


def pairs_and_labels() -> tuple[list[Pair], np.ndarray]:
    pairs, y = [], []
    for i, t in enumerate(TOPICS * 2):
        prompt = f"Can you explain {t}? " + "Please be detailed. " * (i % 5) * 20  # some long prompts
        if i % 2:
            pairs.append(Pair(prompt, GOOD.format(t=t), BAD))
            y.append(True)
        else:
            pairs.append(Pair(prompt, BAD, GOOD.format(t=t)))
            y.append(False)
    return pairs, np.array(y)


def test_trl_fit_margins_save_load(tmp_path):
    pairs, y = pairs_and_labels()
    rm = make_reward_model("trl", max_length=128, epochs=1, batch_size=8, learning_rate=1e-4, seed=0)
    assert isinstance(rm, TrlRewardModel)
    weights = np.ones(len(pairs))
    weights[:4] = 0  # left out
    report = rm.fit(pairs, y, weights)
    assert report.n_pairs == len(pairs) - 4 and report.details["n_training_rows"] == len(pairs) - 4
    assert report.details["pairs_per_second"] > 0
    assert rm.version

    m = rm.margins(pairs)
    assert m.shape == (len(pairs),) and np.all(np.isfinite(m))
    # One epoch on an easy rule already moves the margins towards the labels.
    assert np.mean((m > 0) == y) >= 0.75
    swapped = [Pair(p.prompt, p.response_b, p.response_a) for p in pairs]
    np.testing.assert_allclose(rm.margins(swapped), -m, atol=1e-4)
    assert rm.member_margins(pairs).shape == (1, len(pairs))

    rm.save(tmp_path / "rm")
    loaded = load_reward_model(tmp_path / "rm")
    assert isinstance(loaded, TrlRewardModel) and loaded.version == rm.version
    np.testing.assert_allclose(loaded.margins(pairs), m, atol=1e-4)


def test_long_pairs_are_truncated_not_dropped():
    from transformers import AutoTokenizer

    from rlthf_backend.core.reward.encoder import packaged_minilm_dir

    tok = AutoTokenizer.from_pretrained(str(packaged_minilm_dir()))
    tok.eos_token = tok.sep_token
    prompt = "background " * 300 + "QUESTION: why?"
    response = "because " * 300 + "END"
    (ids,) = encode_pairs(tok, [prompt], [response], max_length=64)
    text = tok.decode(ids)
    assert len(ids) <= 64 and ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert "question : why?" in text  # the prompt keeps its end
    assert "end" not in text.split("[SEP]")[1]  # the response keeps its start
    (short,) = encode_pairs(tok, ["hi"], ["hello"], max_length=64)
    assert tok.decode(short) == "[CLS] hi [SEP] hello [SEP]"


def test_repeat_counts_apply_weights():
    counts = repeat_counts(np.array([0.0, 1.0, 4.0, 2.5] * 1000), seed=0)
    assert counts[0::4].sum() == 0 and np.all(counts[1::4] == 1) and np.all(counts[2::4] == 4)
    assert set(counts[3::4]) == {2, 3} and abs(counts[3::4].mean() - 2.5) < 0.05


def test_trl_lora_fit_and_reload(tmp_path):
    pairs, y = pairs_and_labels()
    rm = TrlRewardModel(max_length=64, epochs=1, batch_size=8, use_lora=True, lora_r=8, lora_alpha=16,
                        learning_rate=1e-3)
    report = rm.fit(pairs[:16], y[:16])
    assert report.n_pairs == 16
    m = rm.margins(pairs[16:])
    rm.save(tmp_path)
    assert not any("lora" in f.name for f in (tmp_path / "model").iterdir())  # merged: plain weights
    np.testing.assert_allclose(load_reward_model(tmp_path).margins(pairs[16:]), m, atol=1e-4)
