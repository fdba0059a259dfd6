"""The embedding reward model: frozen sentence-encoder features and small Bradley-Terry heads.

The encoder never trains, so every text is embedded once (and cached on disk); a refit only
trains the heads, which takes seconds on a CPU for 10k pairs. That makes it the reward model
for the RLTHF loop, which refits after every round and wants cross-fitted and ensembled margins.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_backend.core.reward import bt_head
from rlthf_backend.core.reward.base import FitReport, RewardModel, check_fit_inputs
from rlthf_backend.core.reward.embedding_config import RUNTIME_FIELDS, EmbeddingRewardConfig
from rlthf_backend.core.reward.encoder import TextEncoder, torch_threads
from rlthf_backend.core.reward.features import block_dim, build_features
from rlthf_backend.core.reward.manifest import read_manifest, write_manifest
from rlthf_backend.core.types import Pair

_PARAMS_FILE = "head.npz"
#: Pairs scored at once: bounds the memory of scoring a large pool.
_SCORING_CHUNK = 8192

__all__ = ["EmbeddingRewardConfig", "EmbeddingRewardModel", "RUNTIME_FIELDS"]


@dataclass
class _Fitted:
    params: dict[str, np.ndarray]
    mean: np.ndarray
    scale: np.ndarray
    version: str
    extra: dict[str, Any] = field(default_factory=dict)


class EmbeddingRewardModel(RewardModel):
    """Bradley-Terry reward model on frozen sentence embeddings of prompt and response.

    ``EmbeddingRewardModel(config, encoder=None, **overrides)``: ``overrides`` replace config
    fields; ``encoder`` shares an existing :class:`TextEncoder` (and its memory cache).
    """

    kind = "embedding"

    def __init__(
        self,
        config: EmbeddingRewardConfig | None = None,
        encoder: TextEncoder | None = None,
        **overrides: Any,
    ) -> None:
        base = (config or EmbeddingRewardConfig()).to_dict()
        unknown = set(overrides) - set(base)
        if unknown:
            raise TypeError(f"unknown EmbeddingRewardConfig fields: {sorted(unknown)}")
        base.update(overrides)
        self.config = EmbeddingRewardConfig.from_dict(base)
        self._encoder = encoder
        self._fitted: _Fitted | None = None

    # ------------------------------------------------------------------ encoder and features
    @property
    def encoder(self) -> TextEncoder:
        """The (lazily built) text encoder; the model itself loads only on a cache miss."""
        if self._encoder is None:
            c = self.config
            self._encoder = TextEncoder(
                c.encoder, c.max_seq_length, c.cache_dir, c.device, c.encode_batch_size, c.num_threads,
                backend=c.backend,
            )
        return self._encoder

    def pair_features(self, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
        """Unstandardised features of responses a and b, each (n, d)."""
        n = len(pairs)
        texts = [p.prompt for p in pairs] + [p.response_a for p in pairs] + [p.response_b for p in pairs]
        emb = self.encoder.encode(texts)
        ep, ea, eb = emb[:n], emb[n : 2 * n], emb[2 * n :]
        prompts = [p.prompt for p in pairs]
        blocks = self.config.features
        xa = build_features(blocks, ep, ea, prompts, [p.response_a for p in pairs])
        xb = build_features(blocks, ep, eb, prompts, [p.response_b for p in pairs])
        return xa, xb

    # ------------------------------------------------------------------ RewardModel API
    @property
    def version(self) -> str:
        return self._fitted.version if self._fitted else ""

    @property
    def is_fitted(self) -> bool:
        return self._fitted is not None

    def fit(
        self,
        pairs: Sequence[Pair],
        a_preferred: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> FitReport:
        t0 = time.perf_counter()
        c = self.config
        y, w = check_fit_inputs(pairs, a_preferred, weights)
        keep = np.flatnonzero(w > 0)
        if keep.size == 0:
            raise ValueError("no pair has a positive weight")
        kept_pairs = [pairs[i] for i in keep]
        y, w = y[keep], w[keep]

        with torch_threads(c.num_threads):
            xa, xb = self.pair_features(kept_pairs)
            t_features = time.perf_counter()
            mean, scale = self._standardiser(np.concatenate([xa, xb]))
            xa, xb = (xa - mean) / scale, (xb - mean) / scale

            sign = np.where(y, 1.0, -1.0)
            weight_decay, cv_losses = c.weight_decay, None
            if c.tune_weight_decay and len(w) >= 4 * c.cv_folds:
                weight_decay, cv_losses = bt_head.select_weight_decay(
                    xa, xb, sign, w, c.weight_decay_grid, c.cv_folds, c.seed, c.epochs
                )
            t_tuned = time.perf_counter()
            rng = np.random.default_rng(c.seed)
            if c.n_ensemble > 1 and c.bootstrap:
                counts = rng.poisson(1.0, size=(c.n_ensemble, len(w)))
            else:
                counts = np.ones((c.n_ensemble, len(w)))
            spec = bt_head.HeadSpec(c.head, c.n_ensemble, xa.shape[1], c.hidden_size)
            params = bt_head.train_ensemble(
                spec, xa, xb, sign, w, counts,
                weight_decay=weight_decay, epochs=c.epochs, lr=c.lr, optimizer=c.optimizer,
                label_smoothing=c.label_smoothing, seed=c.seed, mlp_weight_decay=c.mlp_weight_decay,
            )
            margins = bt_head.predict_margins(params, xa, xb).mean(axis=0)
        t_end = time.perf_counter()
        self._fitted = _Fitted(
            params, mean, scale, self._hash(params, mean, scale), {"weight_decay": weight_decay}
        )
        return FitReport(
            n_pairs=int(keep.size),
            seconds=t_end - t0,
            train_accuracy=float(np.mean((margins > 0) == y)),
            details={
                "n_excluded": int(len(pairs) - keep.size),
                "feature_dim": int(xa.shape[1]),
                "n_members": c.n_ensemble,
                "weight_decay": weight_decay,
                "cv_losses": cv_losses,
                "features_seconds": t_features - t0,
                "tune_seconds": t_tuned - t_features,
                "train_seconds": t_end - t_tuned,
                "version": self.version,
            },
        )

    def member_margins(self, pairs: Sequence[Pair]) -> np.ndarray:
        f = self._require_fitted()
        if len(pairs) == 0:
            return np.zeros((self.config.n_ensemble, 0))
        out = []
        with torch_threads(self.config.num_threads):
            # In chunks: the features of a 100k-pair pool would hold ~1 GB at once.
            for start in range(0, len(pairs), _SCORING_CHUNK):
                xa, xb = self.pair_features(pairs[start:start + _SCORING_CHUNK])
                out.append(bt_head.predict_margins(f.params, (xa - f.mean) / f.scale, (xb - f.mean) / f.scale))
        return np.concatenate(out, axis=1)

    def margins(self, pairs: Sequence[Pair]) -> np.ndarray:
        return self.member_margins(pairs).mean(axis=0)

    def save(self, directory: Path) -> None:
        f = self._require_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / _PARAMS_FILE, _mean=f.mean, _scale=f.scale, **f.params)
        write_manifest(
            directory, self.kind, {"config": self.config.to_dict(), "version": f.version, "fit": f.extra}
        )

    @classmethod
    def load(cls, directory: Path, encoder: TextEncoder | None = None, **overrides: Any) -> "EmbeddingRewardModel":
        """Read a saved model; ``overrides`` may change runtime fields (cache_dir, device, ...);
        names that are no field of this kind are ignored, so callers can pass one set to any kind."""
        directory = Path(directory)
        manifest = read_manifest(directory, expected_kind=cls.kind)
        config = EmbeddingRewardConfig.from_dict({**manifest["config"], **overrides})
        model = cls(config, encoder=encoder)
        with np.load(directory / _PARAMS_FILE) as data:
            arrays = {k: data[k] for k in data.files}
        mean, scale = arrays.pop("_mean"), arrays.pop("_scale")
        model._fitted = _Fitted(arrays, mean, scale, manifest["version"], manifest.get("fit", {}))
        return model

    # ------------------------------------------------------------------ helpers
    def _standardiser(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.config.standardize:
            d = rows.shape[1]
            return np.zeros(d, np.float32), np.ones(d, np.float32)
        mean = rows.mean(axis=0)
        # A floor keeps constant columns (e.g. a length feature on a tiny set) from exploding.
        scale = np.maximum(rows.std(axis=0), 1e-6)
        return mean.astype(np.float32), scale.astype(np.float32)

    def _hash(self, params: dict[str, np.ndarray], mean: np.ndarray, scale: np.ndarray) -> str:
        identity = {k: v for k, v in self.config.to_dict().items() if k not in RUNTIME_FIELDS}
        h = hashlib.sha256(json.dumps(identity, sort_keys=True).encode())
        for name in sorted(params):
            h.update(name.encode())
            h.update(np.ascontiguousarray(params[name]).tobytes())
        h.update(mean.tobytes())
        h.update(scale.tobytes())
        return h.hexdigest()[:16]

    def _require_fitted(self) -> _Fitted:
        if self._fitted is None:
            raise RuntimeError("the reward model is not fitted: call fit() or load() first")
        return self._fitted

    def expected_feature_dim(self, emb_dim: int) -> int:
        """Feature dimension for an encoder of width ``emb_dim`` under this config."""
        return sum(block_dim(b, emb_dim) for b in self.config.features)
