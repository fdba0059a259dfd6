"""Asking an LLM judge in both orders and combining the two answers into one judgment.

LLM judges favour one position (usually the first) on hard pairs. Asking twice, with the
responses swapped, and averaging cancels that bias, and a pair whose two verdicts disagree is
itself a useful signal that the judge is unsure (``Judgment.swap_disagrees``).

:class:`PromptedJudge` does this for any judge that can answer rendered prompts;
:func:`combine` holds the arithmetic.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rlthf_backend.core.judges.base import NOT_ASKED, Judge, not_asked
from rlthf_backend.core.judges.prompt import (
    DEFAULT_CRITERIA,
    RenderedPrompt,
    clip_raw,
    load_template,
    render,
    template_hash,
)
from rlthf_backend.core.types import JudgeStatus, Judgment, Label, Pair

Letter = Literal["A", "B"]


@dataclass(frozen=True)
class PromptConfig:
    """What every prompted judge asks, and how (each field documented once, in its ``help``).

    The judges' own configs extend it (:class:`~rlthf_backend.core.judges.configs.OpenAIJudgeConfig`,
    :class:`~rlthf_backend.core.judges.configs.TransformersJudgeConfig`).
    """

    criteria: str = field(default=DEFAULT_CRITERIA, metadata={"help": (
        "What 'better' means, put into the prompt.")})
    prompt_file: str | Path | None = field(default=None, metadata={"help": (
        "A prompt template file replacing the built-in one "
        "(placeholders: {criteria}, {prompt}, {response_1}, {response_2}).")})
    both_orders: bool = field(default=True, metadata={"help": (
        "Ask the judge in both orders (A,B and B,A) and record disagreement.")})
    max_chars: int = field(default=12_000, metadata={"help": (
        "Longest prompt or response text sent to a judge; longer ones are truncated (and flagged).")})


@dataclass(frozen=True)
class OrderAnswer:
    """A judge's answer to one prompt, in terms of the positions shown (A = first, B = second).

    ``p_first`` is P(first shown response is better) when the judge exposes token
    probabilities, else None. ``truncated`` reports truncation the judge itself did (e.g. to its
    token context), on top of the character truncation of the prompt.
    """

    status: JudgeStatus
    letter: Letter | None = None
    p_first: float | None = None
    reason: str | None = None
    raw: str = ""
    truncated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failed(cls, reason: str, status: JudgeStatus = JudgeStatus.ERROR, raw: str = "") -> "OrderAnswer":
        return cls(status=status, reason=reason, raw=raw)


def _p_a(answer: OrderAnswer, swapped: bool) -> float:
    """P(response a is better) from one order's answer; a verdict alone counts as 1.0 or 0.0."""
    if answer.p_first is not None:
        p_first = answer.p_first
    else:
        p_first = 1.0 if answer.letter == "A" else 0.0
    return 1.0 - p_first if swapped else p_first


def _label(letter: Letter | None, swapped: bool) -> Label | None:
    if letter is None:
        return None
    first_is_a = not swapped
    return "a" if (letter == "A") == first_is_a else "b"


def combine(model: str, ab: OrderAnswer, ba: OrderAnswer | None, truncated: bool = False) -> Judgment:
    """One judgment from the (a, b) answer and, when asked, the swapped (b, a) answer.

    ``prob_a`` is the mean over the usable orders of P(a better); the label is "a" above 0.5,
    "b" below and "tie" at exactly 0.5 (two orders that disagree without token probabilities);
    ``prob`` is the probability of that label (0.5 for a tie). When one order failed the other
    decides alone and ``extra["failed_orders"]`` keeps the failure; when all failed the judgment
    fails, as ``parse_failed`` only if every failure was a parse failure. ``extra`` also records
    P(a) per order (``prob_a_by_order``) and where it came from (``prob_source``: token_probs,
    verdicts or mixed).
    """
    asked = [("ab", ab, False)] + ([("ba", ba, True)] if ba is not None else [])
    raw = tuple(clip_raw(a.raw) for _, a, _ in asked)
    truncated = truncated or any(a.truncated for _, a, _ in asked)
    usable = [(name, a, swapped) for name, a, swapped in asked if a.status is JudgeStatus.OK]
    failed = {name: f"{a.status.value}: {a.reason}" for name, a, _ in asked if a.status is not JudgeStatus.OK}
    extra: dict[str, Any] = {}
    for name, a, _ in asked:
        if a.extra:
            extra[f"order_{name}"] = dict(a.extra)

    if not usable:
        all_parse = all(a.status is JudgeStatus.PARSE_FAILED for _, a, _ in asked)
        reason = "; ".join(f"{'(a, b)' if n == 'ab' else '(b, a)'} order: {a.reason}" for n, a, _ in asked)
        return Judgment.failure(
            model,
            reason if len(asked) > 1 else str(ab.reason),
            status=JudgeStatus.PARSE_FAILED if all_parse else JudgeStatus.ERROR,
            raw=raw,
            truncated=truncated,
            extra=extra,
        )

    per_order = {name: _p_a(a, swapped) for name, a, swapped in usable}
    prob_a = sum(per_order.values()) / len(per_order)
    label: Label = "a" if prob_a > 0.5 else "b" if prob_a < 0.5 else "tie"
    prob = 0.5 if label == "tie" else max(prob_a, 1.0 - prob_a)
    extra["prob_a_by_order"] = per_order
    with_probs = sum(a.p_first is not None for _, a, _ in usable)
    extra["prob_source"] = (
        "token_probs" if with_probs == len(usable) else "verdicts" if with_probs == 0 else "mixed"
    )
    if failed:
        extra["failed_orders"] = failed
    verdicts = {name: _label(a.letter, swapped) for name, a, swapped in usable}
    return Judgment(
        label=label,
        prob=prob,
        status=JudgeStatus.OK,
        model=model,
        verdict_ab=verdicts.get("ab"),
        verdict_ba=verdicts.get("ba"),
        prob_a=prob_a,
        raw=raw,
        truncated=truncated,
        extra=extra,
    )


class PromptedJudge(Judge):
    """A judge that answers rendered text prompts; renders both orders and combines them.

    Subclasses implement :meth:`_ask_many` (prompts in, one :class:`OrderAnswer` each, in
    order, never raising for one bad answer) and add their own keys to :meth:`config`.
    """

    @staticmethod
    def prompt_options(config: PromptConfig) -> dict[str, Any]:
        """The keyword arguments of :meth:`__init__` from a config (the template file is read
        here, so a bad template fails when the judge is made, not at its first pair)."""
        return {
            "template": load_template(Path(config.prompt_file) if config.prompt_file is not None else None),
            "criteria": config.criteria,
            "both_orders": config.both_orders,
            "max_chars": config.max_chars,
        }

    def __init__(self, *, model: str, template: str, criteria: str, both_orders: bool, max_chars: int):
        self._model_id = model
        self.template = template
        self.criteria = criteria
        self.both_orders = both_orders
        self.max_chars = max_chars

    @property
    def model_id(self) -> str:
        return self._model_id

    def prompt_config(self) -> dict[str, Any]:
        """The prompt-side settings that change verdicts, for subclasses' :meth:`config`."""
        return {
            "model": self._model_id,
            "template_sha256": template_hash(self.template),
            "criteria": self.criteria,
            "both_orders": self.both_orders,
            "max_chars": self.max_chars,
        }

    def render(self, pair: Pair, swapped: bool = False) -> RenderedPrompt:
        first, second = (pair.response_b, pair.response_a) if swapped else (pair.response_a, pair.response_b)
        return render(
            self.template,
            criteria=self.criteria,
            prompt=pair.prompt,
            response_1=first,
            response_2=second,
            max_chars=self.max_chars,
        )

    @abstractmethod
    def _ask_many(self, prompts: Sequence[str]) -> list[OrderAnswer]:
        """Answer every prompt; one answer per prompt, in order."""

    def _ask_stream(self, prompts: Sequence[str], group_size: int = 1) -> Iterator[tuple[int, OrderAnswer]]:
        """Answer every prompt, yielding ``(index, answer)`` as each is ready; by default
        :meth:`_ask_many` in one go. Consecutive runs of ``group_size`` prompts are one pair's orders."""
        answers = self._ask_many(prompts)
        if len(answers) != len(prompts):  # a subclass bug, not a per-pair problem
            raise RuntimeError(f"{type(self).__name__} returned {len(answers)} answers for {len(prompts)} prompts")
        yield from enumerate(answers)

    def judge_many(self, pairs: Sequence[Pair]) -> list[Judgment]:
        results: list[Judgment | None] = [None] * len(pairs)
        for i, judgment in self.judge_stream(pairs):
            results[i] = judgment
        return results  # type: ignore[return-value]

    def judge_stream(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, Judgment]]:
        """Each pair's judgment as soon as all its orders are answered."""
        orders = (False, True) if self.both_orders else (False,)
        n = len(orders)
        rendered = [self.render(pair, swapped) for pair in pairs for swapped in orders]
        got: dict[int, list[OrderAnswer | None]] = {}
        for k, answer in self._ask_stream([r.text for r in rendered], group_size=n):
            i = k // n
            slot = got.setdefault(i, [None] * n)
            slot[k % n] = answer
            if all(a is not None for a in slot):
                del got[i]
                if any(a is not None and a.reason == NOT_ASKED for a in slot):
                    # Half a pair is not a judgment worth keeping: the pair counts as not asked.
                    yield i, not_asked(self._model_id)
                    continue
                truncated = any(r.truncated for r in rendered[i * n : (i + 1) * n])
                yield i, combine(self._model_id, slot[0], slot[1] if n == 2 else None, truncated)  # type: ignore[arg-type]
        if got:  # a subclass bug, not a per-pair problem
            raise RuntimeError(f"{type(self).__name__} left {len(got)} pair(s) without all their answers")
