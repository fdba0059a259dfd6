"""A sentence-transformers model run on ONNX Runtime: tokenizer, exported transformer, pooling.

Only the transformer runs in ONNX Runtime (see :mod:`.onnx_export`); the tokenizer is the
checkpoint's own and pooling / normalisation follow the checkpoint's sentence-transformers
modules, so vectors match the torch path's up to the export's rounding (fp32) or quantisation
(int8). Models whose module stack is anything but Transformer, Pooling (mean, cls or max) and an
optional Normalize are refused with :class:`UnsupportedForOnnx`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_SUPPORTED_STACKS = (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"])
_LEGACY_POOLING_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                        "pooling_mode_mean_tokens": "mean"}


class UnsupportedForOnnx(ValueError):
    """The model cannot run on the ONNX backends (the torch backend still can)."""


@dataclass(frozen=True)
class SentenceLayout:
    """What the ONNX path needs from a sentence-transformers folder's ``modules.json``."""

    transformer_dir: Path
    pooling: str
    normalize: bool
    lowercase: bool


def read_layout(location: Path | str) -> SentenceLayout:
    """The module stack of the sentence-transformers folder at ``location``."""
    folder = Path(location)
    if not folder.is_dir():
        raise UnsupportedForOnnx(f"the ONNX backends need a local model folder; {location!r} is not one")
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]  # the class name, whatever its module path
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UnsupportedForOnnx(f"{folder} has no readable sentence-transformers modules.json ({exc})") from None
    if kinds not in _SUPPORTED_STACKS:
        names = ", ".join(kinds)
        raise UnsupportedForOnnx(f"{folder} is {names}; the ONNX backends run Transformer, Pooling and an "
                                 "optional Normalize only (use the torch backend)")
    transformer_dir = folder / modules[0].get("path", "")
    pooling_config = json.loads((folder / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    mode = pooling_config.get("pooling_mode")
    if mode is None:
        modes = [m for k, m in _LEGACY_POOLING_KEYS.items() if pooling_config.get(k)]
        other = [k for k in pooling_config if k.startswith("pooling_mode_") and pooling_config[k]
                 and k not in _LEGACY_POOLING_KEYS]
        mode = modes[0] if len(modes) == 1 and not other else "+".join(modes + other) or "mean"
    if mode not in ("mean", "cls", "max"):
        raise UnsupportedForOnnx(f"{folder} pools by {mode!r}; the ONNX backends pool by mean, cls or max "
                                 "(use the torch backend)")
    lowercase = False
    bert_config = transformer_dir / "sentence_bert_config.json"
    if bert_config.is_file():
        lowercase = bool(json.loads(bert_config.read_text(encoding="utf-8")).get("do_lower_case", False))
    return SentenceLayout(transformer_dir, mode, len(kinds) == 3, lowercase)


class OnnxSentenceEncoder:
    """Embeds texts with an exported transformer in an ONNX Runtime session.

    Args:
        onnx_file: the exported transformer (last hidden state out).
        layout: the checkpoint's tokenizer folder, pooling and normalisation.
        input_names: the graph's inputs, tokenizer outputs by name.
        max_seq_length: tokens kept per text.
        num_threads: ONNX Runtime intra-op threads; None for its default (one per physical core).
        providers: ONNX Runtime execution providers, in order of preference.
    """

    def __init__(
        self,
        onnx_file: Path,
        layout: SentenceLayout,
        input_names: Sequence[str],
        max_seq_length: int,
        num_threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        options.inter_op_num_threads = 1
        # Threads that spin while waiting for work take cores from the other processes of a
        # shared machine; ours rarely wait long (one batch at a time).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(onnx_file), options, providers=list(providers))
        self.tokenizer = AutoTokenizer.from_pretrained(str(layout.transformer_dir), local_files_only=True)
        self.layout = layout
        self.input_names = tuple(input_names)
        self.max_seq_length = int(max_seq_length)
        self.dimension = int(self.session.get_outputs()[0].shape[-1])

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Vectors for ``texts``, (len(texts), dimension) float32, rows in input order."""
        if self.layout.lowercase:
            texts = [t.lower() for t in texts]
        ids = self.tokenizer(list(texts), truncation=True, max_length=self.max_seq_length,
                             padding=False, return_token_type_ids="token_type_ids" in self.input_names)
        lengths = np.array([len(x) for x in ids["input_ids"]])
        # Longest first, batched by token count: each batch pads to nearly its own length.
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            mask = np.arange(int(lengths[rows].max())) < lengths[rows, None]
            feeds = {}
            for name in self.input_names:
                arr = np.full(mask.shape, pad if name == "input_ids" else 0, dtype=np.int64)
                for i, r in enumerate(rows):
                    arr[i, : lengths[r]] = ids[name][r]
                feeds[name] = arr
            hidden = self.session.run(None, feeds)[0]
            out[rows] = self._pool(hidden, mask)
        return out

    def _pool(self, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
        mask = mask.astype(hidden.dtype)
        if self.layout.pooling == "cls":
            vec = hidden[:, 0]
        elif self.layout.pooling == "max":
            vec = np.where(mask[..., None] > 0, hidden, -1e9).max(axis=1)
        else:
            vec = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        if self.layout.normalize:
            vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
        return vec.astype(np.float32, copy=False)
