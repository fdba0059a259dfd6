"""``rlthf-backend simulate``: replay strategies x budgets x seeds, write results and a plot.

Outputs under ``out_dir``: ``results.json`` (aggregates per strategy and budget, plus every
single replay), ``curated_accuracy.png`` (curated-label accuracy against % of the pool sent to
people) and the table printed on stdout.

Reward models: ``curation_rm`` (what strategies fit every round, cross-fitting included) and
``eval_rm`` (what scores the export on the held-out pairs) are both the ``--reward-model`` kind;
the curation one defaults to a single head and 30 L-BFGS steps because a replay fits it hundreds
of times (the head converges well before 30 steps on ~1,000 pairs), the evaluation one to a
5-head bootstrap ensemble. Embeddings are computed once (disk cache) and shared by every fit.

The embedding RM's L2 coefficient is chosen once per seed (one cross-validated fit on the
pool's LLM labels) and held fixed for every fit of that seed (:func:`seed_rm_options`).

A dataset without LLM labels (e.g. HH-RLHF chosen/rejected) cannot be curated; for it the
command reports the RM capacity ceiling instead: the evaluation RM (L2 tuned per fit, the
product default) trained on the pool's human labels, accuracy on the held-out pairs, per seed.
The curation-mode ceiling uses the same per-fit tuning.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_backend.core.curation import DEFAULT_STRATEGY, STRATEGIES
from rlthf_backend.core.reward.factory import RewardModelFactory, reward_model_factory, with_fixed_weight_decay
from rlthf_backend.core.simulate.data import LabelledPool, load_pool
from rlthf_backend.core.simulate.replay import ReplayOutcome, heldout_rm_accuracy, replay, split_pool

BASELINES = ("llm_only", "random", "oracle")
#: Strategies run when none is named: the baselines, the paper's method, the default.
ALL_STRATEGIES = ("llm_only", "random", "oracle", "paper", "fused")
CURATION_RM_DEFAULTS = {"n_ensemble": 1, "epochs": 30}
EVAL_RM_DEFAULTS = {"n_ensemble": 5, "epochs": 30}
HELDOUT_FRACTION = 0.2


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def aggregate(outcomes: Sequence[ReplayOutcome]) -> dict[str, dict[str, dict[str, Any]]]:
    """results[strategy][budget] = mean/std over seeds of every metric."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    keys = sorted({(o.strategy, o.budget_percent) for o in outcomes})
    for strategy, budget in keys:
        rows = [o for o in outcomes if o.strategy == strategy and o.budget_percent == budget]
        acc_m, acc_s = _mean_std([o.curated_accuracy for o in rows])
        all_m, _ = _mean_std([o.all_pairs_accuracy for o in rows])
        rm_m, rm_s = _mean_std([o.heldout_rm_accuracy for o in rows])
        fp_m, _ = _mean_std([o.flip_precision for o in rows])
        out.setdefault(strategy, {})[_budget_key(budget)] = {
            "budget_percent": budget,
            "seeds": len(rows),
            "curated_accuracy_mean": acc_m,
            "curated_accuracy_std": acc_s,
            "all_pairs_accuracy_mean": all_m,
            "kept_fraction": _mean_std([o.kept_fraction for o in rows])[0],
            "flipped": _mean_std([o.flipped for o in rows])[0],
            "flip_precision": fp_m,
            "heldout_rm_accuracy_mean": rm_m,
            "heldout_rm_accuracy_std": rm_s,
            "human_labels": _mean_std([o.human_labels for o in rows])[0],
            "rounds": _mean_std([o.rounds for o in rows])[0],
            "wrong_in_export": _mean_std([o.wrong_in_export for o in rows])[0],
        }
    return out


def _budget_key(b: float) -> str:
    return f"{b:g}"


def targets(results: dict, default: str, at_budget: float = 10.0) -> dict[str, Any]:
    """The issue's targets for the default strategy, computed from ``results``."""
    key = _budget_key(at_budget)
    try:
        base = next(iter(results["llm_only"].values()))["curated_accuracy_mean"]
        gain = {s: results[s][key]["curated_accuracy_mean"] - base for s in ("random", "oracle", default)}
    except KeyError:
        return {"evaluated": False, "reason": f"needs llm_only, random, oracle and {default} at {at_budget:g}%"}
    never_below = all(r["curated_accuracy_mean"] >= base for r in results[default].values())
    return {
        "evaluated": True,
        "budget_percent": at_budget,
        "gain_points": {s: 100 * g for s, g in gain.items()},
        "gain_vs_random_ratio": gain[default] / gain["random"] if gain["random"] > 0 else float("inf"),
        "share_of_oracle_gain": gain[default] / gain["oracle"] if gain["oracle"] > 0 else float("nan"),
        "never_below_llm_only": never_below,
        "met": bool(gain["random"] > 0 and gain[default] >= 2.5 * gain["random"]
                    and gain[default] >= 0.6 * gain["oracle"] and never_below),
    }


def format_table(results: dict, strategies: Sequence[str], budgets: Sequence[float]) -> str:
    """Curated accuracy (mean +- sd, %) with kept %, per strategy and budget; a second block
    with held-out RM accuracy and flips."""
    lines = []
    head = f"{'strategy':<10}" + "".join(f"{_budget_key(b) + '%':>19}" for b in budgets)
    lines.append("curated-label accuracy % (mean +- sd over seeds) [kept % of pool]")
    lines.append(head)
    for s in strategies:
        cells = []
        for b in budgets:
            r = results.get(s, {}).get(_budget_key(b))
            cells.append(f"{100 * r['curated_accuracy_mean']:6.1f}+-{100 * r['curated_accuracy_std']:3.1f} [{100 * r['kept_fraction']:3.0f}]" if r else "-")
        lines.append(f"{s:<10}" + "".join(f"{c:>19}" for c in cells))
    lines.append("")
    lines.append("held-out RM accuracy % | flips (precision %) | all-pairs accuracy % (dropped counted with LLM label)")
    lines.append(head)
    for s in strategies:
        cells = []
        for b in budgets:
            r = results.get(s, {}).get(_budget_key(b))
            if not r:
                cells.append("-")
                continue
            fp = "" if not np.isfinite(r["flip_precision"]) else f"({100 * r['flip_precision']:.0f})"
            cells.append(f"{100 * r['heldout_rm_accuracy_mean']:4.1f}|{r['flipped']:.0f}{fp}|{100 * r['all_pairs_accuracy_mean']:4.1f}")
        lines.append(f"{s:<10}" + "".join(f"{c:>19}" for c in cells))
    return "\n".join(lines)


def plot_results(results: dict, strategies: Sequence[str], budgets: Sequence[float], path: Path, title: str) -> None:
    """Curated-label accuracy against % of the pool sent to people (error bars: sd over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in strategies:
        rows = [results[s][_budget_key(b)] for b in budgets if _budget_key(b) in results.get(s, {})]
        if not rows:
            continue
        x = [r["budget_percent"] for r in rows]
        y = [100 * r["curated_accuracy_mean"] for r in rows]
        e = [100 * r["curated_accuracy_std"] for r in rows]
        style = "--" if s in BASELINES else "-"
        ax.errorbar(x, y, yerr=e, label=s, linestyle=style, marker="o", capsize=3)
    ax.set_xlabel("% of pool sent to people")
    ax.set_ylabel("curated-label accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def seed_rm_options(kind: str, options: dict[str, Any], pool: LabelledPool) -> dict[str, Any]:
    """Options for every RM fit of one replay seed: the L2 coefficient chosen once, by one tuned
    fit on the pool's LLM labels (what a real deployment has before any person labels), then held
    fixed for every curation and evaluation fit of that seed (the same value for every strategy)."""
    if pool.evidence is None:
        return dict(options)
    return with_fixed_weight_decay(kind, options, pool.pairs, pool.evidence.llm_a_preferred)


def simulate(
    pool: LabelledPool,
    strategies: Sequence[str],
    budgets: Sequence[float],
    seeds: int,
    rm_kind: str,
    curation_options: dict[str, Any],
    eval_options: dict[str, Any],
    heldout_fraction: float = HELDOUT_FRACTION,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[ReplayOutcome], list[dict[str, Any]]]:
    """Every strategy x budget x seed replay on the same per-seed splits.

    Returns the outcomes and, per seed, the RM options used (see :func:`seed_rm_options`).
    """
    outcomes: list[ReplayOutcome] = []
    per_seed: list[dict[str, Any]] = []
    for seed in range(seeds):
        pool_idx, held_idx = split_pool(len(pool), heldout_fraction, seed)
        train, held = pool.subset(pool_idx), pool.subset(held_idx)
        tuned = seed_rm_options(rm_kind, curation_options, train)
        fixed = {k: tuned[k] for k in ("tune_weight_decay", "weight_decay") if k in tuned}
        curation_rm = reward_model_factory(rm_kind, tuned)
        eval_rm = reward_model_factory(rm_kind, {**eval_options, **fixed})
        per_seed.append({"seed": seed, **fixed})
        if progress and fixed:
            progress(f"seed {seed}: RM weight decay {fixed.get('weight_decay')} (chosen once on the pool's LLM labels)")
        for strategy in strategies:
            for budget in budgets:
                t0 = time.perf_counter()
                if strategy == "llm_only" and outcomes and outcomes[-1].strategy == "llm_only" and outcomes[-1].seed == seed:
                    o = ReplayOutcome(**{**asdict(outcomes[-1]), "budget_percent": budget})  # budget-independent
                else:
                    o = replay(strategy, train, held, curation_rm, eval_rm, budget, seed)
                outcomes.append(o)
                if progress:
                    progress(f"seed {seed} {strategy:<8} {budget:>5g}%: curated {100 * o.curated_accuracy:5.1f}% "
                             f"kept {100 * o.kept_fraction:3.0f}% flips {o.flipped} heldout-RM "
                             f"{100 * o.heldout_rm_accuracy:4.1f}% ({time.perf_counter() - t0:.1f}s)")
    return outcomes, per_seed


def rm_ceiling(pool: LabelledPool, seeds: int, eval_rm: RewardModelFactory, heldout_fraction: float = HELDOUT_FRACTION) -> list[float]:
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


def run_simulate_command(
    data_path: Path,
    judge_key: str | None,
    strategies: Sequence[str],
    budgets: Sequence[float],
    seeds: int,
    out_dir: Path,
    reward_model: str,
    limit: int | None,
    echo: Callable[[str], None] = print,
    rm_options: dict[str, Any] | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """The body of ``rlthf-backend simulate`` (see the module docstring). Returns results.json's content."""
    t0 = time.perf_counter()
    pool = load_pool(data_path, judge_key=judge_key, limit=limit)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curation_options = {**CURATION_RM_DEFAULTS, **(rm_options or {})} if reward_model == "embedding" else dict(rm_options or {})
    eval_options = dict(EVAL_RM_DEFAULTS) if reward_model == "embedding" else {}
    eval_rm = reward_model_factory(reward_model, eval_options)
    progress = None if quiet else echo
    doc: dict[str, Any] = {
        "data": str(data_path),
        "format": pool.format,
        "pairs": len(pool),
        "human_ties_dropped": pool.dropped_ties,
        "skipped_without_judge": pool.skipped_without_judge,
        "heldout_fraction": HELDOUT_FRACTION,
        "pool_size": len(pool) - int(round(HELDOUT_FRACTION * len(pool))),
        "seeds": seeds,
        "reward_model": reward_model,
        "curation_rm_options": curation_options,
        "eval_rm_options": eval_options,
        "default_strategy": DEFAULT_STRATEGY,
        "definitions": {
            "curated_accuracy": "share of exported pairs whose label equals the human label; dropped pairs are not counted (see kept_fraction)",
            "all_pairs_accuracy": "accuracy over the whole pool, dropped pairs counted with their LLM label",
            "kept_fraction": "share of the pool in the curated export",
            "flipped": "exported pairs labelled against the LLM without a person (mean over seeds)",
            "flip_precision": "share of flipped pairs whose label equals the human label",
            "heldout_rm_accuracy": f"a fresh RM trained on the export, accuracy vs human labels on a fixed {HELDOUT_FRACTION:.0%} of pairs held out of the pool per seed",
            "budget_percent": "human labels as % of the pool (rounds of each strategy's batch size, cut at the budget)",
        },
    }
    if not pool.has_llm_labels:
        accs = rm_ceiling(pool, seeds, eval_rm)
        m, s = _mean_std(accs)
        doc.update({"mode": "rm_ceiling", "judge": None, "rm_ceiling": {
            "heldout_rm_accuracy_mean": m, "heldout_rm_accuracy_std": s, "per_seed": accs,
            "what": "evaluation RM trained on every pool pair's human label (sides shuffled per seed), accuracy on held-out pairs"}})
        echo(f"{data_path.name}: {len(pool)} pairs, human labels only -> RM capacity ceiling "
             f"({reward_model}, trained on human labels): held-out accuracy {100 * m:.1f}% +- {100 * s:.1f} "
             f"over {seeds} seeds ({', '.join(f'{100 * a:.1f}' for a in accs)})")
    else:
        names = list(strategies) or list(ALL_STRATEGIES)
        for s in BASELINES:
            if s not in names:
                names.insert(0, s)
        unknown = [s for s in names if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"unknown strategies {unknown}; choose from {sorted(STRATEGIES)}")
        names = [s for s in ALL_STRATEGIES if s in names] + [s for s in names if s not in ALL_STRATEGIES]
        outcomes, per_seed_rm = simulate(pool, names, budgets, seeds, reward_model, curation_options, eval_options,
                                         progress=progress)
        doc["rm_options_per_seed"] = per_seed_rm
        results = aggregate(outcomes)
        llm_acc = float(np.mean(pool.evidence.llm_a_preferred == pool.human_a_preferred))
        ceiling = rm_ceiling(pool, seeds, eval_rm)
        doc.update({
            "rm_ceiling": {"heldout_rm_accuracy_mean": _mean_std(ceiling)[0], "heldout_rm_accuracy_std": _mean_std(ceiling)[1],
                           "per_seed": ceiling, "what": "evaluation RM trained on every pool pair's human label"},
            "mode": "curation",
            "judge": judge_key or "strongest present per pair",
            "judge_counts": pool.judge_counts,
            "llm_label_accuracy_all_pairs": llm_acc,
            "strategies": names,
            "budgets": list(budgets),
            "results": results,
            "targets": targets(results, DEFAULT_STRATEGY),
            "runs": [asdict(o) for o in outcomes],
        })
        table = format_table(results, names, budgets)
        echo(f"{data_path.name}: {len(pool)} pairs ({pool.dropped_ties} human ties dropped), pool {doc['pool_size']} "
             f"+ {len(pool) - doc['pool_size']} held out, judge: {doc['judge']}, LLM labels {100 * llm_acc:.1f}% correct, "
             f"{seeds} seeds")
        echo(table)
        echo(f"RM ceiling (evaluation RM trained on all pool human labels): held-out "
             f"{100 * doc['rm_ceiling']['heldout_rm_accuracy_mean']:.1f}% +- {100 * doc['rm_ceiling']['heldout_rm_accuracy_std']:.1f}")
        t = doc["targets"]
        if t.get("evaluated"):
            echo(f"targets at 10%: {DEFAULT_STRATEGY} gain {t['gain_points'][DEFAULT_STRATEGY]:+.1f} pts, random "
                 f"{t['gain_points']['random']:+.1f}, oracle {t['gain_points']['oracle']:+.1f} -> "
                 f"{t['gain_vs_random_ratio']:.1f}x random, {100 * t['share_of_oracle_gain']:.0f}% of oracle, "
                 f"never below llm_only: {t['never_below_llm_only']} => {'MET' if t['met'] else 'NOT MET'}")
        plot_results(results, names, budgets, out_dir / "curated_accuracy.png",
                     f"{data_path.name}: {len(pool)} pairs, {seeds} seeds")
        echo(f"plot: {out_dir / 'curated_accuracy.png'}")
    doc["seconds"] = time.perf_counter() - t0
    (out_dir / "results.json").write_text(json.dumps(_finite(doc), indent=1))
    echo(f"results: {out_dir / 'results.json'} ({doc['seconds']:.0f}s)")
    return doc


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN / inf become None, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
