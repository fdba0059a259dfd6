"""The reward-model interface shared by every reward model.

A Bradley-Terry reward model r(prompt, response) gives P(a beats b) = sigmoid(r(x, a) - r(x, b)).
Everything outside this package sees reward models only through :class:`RewardModel`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_backend.core.types import Pair


@dataclass
class FitReport:
    """What one :meth:`RewardModel.fit` call did."""

    n_pairs: int
    seconds: float
    train_accuracy: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def check_fit_inputs(
    pairs: Sequence[Pair], a_preferred: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """``a_preferred`` as bools and ``weights`` as floats (ones when None), or a ValueError
    saying which argument is wrong: lengths differ, or a weight is negative or not finite."""
    y = np.asarray(a_preferred, dtype=bool).reshape(-1)
    w = np.ones(len(pairs)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if not (len(pairs) == len(y) == len(w)):
        raise ValueError(f"pairs ({len(pairs)}), a_preferred ({len(y)}) and weights ({len(w)}) differ in length")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ValueError("weights must be finite and >= 0")
    return y, w


class RewardModel(ABC):
    """Fit on labelled pairs with per-pair weights; score pairs; save and load with a version id."""

    #: Short kind name: "embedding", "trl".
    kind: str = ""

    @property
    @abstractmethod
    def version(self) -> str:
        """Identifies the fitted parameters (changes on every fit); "" before the first fit."""

    @abstractmethod
    def fit(
        self,
        pairs: Sequence[Pair],
        a_preferred: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> FitReport:
        """Train on ``pairs`` where ``a_preferred[i]`` is True if response a is the better one.

        ``weights[i] >= 0`` scales pair i's loss (RLTHF's alpha amplification of human labels;
        0 leaves a pair out). Ties are not passed in: callers drop them.
        """

    @abstractmethod
    def margins(self, pairs: Sequence[Pair]) -> np.ndarray:
        """r(x, a) - r(x, b) per pair, shape (n,). Positive means the model prefers a."""

    def member_margins(self, pairs: Sequence[Pair]) -> np.ndarray:
        """Per-ensemble-member margins, shape (n_members, n). One member unless ensembled."""
        return self.margins(pairs)[None, :]

    @abstractmethod
    def save(self, directory: Path) -> None:
        """Write everything needed by :meth:`load` into ``directory`` (which exists and is empty)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path) -> "RewardModel":
        """Read a model written by :meth:`save`."""
