"""The parts of the report a lead acts on: stop or continue, wrong labels left with an interval,
the queue's yield (targeted vs random), the demo's known-answer check, and readable chart axes."""

from __future__ import annotations

import html as html_lib
import json
import re

import numpy as np
import pytest

from rlthf_backend.registry.records import QueueCheck, write_check
from rlthf_backend.registry.versions import ModelRegistry
from rlthf_backend.report import load_report_data, render_report
from rlthf_backend.report.charts import metric_bars_svg, paired_bars_svg, tick_label
from rlthf_backend.report.data import QueueYield
from tests.support.registry_rounds import publish_round


def _text(page: str) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>", "", page))


def _tick_texts(svg: str) -> list[str]:
    # tick labels are the right-aligned texts of the value axis
    return re.findall(r'text-anchor="end" fill="#666" font-weight="normal">([^<]*)</text>', svg)


@pytest.mark.parametrize("values", [[None, None], [0.0, 0.0], [1e-9, None], []])
@pytest.mark.parametrize("percent", [True, False])
def test_small_charts_of_an_empty_or_flat_series_keep_a_readable_axis(values, percent):
    svg = metric_bars_svg([(f"r{i}", v) for i, v in enumerate(values)], "t", "c", percent=percent)
    ticks = _tick_texts(svg)
    assert ticks and ticks[0] == ("0%" if percent else "0")
    assert all(re.fullmatch(r"\d+(\.\d+)?%?", t) for t in ticks), ticks  # no 2e-08%, no -e-07%
    assert ticks[-1] == ("1%" if percent else "1")


def test_small_chart_axis_still_follows_real_values():
    ticks = _tick_texts(metric_bars_svg([("r0", 0.42), ("r1", 0.1)], "t", "c", percent=True))
    assert ticks[-1] == "40%" and "0%" in ticks
    assert _tick_texts(metric_bars_svg([("r0", 37.5)], "t", "c"))[-1] == "40"


@pytest.mark.parametrize(("value", "percent", "text"), [
    (0.0, True, "0%"), (0.5, True, "0.5%"), (20.0, True, "20%"), (1e-7, False, "0"), (-0.0, False, "0"),
    (2.25, False, "2.25"), (1000.0, False, "1000"),
])
def test_tick_labels_are_plain_numbers(value, percent, text):
    assert tick_label(value, percent) == text


def test_paired_bars_draw_both_shares_and_stubs_for_unknowns():
    svg = paired_bars_svg([("r0", 0.75, 0.25), ("r1", None, 0.0)], "title", "yield", ("targeted", "random"))
    assert svg.count('class="bar"') == 3 and "r1 targeted: no answers yet" in svg
    assert "r0 targeted: 75%" in svg and "r0 random: 25%" in svg
    assert _tick_texts(svg)[-1] == "100%"


def _task(status: str, label: str, audit: bool = False, p: float | None = None, tie: bool = False) -> dict:
    return {"status": status, "label": label, "audit": audit, "rank": -1, "margin": 0.0, "p_wrong": p,
            "human_tie": tie}


def _rounds_on_disk(root, rounds: list[dict[str, dict]]) -> ModelRegistry:
    """Rounds written as the training writes them (round.json per version, margins, the round
    log), from per-task decisions in their on-disk form: the report reads only the files."""
    registry = ModelRegistry(root)
    for index, tasks in enumerate(rounds):
        ids = sorted(tasks)
        record = {"strategy": "fused", "round_index": index, "reason": "test", "summary": {}, "log": [],
                  "stop": False, "stop_reason": "", "counts": {},
                  "tasks": {t: d for t, d in tasks.items()}}

        def write(folder, version, record=record, ids=ids):
            (folder / "round.json").write_text(json.dumps(record))
            np.save(folder / "margins.npy", np.linspace(1, -1, len(ids)))
            (folder / "task_ids.json").write_text(json.dumps([int(t) for t in ids]))

        info = registry.publish(1, write, meta={"strategy": "fused", "round": True})
        line = {"version": info.version, "at": 0.0, "round_index": index, "reason": "test", "pool_size": len(ids),
                "human_labels": 0, "human_batch": [int(t) for t, d in tasks.items() if d["status"] == "human"],
                "counts": {}, "summary": {}}
        with open(registry.project_dir(1) / "rounds.jsonl", "a") as log:
            log.write(json.dumps(line) + "\n")
    return registry


def test_queue_yield_splits_targeted_and_audit_answers(tmp_path):
    round0 = {
        "1": _task("human", "a"), "2": _task("human", "b"), "3": _task("human", "a", audit=True),
        "4": _task("human", "a", audit=True), "5": _task("human", "a"), "6": _task("human", "b"),
        "7": _task("keep", "a"),
    }
    round1 = {
        "1": _task("labelled", "b"),  # a person contradicted the shown label
        "2": _task("labelled", "b"),  # agreed
        "3": _task("labelled", "b"),  # audit, contradicted
        "4": _task("human", "a"),  # not answered yet
        "5": _task("labelled", "a", tie=True),  # a human tie says nothing about a/b
        "6": _task("labelled", "a"),  # contradicted
        "7": _task("labelled", "b"),  # answered, but was not in round 0's batch
    }
    r0, r1 = load_report_data(_rounds_on_disk(tmp_path, [round0, round1]), 1).rounds
    y = r0.queue_yield
    assert y == QueueYield(targeted_answered=3, targeted_contradicted=2, audit_answered=1, audit_contradicted=1)
    assert y.targeted_rate == pytest.approx(2 / 3) and y.audit_rate == 1.0
    assert r1.queue_yield is None  # nothing read round 1's answers yet
    assert QueueYield(0, 0, 0, 0).targeted_rate is None


def test_wrong_labels_left_interval_from_each_pairs_p_wrong(tmp_path):
    tasks = {str(i): _task("keep", "a", p=0.1) for i in range(20)}
    tasks.update({"101": _task("flip", "b", p=0.9), "102": _task("human", "a", p=0.8),
                  "103": _task("labelled", "a"), "104": _task("drop", "a", p=0.6)})
    [row] = load_report_data(_rounds_on_disk(tmp_path / "1", [tasks]), 1).rounds
    assert row.unchecked_exported == 21  # kept and flipped pairs nobody checked; not batch, labelled, dropped
    mean = 20 * 0.1 + 0.1
    sd = np.sqrt(20 * 0.09 + 0.09)
    assert row.est_wrong_interval == pytest.approx((max(0.0, mean - 1.96 * sd), mean + 1.96 * sd))  # clipped at 0
    [row] = load_report_data(_rounds_on_disk(tmp_path / "2", [{"1": _task("keep", "a", p=None)}]), 1).rounds
    assert row.est_wrong_interval is None  # no P(wrong) (other strategies): no interval
    [row] = load_report_data(_rounds_on_disk(tmp_path / "3", [{"1": _task("keep", "a", p=0.0)}]), 1).rounds
    assert (row.unchecked_exported, row.est_wrong_interval) == (1, (0.0, 0.0))


def _project(root, stop: bool, yield_per_label: float, audit_scope: str | None = None) -> ModelRegistry:
    """Two rounds over 50 tasks: round 0 queued 5 (one audit), people answered them, round 1 ran."""
    registry = ModelRegistry(root)
    ids = list(range(1, 51))
    margins = np.linspace(2, -2, 50)
    batch0 = ids[-5:]
    p0 = {t: 0.1 for t in ids} | {t: 0.7 for t in batch0}
    publish_round(registry, 3, ids, margins, {}, {t: "human" for t in batch0}, 0, batch0, p_wrong=p0,
                  audit={batch0[2]}, summary={"expected_wrong_in_export_model": 4.5})
    # people contradicted 3 of the 4 targeted tasks and agreed with the audit one
    labels = {t: "b" for t in batch0[:2] + [batch0[3]]}
    batch1 = ids[-10:-5]
    statuses = {t: "labelled" for t in batch0} | {t: "human" for t in batch1}
    summary = {"expected_wrong_in_export_model": 3.6, "expected_wrong_in_export_audit": 5.0,
               "expected_yield_next_batch": yield_per_label, "audited_pairs": 1, "audited_error_rate": 0.0,
               "audited_error_ci95": [0.0, 0.79], "last_batch_answered": 5, "last_batch_disagreement": 0.6}
    engine = {"strategy": "fused", "fused": {"audit_scope": audit_scope}} if audit_scope else None
    publish_round(registry, 3, ids, margins, labels, statuses, 1, batch1, p_wrong={t: 0.09 for t in ids},
                  summary=summary, human_labels=5, engine=engine)
    if stop:  # the training writes the engine's stop signal into round.json
        version = registry.latest(3)
        record = json.loads((version.path / "round.json").read_text())
        record.update(stop=True, stop_reason="next batch expected to fix 0.09 wrong labels per human label")
        (version.path / "round.json").write_text(json.dumps(record))
    return registry


def test_report_says_continue_with_wrong_labels_left_and_the_queue_yield(tmp_path):
    data = load_report_data(_project(tmp_path, stop=False, yield_per_label=0.4), 3)
    r0, r1 = data.rounds
    assert r0.queue_yield == QueueYield(4, 3, 1, 0) and r1.queue_yield is None  # round 1's batch not answered
    sig = data.stop_signal
    assert (sig.batch_size, sig.expected_fixes, sig.stop) == (5, pytest.approx(2.0), False)
    assert r1.unchecked_exported == 40 and r1.est_wrong_interval[0] < 3.6 < r1.est_wrong_interval[1]

    html = render_report(data, "now")
    text = _text(html)
    assert ("The next batch (5 tasks) is expected to fix about 2.0 wrong labels (0.40 per human label) of the 3.6 "
            "expected left in the export: continue.") in text
    lo, hi = r1.est_wrong_interval
    assert (f"Expected wrong labels left in the export after round 1: 3.6 (95% interval {lo:.1f}–{hi:.1f}), from "
            "the engine's P(wrong) of each of the 40 exported pairs nobody checked") in text
    assert "the audit-based estimate is 5.0" in text
    assert ("The LLM was wrong on 0 of the 1 audited pairs people answered in all rounds so far "
            "(0%, 95% interval 0%–79%)") in text
    assert '<svg id="queue-yield"' in html and "3 of 4 (75%)" in text
    assert "Known-answer check" not in text  # a real project has no known answers


def test_report_says_where_the_audits_were_drawn(tmp_path):
    pool = _text(render_report(load_report_data(_project(tmp_path / "a", False, 0.4, "pool"), 3), "now"))
    assert ("95% interval 0%–79%); audits drawn at random from the unlabelled pool: its error rate where nobody "
            "targeted") in pool
    flip = re.sub(r"<[^>]+>", "", render_report(
        load_report_data(_project(tmp_path / "b", False, 0.4, "flip_candidates"), 3), "now"))
    assert "drawn at random among the flip candidates" in flip and "where nobody targeted" not in flip


def test_report_says_stop_when_the_engine_does(tmp_path):
    html = render_report(load_report_data(_project(tmp_path, stop=True, yield_per_label=0.1), 3), "now")
    text = _text(html)
    assert "is expected to fix about 0.5 wrong labels (0.10 per human label) of the 3.6 expected left in the " \
           "export: stop." in text
    assert 'class="stop"' in html and "export the curated set" in text


def test_report_shows_the_demo_known_answer_check(tmp_path):
    registry = _project(tmp_path, stop=False, yield_per_label=0.4)
    write_check(registry.project_dir(3), QueueCheck(first=10, wrong_in_first=4, batch=3, wrong_in_batch=3, pool=60,
                                                    wrong_in_pool=10, judge="GPT-4"))
    text = re.sub(r"<[^>]+>", "", render_report(load_report_data(registry, 3), "now"))
    assert ("Of the first 10 tasks the queue served after round 0, 4 (40%) are pairs the judge got wrong; random "
            "order would give 17% (10 of 60). The round's human batch: 3 of 3.") in text


def test_a_strategy_without_p_wrong_has_no_stop_sentence_but_says_how_to_judge(tmp_path):
    registry = ModelRegistry(tmp_path)
    ids = list(range(1, 21))
    publish_round(registry, 5, ids, np.linspace(1, -1, 20), {}, {1: "human"}, 0, [1])
    html = render_report(load_report_data(registry, 5), "now")
    text = _text(html)
    assert "This strategy gives no stop signal" in text and 'id="advice-wrong-left"' not in html
    assert "this round recorded no estimate" in text  # the tile says why it shows no number
