"""EmbeddingRewardModel on the real packaged all-MiniLM-L6-v2 (loads once, ~7 s).

The synthetic task: every prompt asks something; the preferred response answers it politely
and correctly, the other brushes the user off. Train and test pairs use different prompts, so
held-out accuracy measures generalisation, not memorised texts.
"""

from __future__ import annotations

import numpy as np
import pytest

from rlthf_backend.core.reward import load_reward_model, make_reward_model
from rlthf_backend.core.reward.embedding import EmbeddingRewardConfig, EmbeddingRewardModel
from rlthf_backend.core.reward.encoder import TextEncoder
from rlthf_backend.core.types import Pair

QA = [
    ("What is the capital of France?", "The capital of France is Paris."),
    ("How many legs does a spider have?", "A spider has eight legs."),
    ("What gas do plants absorb?", "Plants absorb carbon dioxide from the air."),
    ("Who wrote Romeo and Juliet?", "William Shakespeare wrote Romeo and Juliet."),
    ("What is the boiling point of water?", "Water boils at 100 degrees Celsius at sea level."),
    ("How many days are in a leap year?", "A leap year has 366 days."),
    ("What is the largest planet?", "Jupiter is the largest planet in the solar system."),
    ("What language is spoken in Brazil?", "People in Brazil mainly speak Portuguese."),
    ("How do I reverse a list in Python?", "Use my_list.reverse() or my_list[::-1]."),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au."),
    ("Which ocean is the largest?", "The Pacific Ocean is the largest ocean."),
    ("How many continents are there?", "There are seven continents."),
    ("What is the square root of 81?", "The square root of 81 is 9."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
    ("What is the freezing point of water?", "Water freezes at 0 degrees Celsius."),
    ("What is the tallest mountain?", "Mount Everest is the tallest mountain above sea level."),
    ("How many minutes are in an hour?", "An hour has sixty minutes."),
    ("What is the currency of Japan?", "Japan uses the yen."),
    ("Which organ pumps blood?", "The heart pumps blood through the body."),
    ("What is H2O?", "H2O is water: two hydrogen atoms and one oxygen atom."),
]
BRUSH_OFFS = [
    "Figure it out yourself.",
    "I don't care, stop asking me things.",
    "Whatever. Look it up.",
    "That's a dumb question.",
    "No idea and not interested.",
]


def synthetic_pairs() -> tuple[list[Pair], np.ndarray]:
    """40 pairs over 20 prompts; half with the good answer as a, half as b."""
    pairs, a_pref = [], []
    for i, (q, good) in enumerate(QA):
        for j in range(2):
            bad = BRUSH_OFFS[(i + j) % len(BRUSH_OFFS)]
            if (i + j) % 2 == 0:
                pairs.append(Pair(q, f"Sure! {good}" if j else good, bad))
                a_pref.append(True)
            else:
                pairs.append(Pair(q, bad, f"Happy to help. {good}" if j else good))
                a_pref.append(False)
    return pairs, np.array(a_pref)


def swapped(pairs: list[Pair]) -> list[Pair]:
    return [Pair(p.prompt, p.response_b, p.response_a) for p in pairs]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> TextEncoder:
    return TextEncoder(cache_dir=tmp_path_factory.mktemp("emb-cache"))


@pytest.fixture(scope="module")
def data() -> tuple[list[Pair], np.ndarray]:
    return synthetic_pairs()


def make(encoder: TextEncoder, **kw) -> EmbeddingRewardModel:
    return EmbeddingRewardModel(EmbeddingRewardConfig(n_ensemble=3, **kw), encoder=encoder)


def test_generalises_to_held_out_prompts(encoder, data):
    pairs, y = data
    train, test = slice(0, 28), slice(28, 40)  # prompts 0-13 vs 14-19
    rm = make(encoder)
    report = rm.fit(pairs[train], y[train])
    assert report.n_pairs == 28 and report.train_accuracy == 1.0
    acc = np.mean((rm.margins(pairs[test]) > 0) == y[test])
    assert acc >= 0.9, acc


def test_margins_are_antisymmetric(encoder, data):
    pairs, y = data
    rm = make(encoder, head="mlp", optimizer="adam", epochs=30, lr=0.01)
    rm.fit(pairs, y)
    m = rm.member_margins(pairs)
    assert m.shape == (3, len(pairs))
    np.testing.assert_allclose(rm.member_margins(swapped(pairs)), -m, atol=1e-5)
    np.testing.assert_allclose(rm.margins(pairs), m.mean(axis=0))


def test_zero_weight_excludes_pair(encoder, data):
    pairs, y = data
    w = np.ones(len(pairs))
    w[::4] = 0
    weighted = make(encoder)
    report = weighted.fit(pairs, y, w)
    assert report.n_pairs == len(pairs) - len(pairs[::4])
    subset = make(encoder)
    subset.fit([p for p, wi in zip(pairs, w) if wi > 0], y[w > 0])
    full = make(encoder)
    full.fit(pairs, y)
    # Weight 0 means "not there": the same model as fitting the subset, another than the full fit.
    assert weighted.version == subset.version != full.version
    np.testing.assert_array_equal(weighted.margins(pairs), subset.margins(pairs))


def test_weights_change_the_fit(encoder, data):
    pairs, y = data
    a, b = make(encoder), make(encoder)
    a.fit(pairs, y)
    b.fit(pairs, y, np.where(np.arange(len(pairs)) < 10, 4.0, 1.0))
    assert a.version != b.version
    assert not np.allclose(a.margins(pairs), b.margins(pairs))


def test_deterministic_per_seed(encoder, data):
    pairs, y = data
    a, b, c = make(encoder, seed=7), make(encoder, seed=7), make(encoder, seed=8)
    for rm in (a, b, c):
        rm.fit(pairs, y)
    assert a.version == b.version != c.version
    np.testing.assert_array_equal(a.member_margins(pairs), b.member_margins(pairs))
    assert not np.allclose(a.member_margins(pairs), c.member_margins(pairs))


def test_save_load_round_trip(encoder, data, tmp_path):
    pairs, y = data
    rm = make(encoder, head="mlp", optimizer="adam", epochs=20, lr=0.01)
    rm.fit(pairs, y)
    rm.save(tmp_path)
    loaded = load_reward_model(tmp_path, cache_dir=str(encoder.cache.directory))
    assert isinstance(loaded, EmbeddingRewardModel)
    assert loaded.version == rm.version and loaded.config.head == "mlp"
    np.testing.assert_array_equal(loaded.member_margins(pairs), rm.member_margins(pairs))


def test_second_encode_hits_the_disk_cache(encoder, data):
    pairs, _ = data
    texts = [p.response_a for p in pairs]
    first = encoder.encode(texts)
    # A new encoder on the same folder has an empty memory cache: hits come from disk.
    fresh = TextEncoder(cache_dir=encoder.cache.directory)
    again = fresh.encode(texts + ["a text nobody embedded before"])
    assert fresh.n_encoded == 1
    np.testing.assert_array_equal(again[: len(texts)], first)
    assert again.shape == (len(texts) + 1, 384)


def test_make_reward_model_applies_overrides(tmp_path):
    rm = make_reward_model("embedding", cache_dir=str(tmp_path), n_ensemble=2, head="mlp")
    assert isinstance(rm, EmbeddingRewardModel)
    assert (rm.config.n_ensemble, rm.config.head, rm.version) == (2, "mlp", "")
    with pytest.raises(ValueError):
        make_reward_model("nonsense")
    with pytest.raises(TypeError):
        make_reward_model("embedding", n_ensembel=3)  # a typo is an error, not a no-op


def test_rejects_bad_inputs(encoder, data):
    pairs, y = data
    rm = make(encoder)
    with pytest.raises(RuntimeError):
        rm.margins(pairs)
    with pytest.raises(ValueError):
        rm.fit(pairs, y[:-1])
    with pytest.raises(ValueError):
        rm.fit(pairs, y, np.zeros(len(pairs)))


def test_weight_decay_is_tuned_by_cross_validation(encoder, data):
    pairs, y = data
    rm = make(encoder)
    report = rm.fit(pairs, y)
    assert report.details["weight_decay"] in rm.config.weight_decay_grid
    assert set(report.details["cv_losses"]) == set(rm.config.weight_decay_grid)
    # Labels that are pure noise: the cross-validated choice is the strongest regularisation.
    noise = np.random.default_rng(0).random(len(pairs)) < 0.5
    assert make(encoder).fit(pairs, noise).details["weight_decay"] == max(rm.config.weight_decay_grid)
    # Too few pairs to cross-validate: the fixed coefficient is used.
    small = make(encoder, weight_decay=0.123).fit(pairs[:8], y[:8])
    assert small.details["weight_decay"] == 0.123 and small.details["cv_losses"] is None
