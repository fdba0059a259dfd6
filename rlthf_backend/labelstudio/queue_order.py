"""Putting a round's chosen tasks at the front of Label Studio's label stream.

Label Studio (Community, 1.23) serves the task with the lowest prediction ``score`` first when
``sampling`` is "Uncertainty sampling" and the predictions' ``model_version`` equals
``project.model_version``. So each round writes predictions under a new version with scores
chosen so that

* the round's human batch gets scores below 0.5, rising with rank (rank 0 lowest: served first);
* every other unlabelled task gets 0.5 + 0.5 * P(shown label is right), so the score column still
  reads as the backend's confidence in the label it shows.

The batch is written first, then the project is switched to the new version (the queue is
re-ordered from that moment), then the rest are written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from label_studio_sdk import LabelStudio, PredictionRequest

from rlthf_backend.core.types import Label
from rlthf_backend.labelstudio.config import PairwiseConfig
from rlthf_backend.labelstudio.results import result_for_label

log = logging.getLogger(__name__)

UNCERTAINTY_SAMPLING = "Uncertainty sampling"


def queue_scores(human_rank: np.ndarray, p_label_right: np.ndarray) -> np.ndarray:
    """Prediction scores that order the label stream (see the module docstring).

    ``human_rank[i] >= 0`` puts pair i in the human batch at that rank; ``p_label_right`` is the
    engine's probability that the label shown for pair i is right (NaN: unknown, taken as 0.5).
    """
    rank = np.asarray(human_rank)
    k = int(np.sum(rank >= 0))
    p = np.nan_to_num(np.asarray(p_label_right, dtype=float), nan=0.5)
    scores = 0.5 + 0.5 * np.clip(p, 0.0, 1.0)
    chosen = rank >= 0
    scores[chosen] = 0.5 * (rank[chosen] + 1) / (k + 1)
    return scores


@dataclass(frozen=True)
class QueuedPrediction:
    task_id: int
    label: Label
    score: float


@dataclass
class WriteReport:
    written: int = 0
    seconds_to_reorder: float = 0.0  # from the start until the project serves the new version
    seconds_total: float = 0.0


def write_round(
    ls: LabelStudio,
    project_id: int,
    config: PairwiseConfig,
    model_version: str,
    first: Sequence[QueuedPrediction],
    rest: Sequence[QueuedPrediction],
    threads: int = 8,
) -> WriteReport:
    """Write ``first`` (the batch), re-point the project at ``model_version``, then write ``rest``."""
    t0 = time.perf_counter()
    report = WriteReport()
    writer = _PredictionWriter(ls, project_id, config, model_version, threads)
    report.written += writer.write(first)
    ls.projects.update(id=project_id, model_version=model_version, sampling=UNCERTAINTY_SAMPLING)
    report.seconds_to_reorder = time.perf_counter() - t0
    report.written += writer.write(rest)
    # Re-assert: saving the settings form in the UI resets sampling, and a slow write of the rest
    # gives it time to happen.
    ls.projects.update(id=project_id, model_version=model_version, sampling=UNCERTAINTY_SAMPLING)
    report.seconds_total = time.perf_counter() - t0
    return report


class _PredictionWriter:
    """Bulk import where Label Studio accepts it (Choices); one request per task otherwise.

    ``/import/predictions`` validates results with the SDK's label interface, which does not know
    Pairwise and silently creates nothing; those go through ``predictions.create`` in threads.
    """

    CHUNK = 500

    def __init__(self, ls: LabelStudio, project_id: int, config: PairwiseConfig, version: str, threads: int):
        self.ls, self.project_id, self.config, self.version, self.threads = ls, project_id, config, version, threads
        self.bulk_ok = config.kind != "pairwise"

    def write(self, items: Sequence[QueuedPrediction]) -> int:
        written = 0
        for start in range(0, len(items), self.CHUNK):
            chunk = items[start : start + self.CHUNK]
            if self.bulk_ok:
                created = self._bulk(chunk)
                if created:
                    if created != len(chunk):
                        log.warning("bulk prediction import created %d of %d", created, len(chunk))
                    written += created
                    continue
                self.bulk_ok = False  # nothing created: this config needs one request per task
            written += self._one_by_one(chunk)
        return written

    def _bulk(self, chunk: Sequence[QueuedPrediction]) -> int:
        response = self.ls.projects.import_predictions(
            id=self.project_id,
            request=[
                PredictionRequest(
                    task=p.task_id,
                    result=result_for_label(self.config, p.label),
                    score=float(p.score),
                    model_version=self.version,
                )
                for p in chunk
            ],
        )
        return int(getattr(response, "created", 0) or 0)

    def _one_by_one(self, chunk: Sequence[QueuedPrediction]) -> int:
        def create(p: QueuedPrediction) -> None:
            self.ls.predictions.create(
                task=p.task_id,
                result=result_for_label(self.config, p.label),
                score=float(p.score),
                model_version=self.version,
            )

        # Order of creation does not matter: the scores order the queue.
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            list(pool.map(create, chunk))
        return len(chunk)
