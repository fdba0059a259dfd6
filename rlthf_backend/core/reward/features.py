"""Feature vectors of (prompt, response) built from frozen sentence embeddings.

A feature vector is a concatenation of named blocks, chosen in the config:

- ``response``: e(response).
- ``product``: e(prompt) * e(response) elementwise. With unit-norm embeddings its sum is the
  cosine similarity, so a linear head can learn a weighted relevance-to-the-prompt score.
- ``difference``: e(response) - e(prompt). Under a linear head the prompt part cancels in
  r(a) - r(b), so this block only adds something to an MLP head.
- ``prompt``: e(prompt). Cancels in a linear margin too; lets an MLP condition on the prompt.
- ``length``: log-lengths of the response (characters, words, lines) and its length relative
  to the prompt. Length is a strong, cheap signal in most preference data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FEATURE_BLOCKS = ("response", "product", "difference", "prompt", "length")
N_LENGTH_FEATURES = 4


def length_features(prompt: str, response: str) -> list[float]:
    """log1p of response characters, words and lines, and log response/prompt character ratio."""
    n_chars = len(response)
    return [
        math.log1p(n_chars),
        math.log1p(len(response.split())),
        math.log1p(response.count("\n")),
        math.log1p(n_chars) - math.log1p(len(prompt)),
    ]


def block_dim(block: str, emb_dim: int) -> int:
    return N_LENGTH_FEATURES if block == "length" else emb_dim


def build_features(
    blocks: Sequence[str],
    prompt_emb: np.ndarray,
    response_emb: np.ndarray,
    prompts: Sequence[str],
    responses: Sequence[str],
) -> np.ndarray:
    """Feature rows (n, d) for n (prompt, response) pairs given their embeddings (n, emb_dim)."""
    unknown = [b for b in blocks if b not in FEATURE_BLOCKS]
    if unknown:
        raise ValueError(f"unknown feature blocks {unknown}; expected some of {FEATURE_BLOCKS}")
    parts: list[np.ndarray] = []
    for block in blocks:
        if block == "response":
            parts.append(response_emb)
        elif block == "product":
            parts.append(prompt_emb * response_emb)
        elif block == "difference":
            parts.append(response_emb - prompt_emb)
        elif block == "prompt":
            parts.append(prompt_emb)
        else:
            parts.append(
                np.array([length_features(p, r) for p, r in zip(prompts, responses)], dtype=np.float32)
                .reshape(len(responses), N_LENGTH_FEATURES)
            )
    return np.concatenate(parts, axis=1).astype(np.float32, copy=False)
