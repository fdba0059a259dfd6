"""Bradley-Terry reward models: the interface, two implementations, and how to pick one.

- ``embedding``: frozen sentence-encoder features + small heads; refits in seconds on a CPU.
- ``trl``: a fine-tuned sequence-classification model trained with TRL's ``RewardTrainer``.

Both subclasses are imported lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlthf_backend.core.reward.base import FitReport, RewardModel
from rlthf_backend.core.reward.manifest import read_manifest

REWARD_KINDS = ("embedding", "trl")

__all__ = ["REWARD_KINDS", "FitReport", "RewardModel", "load_reward_model", "make_reward_model"]


def _model_class(kind: str) -> type[RewardModel]:
    if kind == "embedding":
        from rlthf_backend.core.reward.embedding import EmbeddingRewardModel

        return EmbeddingRewardModel
    if kind == "trl":
        from rlthf_backend.core.reward.trl_reward import TrlRewardModel

        return TrlRewardModel
    raise ValueError(f"unknown reward model kind {kind!r}; expected one of {REWARD_KINDS}")


def make_reward_model(kind: str = "embedding", **overrides: Any) -> RewardModel:
    """A fresh, unfitted reward model of ``kind``; ``overrides`` set its config fields."""
    return _model_class(kind)(**overrides)


def load_reward_model(directory: Path | str, **overrides: Any) -> RewardModel:
    """Load a model saved by any ``RewardModel.save``; the kind is read from its manifest.

    ``overrides`` change runtime settings of the loaded model (e.g. ``cache_dir``, ``device``).
    """
    directory = Path(directory)
    kind = read_manifest(directory)["kind"]
    return _model_class(kind).load(directory, **overrides)
