"""The README and docs/ stay honest: the settings reference is the generated one, the two commands
exist, and every relative link (file and heading) leads somewhere."""

import re
from pathlib import Path

import pytest

from rlthf_backend.app.settings import Settings
from rlthf_backend.app.settings_reference import COMMAND, env_name, settings_reference

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_the_configuration_reference_is_the_generated_one():
    generated = settings_reference()
    assert (ROOT / "docs" / "configuration.md").read_text() == generated, (
        f"docs/configuration.md differs from the settings: regenerate it with `{COMMAND}`")
    for name, field in Settings.model_fields.items():
        assert field.description, f"{name} has no description"
        assert f"| `{env_name(name, field)}` |" in generated, name
    assert str(Path.home()) not in generated and "`~/.cache/rlthf-backend`" in generated
    assert "| `RLTHF_DATABASE_URL` | unset |" in generated and "| `HF_TOKEN` | unset |" in generated


def test_readme_commands_are_make_targets_and_ci_runs_the_test_command():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), re.M))
    assert {"run", "test"} <= targets
    assert "make run" in README and "make test" in README
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but '-' and '_' dropped, spaces to '-'."""
    headings = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", text, flags=re.S), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_relative_links_lead_somewhere(page):
    text = page.read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if anchor:
            assert anchor in _anchors(linked.read_text()), f"{page.name}: no heading for #{anchor} in {linked.name}"
