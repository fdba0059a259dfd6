"""The README stays honest: every setting documented, the two commands exist."""

import re
from pathlib import Path

from rlthf_backend.app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table():
    for name, field in Settings.model_fields.items():
        env = field.validation_alias.choices[0] if field.validation_alias else f"RLTHF_{name.upper()}"
        assert f"| `{env}` |" in README, f"{env} is not documented in README.md"
        assert field.description, f"{name} has no description"


def test_readme_commands_are_make_targets_and_ci_runs_the_test_command():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    assert {"run", "test"} <= targets
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()
