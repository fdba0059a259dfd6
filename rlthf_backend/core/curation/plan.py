"""RoundPlan: what a curation round decided for every pair, and why.

Statuses (one per pair, :data:`STATUSES`):

- ``labelled``: a person already answered; the human label is used (a human tie leaves the
  export and RM training).
- ``human``: ask a person this round; ``human_rank`` orders the batch (0 first).
- ``keep``: export the current label (the LLM's, or an earlier flip).
- ``flip``: export the opposite of the LLM label, without a person.
- ``drop``: leave out of the export (and of RM training).
- ``hold``: undecided this round (the paper's middle region): left out of the next RM's
  training, re-scored next round; exported with its current label if the loop ends here.

``train_weight`` is orthogonal to the status: the weight of the pair in the next RM fit (0 =
excluded from RM training), with ``label_a_preferred`` as its label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rlthf_backend.core.curation.state import HUMAN_TIE, CurationState
from rlthf_backend.core.types import json_safe

STATUSES = ("labelled", "human", "keep", "flip", "drop", "hold")


@dataclass(frozen=True)
class Decision:
    """One logged decision: what was decided, about which pairs, from which inputs."""

    event: str
    inputs: dict[str, Any]
    outcome: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "inputs": self.inputs, "outcome": self.outcome}


@dataclass
class RoundPlan:
    """The output of one strategy round (arrays aligned with the state's pairs).

    ``label_a_preferred``: the label each pair carries after this round (human label where
    labelled, flipped LLM label where flipped, else the LLM label).
    ``flipped``: the exported label is the LLM label flipped without a person.
    ``rm_excluded``: the pair is left out of the next RM fit (carried into the next state).
    ``audit``: among ``human`` pairs, those drawn uniformly at random (the audit slice).
    ``scores``: per-pair numbers behind the decisions (e.g. ``margin``, ``p_wrong``).
    ``summary``: per-round numbers (curve points, estimates, stopping signal...).
    ``ledger``: what the next round needs of this one (the adaptive strategy's batch design and
    ranking grades, :mod:`.adaptive`); carried into the next state by ``CurationState.after_plan``.
    """

    strategy: str
    round_index: int
    status: np.ndarray
    human_rank: np.ndarray
    audit: np.ndarray
    label_a_preferred: np.ndarray
    flipped: np.ndarray
    rm_excluded: np.ndarray
    train_weight: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    log: list[Decision] = field(default_factory=list)
    stop: bool = False
    stop_reason: str = ""
    ledger: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.status)

    @property
    def human_batch(self) -> np.ndarray:
        """Indices of the pairs to ask this round, in rank order."""
        idx = np.flatnonzero(self.status == "human")
        return idx[np.argsort(self.human_rank[idx], kind="stable")]

    @property
    def in_export(self) -> np.ndarray:
        """Pairs in the curated set if the loop ended after this round (pending human pairs
        count with their current label; drops and human ties do not)."""
        return np.isin(self.status, ("labelled", "human", "keep", "flip", "hold")) & ~self.scores.get(
            "human_tie", np.zeros(len(self), bool)
        )

    def counts(self) -> dict[str, int]:
        return {s: int(np.sum(self.status == s)) for s in STATUSES}

    def note(self, event: str, inputs: dict[str, Any], outcome: dict[str, Any]) -> None:
        self.log.append(Decision(event, inputs, outcome))

    def as_dict(self, with_pairs: bool = True) -> dict[str, Any]:
        """JSON-friendly form (per-pair arrays as lists when ``with_pairs``)."""
        d: dict[str, Any] = {
            "strategy": self.strategy,
            "round_index": self.round_index,
            "counts": self.counts(),
            "summary": json_safe(self.summary),
            "stop": self.stop,
            "stop_reason": self.stop_reason,
            "log": [json_safe(e.as_dict()) for e in self.log],
        }
        if with_pairs:
            d["pairs"] = {
                "status": self.status.tolist(),
                "human_rank": self.human_rank.tolist(),
                "audit": self.audit.tolist(),
                "label_a_preferred": self.label_a_preferred.tolist(),
                "train_weight": self.train_weight.tolist(),
                "scores": {k: json_safe(v) for k, v in self.scores.items()},
            }
        return d


def empty_plan(strategy: str, state: CurationState, train_weight: np.ndarray | None = None) -> RoundPlan:
    """A plan that keeps every current label (human labels where present); building block."""
    n = len(state)
    status = np.where(state.labelled, "labelled", "keep").astype(object)
    human_tie = state.human == HUMAN_TIE
    return RoundPlan(
        strategy=strategy,
        round_index=state.round_index,
        status=status,
        human_rank=np.full(n, -1, dtype=int),
        audit=np.zeros(n, bool),
        label_a_preferred=state.working_a_preferred.copy(),
        flipped=state.flipped & ~state.human_decisive,
        rm_excluded=human_tie.copy(),
        train_weight=np.where(human_tie, 0.0, 1.0) if train_weight is None else train_weight,
        scores={"human_tie": human_tie},
    )


def assign_human_batch(plan: RoundPlan, ordered_indices: np.ndarray, audit_mask: np.ndarray | None = None) -> None:
    """Mark ``ordered_indices`` as this round's human batch, ranked in the given order."""
    idx = np.asarray(ordered_indices, dtype=int)
    plan.status[idx] = "human"
    plan.human_rank[idx] = np.arange(len(idx))
    if audit_mask is not None:
        plan.audit[idx] = np.asarray(audit_mask, dtype=bool)
