"""How ``sample_pairs.jsonl`` was drawn: ``python -m rlthf_backend.demo.draw_sample JUDGED_PAIRS OUT``.

Reads the project's collection of judged pairs (``../shared/data/judged-pairs.jsonl.gz``) and
draws the demo's 60 pairs deterministically, so anyone with that file can check the sample.

The draw is stratified so the sample keeps what a real pool looks like: within each subset the
pairs are split into cells by (did the judge agree with the humans?, did its two orders agree?)
and each cell contributes in proportion to its size in the subset (largest remainders), drawn at
random (fixed seed) inside the cell. So the judge's error rate, and how often its self-contradictions
point at an error, are the release's own, not picked for the demo.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path

from rlthf_backend.core.simulate.data import iter_jsonl

#: (source, subset, judge key, pairs drawn). GPT-4 where the release has it (both orders);
#: PandaLM published only gpt-3.5-turbo, in one order.
DRAWS = (
    ("llmbar", "Processed/MT-Bench", "GPT-4/Vanilla_NoRules", 30),
    ("llmbar", "LLMBar/Natural", "GPT-4/Vanilla_NoRules", 15),
    ("pandalm", "testset-v1", "gpt-3.5-turbo", 15),
)
SEED = 0


def _usable(record: dict, judge: str) -> dict | None:
    """The demo line for a record, or None when it lacks what the demo needs."""
    verdicts = (record.get("llm_labels") or {}).get(judge) or {}
    ab, ba = verdicts.get("ab"), verdicts.get("ba")
    if record.get("human_label") not in ("a", "b") or ab not in ("a", "b"):
        return None
    if not all(str(record.get(k) or "").strip() for k in ("prompt", "response_a", "response_b")):
        return None
    return {
        "id": record["id"], "source": record["source"], "subset": record["subset"],
        "prompt": record["prompt"], "response_a": record["response_a"], "response_b": record["response_b"],
        "human_label": record["human_label"], "llm_label": ab,
        "llm_label_swapped": ba if ba in ("a", "b") else None, "llm_judge": judge,
    }


def _proportional(sizes: dict, total: int) -> dict:
    """Largest-remainder allocation of ``total`` over cells of the given sizes."""
    n = sum(sizes.values())
    quotas = {k: total * s / n for k, s in sizes.items()}
    alloc = {k: int(q) for k, q in quotas.items()}
    for k in sorted(quotas, key=lambda k: (-(quotas[k] - alloc[k]), str(k)))[: total - sum(alloc.values())]:
        alloc[k] += 1
    return alloc


def draw(path: Path, seed: int = SEED) -> list[dict]:
    records = list(iter_jsonl(path))
    sample: list[dict] = []
    for source, subset, judge, count in DRAWS:
        cells: dict[tuple, list[dict]] = defaultdict(list)
        for record in records:
            if record.get("source") != source or record.get("subset") != subset:
                continue
            line = _usable(record, judge)
            if line is None:
                continue
            right = line["llm_label"] == line["human_label"]
            orders_agree = None if line["llm_label_swapped"] is None else line["llm_label_swapped"] == line["llm_label"]
            cells[(right, orders_agree)].append(line)
        rng = random.Random(f"{seed}/{subset}")
        chosen = []
        for cell, k in sorted(_proportional({c: len(v) for c, v in cells.items()}, count).items(), key=str):
            chosen += rng.sample(cells[cell], k)
        rng.shuffle(chosen)  # no cell order in the file
        sample += chosen
    return sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("judged_pairs", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    sample = draw(args.judged_pairs)
    args.out.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in sample), encoding="utf-8")
    wrong = sum(p["llm_label"] != p["human_label"] for p in sample)
    print(f"{len(sample)} pairs, judge wrong on {wrong} ({wrong / len(sample):.0%})")


if __name__ == "__main__":
    main()
