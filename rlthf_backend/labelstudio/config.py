"""Reading a project's label config: where the prompt and the two responses are, and which control
holds the preference.

Two shapes are supported (see ``label_config/``):

* ``<Pairwise name=... toName="answer1,answer2"/>``: the two ``toName`` texts are response A (left)
  and B (right); the remaining ``<Text>`` is the prompt. Results look like
  ``{"type": "pairwise", "value": {"selected": "left" | "right"}}``; there is no tie.
* ``<Choices name=... toName="prompt">`` whose choices are A / B and optionally Tie (matched on the
  choice's ``alias`` or ``value``, case-insensitively); its ``toName`` is the prompt and the other
  two ``<Text>`` tags, in document order, are A and B. An optional ``<Rating>`` is ignored.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rlthf_backend.core.types import Label

#: The shipped configs (``label_config/`` at the top of the repo links here).
CONFIG_DIR = Path(__file__).resolve().parent / "label_configs"

ConfigKind = Literal["pairwise", "choices"]

# Choice texts accepted for each side (lower-cased). Kept small on purpose: a config whose choices
# mean something else must fail loudly rather than be guessed at.
_CHOICE_SYNONYMS: dict[Label, frozenset[str]] = {
    "a": frozenset({"a", "response a", "answer a", "left", "1"}),
    "b": frozenset({"b", "response b", "answer b", "right", "2"}),
    "tie": frozenset({"tie", "equal", "same", "both", "neither"}),
}
_PROMPT_NAMES = ("prompt", "question", "instruction", "input", "context")


class LabelConfigError(ValueError):
    """The project's label config is not a pairwise config this backend supports."""


@dataclass(frozen=True)
class PairwiseConfig:
    """Where a pairwise project keeps its texts and its preference control."""

    kind: ConfigKind
    control_name: str  # from_name of results
    control_to_name: str  # to_name of results
    prompt_field: str  # task.data keys
    response_a_field: str
    response_b_field: str
    #: For Choices: the choice value Label Studio stores for each label. Empty for Pairwise.
    choice_values: dict[Label, str] = field(default_factory=dict)

    @property
    def supports_tie(self) -> bool:
        return "tie" in self.choice_values

    @property
    def fields(self) -> tuple[str, str, str]:
        return (self.prompt_field, self.response_a_field, self.response_b_field)


def parse_label_config(xml: object) -> PairwiseConfig:
    """Find the prompt, the two responses and the preference control in a label config.

    Raises :class:`LabelConfigError` naming exactly what is missing or ambiguous.
    """
    if xml is not None and not isinstance(xml, str):
        raise LabelConfigError(f"the label config must be XML text, got {type(xml).__name__}")
    if not xml or not xml.strip():
        raise LabelConfigError("the label config is empty")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LabelConfigError(f"the label config is not valid XML: {exc}") from exc

    texts = _text_tags(root)
    pairwise = root.findall(".//Pairwise")
    if pairwise:
        return _parse_pairwise(pairwise[0], texts)
    for choices in root.findall(".//Choices"):
        values = _choice_labels(choices)
        if "a" in values and "b" in values:
            return _parse_choices(choices, values, texts)
    raise LabelConfigError(
        "no preference control found: add <Pairwise name=... toName=\"answer1,answer2\"/> or "
        "<Choices> with choices A and B (and optionally Tie); see label_config/ for both"
    )


def _text_tags(root: ET.Element) -> dict[str, str]:
    """Text tag name -> task data key (the ``$variable`` of its value), in document order."""
    texts: dict[str, str] = {}
    for tag in root.iter():
        if tag.tag not in ("Text", "HyperText"):
            continue
        name, value = tag.get("name"), tag.get("value", "")
        if not name:
            raise LabelConfigError(f"a <{tag.tag}> tag has no name attribute")
        if not value.startswith("$") or len(value) < 2:
            continue  # static text, not a task field
        texts[name] = value[1:]
    return texts


def _parse_pairwise(control: ET.Element, texts: dict[str, str]) -> PairwiseConfig:
    name = control.get("name")
    if not name:
        raise LabelConfigError("the <Pairwise> tag has no name attribute")
    targets = [t.strip() for t in (control.get("toName") or "").split(",") if t.strip()]
    if len(targets) != 2:
        raise LabelConfigError(
            f'<Pairwise name="{name}"> must have toName with two Text names, e.g. toName="answer1,answer2"; '
            f"got {control.get('toName')!r}"
        )
    for target in targets:
        if target not in texts:
            raise LabelConfigError(
                f'<Pairwise name="{name}"> points at "{target}", which is not a <Text> with a $field value'
            )
    prompt_tag = _pick_prompt([t for t in texts if t not in targets], texts)
    return PairwiseConfig(
        kind="pairwise",
        control_name=name,
        control_to_name=name,  # Label Studio stores pairwise results with to_name == from_name
        prompt_field=texts[prompt_tag],
        response_a_field=texts[targets[0]],
        response_b_field=texts[targets[1]],
    )


def _parse_choices(control: ET.Element, values: dict[Label, str], texts: dict[str, str]) -> PairwiseConfig:
    name = control.get("name")
    if not name:
        raise LabelConfigError("the <Choices> tag with choices A/B has no name attribute")
    to_name = (control.get("toName") or "").split(",")[0].strip()
    if to_name not in texts:
        raise LabelConfigError(
            f'<Choices name="{name}"> must point (toName) at the prompt <Text>; got {to_name!r}'
        )
    responses = [t for t in texts if t != to_name]
    if len(responses) != 2:
        raise LabelConfigError(
            f'<Choices name="{name}"> needs exactly two response <Text> tags besides the prompt '
            f'"{to_name}"; found {len(responses)}: {responses}'
        )
    return PairwiseConfig(
        kind="choices",
        control_name=name,
        control_to_name=to_name,
        prompt_field=texts[to_name],
        response_a_field=texts[responses[0]],
        response_b_field=texts[responses[1]],
        choice_values=values,
    )


def _choice_labels(choices: ET.Element) -> dict[Label, str]:
    """Label -> the stored choice value, for the choices that mean A, B or tie."""
    found: dict[Label, str] = {}
    for choice in choices.findall("Choice"):
        value = choice.get("value")
        if value is None:
            continue
        keys = {value.strip().lower(), (choice.get("alias") or "").strip().lower()}
        for label, synonyms in _CHOICE_SYNONYMS.items():
            if keys & synonyms and label not in found:
                # Label Studio stores the alias when one is given, else the value.
                found[label] = choice.get("alias") or value
    return found


def _pick_prompt(candidates: list[str], texts: dict[str, str]) -> str:
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise LabelConfigError(
            "no prompt found: add a <Text name=\"prompt\" value=\"$prompt\"/> besides the two responses"
        )
    for preferred in _PROMPT_NAMES:
        for tag in candidates:
            if preferred in (tag.lower(), texts[tag].lower()):
                return tag
    raise LabelConfigError(
        f"several <Text> tags could be the prompt ({candidates}); name one of them 'prompt'"
    )


def shipped_config(name: str) -> str:
    """The XML of a shipped config: ``"pairwise"`` or ``"choices"``."""
    return (CONFIG_DIR / f"{name}.xml").read_text(encoding="utf-8")
