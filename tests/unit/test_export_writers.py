"""Writing the curated dataset: TRL preference JSONL, provenance formats, datasets + card."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_B, HUMAN_NONE, HUMAN_TIE
from rlthf_backend.core.types import Judgment, JudgeStatus, Pair
from rlthf_backend.export import DecidingRound, ExportError, TaskDecision, assemble, trl_records, write_dataset
from rlthf_backend.labelstudio.pool import ProjectPool


def judged(label: str | None) -> Judgment | None:
    if label is None:
        return None
    return Judgment(label=label, prob=0.75, status=JudgeStatus.OK, model="m", verdict_ab=label, verdict_ba=label)


@pytest.fixture()
def dataset():
    pool = ProjectPool()
    rows = [  # task id, human code, votes, judge label
        (1, HUMAN_A, ["a"], "a"), (2, HUMAN_B, ["b"], "a"), (3, HUMAN_TIE, ["a", "b"], "a"),
        (4, HUMAN_NONE, [], "a"), (5, HUMAN_NONE, [], "b"), (6, HUMAN_NONE, [], "a"), (7, HUMAN_NONE, [], None),
    ]
    for tid, code, votes, _ in rows:
        pool.task_ids.append(tid)
        pool.pairs.append(Pair(f"Q{tid}, with \"quotes\", commas\nand a newline", f"A{tid}", f"B{tid}"))
        pool.human.append(code)
        pool.votes.append(votes)
        pool.annotators.append([100 + i for i in range(len(votes))])
    deciding = DecidingRound(
        version="t-p1-v0002", round_index=1,
        decisions={4: TaskDecision("keep", "a", 0.2), 5: TaskDecision("flip", "a", 0.9),
                   6: TaskDecision("drop", "a", 0.5)},
        rm_margins={t: 0.5 * t for t in range(1, 8)},
    )
    return assemble(1, pool, [judged(r[3]) for r in rows], deciding)


def test_assemble_counts_and_left_out(dataset):
    assert [r.task_id for r in dataset.rows] == [1, 2, 3, 4, 5]
    assert dataset.counts == {"human": 2, "human_overrode_llm": 1, "llm_kept": 1, "llm_flipped": 1, "tie": 1,
                              "dropped": 0}
    assert dataset.left_out == {"dropped": 1, "low_confidence": 0, "no_label": 1}
    assert "5 of 7 pairs exported" in dataset.describe()


def test_trl_records_leave_out_ties_and_carry_margins(dataset):
    recs = trl_records(dataset.rows)
    assert [r["chosen"] for r in recs] == ["A1", "B2", "A4", "A5"]
    assert recs[1] == {"prompt": dataset.rows[1].prompt, "chosen": "B2", "rejected": "A2", "margin": -1.0}
    conv = trl_records(dataset.rows, conversational=True)
    assert conv[0]["prompt"] == [{"role": "user", "content": dataset.rows[0].prompt}]
    assert conv[0]["chosen"] == [{"role": "assistant", "content": "A1"}]
    assert conv[0]["rejected"] == [{"role": "assistant", "content": "B1"}]
    # one unknown margin: the column is left out rather than filled with a made-up value
    from dataclasses import replace

    partial = [replace(dataset.rows[0], margin=None), dataset.rows[1]]
    assert all("margin" not in r for r in trl_records(partial))


def test_every_format_round_trips(dataset, tmp_path):
    assert write_dataset(dataset, "trl", tmp_path / "trl.jsonl") == 4
    lines = [json.loads(x) for x in (tmp_path / "trl.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and set(lines[0]) == {"prompt", "chosen", "rejected", "margin"}

    assert write_dataset(dataset, "jsonl", tmp_path / "full.jsonl") == 5
    full = [json.loads(x) for x in (tmp_path / "full.jsonl").read_text().splitlines()]
    assert full[2]["tie"] is True and full[1]["source"] == "human_overrode_llm" and full[2]["annotators"] == [100, 101]

    write_dataset(dataset, "csv", tmp_path / "full.csv")
    with open(tmp_path / "full.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and rows[0]["prompt"] == dataset.rows[0].prompt
    assert json.loads(rows[2]["human_votes"]) == ["a", "b"]

    import pyarrow.parquet as pq

    write_dataset(dataset, "parquet", tmp_path / "full.parquet")
    table = pq.read_table(tmp_path / "full.parquet").to_pylist()
    assert [r["source"] for r in table] == [r.source for r in dataset.rows]

    from datasets import load_from_disk

    write_dataset(dataset, "hf", tmp_path / "hf")
    ds = load_from_disk(str(tmp_path / "hf"))
    assert len(ds) == 5 and ds[4]["source"] == "llm_flipped" and ds[4]["chosen"] == "A5"  # the judge said b; flipped
    card = (tmp_path / "hf" / "README.md").read_text()
    assert card.startswith("---\n") and "| `llm_flipped` | 1 |" in card and "pairs in this dataset: 5" in card


def test_option_checks_refuse_clearly(dataset, tmp_path):
    with pytest.raises(ExportError, match="no Hugging Face token"):
        write_dataset(dataset, "hf", tmp_path / "hf", push_repo="me/data", hub_token=None)
    assert not (tmp_path / "hf").exists()  # refused before writing
    with pytest.raises(ExportError, match="--format hf"):
        write_dataset(dataset, "jsonl", tmp_path / "x.jsonl", push_repo="me/data", hub_token="t")
    with pytest.raises(ExportError, match="trl only"):
        write_dataset(dataset, "csv", tmp_path / "x.csv", conversational=True)


def test_cli_push_to_hub_without_token_refuses_before_reading_label_studio(tmp_path, monkeypatch):
    from rlthf_backend import cli
    from rlthf_backend.app.settings import get_settings

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")  # nothing listens: reading would fail differently
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.main, ["export", "--project", "1", "--format", "hf", "--out",
                                               str(tmp_path / "hf"), "--push-to-hub", "me/data"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0
    assert "no Hugging Face token configured; set HF_TOKEN" in result.output


def test_cli_names_an_unreachable_label_studio(tmp_path, monkeypatch):
    from rlthf_backend import cli
    from rlthf_backend.app.settings import get_settings

    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "x" * 40)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.main, ["export", "--project", "1", "--format", "trl", "--out",
                                               str(tmp_path / "out.jsonl")])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1 and "Label Studio unreachable at http://127.0.0.1:9" in result.output
    assert not (tmp_path / "out.jsonl").exists()
