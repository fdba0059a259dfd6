"""Export round trip on a real Label Studio: run the active loop to a finished round with
people's answers, export through the SDK, and check every row against its source of truth:
the annotations in Label Studio, the judge's logged verdicts, the round log and ``/jobs``.
The TRL file must load with ``datasets`` and pass TRL's reward-trainer data preparation."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from rlthf_backend.app.export import curated_dataset
from rlthf_backend.registry.versions import ModelRegistry
from rlthf_backend.registry.records import RoundRecord, newest_round_version, read_round_log
from rlthf_backend.app.settings import Settings
from tests.integration.test_active_loop import human_result, make_project, start_worker, wait_for_training
from tests.support.backend import rlthf_backend_exe, start_backend
from tests.support.data import judged_pairs
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CONFIG = "pairwise.xml"
OTHER = {"a": "b", "b": "a"}


@pytest.fixture(scope="module")
def loop(tmp_path_factory, label_studio):
    """Redis, the backend and one worker, with the default strategy and an 8-pair batch."""
    redis = RedisServer(tmp_path_factory.mktemp("export-redis"))
    env = {
        "RLTHF_JUDGE": "precomputed",
        "RLTHF_HUMAN_BATCH_FRACTION": "0.125",
        "RLTHF_DATA_DIR": str(tmp_path_factory.mktemp("export-data")),
        "LABEL_STUDIO_URL": label_studio.url,
        "LABEL_STUDIO_API_KEY": label_studio.token,
        "REDIS_URL": redis.url,
        "RLTHF_ROUND_EVERY_N_LABELS": "0",
        "RLTHF_DEBOUNCE_SECONDS": "1.5",
    }
    backend = start_backend(tmp_path_factory.mktemp("export-backend"), env)
    worker = start_worker(env, tmp_path_factory.mktemp("export-worker"))
    yield env, backend
    worker.stop()
    backend.stop()
    redis.stop()


def cli(env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run([rlthf_backend_exe(), *args], env={**os.environ, **env}, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def people_label(ls, task_id: int) -> str:
    """The label the annotations in Label Studio give a task (majority; a split is a tie)."""
    votes = [{"left": "a", "right": "b"}[a.result[0]["value"]["selected"]]
             for a in ls.annotations.list(id=task_id) if not a.was_cancelled]
    ranked = Counter(votes).most_common()
    return "tie" if len(ranked) > 1 and ranked[0][1] == ranked[1][1] else ranked[0][0]


def test_export_round_trip(ls, loop, tmp_path):
    env, backend = loop
    rows = judged_pairs(64)
    truth = {r["id"]: r["human_label"] for r in rows}
    project_id = make_project(ls, rows, CONFIG, "export round trip")
    ml = ls.ml.create(project=project_id, url=backend.url, title="rlthf")
    cli(env, tmp_path, "prelabel", "--project", str(project_id))

    t0 = time.time()
    ls.ml.train(id=ml.id)
    first = wait_for_training(backend, project_id, after=t0, round_run=True)
    tasks = {t.id: t.data for t in ls.tasks.list(project=project_id, fields="all")}
    # Before the batch: two people disagree on a task nobody queued (a human tie), and someone
    # overrules the LLM on another one.
    split_task, overruled_task = [t for t in tasks if t not in first["human_batch"]][:2]
    t1 = time.time()
    for label in ("a", "b"):
        ls.annotations.create(id=split_task, result=human_result(CONFIG, label))
    ls.annotations.create(id=overruled_task, result=human_result(CONFIG, OTHER[tasks[overruled_task]["llm_label"]]))
    for task_id in first["human_batch"]:
        ls.annotations.create(id=task_id, result=human_result(CONFIG, truth[tasks[task_id]["pair_id"]]))
    n_human = len(first["human_batch"]) + 2
    second = wait_for_training(backend, project_id, after=t1, round_run=True, human_labels=n_human)
    assert second["round_index"] == 1

    settings = Settings(label_studio_url=env["LABEL_STUDIO_URL"], label_studio_api_key=env["LABEL_STUDIO_API_KEY"],
                        judge="precomputed", data_dir=env["RLTHF_DATA_DIR"], _env_file=None)
    registry = ModelRegistry(settings.resolved_model_dir, settings.model_title)
    deciding = newest_round_version(registry, project_id)
    assert deciding.version == second["version"]
    record = RoundRecord.read(deciding)
    log_line = read_round_log(registry, project_id)[-1]
    assert log_line.version == second["version"]

    data = curated_dataset(settings, project_id, include_dropped=True)
    by_task = {r.task_id: r for r in data.rows}
    assert data.model_version == second["version"] and data.round_index == 1

    # Human labels are exactly Label Studio's annotations.
    human_rows = [r for r in data.rows if r.source in ("human", "human_overrode_llm")]
    assert {r.task_id for r in human_rows} == set(first["human_batch"]) | {split_task, overruled_task}
    for r in human_rows:
        assert r.label == people_label(ls, r.task_id), r.task_id
        assert r.round == (None if r.task_id in (split_task, overruled_task) else 0)
    assert by_task[overruled_task].source == "human_overrode_llm"
    split = by_task[split_task]
    assert split.tie and split.human_votes == ["a", "b"] and split.agreement == 0.5 and len(split.annotators) == 2

    # LLM labels are the judge's logged verdicts, reversed exactly where the round flipped.
    for r in data.rows:
        judge = tasks[r.task_id]["llm_label"]
        assert r.judge_label == judge and r.judge_verdict_ab == judge
        assert r.judge_verdict_ba == tasks[r.task_id].get("llm_label_swapped")
        if r.source == "llm_kept" and not r.tie:
            assert r.label == judge and record.tasks[r.task_id].label == judge
        elif r.source == "llm_flipped":
            assert r.label == OTHER[judge] == record.tasks[r.task_id].label
        elif r.source == "human_overrode_llm":
            assert r.label == OTHER[judge]
        elif r.source == "human" and not r.tie:
            assert r.label == judge
        if r.rm_margin is not None:
            assert r.margin == pytest.approx(r.rm_margin if r.label in ("a", "tie") else -r.rm_margin)

    # Counts per source agree with the round log and /jobs.
    counts = log_line.counts
    jobs = backend.get(f"/jobs?project={project_id}").json()["last_finished"]
    assert jobs["version"] == second["version"]
    humans = data.counts["human"] + data.counts["human_overrode_llm"]
    assert humans == jobs["human_labels"] == counts["labelled"] == n_human
    assert data.counts["llm_flipped"] == counts["flip"]
    assert data.counts["dropped"] == counts["drop"]
    assert data.counts["llm_kept"] == counts["keep"] + counts["hold"] + counts["human"] + counts["drop"]
    answered = list(first["human_batch"])
    overrode = sum(1 for t in answered if by_task[t].source == "human_overrode_llm")
    summary = jobs["round_summary"]
    assert summary["last_batch_answered"] == len(answered)
    assert overrode == pytest.approx(summary["last_batch_disagreement"] * len(answered))
    print(f"\nexport counts: {data.counts}; round counts: {counts}")
    strict = curated_dataset(settings, project_id, min_confidence=0.7)
    doubtful = [r for r in data.rows if not r.dropped and (r.confidence is None or r.confidence < 0.7)]
    assert all(r.confidence >= 0.7 for r in strict.rows) and len(strict.rows) == len(data.rows) - len(doubtful)
    assert strict.left_out["low_confidence"] == len(doubtful)
    print(f"min_confidence 0.7 keeps {len(strict.rows)} of {len(data.rows)}; left out {strict.left_out}")
    assert data.counts["human"] and data.counts["human_overrode_llm"] and data.counts["llm_kept"]

    # The report of the same project: its curve covers the pool, its queue is round 1's batch.
    ARTIFACTS.mkdir(exist_ok=True)
    cli(env, tmp_path, "report", "--project", str(project_id), "--out", str(ARTIFACTS / "report-round-trip.html"))
    page = (ARTIFACTS / "report-round-trip.html").read_text()
    assert page.count('<svg id="margin-curve"') == 1 and page.count('class="dot dot-labelled"') == n_human
    assert [int(t) for t in re.findall(r"data\?task=(\d+)", page)] == second["human_batch"][:20]
    assert "Label Studio was not asked" not in page and '<li class="answered">' not in page
    # A person answers the first queued task: the next report shows it answered.
    first_queued = second["human_batch"][0]
    ls.annotations.create(id=first_queued, result=human_result(CONFIG, truth[tasks[first_queued]["pair_id"]]))
    cli(env, tmp_path, "report", "--project", str(project_id), "--out", str(tmp_path / "after.html"))
    after = (tmp_path / "after.html").read_text()
    assert re.findall(r'<li class="answered"><a href="[^"]*data\?task=(\d+)"', after) == [str(first_queued)]

    # The CLI writes the same rows; TRL's reward-trainer data preparation accepts them.
    out = cli(env, tmp_path, "export", "--project", str(project_id), "--format", "trl",
              "--out", str(tmp_path / "trl.jsonl"))
    assert f"llm_flipped          {data.counts['llm_flipped']}" in out
    cli(env, tmp_path, "export", "--project", str(project_id), "--format", "trl", "--conversational",
        "--out", str(tmp_path / "conv.jsonl"))
    cli(env, tmp_path, "export", "--project", str(project_id), "--format", "hf", "--out", str(tmp_path / "hf"))
    check_trl_files(tmp_path, expected=len([r for r in data.rows if not r.tie and not r.dropped]))

    from datasets import load_from_disk

    hf = load_from_disk(str(tmp_path / "hf"))
    assert len(hf) == len(data.rows) - data.counts["dropped"]
    assert "## Curation statistics" in (tmp_path / "hf" / "README.md").read_text()


def check_trl_files(folder: Path, expected: int) -> None:
    from datasets import load_dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer
    from trl.data_utils import is_conversational
    from trl.trainer.reward_trainer import DataCollatorForPreference

    from rlthf_backend.core.reward.encoder import packaged_minilm_dir

    plain = load_dataset("json", data_files=str(folder / "trl.jsonl"), split="train")
    assert len(plain) == expected and set(plain.column_names) == {"prompt", "chosen", "rejected", "margin"}
    conv = load_dataset("json", data_files=str(folder / "conv.jsonl"), split="train")
    assert len(conv) == expected and is_conversational(conv[0]) and not is_conversational(plain[0])
    assert conv[0]["chosen"] == [{"role": "assistant", "content": plain[0]["chosen"]}]

    tokenizer = AutoTokenizer.from_pretrained(str(packaged_minilm_dir()))
    tokenizer.eos_token = tokenizer.sep_token
    args = RewardConfig(output_dir=str(folder / "trainer"), max_length=512, use_cpu=True, bf16=False, report_to=[])
    # A real RewardTrainer on the packaged MiniLM: its __init__ prepares the dataset (EOS,
    # tokenisation, length filter) exactly as training would.
    model = AutoModelForSequenceClassification.from_pretrained(str(packaged_minilm_dir()), num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    trainer = RewardTrainer(model=model, args=args, train_dataset=plain, processing_class=tokenizer)
    prepared = trainer.train_dataset
    assert {"chosen_ids", "rejected_ids", "margin"} <= set(prepared.column_names)
    assert 0 < len(prepared) <= expected
    first = prepared[0]
    assert first["chosen_ids"][-1] == tokenizer.sep_token_id and first["chosen_ids"] != first["rejected_ids"]
    batch = DataCollatorForPreference(pad_token_id=tokenizer.pad_token_id)(
        [{k: prepared[i][k] for k in ("chosen_ids", "rejected_ids", "margin")} for i in range(min(4, len(prepared)))])
    assert batch["input_ids"].shape[0] == 2 * min(4, len(prepared)) and batch["margin"].dtype.is_floating_point
