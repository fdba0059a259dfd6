"""The real preference data in ``../shared/data`` (never copied into the repo)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
JUDGED_PAIRS = SHARED_DATA / "judged-pairs.jsonl.gz"

# Judges preferred for the precomputed label in tests, strongest first.
_TEST_JUDGES = ("GPT-4/Vanilla_NoRules", "gpt-3.5-turbo")


def require_judged_pairs() -> Path:
    if not JUDGED_PAIRS.exists():
        pytest.skip(f"real data not found at {JUDGED_PAIRS} (the shared data folder is absent)")
    return JUDGED_PAIRS


def judged_pairs(n: int) -> list[dict]:
    """The first ``n`` pairs that have a human a/b label and a precomputed verdict from a test judge."""
    rows = []
    with gzip.open(require_judged_pairs(), "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            judge = next((j for j in _TEST_JUDGES if (row["llm_labels"].get(j) or {}).get("ab")), None)
            if row["human_label"] not in ("a", "b") or judge is None:
                continue
            row["test_judge"] = judge
            rows.append(row)
            if len(rows) == n:
                break
    return rows


def task_data(row: dict) -> dict:
    """Task data for the configs in ``label_config/``, carrying the judge's stored verdicts."""
    verdicts = row["llm_labels"][row["test_judge"]]
    data = {
        "pair_id": row["id"],
        "prompt": row["prompt"],
        "answer1": row["response_a"],
        "answer2": row["response_b"],
        "llm_label": verdicts["ab"],
    }
    if verdicts.get("ba"):
        data["llm_label_swapped"] = verdicts["ba"]
    return data
