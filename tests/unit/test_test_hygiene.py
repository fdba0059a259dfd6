"""tests/conftest.py: markers by directory and isolation from the developer's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from rlthf_backend.app.settings import Settings, get_settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_backend_variables_of_the_developer_are_gone():
    leaked = [n for n in os.environ if n.startswith(("RLTHF_", "LABEL_STUDIO_", "BASIC_AUTH_"))
              or n in ("REDIS_URL", "HF_TOKEN", "OPENAI_API_KEY")]
    assert leaked == []


def test_a_dotenv_in_the_working_directory_is_not_read(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("RLTHF_JUDGE=openai\nBASIC_AUTH_USER=someone\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().judge == "transformers" and not Settings().auth_enabled
    assert get_settings().judge == "transformers"


def _collected(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    return done.stdout + done.stderr


def test_integration_tests_never_join_the_unit_run():
    # A file in tests/integration with no marker of its own (this suite's
    # test_active_loop_under_faults.py declares one; the directory decides anyway): "not integration"
    # selects nothing there.
    out = _collected("-m", "not integration", "tests/integration/test_server_under_gunicorn.py")
    assert "no tests collected" in out or " 0 selected" in out or "deselected" in out, out[-1000:]
    assert "::test_" not in out, out[-1000:]
    unit = _collected("-m", "unit", "tests/unit/test_test_hygiene.py")
    assert "test_test_hygiene.py::test_the_backend_variables_of_the_developer_are_gone" in unit


def test_settings_the_developer_exported_do_not_reach_a_test_run():
    # The first test of this file, run with a developer's variables set (half-set auth included,
    # which Settings would refuse): it sees none of them.
    env = {**os.environ, "RLTHF_JUDGE": "openai", "BASIC_AUTH_USER": "me", "REDIS_URL": "redis://nowhere:1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"{Path(__file__).relative_to(ROOT)}::test_the_backend_variables_of_the_developer_are_gone",
                           f"{Path(__file__).relative_to(ROOT)}::test_a_dotenv_in_the_working_directory_is_not_read"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert "2 passed" in done.stdout, done.stdout[-2000:]
