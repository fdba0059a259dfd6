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


def _help(text: str) -> dict[str, str]:
    return {"help": "embedding RM: " + text}


@dataclass
class EmbeddingRewardConfig:
    """Every knob of :class:`EmbeddingRewardModel`: a frozen encoder, feature blocks built from its
    vectors, and Bradley-Terry heads on them. Each field is documented once, in its ``help``."""

    # the encoder (frozen)
    encoder: str = field(default=DEFAULT_ENCODER, metadata=_help(
        "sentence-transformers encoder, a HF id or local folder (`all-MiniLM-L6-v2` is the packaged copy, "
        "never downloaded)."))
    max_seq_length: int = field(default=256, metadata=_help("tokens kept per text by the encoder."))
    cache_dir: str | None = field(default=None, metadata=_help(
        "folder of the disk embedding cache; None for `~/.cache/rlthf-backend/embeddings`. Not part of the "
        "fitted model: a loaded model may be given another."))
    device: str = field(default=DEVICE_AUTO, metadata=_help(
        "torch device of the encoder (cpu, cuda, cuda:N, or auto: CUDA when there is a GPU). Heads always "
        "train on CPU."))
    encode_batch_size: int = field(default=16, metadata=_help(
        "texts per encoder forward pass (16: int8 ONNX on 2 CPU cores ran ~20% faster than at 32, torch no "
        "slower)."))
    num_threads: int | str | None = field(default=None, metadata=_help(
        "torch intra-op threads for encoding and head training: an int, None (torch's default: all cores) or "
        "auto (the cores other processes leave idle; on a shared, busy CPU up to 3x faster, see "
        "`encoder.resolve_threads`)."))
    backend: str = field(default="auto", metadata=_help(
        "how the encoder runs: torch (sentence-transformers), onnx (ONNX Runtime, fp32), "
        "onnx-int8 (ONNX Runtime, int8 weights: 3.8-4.4x plain sentence-transformers' texts/s on 2 busy CPU "
        "cores, held-out RM accuracy within seed noise of torch's), or auto (onnx-int8 on a CPU, torch on a "
        "GPU). The ONNX copy is exported once per model, into `onnx/` beside the embedding cache; vectors of "
        "different backends are cached apart."))

    # the features
    features: tuple[str, ...] = field(default=("response", "product", "length"), metadata=_help(
        "feature blocks per (prompt, response), see `core/reward/features.py`."))
    standardize: bool = field(default=True, metadata=_help(
        "scale each feature to unit variance (over the training rows) so one L2 coefficient suits every "
        "block."))

    # the heads
    head: str = field(default="linear", metadata=_help(
        "head architecture: linear (r = w.x) or mlp (linear plus a one-hidden-layer GELU MLP)."))
    hidden_size: int = field(default=64, metadata=_help("MLP width of the mlp head."))
    n_ensemble: int = field(default=5, metadata=_help(
        "Bradley-Terry heads trained on bootstrap resamples (their spread is evidence; the model's margin is "
        "their mean). 1 trains one head on the data as given."))
    bootstrap: bool = field(default=True, metadata=_help(
        "resample per head (Poisson(1) counts); false trains every head on the same data (only the MLP's "
        "random init then differs)."))
    optimizer: str = field(default="lbfgs", metadata=_help(
        "lbfgs (full batch, deterministic; best for the convex linear head) or adam (full batch)."))
    epochs: int = field(default=100, metadata=_help("optimiser steps over the full batch (L-BFGS iterations)."))
    lr: float = field(default=1.0, metadata=_help("step size (L-BFGS: initial step scale, 1.0 is right)."))
    weight_decay: float = field(default=0.05, metadata=_help(
        "L2 coefficient, relative to the weighted mean log-loss; used as given when tune_weight_decay is "
        "off."))
    tune_weight_decay: bool = field(default=True, metadata=_help(
        "choose the L2 coefficient from weight_decay_grid by cv_folds-fold cross-validated log-loss of a "
        "linear head on the training pairs (the best value differs a lot between datasets; a few seconds "
        "per fit on 10k pairs)."))
    weight_decay_grid: tuple[float, ...] = field(default=(0.03, 0.1, 0.3, 1.0, 3.0, 10.0), metadata=_help(
        "the L2 coefficients tune_weight_decay chooses from."))
    cv_folds: int = field(default=3, metadata=_help("cross-validation folds of tune_weight_decay."))
    mlp_weight_decay: float | None = field(default=None, metadata=_help(
        "L2 coefficient of the MLP weights (None: the same as the linear part)."))
    label_smoothing: float = field(default=0.0, metadata=_help(
        "epsilon of label smoothing; >0 hedges against noisy (LLM) labels."))
    seed: int = field(default=0, metadata=_help(
        "fixes bootstrap draws and MLP initialisation: same data and seed, same model."))

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
