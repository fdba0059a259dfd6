"""A "judge" that reads verdicts already stored with each pair (no model is run).

For projects whose tasks were pre-labelled elsewhere (a batch job, another tool, a dataset that
ships LLM labels), the Label Studio task data carries:

- ``llm_label``: the judge's verdict, ``a``, ``b`` or ``tie`` (required);
- ``llm_label_swapped``: the verdict with the responses shown in swapped order, already mapped
  back to a/b (optional);
- ``llm_prob``: the judge's probability of ``llm_label``, in [0, 1] (optional);
- ``llm_model``: the judge's name, recorded as ``Judgment.model`` (optional).

``llm_label`` is taken as the label. Without ``llm_prob`` its probability is the share of the
stored verdicts that agree with it (1.0 when alone or confirmed, 0.5 when the swapped verdict
disagrees), matching what the live judges report without token probabilities.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.types import LABELS, JudgeStatus, Judgment, Label, Pair

FIELD_LABEL = "llm_label"
FIELD_SWAPPED = "llm_label_swapped"
FIELD_PROB = "llm_prob"
FIELD_MODEL = "llm_model"


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


class PrecomputedJudge(Judge):
    """Turns the stored ``llm_*`` fields of each pair's source record into judgments."""

    kind = "precomputed"
    cacheable = False  # reading the task data is cheaper than the cache, and the data may change

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.kind, "fields": [FIELD_LABEL, FIELD_SWAPPED, FIELD_PROB]}

    def judge_many(self, pairs: Sequence[Pair]) -> list[Judgment]:
        return [self._read(pair.extra or {}) for pair in pairs]

    def _read(self, data: Mapping[str, Any]) -> Judgment:
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
