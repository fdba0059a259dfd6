"""The embedding reward model's config, importable without torch (settings read its defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rlthf_backend.core.reward.encoder import DEFAULT_ENCODER, DEVICE_AUTO, check_backend

#: Head architectures of the Bradley-Terry heads (``core/reward/bt_head.py``).
HEAD_KINDS = ("linear", "mlp")
#: Config fields that change where or how fast the model runs, not what it computes. The encoder
#: backend counts as one: its vectors agree to a cosine of ~0.99 and held-out accuracy does not
#: move (benchmarks/bench_embedding.py), so heads fitted on one backend serve on another.
RUNTIME_FIELDS = ("cache_dir", "device", "encode_batch_size", "num_threads", "backend")


@dataclass
class EmbeddingRewardConfig:
    """Every knob of :class:`EmbeddingRewardModel`.

    Encoder (frozen):
        encoder: sentence-transformers model id, local folder, or "all-MiniLM-L6-v2" (the
            packaged copy; never downloaded).
        max_seq_length: tokens kept per text by the encoder.
        cache_dir: folder of the disk embedding cache; None for
            ``~/.cache/rlthf-backend/embeddings``. Not part of the fitted model: a loaded model
            may be given another.
        device: torch device of the encoder ("cpu", "cuda", ...) or "auto" (CUDA when torch sees
            a GPU). Heads always train on CPU.
        backend: see its field's help.
        encode_batch_size: texts per encoder forward pass (16: int8 ONNX on 2 CPU cores ran
            ~20% faster than at 32, torch no slower).
        num_threads: torch intra-op threads for encoding and head training: an int, None
            (torch's default: all cores) or "auto" (the cores other processes leave idle; on a
            shared, busy CPU this is up to 3x faster, see ``encoder.resolve_threads``).

    Features:
        features: feature blocks per (prompt, response), see :mod:`.features`.
        standardize: scale each feature to unit variance (over the training rows) so one L2
            coefficient suits every block.

    Head:
        head: "linear" (r = w.x) or "mlp" (linear plus a one-hidden-layer GELU MLP).
        hidden_size: MLP width.
        n_ensemble: heads trained on bootstrap resamples; ``margins`` is their mean and
            ``member_margins`` gives each. 1 trains one head on the data as given.
        bootstrap: resample per member (Poisson(1) counts); False trains every member on the
            same data (only the MLP's random init then differs).
        optimizer: "lbfgs" (full batch, deterministic; best for the convex linear head) or
            "adam" (full batch).
        epochs: optimiser steps over the full batch (L-BFGS iterations).
        lr: step size (L-BFGS: initial step scale, 1.0 is right).
        weight_decay: L2 coefficient, relative to the weighted mean log-loss; used as given
            when ``tune_weight_decay`` is off.
        tune_weight_decay: choose the L2 coefficient from ``weight_decay_grid`` by
            ``cv_folds``-fold cross-validated log-loss of a linear head on the training pairs
            (the best value differs a lot between datasets: a few seconds per fit on 10k pairs).
        weight_decay_grid, cv_folds: the candidates and the folds of that choice.
        mlp_weight_decay: L2 coefficient of the MLP weights (None: the same as the linear part).
        label_smoothing: epsilon of label smoothing; >0 hedges against noisy (LLM) labels.
        seed: fixes bootstrap draws and MLP initialisation: same data and seed, same model.
    """

    encoder: str = DEFAULT_ENCODER
    max_seq_length: int = 256
    cache_dir: str | None = None
    device: str = DEVICE_AUTO
    encode_batch_size: int = 16
    num_threads: int | str | None = None
    backend: str = field(default="auto", metadata={"help": (
        "embedding RM: how the encoder runs: torch (sentence-transformers), onnx (ONNX Runtime, fp32), "
        "onnx-int8 (ONNX Runtime, int8 weights: 3.8-4.4x plain sentence-transformers' texts/s on 2 busy CPU "
        "cores, held-out RM accuracy within seed noise of torch's), or auto (onnx-int8 on a CPU, torch on a "
        "GPU). The ONNX copy is exported once per model, into `onnx/` beside the embedding cache; vectors of "
        "different backends are cached apart.")})

    features: tuple[str, ...] = ("response", "product", "length")
    standardize: bool = True

    head: str = "linear"
    hidden_size: int = 64
    n_ensemble: int = 5
    bootstrap: bool = True
    optimizer: str = "lbfgs"
    epochs: int = 100
    lr: float = 1.0
    weight_decay: float = 0.05
    tune_weight_decay: bool = True
    weight_decay_grid: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    cv_folds: int = 3
    mlp_weight_decay: float | None = None
    label_smoothing: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.features = tuple(self.features)
        self.weight_decay_grid = tuple(float(x) for x in self.weight_decay_grid)
        if self.cache_dir is not None:
            self.cache_dir = str(self.cache_dir)
        if self.head not in HEAD_KINDS:
            raise ValueError(f"head must be one of {HEAD_KINDS}, not {self.head!r}")
        if self.n_ensemble < 1:
            raise ValueError("n_ensemble must be >= 1")
        check_backend(self.backend)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["features"] = list(self.features)
        d["weight_decay_grid"] = list(self.weight_decay_grid)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EmbeddingRewardConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})
