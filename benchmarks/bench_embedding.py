"""Benchmark of the embedding reward model on real data (../shared/data).

Prints:
  (a) encoder throughput, texts/s: our cached encoder with a cold cache vs plain
      ``SentenceTransformer.encode`` on the same real texts, and with a warm disk cache;
  (b) seconds to refit the heads on 10,000 labelled pairs whose embeddings are cached;
  (c) held-out accuracy (80/20 split, several seeds) trained on human labels, on
      judged-pairs.jsonl.gz (human ties dropped) and hh-rlhf-harmless-base-test.jsonl.gz.

Usage:
    .venv/bin/python benchmarks/bench_embedding.py [--quick] [--cache-dir DIR] [--seeds N]

The embedding cache lives in --cache-dir, else $RLTHF_EMBEDDING_CACHE, else
~/.cache/rlthf-backend/embeddings. The first run embeds every text of both files (~9k unique
texts: several minutes on 2 CPU cores); later runs read them from the cache.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from rlthf_backend.core.reward.embedding import EmbeddingRewardConfig, EmbeddingRewardModel
from rlthf_backend.core.reward.embedding_cache import default_cache_dir
from rlthf_backend.core.reward.encoder import TextEncoder, load_sentence_transformer
from rlthf_backend.core.types import Pair

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ASSISTANT = "\n\nAssistant:"


# ---------------------------------------------------------------------------- data
def load_judged() -> tuple[list[Pair], np.ndarray]:
    """judged-pairs with a human a/b label (ties dropped); a few responses are JSON booleans."""
    pairs, y = [], []
    with gzip.open(DATA / "judged-pairs.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["human_label"] in ("a", "b"):
                pairs.append(Pair(str(r["prompt"]), str(r["response_a"]), str(r["response_b"])))
                y.append(r["human_label"] == "a")
    return pairs, np.array(y)


def split_transcript(text: str) -> tuple[str, str]:
    """HH-RLHF transcript -> (prompt up to and including the last Assistant tag, response)."""
    cut = text.rfind(ASSISTANT) + len(ASSISTANT)
    return text[:cut], text[cut:].strip()


def load_hh(seed: int = 0) -> tuple[list[Pair], np.ndarray]:
    """HH-RLHF pairs with the chosen response put at a or b at random (seeded)."""
    rng = np.random.default_rng(seed)
    pairs, y = [], []
    with gzip.open(DATA / "hh-rlhf-harmless-base-test.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            prompt, chosen = split_transcript(r["chosen"])
            _, rejected = split_transcript(r["rejected"])
            a_first = bool(rng.random() < 0.5)
            pairs.append(Pair(prompt, chosen, rejected) if a_first else Pair(prompt, rejected, chosen))
            y.append(a_first)
    return pairs, np.array(y)


def pair_texts(pairs: list[Pair]) -> list[str]:
    return [t for p in pairs for t in (p.prompt, p.response_a, p.response_b)]


# ---------------------------------------------------------------------------- (a) throughput
def _timed_encode(encoder: TextEncoder, texts: list[str]) -> float:
    t = time.perf_counter()
    encoder.encode(texts)
    return time.perf_counter() - t


def bench_throughput(texts: list[str]) -> None:
    print(f"(a) encoder throughput on {len(texts)} distinct real texts "
          f"(prompts and responses; MiniLM, max 256 tokens, {os.cpu_count()} CPUs)")
    st = load_sentence_transformer(TextEncoder().location)  # loaded once, outside the timings
    st.max_seq_length = 256
    st.encode(texts[:8])  # warm-up: first-call allocations
    t = time.perf_counter()
    st.encode(texts)  # sentence-transformers defaults: batch_size 32, torch's threads
    plain = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as tmp_auto:
        cold = _timed_encode(TextEncoder(cache_dir=tmp), texts)
        cold_auto = _timed_encode(TextEncoder(cache_dir=tmp_auto, num_threads="auto"), texts)
        warm_enc = TextEncoder(cache_dir=tmp)  # new object: empty memory cache, disk hits only
        warm = _timed_encode(warm_enc, texts)
        memory = _timed_encode(warm_enc, texts)
    n = len(texts)
    print(f"    plain SentenceTransformer.encode   {n / plain:9.1f} texts/s")
    print(f"    ours, cold cache (encode + store)  {n / cold:9.1f} texts/s")
    print(f"    ours, cold cache, num_threads=auto {n / cold_auto:9.1f} texts/s"
          f"  (1-min load average now {os.getloadavg()[0]:.1f})")
    print(f"    ours, warm disk cache              {n / warm:9.0f} texts/s")
    print(f"    ours, warm memory cache            {n / memory:9.0f} texts/s")


# ---------------------------------------------------------------------------- (b) retrain time
def synth_10k(pairs: list[Pair], y: np.ndarray, n: int = 10_000, seed: int = 0) -> tuple[list[Pair], np.ndarray]:
    """All real pairs, topped up to n with (prompt, its preferred response, a response to
    another prompt) pairs, the on-topic response preferred, a/b order at random."""
    rng = np.random.default_rng(seed)
    out, labels = list(pairs), list(y)
    while len(out) < n:
        i, j = rng.integers(len(pairs), size=2)
        good = pairs[i].response_a if y[i] else pairs[i].response_b
        other = pairs[j].response_a
        a_first = bool(rng.random() < 0.5)
        out.append(Pair(pairs[i].prompt, good, other) if a_first else Pair(pairs[i].prompt, other, good))
        labels.append(a_first)
    return out, np.array(labels)


def bench_retrain(encoder: TextEncoder, pairs: list[Pair], y: np.ndarray, configs: dict[str, dict]) -> None:
    print(f"(b) head refit on {len(pairs)} labelled pairs, embeddings cached "
          "(real judged + hh pairs topped up with on-topic vs off-topic response pairs)")
    encoder.encode(pair_texts(pairs))
    for name, overrides in configs.items():
        for cache in ("memory", "disk"):
            enc = encoder if cache == "memory" else TextEncoder(cache_dir=encoder.cache.directory)
            rm = EmbeddingRewardModel(EmbeddingRewardConfig(**overrides), encoder=enc)
            report = rm.fit(pairs, y)
            d = report.details
            print(f"    {name:<28} {cache:>6} cache: {report.seconds:5.2f} s "
                  f"(features {d['features_seconds']:.2f} s, weight-decay CV {d['tune_seconds']:.2f} s, "
                  f"heads {d['train_seconds']:.2f} s)")


# ---------------------------------------------------------------------------- (c) accuracy
def held_out_accuracy(
    encoder: TextEncoder, pairs: list[Pair], y: np.ndarray, overrides: dict, seeds: list[int]
) -> list[float]:
    accs = []
    for seed in seeds:
        perm = np.random.default_rng(1000 + seed).permutation(len(pairs))
        cut = int(0.8 * len(pairs))
        train, test = perm[:cut], perm[cut:]
        rm = EmbeddingRewardModel(EmbeddingRewardConfig(**{**overrides, "seed": seed}), encoder=encoder)
        rm.fit([pairs[i] for i in train], y[train])
        margins = rm.margins([pairs[i] for i in test])
        accs.append(float(np.mean((margins > 0) == y[test])))
    return accs


def bench_accuracy(encoder: TextEncoder, datasets: dict, configs: dict[str, dict], seeds: list[int]) -> None:
    print(f"(c) held-out accuracy, trained on human labels, 80/20 random split, seeds {seeds}")
    for data_name, (pairs, y) in datasets.items():
        t = time.perf_counter()
        encoder.encode(pair_texts(pairs))
        print(f"    {data_name}: {len(pairs)} pairs (embeddings ready in {time.perf_counter() - t:.1f} s)")
        for name, overrides in configs.items():
            accs = held_out_accuracy(encoder, pairs, y, overrides, seeds)
            per_seed = " ".join(f"{a:.3f}" for a in accs)
            print(f"      {name:<34} {np.mean(accs):.3f} ± {np.std(accs):.3f}   [{per_seed}]")


# ---------------------------------------------------------------------------- main
ACCURACY_CONFIGS = {
    "baseline: e(resp), linear, 1 head": dict(features=("response",), n_ensemble=1, standardize=False),
    "default (EmbeddingRewardConfig())": {},
    "default, weight decay fixed at 0.05": dict(tune_weight_decay=False),
    "MLP head (h=32), 1 head": dict(head="mlp", hidden_size=32, mlp_weight_decay=0.01, n_ensemble=1),
}
RETRAIN_CONFIGS = {
    "default (5 heads)": {},
    "1 head": dict(n_ensemble=1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts and seeds")
    parser.add_argument("--cache-dir", default=os.environ.get("RLTHF_EMBEDDING_CACHE") or str(default_cache_dir()))
    parser.add_argument("--seeds", type=int, default=None, help="accuracy seeds (default 5, --quick 3)")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: a,b,c")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    seeds = list(range(args.seeds or (3 if args.quick else 5)))

    judged, hh = load_judged(), load_hh()
    encoder = TextEncoder(cache_dir=args.cache_dir)
    print(f"cache: {encoder.cache.path}  encoder: {encoder.identity}")
    if "a" not in skip:
        distinct = list(dict.fromkeys(pair_texts(judged[0][:200]) + pair_texts(hh[0][:200])))
        rng = np.random.default_rng(0)
        n_texts = 120 if args.quick else 400
        bench_throughput([distinct[i] for i in rng.permutation(len(distinct))[:n_texts]])
    if "b" not in skip:
        both = judged[0] + hh[0], np.concatenate([judged[1], hh[1]])
        bench_retrain(encoder, *synth_10k(*both), RETRAIN_CONFIGS)
    if "c" not in skip:
        bench_accuracy(encoder, {"judged-pairs": judged, "hh-rlhf harmless": hh}, ACCURACY_CONFIGS, seeds)


if __name__ == "__main__":
    main()
