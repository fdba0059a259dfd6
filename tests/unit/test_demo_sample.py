"""The demo's sample draw (reproducible from the shared data) and its first-round queue check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlthf_backend.demo import load_sample_pairs
from rlthf_backend.demo.draw_sample import _proportional, draw
from rlthf_backend.demo.queue_check import check_queue
from rlthf_backend.registry.records import QueueCheck, read_check, write_check
from rlthf_backend.labelstudio.config import parse_label_config, shipped_config
from rlthf_backend.labelstudio.results import result_for_label

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CONFIG = parse_label_config(shipped_config("pairwise"))


def test_the_shipped_sample_is_what_the_draw_gives():
    source = SHARED_DATA / "judged-pairs.jsonl.gz"
    if not source.exists():
        pytest.skip(f"{source} is absent (shared data not laid out beside the checkout)")
    assert draw(source) == load_sample_pairs()


def test_the_sample_has_a_realistic_share_of_judge_mistakes_and_both_orders_where_published():
    pairs = load_sample_pairs()
    wrong = sum(p["llm_label"] != p["human_label"] for p in pairs)
    assert 0.1 <= wrong / len(pairs) <= 0.35
    llmbar = [p for p in pairs if p["source"] == "llmbar"]
    assert llmbar and all(p["llm_judge"].startswith("GPT-4/") and p["llm_label_swapped"] for p in llmbar)
    # some pairs where GPT-4 contradicted itself across the two orders: the judge's own doubt
    assert any(p["llm_label_swapped"] != p["llm_label"] for p in llmbar)


def test_proportional_allocation_keeps_the_total_and_the_proportions():
    alloc = _proportional({"x": 149, "y": 16, "z": 25, "w": 10}, 30)
    assert sum(alloc.values()) == 30
    assert alloc == {"x": 22, "y": 2, "z": 4, "w": 2}
    assert _proportional({"only": 7}, 3) == {"only": 3}


def _task(pair_id: str, llm: str, score: float | None, *, annotated: bool = False) -> dict:
    preds = [{"model_version": "judge-v1", "result": result_for_label(CONFIG, llm), "score": 1.0}]
    if score is not None:
        preds.append({"model_version": "round-v2", "result": result_for_label(CONFIG, llm), "score": score})
    return {"data": {"pair_id": pair_id}, "predictions": preds, "annotations": [{"id": 1}] if annotated else []}


def test_queue_check_reads_the_queue_in_score_order_and_counts_judge_mistakes():
    truth = {f"p{i}": "a" for i in range(12)}
    # The judge said "b" (wrong) on p0, p1, p2; the round put p1 and p0 first (scores < 0.5).
    tasks = [_task(f"p{i}", "b" if i < 3 else "a", 0.6 + i / 100) for i in range(12)]
    tasks[0] = _task("p0", "b", 0.33)
    tasks[1] = _task("p1", "b", 0.17)
    tasks.append(_task("p12", "b", 0.01, annotated=True))  # answered already: not in the queue
    tasks.append(_task("p13", "b", None))  # no prediction of the round: not served by the queue
    check = check_queue(CONFIG, tasks, queue_version="round-v2", judge_version="judge-v1",
                        human_labels={**truth, "p12": "a", "p13": "a"}, judge="GPT-4", first=3)
    assert check == QueueCheck(first=3, wrong_in_first=3, batch=2, wrong_in_batch=2, pool=12, wrong_in_pool=3,
                               judge="GPT-4")
    assert check.share_first == 1.0 and check.share_random == 0.25
    text = check.describe()
    assert "first 3 tasks" in text and "3 (100%)" in text and "25% (3 of 12)" in text


def test_queue_check_is_none_without_a_queue_and_round_trips_through_its_file(tmp_path):
    assert check_queue(CONFIG, [], queue_version="v", judge_version="j", human_labels={}, judge="x") is None
    assert read_check(tmp_path) is None
    check = QueueCheck(first=10, wrong_in_first=4, batch=3, wrong_in_batch=3, pool=60, wrong_in_pool=10, judge="j")
    write_check(tmp_path / "7", check)
    assert read_check(tmp_path / "7") == check
    assert json.loads((tmp_path / "7" / "queue_check.json").read_text())["share_first"] == 0.4
    (tmp_path / "7" / "queue_check.json").write_text("{not json")
    assert read_check(tmp_path / "7") is None


def test_every_demo_judge_is_a_valid_backend_configuration():
    from click.testing import CliRunner

    from rlthf_backend.cli import main
    from rlthf_backend.demo.run import DEFAULT_DEMO_JUDGE, DEMO_JUDGES, JUDGE_NAMES
    from rlthf_backend.app.settings import Settings

    assert DEFAULT_DEMO_JUDGE == "precomputed" and set(JUDGE_NAMES) == set(DEMO_JUDGES)
    assert Settings(_env_file=None, **DEMO_JUDGES["precomputed"]).judge == "precomputed"
    live = Settings(_env_file=None, **DEMO_JUDGES["smollm2"])
    assert (live.judge, live.transformers_model) == ("transformers", "smollm2")
    help_text = CliRunner().invoke(main, ["demo", "--help"]).output
    assert "[default: precomputed]" in help_text and "smollm2" in help_text
    refused = CliRunner().invoke(main, ["demo", "--judge", "gpt-5"])
    assert refused.exit_code == 2 and "gpt-5" in refused.output
