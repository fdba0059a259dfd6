"""A model registry holding curation rounds, written the way the training job writes them, for
report and export tests that need no Label Studio."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rlthf_backend.registry.versions import ModelRegistry
from rlthf_backend.registry.records import RoundLogLine, RoundRecord, TaskDecision, append_round_log, write_margins


def margin_curve_values(n: int, seed: int = 0) -> np.ndarray:
    """Margins shaped like a trained RM's: a steep positive head, a flat middle, a steep
    negative tail (about 15% of pairs), shuffled."""
    rng = np.random.default_rng(seed)
    ranks = np.linspace(0, 1, n)
    curve = 4 * np.exp(-ranks * 12) + 0.3 - 0.6 * ranks - 5 * np.exp(-(1 - ranks) * 14)
    return rng.permutation(curve + rng.normal(0, 0.03, n))


def publish_round(registry: ModelRegistry, project_id: int, task_ids: list[int], oriented: np.ndarray,
                  labels: dict[int, str], statuses: dict[int, str], round_index: int, human_batch: list[int],
                  summary: dict | None = None, p_wrong: dict[int, float] | None = None,
                  audit: set[int] = frozenset(), human_labels: int = 0, engine: dict | None = None) -> str:
    """Publish one version with a round: ``oriented`` is r(chosen) - r(rejected) per task under
    ``labels``; statuses default to keep. Appends the round log line. Returns the version id."""
    rm = {t: (m if labels.get(t, "a") == "a" else -m) for t, m in zip(task_ids, oriented)}
    statuses = {t: statuses.get(t, "keep") for t in task_ids}
    counts = {s: sum(1 for v in statuses.values() if v == s)
              for s in ("labelled", "human", "keep", "flip", "drop", "hold")}
    record = RoundRecord(
        strategy="fused", round_index=round_index, reason="test", counts=counts, summary=summary or {}, log=[],
        tasks={t: TaskDecision(status=statuses[t], label=labels.get(t, "a"),
                               rank=human_batch.index(t) if t in human_batch else -1, audit=t in audit,
                               margin=float(rm[t]), p_wrong=(p_wrong or {}).get(t)) for t in task_ids},
        engine=engine or {},
    )

    def write(folder: Path, version: str) -> None:
        record.write(folder)
        write_margins(folder, task_ids, np.array([rm[t] for t in task_ids]))

    info = registry.publish(project_id, write, meta={"strategy": "fused", "round": True})
    append_round_log(registry, project_id, RoundLogLine(
        version=info.version, at=0.0, round_index=round_index, reason="test", pool_size=len(task_ids),
        human_labels=human_labels, human_batch=human_batch, counts=counts, summary=summary or {}))
    return info.version


def two_round_project(root: Path, project_id: int = 7, n: int = 240) -> ModelRegistry:
    """A registry with two fused rounds over ``n`` tasks (ids 1000..): people answered the first
    batch (a third contradicted the LLM), the second round flipped and dropped some pairs."""
    registry = ModelRegistry(root)
    ids = list(range(1000, 1000 + n))
    oriented = margin_curve_values(n)
    order = list(np.argsort(-oriented))
    batch0 = [ids[i] for i in order[-12:]]
    publish_round(registry, project_id, ids, oriented, {}, {t: "human" for t in batch0}, 0, batch0,
                  summary={"expected_wrong_in_export_model": 40.5, "regions": {}}, audit={batch0[1], batch0[4]},
                  p_wrong={t: 0.6 for t in batch0})
    statuses = {t: "labelled" for t in batch0}
    flips = [ids[i] for i in order[-20:-12]]
    drops = [ids[i] for i in order[-30:-20]]
    batch1 = [ids[i] for i in order[-40:-30]]
    statuses.update({t: "flip" for t in flips})
    statuses.update({t: "drop" for t in drops})
    statuses.update({t: "human" for t in batch1})
    labels = {t: "b" for t in flips}
    summary = {"last_batch_answered": 12, "last_batch_disagreement": 1 / 3, "flip_confirmed": True,
               "regions": {"flip_candidate": {"audited_error_rate": 0.9, "audited_error_ci95": [0.6, 0.98]}},
               "expected_wrong_in_export_model": 21.25, "expected_wrong_in_export_audit": 18.0}
    publish_round(registry, project_id, ids, oriented, labels, statuses, 1, batch1, summary=summary,
                  audit={batch1[2]}, p_wrong={t: 0.7 for t in batch1}, human_labels=12)
    return registry
