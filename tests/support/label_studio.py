"""A real Label Studio 1.23.2 for the tests: the demo's launcher, with a fresh data folder.

The virtualenv is ``$RLTHF_TEST_LS_VENV`` or ``~/.cache/rlthf/ls-venv-1.23.2`` (created on first use).
"""

from __future__ import annotations

import os
from pathlib import Path

from rlthf_backend.demo.label_studio import (
    LabelStudioServer,
    default_venv,
    ensure_label_studio_installed,
)
from rlthf_backend.demo.label_studio import start_label_studio as _start


def ls_venv_path() -> Path:
    return Path(os.environ.get("RLTHF_TEST_LS_VENV", default_venv()))


def start_label_studio(data_dir: Path) -> LabelStudioServer:
    return _start(data_dir, username="tester@example.com", venv=ls_venv_path())


__all__ = ["LabelStudioServer", "ensure_label_studio_installed", "ls_venv_path", "start_label_studio"]
