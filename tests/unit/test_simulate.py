"""The simulator: data loading in every format, and a small replay on the real judged pairs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from rlthf_backend.core.curation import DEFAULT_STRATEGY
from rlthf_backend.core.simulate.data import detect_format, load_pool, pick_judge, split_transcript
from rlthf_backend.core.simulate.replay import split_pool
from rlthf_backend.app.settings import Settings

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
JUDGED = DATA / "judged-pairs.jsonl.gz"
HH = DATA / "hh-rlhf-harmless-base-test.jsonl.gz"
needs_data = pytest.mark.skipif(not JUDGED.exists() or not HH.exists(),
                                reason=f"real data not found under {DATA} (../shared/data from the repo root)")


def write_jsonl(path: Path, rows, gz=False):
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)


def test_plain_format_with_optional_fields(tmp_path):
    rows = [
        {"prompt": "p1", "response_a": "x", "response_b": "y", "human_label": "a", "llm_label": "a",
         "llm_label_swapped": "b", "llm_prob": 0.7},
        {"prompt": "p2", "response_a": "x", "response_b": "y", "human_label": "tie", "llm_label": "a"},
        {"prompt": "p3", "response_a": "x", "response_b": "y", "human_label": "b", "llm_label": "a"},
        {"prompt": "p4", "response_a": "x", "response_b": "y", "human_label": "b", "llm_label": None},
    ]
    write_jsonl(tmp_path / "plain.jsonl", rows)
    write_jsonl(tmp_path / "plain.jsonl.gz", rows, gz=True)
    for name in ("plain.jsonl", "plain.jsonl.gz"):
        pool = load_pool(tmp_path / name)
        assert pool.format == "plain" and len(pool) == 3 and pool.dropped_ties == 1
        ev = pool.evidence
        assert pool.human_a_preferred.tolist() == [True, False, False]
        assert ev.llm_a_preferred[:2].tolist() == [True, True]
        assert ev.swap_known.tolist() == [True, False, False]
        assert ev.swap_disagrees.tolist() == [True, False, False]
        assert ev.prob[0] == pytest.approx(0.7) and np.isnan(ev.prob[1])
        assert ev.parse_failed.tolist() == [False, False, True]


def test_judged_format_picks_the_strongest_judge(tmp_path):
    labels = {"ChatGPT/Vanilla_NoRules": {"ab": "b", "ba": "b"}, "GPT-4/Vanilla_NoRules": {"ab": "a", "ba": "b"},
              "Falcon/CoT": {"ab": "b", "ba": "b"}}
    key, v, stronger_tie = pick_judge(labels, None)
    assert key == "GPT-4/Vanilla_NoRules" and not stronger_tie
    assert pick_judge(labels, "Falcon/CoT")[0] == "Falcon/CoT"
    # a stronger judge that only said "tie" hands the label down but flags the pair
    verdicts = {"gpt-3.5-turbo": {"ab": "tie", "ba": None}, "pandalm-7b": {"ab": "b", "ba": None}}
    key, v, stronger_tie = pick_judge(verdicts, None)
    assert key == "pandalm-7b" and stronger_tie
    rows = [{"source": "llmbar", "subset": "s", "id": "1", "prompt": "p", "response_a": "x", "response_b": True,
             "human_label": "a", "llm_labels": labels}]
    write_jsonl(tmp_path / "j.jsonl", rows)
    pool = load_pool(tmp_path / "j.jsonl")
    assert pool.format == "judged" and pool.judge_counts == {"GPT-4/Vanilla_NoRules": 1}
    assert pool.pairs[0].response_b == "True"  # JSON scalars become text
    assert pool.evidence.llm_a_preferred[0] and pool.evidence.swap_disagrees[0]


def test_chosen_rejected_transcripts():
    prompt, response = split_transcript("\n\nHuman: hi\n\nAssistant: hello\n\nHuman: why?\n\nAssistant: because")
    assert prompt.endswith("why?\n\nAssistant:") and response == "because"
    assert detect_format({"chosen": "a", "rejected": "b"}) == "chosen_rejected"
    with pytest.raises(ValueError, match="unrecognised"):
        detect_format({"text": "x"})


def test_split_is_seeded_and_disjoint():
    pool, held = split_pool(100, 0.2, seed=3)
    again, _ = split_pool(100, 0.2, seed=3)
    other, _ = split_pool(100, 0.2, seed=4)
    assert len(held) == 20 and not set(pool) & set(held)
    assert np.array_equal(pool, again) and not np.array_equal(pool, other)


@needs_data
def test_real_judged_file_loads_with_ties_dropped():
    pool = load_pool(JUDGED)
    assert len(pool) == 1460 and pool.dropped_ties == 105
    assert set(pool.judge_counts) >= {"GPT-4/Vanilla_NoRules", "gpt-3.5-turbo"}
    accuracy = np.mean(pool.evidence.llm_a_preferred == pool.human_a_preferred)
    assert 0.75 < accuracy < 0.85
    assert pool.evidence.swap_disagrees.sum() > 50


@needs_data
@pytest.mark.slow
def test_simulate_on_a_slice_of_the_real_file(tmp_path):
    from rlthf_backend.cli.simulate import run_simulate_command

    lines: list[str] = []
    settings = Settings(_env_file=None)
    doc = run_simulate_command(
        data_path=JUDGED, engine=settings.engine_config(), rm=settings.reward_model_spec(), judges=None,
        panel_label_rule="primary", strategies=(), budgets=[5, 10], seeds=2, out_dir=tmp_path, limit=150,
        echo=lines.append, quiet=True,
    )
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["engine"]["strategy"] == DEFAULT_STRATEGY and saved["pool_size"] == 120
    assert (tmp_path / "all_pairs_accuracy.png").stat().st_size > 1000
    results = saved["results"]
    assert set(results) == {"llm_only", "random", "oracle", "paper", "swap_first", "fused", "adaptive"}
    for strategy, by_budget in results.items():
        assert set(by_budget) == {"5", "10"}
        for r in by_budget.values():
            for field in ("all_pairs_accuracy_mean", "all_pairs_accuracy_std", "kept_precision_mean",
                          "kept_fraction_mean", "flipped_mean", "flip_precision_mean", "heldout_rm_accuracy_mean"):
                assert field in r
            assert r["seeds"] == 2
            assert 0.4 < r["heldout_rm_accuracy_mean"] < 1.0
    base = results["llm_only"]["10"]["all_pairs_accuracy_mean"]
    # the oracle fixes one wrong label per human label (12 of 120 at 10%)
    assert results["oracle"]["10"]["all_pairs_accuracy_mean"] == pytest.approx(min(1.0, base + 0.1), abs=0.011)
    assert results["random"]["10"]["all_pairs_accuracy_mean"] >= base
    assert results["llm_only"]["5"]["kept_fraction_mean"] == 1.0 and results["random"]["10"]["flipped_mean"] == 0
    # same pool per seed for every strategy
    runs = saved["runs"]
    assert {r["pool_size"] for r in runs} == {120}
    assert any("all-pairs accuracy" in line for line in lines)
    assert doc["targets"]["evaluated"] and set(doc["targets"]["per_budget"]) == {"5", "10"}


@needs_data
@pytest.mark.slow
def test_file_without_llm_labels_reports_the_rm_ceiling(tmp_path):
    from rlthf_backend.cli.simulate import run_simulate_command

    lines: list[str] = []
    settings = Settings(_env_file=None)
    doc = run_simulate_command(
        data_path=HH, engine=settings.engine_config(), rm=settings.reward_model_spec(), judges=None,
        panel_label_rule="primary", strategies=(), budgets=[10], seeds=1, out_dir=tmp_path, limit=100,
        echo=lines.append, quiet=True,
    )
    assert doc["mode"] == "rm_ceiling"
    ceiling = json.loads((tmp_path / "results.json").read_text())["rm_ceiling"]
    assert len(ceiling["per_seed"]) == 1 and 0.0 <= ceiling["heldout_rm_accuracy_mean"] <= 1.0
    assert "capacity ceiling" in lines[0]


def test_named_judge_defines_the_pool(tmp_path):
    rows = [
        {"source": "x", "prompt": "p1", "response_a": "a", "response_b": "b", "human_label": "a",
         "llm_labels": {"J1": {"ab": "a", "ba": "a"}, "J2": {"ab": "b", "ba": None}}},
        {"source": "x", "prompt": "p2", "response_a": "a", "response_b": "b", "human_label": "b",
         "llm_labels": {"J2": {"ab": "b", "ba": None}}},
        {"source": "x", "prompt": "p3", "response_a": "a", "response_b": "b", "human_label": "b",
         "llm_labels": {"J1": {"ab": None, "ba": None}}},
    ]
    write_jsonl(tmp_path / "j.jsonl", rows)
    pool = load_pool(tmp_path / "j.jsonl", judges=["J1"])
    assert len(pool) == 2 and pool.skipped_without_judge == 1
    assert pool.evidence.parse_failed.tolist() == [False, True]  # J1 saw p3 but gave no verdict
    assert len(load_pool(tmp_path / "j.jsonl")) == 3
