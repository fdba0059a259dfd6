"""The small JSON file that says which kind of reward model a saved directory holds.

Every reward model writes ``reward_model.json`` with at least ``kind`` and ``format``, so
:func:`rlthf_backend.core.reward.load_reward_model` can pick the class without guessing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MANIFEST = "reward_model.json"
FORMAT = 1


def write_manifest(directory: Path, kind: str, payload: dict[str, Any]) -> None:
    """Write ``{"kind", "format", **payload}`` to ``directory/reward_model.json``."""
    data = {"kind": kind, "format": FORMAT, **payload}
    (Path(directory) / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def read_manifest(directory: Path, expected_kind: str | None = None) -> dict[str, Any]:
    """The manifest of a saved model; raises if absent, newer than we read, or of another kind."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not a saved reward model directory")
    data = json.loads(path.read_text(encoding="utf-8"))
    if int(data.get("format", 0)) > FORMAT:
        raise ValueError(f"{path} has format {data.get('format')}; this version reads up to {FORMAT}")
    if expected_kind is not None and data.get("kind") != expected_kind:
        raise ValueError(f"{path} holds a {data.get('kind')!r} reward model, not {expected_kind!r}")
    return data
