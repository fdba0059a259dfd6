"""Training throughput (pairs/s) of TrlRewardModel on CPU, TRL's defaults vs ours.

Fine-tunes the packaged MiniLM on the first N human-labelled judged pairs, 1 epoch, batch 8,
max_length 128, alternating the variants so that a change in machine load hits them alike,
and prints pairs/s with the 1-minute load average (the machine is shared: load matters).

Usage: .venv/bin/python benchmarks/bench_trl.py [--pairs 48] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embedding import load_judged  # noqa: E402

from rlthf_backend.core.reward.trl_reward import TrlRewardModel  # noqa: E402

VARIANTS = {
    # What RewardTrainer does unless told otherwise: bf16 autocast, gradient checkpointing,
    # and torch's intra-op pool of one thread per core.
    "TRL defaults (bf16, grad ckpt, torch threads)": dict(
        num_threads=None, extra_training_args=dict(bf16=True, gradient_checkpointing=True)
    ),
    "ours, torch threads": dict(num_threads=None),
    "ours (TrlRewardConfig defaults)": dict(),
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    pairs, y = load_judged()
    pairs, y = pairs[: args.pairs], y[: args.pairs]
    print(f"{args.pairs} judged pairs, 1 epoch, batch 8, max_length 128, {os.cpu_count()} CPUs")
    for rep in range(args.repeats):
        for name, overrides in VARIANTS.items():
            rm = TrlRewardModel(max_length=128, batch_size=8, epochs=1, **overrides)
            load = os.getloadavg()[0]
            cpu = time.process_time()
            report = rm.fit(pairs, y)
            cpu = time.process_time() - cpu
            d = report.details
            print(f"  [{rep}] {name:<48} {d['pairs_per_second']:5.2f} pairs/s "
                  f"(train {d['train_seconds']:5.1f} s, process CPU {cpu:5.1f} s, load before {load:.1f})",
                  flush=True)


if __name__ == "__main__":
    main()
