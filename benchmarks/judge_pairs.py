"""Judge a file of human-labelled pairs with the backend's own judge, so ``simulate`` can replay
it: the judged-pairs format (``llm_labels`` per judge, both orders) out of a chosen/rejected or
plain pairs file.

HH-RLHF has human labels only; this gives it real LLM labels from the judge a deployment would
run (by default the offline SmolLM2-135M judge; ``RLTHF_*`` settings pick another). Chosen/rejected
records put the chosen response on a seeded random side, so "a" means nothing. The output is
written outside the repo (real data never goes in it); progress goes to stderr.

    RLTHF_JUDGE=transformers .venv/bin/python benchmarks/judge_pairs.py \\
        --data ../shared/data/hh-rlhf-harmless-base-test.jsonl.gz --limit 600 --out ~/.cache/rlthf/hh-judged.jsonl.gz
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

from rlthf_backend.app.judges import make_judge
from rlthf_backend.app.settings import load_settings
from rlthf_backend.core.simulate.data import split_transcript
from rlthf_backend.core.types import Pair


def read_records(path: Path, limit: int | None, seed: int) -> list[dict]:
    """Records as ``{prompt, response_a, response_b, human_label}``: chosen/rejected transcripts
    with the chosen side drawn at random (seeded), plain pairs as they are."""
    rng = np.random.default_rng(seed)
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            if "chosen" in rec:
                prompt, chosen = split_transcript(rec["chosen"])
                _, rejected = split_transcript(rec["rejected"])
                a_is_chosen = bool(rng.random() < 0.5)
                rec = {"prompt": prompt, "response_a": chosen if a_is_chosen else rejected,
                       "response_b": rejected if a_is_chosen else chosen, "human_label": "a" if a_is_chosen else "b",
                       "source": path.name}
            out.append(rec)
            if limit and len(out) >= limit:
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    settings = load_settings()
    judge = make_judge(settings, cache=False)
    records = read_records(args.data, args.limit, args.seed)
    pairs = [Pair(r["prompt"], r["response_a"], r["response_b"]) for r in records]
    t0 = time.perf_counter()
    name = judge.model_id
    for done, (i, j) in enumerate(judge.judge_stream(pairs), 1):
        records[i]["llm_labels"] = {name: {"ab": j.verdict_ab, "ba": j.verdict_ba}}
        if done % 25 == 0:
            print(f"{done}/{len(pairs)} judged ({done / (time.perf_counter() - t0):.2f} pairs/s)", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(args.out, "wt", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
    right = [r["llm_labels"][name]["ab"] == r["human_label"] for r in records if r.get("llm_labels")]
    print(f"{len(records)} pairs judged by {name} in {time.perf_counter() - t0:.0f}s; (a,b)-order verdict agrees "
          f"with people on {100 * np.mean(right):.1f}%; written to {args.out}")


if __name__ == "__main__":
    main()
