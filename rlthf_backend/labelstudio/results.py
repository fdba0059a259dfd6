"""Translating between judgments / labels and Label Studio result JSON, for both config shapes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlthf_backend.core.types import Judgment, Label
from rlthf_backend.labelstudio.config import PairwiseConfig

_SIDE_OF_LABEL = {"a": "left", "b": "right"}
_LABEL_OF_SIDE = {"left": "a", "right": "b"}


def result_for_label(config: PairwiseConfig, label: Label) -> list[dict[str, Any]]:
    """The ``result`` list that shows ``label`` in this project's control.

    Pairwise has no tie: callers decide which side to show first (see :func:`shown_label`).
    """
    if config.kind == "pairwise":
        if label not in _SIDE_OF_LABEL:
            raise ValueError(f"a Pairwise control cannot show {label!r}")
        value: dict[str, Any] = {"selected": _SIDE_OF_LABEL[label]}
        kind = "pairwise"
    else:
        if label not in config.choice_values:
            raise ValueError(f"the Choices control '{config.control_name}' has no choice for {label!r}")
        value = {"choices": [config.choice_values[label]]}
        kind = "choices"
    return [{"from_name": config.control_name, "to_name": config.control_to_name, "type": kind, "value": value}]


def shown_label(config: PairwiseConfig, judgment: Judgment) -> tuple[Label, float]:
    """The label a prediction shows for a judgment, and the judge's probability for it.

    A tie on a control without a tie choice shows the side the judge leaned to in the first order
    (or A), with probability 0.5: the score then says "no preference" honestly.
    """
    assert judgment.label is not None
    prob = judgment.prob if judgment.prob is not None else 0.5
    if judgment.label == "tie" and not config.supports_tie:
        side = judgment.verdict_ab if judgment.verdict_ab in ("a", "b") else "a"
        return side, 0.5
    return judgment.label, prob


def label_from_result(config: PairwiseConfig, result: Sequence[dict[str, Any]]) -> Label | None:
    """The preference stored in an annotation's or prediction's result, or None if it holds none."""
    for item in result or ():
        if item.get("from_name") != config.control_name:
            continue
        value = item.get("value") or {}
        if config.kind == "pairwise":
            label = _LABEL_OF_SIDE.get(value.get("selected"))
            if label:
                return label  # type: ignore[return-value]
        else:
            for choice in value.get("choices") or ():
                for label, stored in config.choice_values.items():
                    if choice == stored:
                        return label
    return None
