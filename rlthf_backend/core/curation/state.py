"""The pool a curation round works on: pairs, the judge's evidence, human labels so far.

Everything is a flat numpy array aligned with ``pairs`` (index i is pair i), so strategies are
pure functions over arrays. Human labels are coded as small integers (:data:`HUMAN_NONE`,
:data:`HUMAN_B`, :data:`HUMAN_A`, :data:`HUMAN_TIE`) so that "not labelled yet" and "a person said
tie" stay distinct.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Protocol

import numpy as np

from rlthf_backend.core.types import Judgment, Pair

HUMAN_NONE = -1  #: no human label yet
HUMAN_B = 0  #: a person preferred response b
HUMAN_A = 1  #: a person preferred response a
HUMAN_TIE = 2  #: a person saw no clear winner (such pairs leave the export and RM training)


class PlanOutcome(Protocol):
    """What :meth:`CurationState.after_plan` reads of a :class:`~.plan.RoundPlan`: typed by its
    shape, because plan.py builds on this module and must not be imported by it."""

    status: np.ndarray
    flipped: np.ndarray
    rm_excluded: np.ndarray


@dataclass(frozen=True)
class JudgeEvidence:
    """What the LLM judge said about every pair, as aligned arrays of shape (n,).

    ``llm_a_preferred``: the judge's label (True: a is better). Where the judge gave no usable
    preference (tie or parse failure) it still holds a placeholder so every pair has a label;
    ``tie`` / ``parse_failed`` then say it is not to be trusted.
    ``swap_known``: both presentation orders were asked and answered.
    ``swap_disagrees``: both were answered and gave different verdicts (position bias).
    ``prob``: the judge's probability for its own label; NaN where unknown.
    ``tie``: the judge called the pair a tie in at least one order.
    ``parse_failed``: at least one asked order gave no readable verdict.
    ``panel_disagreement``: share of the other panel judges' a/b verdicts that contradict the
    label (:meth:`Judgment.panel_disagreement`); NaN without a panel.
    """

    llm_a_preferred: np.ndarray
    swap_known: np.ndarray
    swap_disagrees: np.ndarray
    prob: np.ndarray
    tie: np.ndarray
    parse_failed: np.ndarray
    panel_disagreement: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.llm_a_preferred)
        if self.panel_disagreement is None:
            object.__setattr__(self, "panel_disagreement", np.full(n, np.nan))
        for name in ("swap_known", "swap_disagrees", "prob", "tie", "parse_failed", "panel_disagreement"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"JudgeEvidence.{name} has length {len(getattr(self, name))}, expected {n}")

    def __len__(self) -> int:
        return len(self.llm_a_preferred)

    def take(self, idx: Sequence[int] | np.ndarray) -> "JudgeEvidence":
        """The evidence of the pairs at ``idx``, in that order."""
        idx = np.asarray(idx, dtype=int)
        return JudgeEvidence(*(np.asarray(getattr(self, f.name))[idx] for f in fields(self)))

    @classmethod
    def from_arrays(
        cls,
        llm_a_preferred: Sequence[bool] | np.ndarray,
        llm_a_preferred_swapped: Sequence[float] | np.ndarray | None = None,
        prob: Sequence[float] | np.ndarray | None = None,
        tie: Sequence[bool] | np.ndarray | None = None,
        parse_failed: Sequence[bool] | np.ndarray | None = None,
        panel_disagreement: Sequence[float] | np.ndarray | None = None,
    ) -> "JudgeEvidence":
        """Build from plain arrays. ``llm_a_preferred_swapped`` is the swapped-order verdict
        (1.0 a, 0.0 b, NaN not asked / no verdict); omitted means not asked for any pair."""
        a = np.asarray(llm_a_preferred, dtype=bool)
        n = len(a)
        if llm_a_preferred_swapped is None:
            swapped = np.full(n, np.nan)
        else:
            swapped = np.asarray(llm_a_preferred_swapped, dtype=float)
        known = ~np.isnan(swapped)
        disagrees = known & (np.nan_to_num(swapped, nan=0.0).astype(bool) != a)
        return cls(
            llm_a_preferred=a,
            swap_known=known,
            swap_disagrees=disagrees,
            prob=np.full(n, np.nan) if prob is None else np.asarray(prob, dtype=float),
            tie=np.zeros(n, bool) if tie is None else np.asarray(tie, dtype=bool),
            parse_failed=np.zeros(n, bool) if parse_failed is None else np.asarray(parse_failed, dtype=bool),
            panel_disagreement=None if panel_disagreement is None else np.asarray(panel_disagreement, dtype=float),
        )

    @classmethod
    def from_judgments(cls, judgments: Sequence[Judgment | None], placeholder_seed: int = 0) -> "JudgeEvidence":
        """Build from stored :class:`Judgment` objects (None: the pair was never judged).

        A judgment without an a/b label gets a placeholder label drawn with ``placeholder_seed``
        and is flagged ``tie`` or ``parse_failed`` so strategies distrust it.
        """
        n = len(judgments)
        placeholder = np.random.default_rng(placeholder_seed).random(n) < 0.5
        a = placeholder.copy()
        known = np.zeros(n, bool)
        disagrees = np.zeros(n, bool)
        prob = np.full(n, np.nan)
        tie = np.zeros(n, bool)
        failed = np.zeros(n, bool)
        panel = np.full(n, np.nan)
        for i, j in enumerate(judgments):
            if j is None or not j.ok:
                failed[i] = True
                continue
            tie[i] = j.label == "tie" or "tie" in (j.verdict_ab, j.verdict_ba)
            if j.label in ("a", "b"):
                a[i] = j.label == "a"
                if j.prob is not None:
                    prob[i] = float(j.prob)
            elif j.prob_a is not None and j.prob_a != 0.5:
                a[i] = j.prob_a > 0.5
            if j.verdict_ab in ("a", "b") and j.verdict_ba in ("a", "b"):
                known[i] = True
                disagrees[i] = j.verdict_ab != j.verdict_ba
            share = j.panel_disagreement()
            if share is not None:
                panel[i] = share
        return cls(a, known, disagrees, prob, tie, failed, panel)


@dataclass(frozen=True)
class CurationState:
    """The pool at the start of a round.

    ``human``: per pair one of HUMAN_NONE / HUMAN_B / HUMAN_A / HUMAN_TIE.
    ``flipped``: the working label is the LLM label flipped (set by an earlier round's plan).
    ``rm_excluded``: an earlier round left the pair out of RM training (paper's middle region,
    fused strategy's dropped suspects); human-labelled pairs are always trained on.
    ``round_index``: 0 for the first round.
    ``audited``: the pair's human label was asked as part of a random audit slice (unbiased
    error estimates need to know which labels were random).
    ``ledger``: what the last round's plan left for this one (``RoundPlan.ledger``; pairs by pool
    index): the adaptive strategy's audit inclusion probabilities and ranking grades.
    """

    pairs: Sequence[Pair]
    evidence: JudgeEvidence
    human: np.ndarray
    flipped: np.ndarray
    rm_excluded: np.ndarray
    audited: np.ndarray
    round_index: int = 0
    extra: dict = field(default_factory=dict, compare=False)
    ledger: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        n = len(self.pairs)
        for name in ("human", "flipped", "rm_excluded", "audited"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"CurationState.{name} has length {len(getattr(self, name))}, expected {n}")
        if len(self.evidence) != n:
            raise ValueError(f"evidence covers {len(self.evidence)} pairs, the pool has {n}")

    @classmethod
    def initial(cls, pairs: Sequence[Pair], evidence: JudgeEvidence) -> "CurationState":
        """A pool nobody has looked at yet."""
        n = len(pairs)
        return cls(
            pairs=pairs,
            evidence=evidence,
            human=np.full(n, HUMAN_NONE, dtype=np.int8),
            flipped=np.zeros(n, bool),
            rm_excluded=np.zeros(n, bool),
            audited=np.zeros(n, bool),
        )

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def labelled(self) -> np.ndarray:
        """Pairs with any human answer (including tie)."""
        return self.human != HUMAN_NONE

    @property
    def human_decisive(self) -> np.ndarray:
        """Pairs where a person chose a or b."""
        return (self.human == HUMAN_A) | (self.human == HUMAN_B)

    @property
    def working_a_preferred(self) -> np.ndarray:
        """The current label of every pair: the human's where decisive, else the (possibly
        flipped) LLM label. Human ties keep the LLM label here; they are excluded elsewhere."""
        llm = self.evidence.llm_a_preferred ^ self.flipped
        return np.where(self.human_decisive, self.human == HUMAN_A, llm)

    def llm_wrong_where_known(self) -> np.ndarray:
        """1.0 where a person contradicted the LLM label, 0.0 where they agreed, NaN elsewhere
        (also NaN for human ties, which say nothing about a/b)."""
        out = np.full(len(self), np.nan)
        d = self.human_decisive
        out[d] = ((self.human[d] == HUMAN_A) != self.evidence.llm_a_preferred[d]).astype(float)
        return out

    def with_human_labels(
        self,
        indices: Sequence[int] | np.ndarray,
        labels: Sequence[int] | np.ndarray,
        audited: Sequence[bool] | np.ndarray | None = None,
    ) -> "CurationState":
        """A copy with people's answers recorded (labels: HUMAN_A / HUMAN_B / HUMAN_TIE)."""
        idx = np.asarray(indices, dtype=int)
        human = self.human.copy()
        human[idx] = np.asarray(labels, dtype=np.int8)
        aud = self.audited.copy()
        if audited is not None:
            aud[idx] = np.asarray(audited, dtype=bool)
        return replace(self, human=human, audited=aud)

    def after_plan(self, plan: PlanOutcome) -> "CurationState":
        """The state the next round starts from: the plan's flips and RM exclusions carried
        over, the round counter advanced. Human answers are added with :meth:`with_human_labels`."""
        if len(plan.status) != len(self):
            raise ValueError("plan and state cover different pools")
        return replace(
            self,
            flipped=plan.flipped.copy(),
            rm_excluded=plan.rm_excluded.copy(),
            round_index=self.round_index + 1,
            ledger=getattr(plan, "ledger", None) or self.ledger,
        )
