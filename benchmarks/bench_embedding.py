"""Benchmark of the embedding reward model on real data (../shared/data).

Prints:
  (a) encoder throughput, texts/s, all on the same real texts: plain
      ``SentenceTransformer.encode`` (torch) vs our encoder with a cold cache on each backend
      (torch, ONNX fp32, ONNX int8: the CPU default) and the ratio to plain; then warm caches;
  (b) seconds to refit the heads on 10,000 labelled pairs whose embeddings are cached;
  (c) held-out accuracy (80/20 split, several seeds) trained on human labels, on
      judged-pairs.jsonl.gz (human ties dropped) and hh-rlhf-harmless-base-test.jsonl.gz,
      with each encoder backend of --backends, and each backend's per-seed difference to the first.

Usage:
    .venv/bin/python benchmarks/bench_embedding.py [--quick] [--cache-dir DIR] [--seeds N]
        [--backends torch,onnx-int8] [--data DIR]

The embedding cache lives in --cache-dir, else $RLTHF_EMBEDDING_CACHE, else
~/.cache/rlthf-backend/embeddings (ONNX exports in its ``onnx/`` folder). The first run embeds
every text of both files once per backend (~9k unique texts: ~10 min with torch on 2 busy CPU
cores, a few with int8); later runs read them from the cache.
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
from rlthf_backend.core.reward.encoder import TextEncoder, load_sentence_transformer, usable_cores
from rlthf_backend.core.types import Pair

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # --data's default
ASSISTANT = "\n\nAssistant:"


# ---------------------------------------------------------------------------- data
def load_judged(data: Path = DATA) -> tuple[list[Pair], np.ndarray]:
    """judged-pairs with a human a/b label (ties dropped); a few responses are JSON booleans."""
    pairs, y = [], []
    with gzip.open(data / "judged-pairs.jsonl.gz", "rt", encoding="utf-8") as f:
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


def load_hh(data: Path = DATA, seed: int = 0) -> tuple[list[Pair], np.ndarray]:
    """HH-RLHF pairs with the chosen response put at a or b at random (seeded)."""
    rng = np.random.default_rng(seed)
    pairs, y = [], []
    with gzip.open(data / "hh-rlhf-harmless-base-test.jsonl.gz", "rt", encoding="utf-8") as f:
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


def _warm_up(backend: str, export_dir: Path, **kw) -> None:
    """Load (and export) the process-wide model of ``backend`` outside any timing, through a
    cacheless encoder: the timed encoders with their own empty caches share that model."""
    t = time.perf_counter()
    TextEncoder(cache_dir=False, backend=backend, device="cpu", export_dir=export_dir, **kw).encode(
        ["warm-up: first-call allocations", "and a second text"])
    print(f"    ({backend}{', ' + str(kw) if kw else ''}: load (and export) + first call "
          f"{time.perf_counter() - t:.1f} s, not timed)")


def bench_throughput(texts: list[str], export_dir: Path, rounds: int) -> None:
    print(f"(a) encoder throughput on {len(texts)} distinct real texts (prompts and responses; MiniLM, "
          f"max 256 tokens, {usable_cores()} CPUs, 1-min load average at start {os.getloadavg()[0]:.1f})")
    st = load_sentence_transformer(TextEncoder(backend="torch").location, "cpu")  # loaded outside the timings
    st.max_seq_length = 256
    st.encode(texts[:8])  # warm-up: first-call allocations
    variants = {"torch": {}, "onnx": {}, "onnx-int8": {}, "onnx-int8, num_threads=auto": {"num_threads": "auto"}}
    for name, kw in variants.items():
        _warm_up(name.split(",")[0], export_dir, **kw)
    # Other jobs share this machine and its load swings within seconds: every round times each
    # variant right after plain sentence-transformers, with cold caches, and we report medians
    # and the median of the per-round ratios.
    rates: dict[str, list[float]] = {"plain": [], **{name: [] for name in variants}}
    n = len(texts)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            t = time.perf_counter()
            st.encode(texts)  # sentence-transformers defaults: batch_size 32, torch's threads
            rates["plain"].append(n / (time.perf_counter() - t))
            for name, kw in variants.items():
                encoder = TextEncoder(cache_dir=Path(tmp) / f"{r}-{name}", backend=name.split(",")[0],
                                      device="cpu", export_dir=export_dir, **kw)
                rates[name].append(n / _timed_encode(encoder, texts))
        last = encoder  # onnx-int8's cache is full now: time warm reads from it
        warm_enc = TextEncoder(cache_dir=last.cache.directory, backend="onnx-int8", device="cpu",
                               export_dir=export_dir)  # new object: empty memory cache, disk hits only
        warm = _timed_encode(warm_enc, texts)
        memory = _timed_encode(warm_enc, texts)
    plain = np.array(rates["plain"])
    print(f"    {'plain SentenceTransformer.encode (torch)':<46} {np.median(plain):7.1f} texts/s  "
          f"rounds [{' '.join(f'{x:.1f}' for x in plain)}]")
    for name in variants:
        x = np.array(rates[name])
        print(f"    {'ours, ' + name + ', cold cache':<46} {np.median(x):7.1f} texts/s  "
              f"{np.median(x / plain):5.2f}x plain (per-round ratios {' '.join(f'{v:.2f}' for v in x / plain)})")
    print(f"    {'ours, onnx-int8, warm disk cache':<46} {n / warm:7.0f} texts/s")
    print(f"    {'ours, onnx-int8, warm memory cache':<46} {n / memory:7.0f} texts/s")
    print(f"    (1-min load average at end {os.getloadavg()[0]:.1f})")


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
            enc = encoder if cache == "memory" else TextEncoder(
                cache_dir=encoder.cache.directory, backend=encoder.backend, device=encoder.device)
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


def bench_accuracy(
    encoders: dict[str, TextEncoder], datasets: dict, configs: dict[str, dict], seeds: list[int]
) -> None:
    print(f"(c) held-out accuracy, trained on human labels, 80/20 random split, seeds {seeds}, "
          f"encoder backends {list(encoders)}")
    first = next(iter(encoders))
    for data_name, (pairs, y) in datasets.items():
        print(f"    {data_name}: {len(pairs)} pairs")
        for backend, encoder in encoders.items():
            t = time.perf_counter()
            encoder.encode(pair_texts(pairs))
            print(f"      {backend}: embeddings ready in {time.perf_counter() - t:.1f} s")
        for name, overrides in configs.items():
            accs = {b: np.array(held_out_accuracy(e, pairs, y, overrides, seeds)) for b, e in encoders.items()}
            for backend, a in accs.items():
                per_seed = " ".join(f"{x:.3f}" for x in a)
                print(f"      {name:<36} {backend:<10} {a.mean():.3f} ± {a.std():.3f}   [{per_seed}]")
            for backend, a in list(accs.items())[1:]:
                d = 100 * (a - accs[first])
                per_seed = " ".join(f"{x:+.1f}" for x in d)
                print(f"      {'':<36} {backend} - {first}: {d.mean():+.2f} ± {d.std():.2f} points   [{per_seed}]")


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
    parser.add_argument("--rounds", type=int, default=None, help="throughput rounds (default 5, --quick 2)")
    parser.add_argument("--skip", default="", help="comma list of sections to skip: a,b,c")
    parser.add_argument("--backends", default="torch,onnx-int8", help="encoder backends compared in (c)")
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the shared data files")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    seeds = list(range(args.seeds or (3 if args.quick else 5)))

    judged, hh = load_judged(args.data), load_hh(args.data)
    encoders = {b: TextEncoder(cache_dir=args.cache_dir, backend=b, device="cpu") for b in args.backends.split(",")}
    encoder = encoders.get("onnx-int8") or next(iter(encoders.values()))
    print(f"cache: {encoder.cache.path}  encoder: {encoder.identity}")
    if "a" not in skip:
        distinct = list(dict.fromkeys(pair_texts(judged[0][:200]) + pair_texts(hh[0][:200])))
        rng = np.random.default_rng(0)
        n_texts = 120 if args.quick else 400
        bench_throughput([distinct[i] for i in rng.permutation(len(distinct))[:n_texts]], encoder.export_dir,
                         args.rounds or (2 if args.quick else 5))
    if "b" not in skip:
        both = judged[0] + hh[0], np.concatenate([judged[1], hh[1]])
        bench_retrain(encoder, *synth_10k(*both), RETRAIN_CONFIGS)
    if "c" not in skip:
        bench_accuracy(encoders, {"judged-pairs": judged, "hh-rlhf harmless": hh}, ACCURACY_CONFIGS, seeds)


if __name__ == "__main__":
    main()
