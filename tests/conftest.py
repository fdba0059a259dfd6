"""Suite-wide hygiene: every test is marked by its directory, and none sees the developer's setup.

- ``tests/unit/*`` get the ``unit`` marker and ``tests/integration/*`` the ``integration`` one,
  whatever the file declares, so ``-m "not integration"`` can never pick up a test that needs
  servers; a unit file that declares ``integration`` is an error (it belongs in the other folder).
- The variables that configure the backend (``RLTHF_*``, ``LABEL_STUDIO_*``, ``BASIC_AUTH_*``,
  ``REDIS_URL``, the OpenAI and Hugging Face keys) are removed before any test module is imported,
  so neither tests nor the servers they start inherit them; ``Settings`` stops reading ``.env``.
  Tests that need a value pass it explicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ISOLATED_PREFIXES = ("RLTHF_", "LABEL_STUDIO_", "BASIC_AUTH_", "OPENAI_", "PROMETHEUS_MULTIPROC")
ISOLATED_NAMES = ("REDIS_URL", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")

for _name in [n for n in os.environ if n.startswith(ISOLATED_PREFIXES) or n in ISOLATED_NAMES]:
    del os.environ[_name]

from rlthf_backend.app import settings as _settings  # noqa: E402 - after the environment is clean

_settings.Settings.model_config["env_file"] = None  # a developer's .env must not change what tests see


@pytest.fixture(autouse=True)
def _fresh_settings():
    """``get_settings`` caches per process; a test never sees another test's settings."""
    _settings.get_settings.cache_clear()
    yield
    _settings.get_settings.cache_clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            folder = Path(str(item.fspath)).resolve().relative_to(TESTS).parts[0]
        except ValueError:
            continue
        if folder == "integration":
            item.add_marker(pytest.mark.integration)
        elif folder == "unit":
            if item.get_closest_marker("integration") is not None:
                raise pytest.UsageError(f"{item.nodeid} is marked integration: move it to tests/integration")
            item.add_marker(pytest.mark.unit)
