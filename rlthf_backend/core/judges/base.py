"""The judge interface: a pair in, a :class:`~rlthf_backend.core.types.Judgment` out."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from rlthf_backend.core.types import Judgment, Pair

#: ``Judgment.reason`` of a pair that was not asked because its call was stopped (see :class:`JudgeCall`).
NOT_ASKED = "not asked: the call was stopped (deadline or cancelled) before this pair's turn"


@dataclass
class JudgeCall:
    """How the judge calls made in this context run (set with :func:`judge_call`).

    ``urgent``: a person is waiting (an annotator opened a task): the judge serves these prompts
    before any queued bulk work, and does not wait for pairs that another caller is judging.
    ``deadline`` (``time.monotonic()``) or ``cancel()``: from then on no new request starts; the
    pairs not asked come back as failed judgments with ``extra["not_asked"] = True`` (never stored),
    requests already in flight finish (and are stored by a caching judge).
    """

    urgent: bool = False
    deadline: float | None = None
    _cancelled: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def stopped(self) -> bool:
        return self._cancelled.is_set() or (self.deadline is not None and time.monotonic() >= self.deadline)


_CALL: ContextVar[JudgeCall | None] = ContextVar("rlthf_judge_call", default=None)


def current_call() -> JudgeCall:
    """The :class:`JudgeCall` of this context (a plain bulk call without deadline by default)."""
    return _CALL.get() or JudgeCall()


@contextmanager
def judge_call(call: JudgeCall) -> Iterator[JudgeCall]:
    """Run the judge calls of this block as ``call`` says (in this thread/context only)."""
    token = _CALL.set(call)
    try:
        yield call
    finally:
        _CALL.reset(token)


def not_asked(model: str) -> Judgment:
    """The judgment of a pair skipped because its call was stopped."""
    return Judgment.failure(model, NOT_ASKED, extra={"not_asked": True})


class Judge(ABC):
    """An LLM (or stored) judge of pairwise preferences.

    Contract: :meth:`judge_many` returns exactly one :class:`Judgment` per pair, in order, and
    never raises for a problem with one pair or one request (timeouts, garbage answers, missing
    fields): those become a judgment with ``status`` ``error`` or ``parse_failed`` and a
    ``reason``. It raises only for misconfiguration that makes every call fail (e.g. a model
    that cannot be loaded), and then says what to change.
    """

    #: Short kind name: "openai", "transformers", "precomputed".
    kind: str = ""
    #: Whether judgments are worth caching (false for judges that only read stored verdicts).
    cacheable: bool = True

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """Everything that changes the verdicts (model, prompt, orders...). JSON-serialisable."""

    @abstractmethod
    def judge_many(self, pairs: Sequence[Pair]) -> list[Judgment]:
        """Judge every pair; one judgment per pair, in order."""

    def judge_stream(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, Judgment]]:
        """Judge every pair, yielding ``(index, judgment)`` as each is ready (any order, each
        index once). Judges that can answer pairs one by one override it; by default it is
        :meth:`judge_many` in one go."""
        yield from enumerate(self.judge_many(pairs))

    def usage(self) -> dict[str, int]:
        """What this judge has paid for since it was made: ``requests`` and, when the server
        reports them, ``prompt_tokens`` / ``completion_tokens``. Empty for judges that pay nothing."""
        return {}

    def judge(self, pair: Pair) -> Judgment:
        return self.judge_many([pair])[0]

    @property
    def model_id(self) -> str:
        """The underlying model's name, as recorded in judgments."""
        return str(self.config().get("model", self.kind))

    def fingerprint(self) -> str:
        """A short hash of :meth:`config`: the cache key prefix and model-version suffix."""
        blob = json.dumps(self.config(), sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:10]

    def model_version(self, title: str = "rlthf") -> str:
        """The ``model_version`` shown in Label Studio for this judge's predictions."""
        model = self.model_id.rsplit("/", 1)[-1]
        return f"{title}-judge-{self.kind}-{model}-{self.fingerprint()}"
