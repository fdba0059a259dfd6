"""Putting a round's chosen tasks at the front of Label Studio's label stream.

Label Studio (Community, 1.23) serves the task with the lowest prediction ``score`` first when
``sampling`` is "Uncertainty sampling" and the predictions' ``model_version`` equals
``project.model_version``. So each round writes predictions under a new version with scores
chosen so that

* the round's human batch gets scores below 0.5, rising with rank (rank 0 lowest: served first);
* every other unlabelled task gets 0.5 + 0.5 * P(shown label is right), so the score column still
  reads as the backend's confidence in the label it shows (as the engine ranks pairs: see
  ``app.training.rounds.p_label_right``), and the stream goes on in the engine's order.

A full write (the first round, or after a full re-read) creates a prediction for every
unlabelled task under a new version: the batch first, then the project is switched to that
version (the queue is re-ordered from that moment), then the rest. Later rounds keep that queue
version and update in place only the predictions that must change (:func:`queue_changes`): the
new batch, the old batch's leftovers, and tasks whose shown label or confidence moved, so a
round writes O(batch + changed) predictions, not one per task.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from label_studio_sdk import LabelStudio, PredictionRequest

from rlthf_backend.core.types import Label
from rlthf_backend.labelstudio.config import PairwiseConfig
from rlthf_backend.labelstudio.results import result_for_label
from rlthf_backend.store.snapshots import ShownPrediction

log = logging.getLogger(__name__)

UNCERTAINTY_SAMPLING = "Uncertainty sampling"
#: Batch tasks written before a round counts the label stream as re-ordered (see update_round).
QUEUE_HEAD = 50


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


def queue_changes(
    wanted: Sequence[QueuedPrediction],
    shown: Mapping[int, ShownPrediction | None],
    score_tolerance: float,
    max_moves: int | None = None,
) -> list[QueuedPrediction]:
    """The predictions in ``wanted`` that Label Studio does not show closely enough already.

    Always written: a task without a prediction under the queue version, one that moves into or
    out of the batch (scores below 0.5), and a batch rank that moves (any change below 0.5). Then
    tasks whose shown label changed, and those whose confidence score moved by more than
    ``score_tolerance``, the largest moves first, at most ``max_moves`` of them (None: all): a
    round's writes stay bounded on a large pool, and what is left moves in later rounds.
    """
    must, moves = [], []
    for p in wanted:
        old = shown.get(p.task_id)
        if old is None or old.score is None:
            must.append(p)
            continue
        in_batch, was_in_batch = p.score < 0.5, old.score < 0.5
        moved = abs(p.score - old.score)
        if in_batch != was_in_batch or (in_batch and moved > 1e-9):
            must.append(p)
        elif old.label != p.label:
            moves.append((1.0 + moved, p))  # a wrong label shown outranks any confidence drift
        elif moved > score_tolerance:
            moves.append((moved, p))
    moves.sort(key=lambda m: -m[0])
    return must + [p for _, p in moves[:max_moves]]


@dataclass
class WriteReport:
    """What writing a round's predictions did, and when (seconds from ``started_at``, unix time)."""

    started_at: float = field(default_factory=time.time)
    written: int = 0
    created: int = 0
    updated: int = 0
    stamped_tasks: bool = False  # predictions were created one by one, which stamps their tasks' updated_at
    shown: dict[int, ShownPrediction] = field(default_factory=dict)  # task id -> what it now shows (updates)
    seconds_to_reorder: float = 0.0  # until the label stream serves this round's choices
    seconds_batch: float = 0.0  # until the whole batch is written
    seconds_total: float = 0.0

    @property
    def reordered_at(self) -> float:
        """Unix time the label stream started serving this round's choices."""
        return self.started_at + self.seconds_to_reorder


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
    report.created += writer.write(first)
    ls.projects.update(id=project_id, model_version=model_version, sampling=UNCERTAINTY_SAMPLING)
    report.seconds_to_reorder = report.seconds_batch = time.perf_counter() - t0
    report.created += writer.write(rest)
    report.written = report.created
    report.stamped_tasks = not writer.bulk_ok
    # Re-assert: saving the settings form in the UI resets sampling, and a slow write of the rest
    # gives it time to happen.
    ls.projects.update(id=project_id, model_version=model_version, sampling=UNCERTAINTY_SAMPLING)
    report.seconds_total = time.perf_counter() - t0
    return report


def write_predictions(ls: LabelStudio, project_id: int, config: PairwiseConfig, model_version: str,
                      items: Sequence[QueuedPrediction], threads: int = 8) -> int:
    """Create a prediction per item: one bulk import where Label Studio accepts it (Choices), one
    request per task in threads otherwise (Pairwise). Returns how many were created."""
    return _PredictionWriter(ls, project_id, config, model_version, threads).write(items)


def update_round(
    ls: LabelStudio,
    project_id: int,
    config: PairwiseConfig,
    queue_version: str,
    first: Sequence[QueuedPrediction],
    rest: Sequence[QueuedPrediction],
    shown: Mapping[int, ShownPrediction | None],
    threads: int = 8,
) -> WriteReport:
    """Bring the queue version's predictions to ``first`` (the batch, in rank order) then ``rest``:
    updated in place where the task has one, created one by one where not (so that every id is
    known). ``report.shown`` holds what each written task now shows.

    Order: the last batch's leftovers leave the front first, then the head of the new batch
    (:data:`QUEUE_HEAD` tasks): from then on the label stream serves this round's choices, one
    task at a time, while the rest of the batch is written faster than people answer it. That
    moment is ``seconds_to_reorder``; ``seconds_batch`` is when the whole batch is in place.
    """
    t0 = time.perf_counter()
    report = WriteReport()
    writer = _PredictionWriter(ls, project_id, config, queue_version, threads)

    def write(items: Sequence[QueuedPrediction]) -> None:
        existing = [p for p in items if shown.get(p.task_id) is not None]
        ids = {p.task_id: shown[p.task_id].prediction_id for p in existing}  # type: ignore[union-attr]
        report.updated += writer.update(existing, ids)
        fresh = [p for p in items if shown.get(p.task_id) is None]
        ids.update(writer.create_each(fresh))
        report.created += len(fresh)
        report.shown.update({p.task_id: ShownPrediction(ids[p.task_id], p.label, p.score) for p in items})

    def was_in_batch(p: QueuedPrediction) -> bool:
        old = shown.get(p.task_id)
        return old is not None and old.score is not None and old.score < 0.5

    leaving = [p for p in rest if was_in_batch(p)]
    write(leaving)
    write(first[:QUEUE_HEAD])
    ls.projects.update(id=project_id, model_version=queue_version, sampling=UNCERTAINTY_SAMPLING)
    report.seconds_to_reorder = time.perf_counter() - t0
    write(first[QUEUE_HEAD:])
    report.seconds_batch = time.perf_counter() - t0
    write([p for p in rest if not was_in_batch(p)])
    report.written = report.created + report.updated
    report.seconds_total = time.perf_counter() - t0
    return report


class _PredictionWriter:
    """Bulk import where Label Studio accepts it (Choices); one request per task otherwise.

    ``/import/predictions`` validates results with the SDK's label interface, which does not know
    Pairwise and silently creates nothing; those go through ``predictions.create`` in threads.
    """

    #: Predictions per bulk import. Label Studio does work proportional to the project per import request
    #: (measured on 1.23.2 at 100,000 tasks: 24-33 s per request whether it carries 100 or 20,000), so few,
    #: large requests: a request of 20,000 is about 3 MB.
    CHUNK = 20_000

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

    def update(self, items: Sequence[QueuedPrediction], prediction_ids: Mapping[int, int]) -> int:
        """Update existing predictions in place (label and score), one request each, in threads."""
        def patch(p: QueuedPrediction) -> None:
            self.ls.predictions.update(id=prediction_ids[p.task_id], result=result_for_label(self.config, p.label),
                                       score=float(p.score), model_version=self.version)

        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            list(pool.map(patch, items))
        return len(items)

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
        return len(self.create_each(chunk))

    def create_each(self, items: Sequence[QueuedPrediction]) -> dict[int, int]:
        """Create one prediction per item (in threads); returns task id -> the new prediction's id."""
        def create(p: QueuedPrediction) -> tuple[int, int]:
            made = self.ls.predictions.create(
                task=p.task_id,
                result=result_for_label(self.config, p.label),
                score=float(p.score),
                model_version=self.version,
            )
            return p.task_id, int(made.id)

        # Order of creation does not matter: the scores order the queue.
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            return dict(pool.map(create, items))
