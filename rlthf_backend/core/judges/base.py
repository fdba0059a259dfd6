"""The judge interface: a pair in, a :class:`~rlthf_backend.core.types.Judgment` out."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from rlthf_backend.core.types import Judgment, Pair


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
