"""The settings reference, docs/configuration.md, rendered from :class:`Settings` alone.

A hand-kept table drifts from the code; this one is regenerated, and a unit test fails while the
file differs from what this module renders::

    python -m rlthf_backend.app.settings_reference > docs/configuration.md
"""

from __future__ import annotations

import json
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import SecretStr
from pydantic.fields import FieldInfo

from rlthf_backend.app.settings import Settings

COMMAND = "python -m rlthf_backend.app.settings_reference > docs/configuration.md"

#: Sections of the reference, each with the setting names it holds: a name ending in "_" takes every
#: setting it begins (the longest match wins). A setting no section names lands in the last one.
SECTIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Label Studio and shared infrastructure", ("label_studio_", "basic_auth_", "redis_url")),
    ("Storage", ("data_dir", "model_dir", "database_url")),
    ("Judge", ("judge", "judge_", "judges", "openai_", "transformers_")),
    ("Curation engine", ("strategy", "human_batch_fraction", "round_every_n_labels", "max_rm_pairs",
                         "queue_score_tolerance", "queue_max_updates", "seed")),
    ("Curation engine: the fused strategy", ("fused_",)),
    ("Curation engine: the adaptive strategy", ("adaptive_",)),
    ("Curation engine: the paper's strategy", ("paper_",)),
    ("Reward model", ("reward_model", "keep_versions", "rm_", "trl_")),
    ("Jobs", ("queue_name", "job_", "debounce_")),
    ("Export", ("hf_token",)),
    ("Server", ("log_level", "model_title")),
    ("Limits and refusals", ("max_request_mb", "openai_max_tokens", "max_queued_trainings")),
    ("Other", ()),
)

INTRO = """\
Every setting is an environment variable (or a line of a `.env` file in the working directory).
All have the prefix `RLTHF_` except the Label Studio conventions that other ML backends share.
Lists and mappings are written as JSON (`RLTHF_PAPER_ALPHA_SCHEDULE=[4, 2, 1]`), booleans as
`true` / `false`. A value that cannot work stops every command at start, naming the setting.
The curation engine's and the reward model's settings are also flags of `rlthf-backend simulate`
(`--fused-audit-fraction 0.1`). How to deploy with them: [deploying.md](deploying.md).
"""


def env_name(name: str, field: FieldInfo) -> str:
    if field.validation_alias is not None:
        return field.validation_alias.choices[0]  # type: ignore[union-attr]
    return f"{Settings.model_config.get('env_prefix', '')}{name}".upper()


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def render_default(field: FieldInfo) -> str:
    """The default as one would write it in the environment; never a secret or this machine's home."""
    if _is_secret(field.annotation):
        return "unset"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        home = Path.home()
        value = f"~/{value.relative_to(home)}" if value.is_relative_to(home) else str(value)
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, (tuple, list, dict)):
        value = json.dumps(value)
    return f"`{value}`" if str(value) else '`""`'


def render_values(field: FieldInfo) -> str:
    """Allowed values: a Literal's choices and the numeric bounds."""
    annotation = field.annotation
    if typing.get_origin(annotation) is typing.Literal:
        return ", ".join(f"`{choice}`" for choice in typing.get_args(annotation))
    bounds = {Gt: ("gt", ">"), Ge: ("ge", ">="), Lt: ("lt", "<"), Le: ("le", "<=")}
    return ", ".join(f"{bounds[type(m)][1]} {getattr(m, bounds[type(m)][0])}"
                     for m in field.metadata if type(m) in bounds)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _section_of(name: str) -> tuple[int, int]:
    """(section index, position of the matching pattern): the longest matching pattern wins."""
    best: tuple[int, int, int] | None = None  # (length, section, position)
    for s, (_, patterns) in enumerate(SECTIONS):
        for p, pattern in enumerate(patterns):
            if name == pattern or (pattern.endswith("_") and name.startswith(pattern)):
                if best is None or len(pattern) > best[0]:
                    best = (len(pattern), s, p)
    return (best[1], best[2]) if best else (len(SECTIONS) - 1, 0)


def settings_reference() -> str:
    """docs/configuration.md: every setting by section, with its variable, default and description."""
    fields = list(Settings.model_fields.items())
    order = {name: i for i, (name, _) in enumerate(fields)}
    by_section: dict[int, list[tuple[str, FieldInfo]]] = {}
    for name, field in sorted(fields, key=lambda item: (*_section_of(item[0]), order[item[0]])):
        by_section.setdefault(_section_of(name)[0], []).append((name, field))
    out = ["# Configuration", "",
           f"<!-- Generated from rlthf_backend/app/settings.py; do not edit. Regenerate: {COMMAND} -->", "",
           INTRO]
    for s, (title, _) in enumerate(SECTIONS):
        if s not in by_section:
            continue
        out += [f"## {title}", "", "| variable | default | values | what it does |", "|---|---|---|---|"]
        for name, field in by_section[s]:
            out.append(f"| `{env_name(name, field)}` | {render_default(field)} | {_cell(render_values(field))} "
                       f"| {_cell(field.description or '')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(settings_reference(), end="")
