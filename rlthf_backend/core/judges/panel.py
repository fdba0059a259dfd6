"""A judge panel: several judges asked about every pair, one label out.

Judges that disagree with each other point at pairs worth a person's time, much as one judge
that contradicts itself when the order is swapped does. A panel asks every member (each in both
orders when configured, each behind its own cache) and returns one judgment whose ``panel``
lists every member's verdicts, the primary first. The label is the primary's
(``label_rule="primary"``) or the majority of all members' a/b verdicts over both orders
(``"majority"``; a tied vote falls back to the primary).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.core.types import JudgeStatus, Judgment, MemberVerdict, Pair

LabelRule = Literal["primary", "majority"]
LABEL_RULES: tuple[str, ...] = ("primary", "majority")


def member_verdict(judgment: Judgment) -> MemberVerdict:
    """A member's verdicts as the panel records them (a failed judgment has none)."""
    if not judgment.ok:
        return MemberVerdict(judgment.model)
    return MemberVerdict(judgment.model, judgment.verdict_ab or judgment.label, judgment.verdict_ba)


def combine_panel(primary: Judgment, members: Sequence[MemberVerdict], label_rule: LabelRule = "primary") -> Judgment:
    """The panel's judgment: ``primary`` with the members' verdicts attached (``members[0]`` is
    the primary's) and, under ``"majority"``, the label and probability of the majority vote."""
    if label_rule not in LABEL_RULES:
        raise ValueError(f"unknown panel label rule {label_rule!r}; choose from {', '.join(LABEL_RULES)}")
    combined = dataclasses.replace(primary, panel=tuple(members))
    if label_rule == "primary":
        return combined
    votes = [v for m in members for v in m.decisive()]
    n_a, n_b = votes.count("a"), votes.count("b")
    if not votes or n_a == n_b:
        return combined
    label = "a" if n_a > n_b else "b"
    prob = max(n_a, n_b) / len(votes)
    return dataclasses.replace(combined, label=label, prob=prob, prob_a=n_a / len(votes), status=JudgeStatus.OK)


class JudgePanel(Judge):
    """Several judges, the first one primary (see the module docstring)."""

    kind = "panel"
    cacheable = False  # each member is cached on its own

    def __init__(self, members: Sequence[Judge], label_rule: LabelRule = "primary"):
        if len(members) < 2:
            raise ValueError("a judge panel needs at least two judges")
        if label_rule not in LABEL_RULES:
            raise ValueError(f"unknown panel label rule {label_rule!r}; choose from {', '.join(LABEL_RULES)}")
        self.members = list(members)
        self.label_rule = label_rule

    def config(self) -> dict[str, Any]:
        return {"kind": self.kind, "label_rule": self.label_rule, "members": [m.config() for m in self.members],
                "model": self.members[0].model_id}

    @property
    def model_id(self) -> str:
        return self.members[0].model_id

    def judge_many(self, pairs: Sequence[Pair]) -> list[Judgment]:
        answers = [member.judge_many(pairs) for member in self.members]
        return [
            combine_panel(answers[0][i], [member_verdict(a[i]) for a in answers], self.label_rule)
            for i in range(len(pairs))
        ]
