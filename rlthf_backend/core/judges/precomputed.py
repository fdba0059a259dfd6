"""A "judge" that reads verdicts already stored with each pair (no model is run).

For projects whose tasks were pre-labelled elsewhere (a batch job, another tool, a dataset that
ships LLM labels), the Label Studio task data carries:

- ``llm_label``: the judge's verdict, ``a``, ``b`` or ``tie`` (required);
- ``llm_label_swapped``: the verdict with the responses shown in swapped order, already mapped
  back to a/b (optional);
- ``llm_prob``: the judge's probability of ``llm_label``, in [0, 1] (optional);
- ``llm_model``: the judge's name, recorded as ``Judgment.model`` (optional);
- ``llm_labels``: verdicts of several judges, ``{judge name: {"ab": v, "ba": v}}`` with v one
  of a / b / tie / null (``ab``: responses shown in (a, b) order; ``ba``: swapped, mapped back),
  the shape of datasets that ship several judges' verdicts. It makes a judge panel: without
  ``llm_label`` the first entry is the primary judge; with it, ``llm_label`` (and
  ``llm_label_swapped``) is the primary and every entry another member.

``llm_label`` (or the primary entry's verdict) is taken as the label. Without ``llm_prob`` its
probability is the share of the
stored verdicts that agree with it (1.0 when alone or confirmed, 0.5 when the swapped verdict
disagrees), matching what the live judges report without token probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.judges.panel import LabelRule, combine_panel
from rlthf_backend.core.types import LABELS, JudgeStatus, Judgment, Label, MemberVerdict, Pair

FIELD_LABEL = "llm_label"
FIELD_SWAPPED = "llm_label_swapped"
FIELD_PROB = "llm_prob"
FIELD_MODEL = "llm_model"
FIELD_PANEL = "llm_labels"


class BadField(ValueError):
    """A stored field is missing or has a value we cannot use."""


def _label(data: Mapping[str, Any], name: str, required: bool) -> Label | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise BadField(f"missing field {name!r} in the task data")
        return None
    label = value.strip().lower() if isinstance(value, str) else value
    if label not in LABELS:
        raise BadField(f"field {name!r} must be one of a, b, tie; got {value!r}")
    return label


def _prob(data: Mapping[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    # bool is an int subclass; True as a probability is a data error, not 1.0.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadField(f"field {name!r} must be a number in [0, 1]; got {value!r}")
    try:
        prob = float(value)
    except ValueError:
        raise BadField(f"field {name!r} must be a number in [0, 1]; got {value!r}") from None
    if math.isnan(prob) or not 0.0 <= prob <= 1.0:
        raise BadField(f"field {name!r} must be a number in [0, 1]; got {value!r}")
    return prob


def _panel(data: Mapping[str, Any]) -> list[MemberVerdict]:
    """The ``llm_labels`` entries as member verdicts, in their stored order ([] when absent)."""
    value = data.get(FIELD_PANEL)
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise BadField(f"field {FIELD_PANEL!r} must map judge names to {{\"ab\": ..., \"ba\": ...}}; got {value!r:.80}")
    members = []
    for name, verdicts in value.items():
        if not isinstance(verdicts, Mapping):
            raise BadField(f"field {FIELD_PANEL!r}: judge {name!r} must map ab/ba to a verdict; got {verdicts!r:.80}")
        members.append(MemberVerdict(str(name), _label(verdicts, "ab", required=False),
                                     _label(verdicts, "ba", required=False)))
    return members


class PrecomputedJudge(Judge):
    """Turns the stored ``llm_*`` fields of each pair's source record into judgments."""

    kind = "precomputed"
    cacheable = False  # reading the task data is cheaper than the cache, and the data may change

    def __init__(self, label_rule: LabelRule = "primary"):
        self.label_rule = label_rule

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.kind, "label_rule": self.label_rule,
                "fields": [FIELD_LABEL, FIELD_SWAPPED, FIELD_PROB, FIELD_PANEL]}

    def judge_many(self, pairs: Sequence[Pair]) -> list[Judgment]:
        return [self._read(pair.extra or {}) for pair in pairs]

    def _read(self, data: Mapping[str, Any]) -> Judgment:
        try:
            members = _panel(data)
        except BadField as exc:
            return Judgment.failure(self.kind, str(exc))
        if not members:
            return self._read_single(data)
        if data.get(FIELD_LABEL) is not None:
            primary = self._read_single(data)
            members = [MemberVerdict(primary.model, primary.verdict_ab, primary.verdict_ba), *members]
        else:
            first = members[0]
            primary = self._read_single({FIELD_LABEL: first.verdict_ab or first.verdict_ba,
                                         FIELD_SWAPPED: first.verdict_ba if first.verdict_ab else None,
                                         FIELD_MODEL: first.model})
        if len(members) < 2:
            return primary
        return combine_panel(primary, members, self.label_rule)

    def _read_single(self, data: Mapping[str, Any]) -> Judgment:
        model = data.get(FIELD_MODEL)
        model = model if isinstance(model, str) and model else self.kind
        try:
            label = _label(data, FIELD_LABEL, required=True)
            swapped = _label(data, FIELD_SWAPPED, required=False)
            prob = _prob(data, FIELD_PROB)
        except BadField as exc:
            return Judgment.failure(model, str(exc))
        assert label is not None
        if prob is None:
            verdicts = [label] if swapped is None else [label, swapped]
            prob = verdicts.count(label) / len(verdicts)
        prob_a = prob if label == "a" else 1.0 - prob if label == "b" else 0.5
        return Judgment(
            label=label,
            prob=prob,
            status=JudgeStatus.OK,
            model=model,
            verdict_ab=label,
            verdict_ba=swapped,
            prob_a=prob_a,
            extra={"source": "task_data"},
        )
