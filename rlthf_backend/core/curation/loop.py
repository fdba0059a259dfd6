"""The round loop every deployment runs and ``simulate`` replays: when a curation round runs
and how big its human batch is.

The training job (``jobs/training.py``) calls :func:`round_due` on every training and
:func:`~rlthf_backend.core.curation.engine.plan_next_round` when a round is due; ``simulate``
runs the same two functions with people simulated by known labels (they answer the whole batch,
"human batch done" fires, the next round is planned). What carries over between rounds is
:meth:`CurationState.after_plan` plus the human labels that arrived.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RoundPolicy:
    """When rounds run and how many pairs each sends to people."""

    batch_fraction: float = field(default=0.02, metadata={"help": (
        "Share of the pool sent to people per round (at least one pair). Smaller batches mean more "
        "rounds, each learning from the answers before (the paper used 0.04).")})
    round_every_n_labels: int = field(default=100, metadata={"help": (
        "Also start a curation round after this many new human labels (0: only when the current batch "
        "is done or on Train).")})
    max_rm_pairs: int = field(default=20_000, metadata={"help": (
        "Most pairs one reward-model fit trains on: every human-labelled pair plus a uniform sample of the "
        "LLM-labelled rest, reweighted to keep the loss's expectation. Bounds a round's time on large pools; "
        "smaller pools train on everything. 0: no limit.")})

    def batch_size(self, pool_size: int) -> int:
        """Pairs in one round's human batch for a pool of ``pool_size``."""
        return max(1, math.ceil(self.batch_fraction * pool_size)) if pool_size > 0 else 0


def round_due(
    policy: RoundPolicy, *, first_round: bool, batch_asked: int, batch_left: int, new_labels: int, forced: bool
) -> str | None:
    """Why a curation round runs now, or None.

    ``batch_asked``: pairs of the last round's batch; ``batch_left``: those still without a
    human label; ``new_labels``: human labels that arrived since the last round.
    """
    if forced:
        return "train requested"
    if first_round:
        return "first round"
    if batch_asked and not batch_left:
        return "human batch done"
    if policy.round_every_n_labels and new_labels >= policy.round_every_n_labels:
        return f"{new_labels} new human labels"
    return None
