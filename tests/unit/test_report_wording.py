"""The report says one consistent thing: every share names the set it counts and shows the
counts behind it, each tile is a cell of a table on the same page (same set, same round), and
the estimate of wrong labels left comes with its interval and what it rests on, over any record."""

from __future__ import annotations

import html as html_lib
import json
import re

import numpy as np
import pytest

from rlthf_backend.registry.versions import ModelRegistry
from rlthf_backend.report import load_report_data, render_report
from rlthf_backend.report.data import WrongLeft, wrong_left
from tests.support.registry_rounds import publish_round

IDS = list(range(1, 21))
TARGETED, AUDITED = [20, 19], [18, 17, 16]


def _text(fragment: str) -> str:
    return html_lib.unescape(re.sub(r"<[^>]+>", "", fragment))


def _tile(page: str, key: str) -> tuple[str, str]:
    """(value, label and note) of the tile ``key``."""
    m = re.search(rf'<div class="card" id="tile-{key}"><b>(.*?)</b><span>(.*?)</span>(?:<small>(.*?)</small>)?</div>',
                  page)
    assert m, key
    return _text(m.group(1)), _text(m.group(2)) + " / " + _text(m.group(3) or "")


def _yield_cell(page: str, round_index: int, kind: str) -> str:
    row = re.search(rf'<table id="yield-table">.*?<tr data-round="{round_index}">(.*?)</tr>', page).group(1)
    return _text(re.search(rf'<td data-set="{kind}">(.*?)</td>', row).group(1))


def _rounds_cells(page: str, round_index: int) -> dict[str, str]:
    """The rounds table's row of ``round_index``, by column header."""
    table = re.search(r'<table id="rounds-table">(.*?)</table>', page).group(1)
    head = [_text(h) for h in re.findall(r"<th>(.*?)</th>", table)]
    row = re.search(rf'<tr data-round="{round_index}">(.*?)</tr>', table).group(1)
    return dict(zip(head, [_text(c) for c in re.findall(r"<td>(.*?)</td>", row)]))


def _two_rounds(root, summary1: dict | None = None, audited: list[int] = AUDITED,
                answered_audits: list[int] = AUDITED) -> ModelRegistry:
    """Round 0 queued TARGETED and ``audited``; people contradicted the label shown on both
    targeted tasks and on none of ``answered_audits``; round 1 read their answers."""
    registry = ModelRegistry(root)
    margins = np.linspace(2, -2, len(IDS))
    batch0 = TARGETED + audited
    publish_round(registry, 1, IDS, margins, {}, {t: "human" for t in batch0}, 0, batch0,
                  p_wrong={t: 0.2 for t in IDS}, audit=set(audited))
    answered = TARGETED + answered_audits
    statuses = {t: "labelled" for t in answered} | {t: "human" for t in [1, 2]}
    publish_round(registry, 1, IDS, margins, {t: "b" for t in TARGETED}, statuses, 1, [1, 2],
                  p_wrong={t: 0.1 for t in IDS}, human_labels=len(answered), summary=summary1)
    return registry


def test_tiles_count_the_same_sets_as_the_tables_below_them(tmp_path):
    # the demo's case: every answer agreed with the LLM's own label, yet both targeted tasks
    # contradicted the label shown (2 of 2) and no audited one did (0 of 3)
    summary = {"last_batch_answered": 5, "last_batch_disagreement": 0.0, "audited_pairs": 3,
               "audited_error_rate": 0.0, "audited_error_ci95": [0.0, 0.56],
               "expected_wrong_in_export": {"mean": 1.6, "low": 0.4, "high": 3.2, "level": 0.9,
                                            "basis": "hardness model calibrated by 3 audits", "audits": 3}}
    page = render_report(load_report_data(_two_rounds(tmp_path, summary), 1), "now")
    text = _text(page)

    targeted, targeted_label = _tile(page, "targeted")
    audited, audited_label = _tile(page, "audited")
    assert targeted == _yield_cell(page, 0, "targeted") == "2 of 2 (100%)"
    assert audited == _yield_cell(page, 0, "audited") == "0 of 3 (0%)"
    assert "targeted tasks of round 0's batch" in targeted_label and "label shown" in targeted_label
    assert "audited tasks of round 0's batch" in audited_label and "label shown" in audited_label

    # the LLM's-own-label measure counts all five answers, and says so; no tile claims it
    r0, r1 = _rounds_cells(page, 0), _rounds_cells(page, 1)
    assert r0["batch answers unlike the LLM's own label (targeted + audited)"] == "0 of 5 (0%)"
    assert "people disagreed with the LLM" not in text

    wrong, wrong_label = _tile(page, "wrong-left")
    assert wrong == r1["expected wrong labels left in the export"] == "1.6 (90% interval 0.4–3.2)"
    assert "after round 1" in wrong_label and "from hardness model calibrated by 3 audits" in wrong_label
    human, _ = _tile(page, "human")
    assert human == r1["pairs people labelled before the round (share of pool)"] == "5 of 20 (25.0%)"
    assert "0 of the 3 audited pairs people answered in all rounds so far (0%" in text

    # every share on a tile or in a table carries the counts it comes from
    for key in ("targeted", "audited", "human"):
        assert re.fullmatch(r"\d+ of \d+ \(\d+(\.\d)?%\)", _tile(page, key)[0])


def test_a_tile_with_nothing_to_count_says_why_not_zero(tmp_path):
    one_round = ModelRegistry(tmp_path / "a")
    publish_round(one_round, 1, IDS, np.linspace(2, -2, 20), {}, {20: "human"}, 0, [20])
    page = render_report(load_report_data(one_round, 1), "now")
    for key in ("targeted", "audited"):
        value, label = _tile(page, key)
        assert value == "–" and "no batch answered yet" in label

    unanswered = render_report(load_report_data(_two_rounds(tmp_path / "b", answered_audits=[]), 1), "now")
    value, label = _tile(unanswered, "audited")
    assert value == "–" and "no audited answers yet" in label and "0%" not in label
    assert _yield_cell(unanswered, 0, "audited") == "– (no audited answers)"

    none_drawn = render_report(load_report_data(_two_rounds(tmp_path / "c", audited=[], answered_audits=[]), 1),
                               "now")
    assert _tile(none_drawn, "audited") == ("–", "audited tasks of round 0's batch that people answered: "
                                                 "contradicted the label shown / that batch held no audits")
    assert _tile(none_drawn, "targeted")[0] == "2 of 2 (100%)"


def test_wrong_labels_left_show_their_interval_basis_and_the_stop_signal_refers_to_them(tmp_path):
    summary = {"expected_wrong_in_export": {"mean": 66.2, "low": 48.1, "high": 91.0, "level": 0.9, "audits": 14,
                                            "basis": "hardness model calibrated by 14 probability-sampled audits"},
               "expected_wrong_in_export_model": 60.0, "expected_yield_next_batch": 0.4, "audited_pairs": 14}
    page = render_report(load_report_data(_two_rounds(tmp_path, summary), 1), "now")
    text = _text(page)
    assert ("Expected wrong labels left in the export after round 1: 66 (90% interval 48–91), from hardness model "
            "calibrated by 14 probability-sampled audits.") in text
    assert _tile(page, "wrong-left")[0] == "66 (90% interval 48–91)"
    assert "(0.40 per human label) of the 66 expected left in the export: continue." in text
    assert "60.0" not in text and "audit-based" not in text  # one estimate on the page, not two


@pytest.mark.parametrize(("summary", "interval", "expected"), [
    ({"expected_wrong_in_export_model": 66.0}, None,
     WrongLeft(66.0, basis="the engine's P(wrong) of each exported pair nobody checked",
               no_interval="model estimate, no interval: no audits yet")),
    ({"expected_wrong_in_export": {"mean": 12.0, "low": 8.0, "high": 17.0, "level": 0.9}, "audited_pairs": 30}, None,
     WrongLeft(12.0, 8.0, 17.0, 0.9, "the engine's model calibrated by 30 audited pairs")),
    ({"expected_wrong_in_export": {"mean": 12.0, "low": None, "high": None, "level": 0.9, "audits": 0}}, None,
     WrongLeft(12.0, basis="the engine's model", no_interval="no interval: no audits yet")),
    ({"expected_wrong_in_export_model": 3.6, "expected_wrong_in_export_audit": 5.0}, (40, (0.1, 7.1)),
     WrongLeft(3.6, 0.1, 7.1, 0.95, "the engine's P(wrong) of each of the 40 exported pairs nobody checked (the "
               "interval assumes those probabilities are right)", audit_based=5.0)),
    ({"expected_wrong_in_export_model": float("nan"), "expected_wrong_in_export_audit": None}, None, None),
])
def test_wrong_left_reads_new_and_old_records(summary, interval, expected):
    assert wrong_left(summary, interval) == expected


GARBAGE = [
    {"expected_wrong_in_export": "66", "expected_wrong_in_export_model": "abc"},
    {"expected_wrong_in_export": {"mean": None, "low": 1, "high": 2}, "expected_wrong_in_export_model": float("nan")},
    {"expected_wrong_in_export": {"mean": 66, "low": 91, "high": 48, "level": 7}},
    {"expected_wrong_in_export": {"mean": 66, "low": "48", "high": [91], "level": "0.9", "basis": 3, "audits": -2}},
    {"expected_wrong_in_export": {"mean": float("inf")}, "expected_wrong_in_export_model": float("-inf")},
    {"expected_wrong_in_export": [66, 48, 91], "expected_wrong_in_export_audit": {}, "expected_yield_next_batch": "x",
     "audited_pairs": "many", "audited_error_rate": 3.0, "audited_error_ci95": "garbage", "regions": [1],
     "flip_confirmed": True, "last_batch_disagreement": "x", "last_batch_answered": -1},
    {"expected_wrong_in_export_model": True, "audited_pairs": 4, "audited_error_rate": 0.3, "audited_error_ci95": [1],
     "regions": {"flip_candidate": "x"}, "flip_confirmed": "yes", "expected_yield_next_batch": None,
     "last_batch_disagreement": 7.5, "last_batch_answered": "5"},
]


@pytest.mark.parametrize("summary", GARBAGE)
def test_the_report_renders_over_garbage_in_a_round_summary(tmp_path, summary):
    registry = _two_rounds(tmp_path, summary)
    page = render_report(load_report_data(registry, 1), "now")
    assert "RLTHF report: project 1" in page and "nan" not in _text(page).lower()
    value, label = _tile(page, "wrong-left")
    assert value == "–" or re.fullmatch(r"[\d.]+ \(.+\)", value), value


def test_the_report_renders_over_a_round_log_line_of_the_wrong_shapes(tmp_path):
    registry = _two_rounds(tmp_path)
    with open(registry.project_dir(1) / "rounds.jsonl", "a") as log:
        log.write(json.dumps({"version": "v-gone", "at": 0, "round_index": "x", "reason": None, "pool_size": "many",
                              "human_labels": -3, "human_batch": 5, "counts": ["flip"], "summary": "garbage"}) + "\n")
    page = render_report(load_report_data(registry, 1), "now")
    assert "RLTHF report: project 1" in page and "v-gone" in page


def test_rates_of_weighted_audits_and_flips_say_what_they_count(tmp_path):
    summary = {"audited_pairs": 14, "audited_error_rate": 0.23, "audited_error_ci95": [0.1, 0.4],
               "flip_confirmed": True, "regions": {"flip_candidate": {
                   "audited": 10, "audited_wrong": 9, "audited_error_rate": 0.9, "audited_error_ci95": [0.6, 0.98]}}}
    registry = ModelRegistry(tmp_path)
    publish_round(registry, 1, IDS, np.linspace(2, -2, 20), {3: "b"}, {3: "flip", 20: "human"}, 0, [20],
                  summary=summary)
    path = registry.latest(1).path / "round.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | {"strategy": "adaptive"}))
    page = render_report(load_report_data(registry, 1), "now")
    text = _text(page)
    # adaptive weights each audit by its sampling probability: a share of n, not "k of n"
    assert ("The LLM was wrong on 23% of the 14 audited pairs people answered in all rounds so far (weighted by "
            "each audit's sampling probability, 95% interval 10%–40%); audits drawn with a probability that grows "
            "with P(LLM wrong)") in text
    cells = _rounds_cells(page, 0)
    assert cells["flip precision: audited flip candidates the LLM got wrong (95% interval)"] == "9 of 10: 90% (60%–98%)"
