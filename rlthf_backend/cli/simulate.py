"""``rlthf-backend simulate``: replay strategies x budgets x seeds, write results and a plot.

Every replay runs the deployment's configuration (an :class:`EngineConfig` and a
:class:`RewardModelSpec`, both built from the same settings the backend reads) with only the
strategy swapped for the comparisons. Outputs under ``out_dir``: ``results.json`` (the effective
configuration, aggregates per strategy and budget, every single replay), ``all_pairs_accuracy.png``
(accuracy over every pool pair against % of the pool sent to people) and the table printed on
stdout.

The headline metric is ``all_pairs_accuracy``: every pool pair counts, a pair left out of the
export with its LLM label, so a strategy cannot score by dropping pairs. Beside it: kept-set
precision and kept fraction, flips and their precision, and the held-out accuracy of a reward
model trained on the export (the evaluation RM: a 5-head ensemble whose L2 coefficient is chosen
once per seed on the pool's LLM labels, the same for every strategy: a measuring instrument,
not part of the engine).

A dataset without LLM labels (e.g. HH-RLHF chosen/rejected) cannot be curated; for it the
command reports the RM capacity ceiling instead: the evaluation RM trained on the pool's human
labels, accuracy on the held-out pairs, per seed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_backend.core.curation import DEPLOYABLE_STRATEGIES, STRATEGIES, EngineConfig
from rlthf_backend.core.reward.factory import (
    RewardModelFactory,
    RewardModelSpec,
    reward_model_factory,
    with_fixed_weight_decay,
)
from rlthf_backend.core.simulate.data import LabelledPool, load_pool
from rlthf_backend.core.simulate.replay import ReplayOutcome, heldout_rm_accuracy, replay, split_pool
from rlthf_backend.core.types import json_safe

#: Reference strategies that always run beside the configured one.
BASELINES = ("llm_only", "random", "oracle", "paper", "swap_first")
EVAL_RM_OPTIONS = {"n_ensemble": 5, "epochs": 30}
HELDOUT_FRACTION = 0.2
#: How close (points of all-pairs accuracy) the default may come to a baseline and still "match" it.
TOLERANCE_POINTS = 0.5
METRICS = ("all_pairs_accuracy", "kept_precision", "kept_fraction", "flipped", "flip_precision",
           "heldout_rm_accuracy", "human_labels", "rounds", "wrong_in_export")

DEFINITIONS = {
    "all_pairs_accuracy": "share of the whole pool whose final label equals the human label; pairs left out of the "
                          "export count with their LLM label (the headline: dropping cannot score)",
    "kept_precision": "share of exported pairs whose label equals the human label (see kept_fraction)",
    "kept_fraction": "share of the pool in the curated export",
    "flipped": "exported pairs labelled against the LLM without a person (mean over seeds)",
    "flip_precision": "share of flipped pairs whose label equals the human label",
    "heldout_rm_accuracy": f"a fresh RM trained on the export, accuracy vs human labels on a fixed "
                           f"{HELDOUT_FRACTION:.0%} of pairs held out of the pool per seed",
    "budget_percent": "human labels as % of the pool (rounds of the round policy's batch, the last cut at the "
                      "budget; the export is the plan of the round the last answers trigger)",
}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def aggregate(outcomes: Sequence[ReplayOutcome]) -> dict[str, dict[str, dict[str, Any]]]:
    """results[strategy][budget] = mean (and sd) over seeds of every metric."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for strategy, budget in sorted({(o.strategy, o.budget_percent) for o in outcomes}):
        rows = [o for o in outcomes if o.strategy == strategy and o.budget_percent == budget]
        cell: dict[str, Any] = {"budget_percent": budget, "seeds": len(rows)}
        for metric in METRICS:
            mean, sd = _mean_std([getattr(o, metric) for o in rows])
            cell[f"{metric}_mean"], cell[f"{metric}_std"] = mean, sd
        out.setdefault(strategy, {})[_budget_key(budget)] = cell
    return out


def _budget_key(b: float) -> str:
    return f"{b:g}"


def targets(results: dict, default: str, budgets: Sequence[float], at_budget: float = 10.0) -> dict[str, Any]:
    """The engine's targets on all-pairs accuracy: at every budget at least every other strategy
    that ran and ships (``random``, ``swap_first``, ``paper``, ``fused``...; not the oracle) within
    :data:`TOLERANCE_POINTS`, and never below ``llm_only``; at ``at_budget``, a gain of at least
    2.5x random's. Per budget: every strategy's gain over ``llm_only`` and share of the oracle's
    gain, the best other strategy and the default's distance to it."""
    needed = ("llm_only", "random", "swap_first", "oracle", default)
    if any(s not in results for s in needed):
        return {"evaluated": False, "reason": f"needs {', '.join(needed)}"}
    present = [s for s in results if s in STRATEGIES]
    acc = {s: {b: 100 * results[s][_budget_key(b)]["all_pairs_accuracy_mean"] for b in budgets
               if _budget_key(b) in results[s]} for s in present}
    rivals = [s for s in present if s not in ("oracle", "llm_only", default)]
    base = {b: acc["llm_only"][b] for b in budgets}
    per_budget = {}
    for b in budgets:
        here = [s for s in rivals if b in acc[s]]
        best = max(here, key=lambda s: acc[s][b]) if here else None
        behind = {s: acc[s][b] - acc[default][b] for s in here if acc[default][b] < acc[s][b] - TOLERANCE_POINTS}
        per_budget[_budget_key(b)] = {
            "gain_points": {s: acc[s][b] - base[b] for s in present if b in acc[s]},
            "share_of_oracle": {s: (acc[s][b] - base[b]) / (acc["oracle"][b] - base[b])
                                if acc["oracle"][b] > base[b] else float("nan") for s in present if b in acc[s]},
            "vs_random": acc[default][b] - acc["random"][b],
            "vs_swap_first": acc[default][b] - acc["swap_first"][b],
            "best_other": best,
            "vs_best_other": acc[default][b] - acc[best][b] if best else float("nan"),
            "behind": behind,
            "ok": bool(not behind and acc[default][b] >= base[b]),
        }
    doc: dict[str, Any] = {"evaluated": True, "per_budget": per_budget, "tolerance_points": TOLERANCE_POINTS,
                           "never_beaten": all(v["ok"] for v in per_budget.values())}
    key = _budget_key(at_budget)
    if key in per_budget:
        g = per_budget[key]["gain_points"]
        doc["at_budget"] = at_budget
        doc["gain_vs_random_ratio"] = g[default] / g["random"] if g["random"] > 0 else float("inf")
        doc["share_of_oracle_gain"] = g[default] / g["oracle"] if g["oracle"] > 0 else float("nan")
        doc["met"] = bool(doc["never_beaten"] and doc["gain_vs_random_ratio"] >= 2.5)
    else:
        doc["met"] = doc["never_beaten"]
    return doc


def format_table(results: dict, strategies: Sequence[str], budgets: Sequence[float]) -> str:
    """All-pairs accuracy (mean +- sd, %) per strategy and budget; a second block with kept-set
    precision [kept %], flips (precision %) and held-out RM accuracy."""
    head = f"{'strategy':<11}" + "".join(f"{_budget_key(b) + '%':>23}" for b in budgets)
    lines = ["all-pairs accuracy % (every pool pair; a pair left out counts with its LLM label), mean +- sd over seeds",
             head]
    for s in strategies:
        cells = []
        for b in budgets:
            r = results.get(s, {}).get(_budget_key(b))
            cells.append(f"{100 * r['all_pairs_accuracy_mean']:.1f} +- {100 * r['all_pairs_accuracy_std']:.1f}"
                         if r else "-")
        lines.append(f"{s:<11}" + "".join(f"{c:>23}" for c in cells))
    lines += ["", "kept-set precision % [kept % of pool] | flips (precision %) | held-out RM accuracy %", head]
    for s in strategies:
        cells = []
        for b in budgets:
            r = results.get(s, {}).get(_budget_key(b))
            if not r:
                cells.append("-")
                continue
            fp = "" if not np.isfinite(r["flip_precision_mean"]) else f"({100 * r['flip_precision_mean']:.0f})"
            cells.append(f"{100 * r['kept_precision_mean']:.1f}[{100 * r['kept_fraction_mean']:.0f}]|"
                         f"{r['flipped_mean']:.0f}{fp}|{100 * r['heldout_rm_accuracy_mean']:.1f}")
        lines.append(f"{s:<11}" + "".join(f"{c:>23}" for c in cells))
    return "\n".join(lines)


def format_gain_table(targets_doc: dict, strategies: Sequence[str], budgets: Sequence[float]) -> str:
    """Gain over ``llm_only`` (all-pairs points) and share of the oracle's gain, per strategy and
    budget, and the best strategy per budget (not the oracle)."""
    per = targets_doc.get("per_budget") or {}
    if not per:
        return ""
    head = f"{'strategy':<11}" + "".join(f"{_budget_key(b) + '%':>15}" for b in budgets)
    lines = ["gain over llm_only, all-pairs points (share of the oracle's gain)", head]
    for s in strategies:
        cells = []
        for b in budgets:
            v = per.get(_budget_key(b), {})
            g, sh = v.get("gain_points", {}).get(s), v.get("share_of_oracle", {}).get(s)
            cells.append("-" if g is None else f"{g:+.1f} ({100 * sh:.0f}%)" if sh is not None and np.isfinite(sh)
                         else f"{g:+.1f}")
        lines.append(f"{s:<11}" + "".join(f"{c:>15}" for c in cells))
    best = []
    for b in budgets:
        v = per.get(_budget_key(b), {})
        gains = {s: g for s, g in v.get("gain_points", {}).items() if s not in ("oracle", "llm_only")}
        best.append(max(gains, key=gains.get) if gains else "-")
    lines.append(f"{'best':<11}" + "".join(f"{c:>15}" for c in best))
    return "\n".join(lines)


def calibration(outcomes: Sequence[ReplayOutcome]) -> dict[str, Any]:
    """Per run and per strategy, the estimate of wrong labels left in the export against the true
    count: ``runs`` (strategy, budget, seed, estimate, interval, truth), and per strategy the mean
    ratio estimate / truth (runs with truth > 0), the ratio of the sums, and the share of runs
    whose interval covers the truth (strategies that give one)."""
    runs = []
    for o in outcomes:
        e = o.estimates or {}
        interval = e.get("expected_wrong_in_export")
        est = interval["mean"] if isinstance(interval, dict) else e.get("expected_wrong_in_export_model")
        if est is None or not np.isfinite(est):
            continue
        row = {"strategy": o.strategy, "budget_percent": o.budget_percent, "seed": o.seed, "estimate": float(est),
               "truth": o.wrong_in_export,
               "model_estimate": e.get("expected_wrong_in_export_model")}
        if isinstance(interval, dict):
            row.update(low=interval["low"], high=interval["high"], level=interval["level"],
                       covered=bool(interval["low"] <= o.wrong_in_export <= interval["high"]))
        runs.append(row)
    summary = {}
    for s in dict.fromkeys(r["strategy"] for r in runs):
        rows = [r for r in runs if r["strategy"] == s]
        pos = [r for r in rows if r["truth"] > 0]
        cov = [r["covered"] for r in rows if "covered" in r]
        model = [r["model_estimate"] / r["truth"] for r in pos if r.get("model_estimate") is not None]
        summary[s] = {
            "runs": len(rows),
            "mean_ratio": float(np.mean([r["estimate"] / r["truth"] for r in pos])) if pos else float("nan"),
            "ratio_of_sums": (float(sum(r["estimate"] for r in rows) / sum(r["truth"] for r in rows))
                              if sum(r["truth"] for r in rows) else float("nan")),
            "model_mean_ratio": float(np.mean(model)) if model else float("nan"),
            "coverage": float(np.mean(cov)) if cov else None,
            "level": rows[0].get("level") if cov else None,
        }
    return {"runs": runs, "summary": summary,
            "what": "estimate of wrong labels among exported pairs without a human answer (the strategy's "
                    "expected_wrong_in_export, its interval where it gives one; else the model sum) against "
                    "the true count (wrong_in_export)"}


def describe_calibration(cal: dict[str, Any]) -> str:
    lines = ["wrong labels left in the export, estimate vs truth (mean ratio over runs; interval coverage):"]
    for s, v in cal["summary"].items():
        cov = (f", {100 * v['level']:.0f}% interval covers {100 * v['coverage']:.0f}% of runs"
               if v["coverage"] is not None else ", no interval")
        lines.append(f"  {s:<10} {v['mean_ratio']:.2f}x (sums {v['ratio_of_sums']:.2f}x, model sum "
                     f"{v['model_mean_ratio']:.2f}x){cov} [{v['runs']} runs]")
    return "\n".join(lines)


def plot_results(results: dict, strategies: Sequence[str], budgets: Sequence[float], path: Path, title: str) -> None:
    """All-pairs accuracy against % of the pool sent to people (error bars: sd over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in strategies:
        rows = [results[s][_budget_key(b)] for b in budgets if _budget_key(b) in results.get(s, {})]
        if not rows:
            continue
        x = [r["budget_percent"] for r in rows]
        y = [100 * r["all_pairs_accuracy_mean"] for r in rows]
        e = [100 * r["all_pairs_accuracy_std"] for r in rows]
        ax.errorbar(x, y, yerr=e, label=s, linestyle="--" if s in BASELINES else "-", marker="o", capsize=3)
    ax.set_xlabel("% of pool sent to people")
    ax.set_ylabel("all-pairs label accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def eval_rm_for_seed(
    rm: RewardModelSpec, pool: LabelledPool, shared: dict[str, Any]
) -> tuple[RewardModelFactory, dict]:
    """The evaluation RM of one seed: ``rm``'s kind, a 5-head embedding ensemble whose L2
    coefficient is chosen once on the pool's LLM labels (the same for every strategy)."""
    options = {**rm.options, **EVAL_RM_OPTIONS} if rm.kind == "embedding" else dict(rm.options)
    if pool.evidence is not None:
        options = with_fixed_weight_decay(rm.kind, options, pool.pairs, pool.evidence.llm_a_preferred, shared=shared)
    fixed = {k: options[k] for k in ("tune_weight_decay", "weight_decay") if k in options}
    return reward_model_factory(rm.kind, options, shared=shared), fixed


def simulate(
    pool: LabelledPool,
    engine: EngineConfig,
    rm: RewardModelSpec,
    strategies: Sequence[str],
    budgets: Sequence[float],
    seeds: int,
    heldout_fraction: float = HELDOUT_FRACTION,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[ReplayOutcome], list[dict[str, Any]]]:
    """Every strategy x budget x seed replay on the same per-seed splits (``engine`` with its
    strategy swapped). Returns the outcomes and, per seed, the evaluation RM's L2 choice."""
    outcomes: list[ReplayOutcome] = []
    per_seed: list[dict[str, Any]] = []
    shared: dict[str, Any] = {}  # one encoder for every fit of the run
    for seed in range(seeds):
        pool_idx, held_idx = split_pool(len(pool), heldout_fraction, seed)
        train, held = pool.subset(pool_idx), pool.subset(held_idx)
        eval_rm, fixed = eval_rm_for_seed(rm, train, shared)
        per_seed.append({"seed": seed, **fixed})
        for strategy in strategies:
            for budget in budgets:
                t0 = time.perf_counter()
                previous = outcomes[-1] if outcomes else None
                if strategy == "llm_only" and previous and previous.strategy == "llm_only" and previous.seed == seed:
                    o = ReplayOutcome(**{**asdict(previous), "budget_percent": budget})  # budget-independent
                else:
                    o = replay(engine.with_strategy(strategy), rm, train, held, eval_rm, budget, seed, shared=shared)
                outcomes.append(o)
                if progress:
                    progress(f"seed {seed} {strategy:<10} {budget:>5g}%: all pairs {100 * o.all_pairs_accuracy:5.1f}% "
                             f"kept {100 * o.kept_fraction:3.0f}% flips {o.flipped} held-out RM "
                             f"{100 * o.heldout_rm_accuracy:4.1f}% ({time.perf_counter() - t0:.1f}s)")
    return outcomes, per_seed


def rm_ceiling(
    pool: LabelledPool, seeds: int, eval_rm: RewardModelFactory, heldout_fraction: float = HELDOUT_FRACTION
) -> list[float]:
    """Held-out accuracy of the evaluation RM trained on all pool human labels, per seed.

    Sides are shuffled per pair with the seed first (in chosen/rejected data a is always the
    chosen response, and a model must not win by learning "a is better")."""
    accs = []
    for seed in range(seeds):
        pool_idx, held_idx = split_pool(len(pool), heldout_fraction, seed)
        swapped = _side_shuffled(pool, seed)
        train, held = swapped.subset(pool_idx), swapped.subset(held_idx)
        accs.append(heldout_rm_accuracy(eval_rm, train, train.human_a_preferred, np.ones(len(train), bool), held))
    return accs


def _side_shuffled(pool: LabelledPool, seed: int) -> LabelledPool:
    from dataclasses import replace as dc_replace

    from rlthf_backend.core.types import Pair

    swap = np.random.default_rng([seed, 29]).random(len(pool)) < 0.5
    pairs = [Pair(p.prompt, p.response_b, p.response_a, p.extra) if s else p for p, s in zip(pool.pairs, swap)]
    return dc_replace(pool, pairs=pairs, human_a_preferred=pool.human_a_preferred ^ swap)


def strategies_to_run(configured: str, asked: Sequence[str] = ()) -> list[str]:
    """The strategies of a run: every baseline and every strategy the package ships (the default
    is judged against all of them), then the configured one and any ``asked``; in a fixed order."""
    names = list(dict.fromkeys([*BASELINES, *DEPLOYABLE_STRATEGIES, configured, *asked]))
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; choose from {', '.join(sorted(STRATEGIES))}")
    return names


def run_simulate_command(
    data_path: Path,
    engine: EngineConfig,
    rm: RewardModelSpec,
    *,
    judges: Sequence[str] | None,
    panel_label_rule: str,
    strategies: Sequence[str],
    budgets: Sequence[float],
    seeds: int,
    out_dir: Path,
    limit: int | None,
    echo: Callable[[str], None] = print,
    quiet: bool = False,
) -> dict[str, Any]:
    """The body of ``rlthf-backend simulate`` (see the module docstring). Returns results.json's content."""
    t0 = time.perf_counter()
    pool = load_pool(data_path, judges=judges, limit=limit, label_rule=panel_label_rule)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shared: dict[str, Any] = {}
    doc = _run_header(data_path, pool, engine, rm, seeds)
    if not pool.has_llm_labels:
        _run_ceiling_only(doc, data_path, pool, rm, seeds, shared, echo)
    else:
        _run_curation(doc, data_path, pool, engine, rm, judges=judges, panel_label_rule=panel_label_rule,
                      strategies=strategies, budgets=budgets, seeds=seeds, shared=shared, echo=echo,
                      progress=None if quiet else echo)
        plot_results(doc["results"], doc["strategies"], budgets, out_dir / "all_pairs_accuracy.png",
                     f"{data_path.name}: {len(pool)} pairs, {seeds} seeds")
        echo(f"plot: {out_dir / 'all_pairs_accuracy.png'}")
    doc["seconds"] = time.perf_counter() - t0
    (out_dir / "results.json").write_text(json.dumps(json_safe(doc), indent=1))
    echo(f"results: {out_dir / 'results.json'} ({doc['seconds']:.0f}s)")
    return doc


def _run_header(data_path: Path, pool: LabelledPool, engine: EngineConfig, rm: RewardModelSpec,
                seeds: int) -> dict[str, Any]:
    """The part of results.json every run has: the data, the pool's size and the effective
    configuration (engine, reward model, evaluation RM) with the metric definitions."""
    return {
        "data": str(data_path),
        "format": pool.format,
        "pairs": len(pool),
        "human_ties_dropped": pool.dropped_ties,
        "skipped_without_judge": pool.skipped_without_judge,
        "heldout_fraction": HELDOUT_FRACTION,
        "pool_size": len(pool) - int(round(HELDOUT_FRACTION * len(pool))),
        "seeds": seeds,
        "engine": engine.as_dict(),
        "reward_model": {"kind": rm.kind, "options": rm.options},
        "eval_rm_options": EVAL_RM_OPTIONS,
        "definitions": DEFINITIONS,
    }


def _run_ceiling_only(doc: dict[str, Any], data_path: Path, pool: LabelledPool, rm: RewardModelSpec, seeds: int,
                      shared: dict[str, Any], echo: Callable[[str], None]) -> None:
    """A pool without LLM labels: add the RM capacity ceiling (evaluation RM on the human
    labels, held-out accuracy per seed) to ``doc`` and echo it."""
    accs = rm_ceiling(pool, seeds, eval_rm_for_seed(rm, pool, shared)[0])
    m, s = _mean_std(accs)
    doc.update({"mode": "rm_ceiling", "judges": None, "rm_ceiling": {
        "heldout_rm_accuracy_mean": m, "heldout_rm_accuracy_std": s, "per_seed": accs,
        "what": "evaluation RM trained on every pool pair's human label (sides shuffled per seed), "
                "accuracy on held-out pairs"}})
    echo(f"{data_path.name}: {len(pool)} pairs, human labels only -> RM capacity ceiling "
         f"({rm.kind}, trained on human labels): held-out accuracy {100 * m:.1f}% +- {100 * s:.1f} "
         f"over {seeds} seeds ({', '.join(f'{100 * a:.1f}' for a in accs)})")


def _run_curation(
    doc: dict[str, Any],
    data_path: Path,
    pool: LabelledPool,
    engine: EngineConfig,
    rm: RewardModelSpec,
    *,
    judges: Sequence[str] | None,
    panel_label_rule: str,
    strategies: Sequence[str],
    budgets: Sequence[float],
    seeds: int,
    shared: dict[str, Any],
    echo: Callable[[str], None],
    progress: Callable[[str], None] | None,
) -> None:
    """A pool with LLM labels: every strategy x budget x seed replay, the aggregates, the RM
    ceiling and the targets added to ``doc``; the summary, table and verdict echoed."""
    names = strategies_to_run(engine.strategy, strategies)
    outcomes, per_seed_rm = simulate(pool, engine, rm, names, budgets, seeds, progress=progress)
    results = aggregate(outcomes)
    llm_acc = float(np.mean(pool.evidence.llm_a_preferred == pool.human_a_preferred))
    ceiling = rm_ceiling(pool, seeds, eval_rm_for_seed(rm, pool, shared)[0])
    doc.update({
        "rm_ceiling": {"heldout_rm_accuracy_mean": _mean_std(ceiling)[0],
                       "heldout_rm_accuracy_std": _mean_std(ceiling)[1], "per_seed": ceiling,
                       "what": "evaluation RM trained on every pool pair's human label"},
        "eval_rm_per_seed": per_seed_rm,
        "mode": "curation",
        "judges": list(judges) if judges else "strongest present per pair",
        "panel_label_rule": panel_label_rule if judges and len(judges) > 1 else None,
        "judge_counts": pool.judge_counts,
        "llm_label_accuracy_all_pairs": llm_acc,
        "strategies": names,
        "budgets": list(budgets),
        "results": results,
        "targets": targets(results, engine.strategy, budgets),
        "calibration": calibration(outcomes),
        "runs": [asdict(o) for o in outcomes],
    })
    echo(f"{data_path.name}: {len(pool)} pairs ({pool.dropped_ties} human ties dropped), pool {doc['pool_size']} "
         f"+ {len(pool) - doc['pool_size']} held out, judges: {doc['judges']}, LLM labels {100 * llm_acc:.1f}% "
         f"correct, {seeds} seeds, strategy {engine.strategy}, batch {engine.rounds.batch_fraction:g} of the pool "
         f"per round, reward model {rm.kind}")
    echo(format_table(results, names, budgets))
    echo(f"RM ceiling (evaluation RM trained on all pool human labels): held-out "
         f"{100 * doc['rm_ceiling']['heldout_rm_accuracy_mean']:.1f}% "
         f"+- {100 * doc['rm_ceiling']['heldout_rm_accuracy_std']:.1f}")
    echo(format_gain_table(doc["targets"], names, budgets))
    echo(describe_targets(doc["targets"], engine.strategy))
    echo(describe_calibration(doc["calibration"]))


def describe_targets(t: dict[str, Any], default: str) -> str:
    """One line per budget: the default against random and swap_first, then the verdict."""
    if not t.get("evaluated"):
        return f"targets not evaluated: {t.get('reason')}"
    lines = [f"{default} vs every other strategy (all-pairs points; ok = within {t['tolerance_points']:g} of each "
             f"and never below llm_only):"]
    for b, v in t["per_budget"].items():
        g = v["gain_points"]
        best = v.get("best_other")
        vs_best = f", best other {best} {g[best]:+.1f} ({v['vs_best_other']:+.1f})" if best else ""
        lines.append(f"  {b:>4}%: gain {g[default]:+.1f} (random {g['random']:+.1f}, swap_first "
                     f"{g['swap_first']:+.1f}, oracle {g['oracle']:+.1f}{vs_best}) "
                     f"{'ok' if v['ok'] else 'BEATEN by ' + ', '.join(sorted(v.get('behind', {})))}")
    if "gain_vs_random_ratio" in t:
        lines.append(f"  at {t['at_budget']:g}%: {t['gain_vs_random_ratio']:.2f}x random's gain, "
                     f"{100 * t['share_of_oracle_gain']:.0f}% of the oracle's => {'MET' if t['met'] else 'NOT MET'}")
    return "\n".join(lines)
