"""A judge served by any OpenAI-compatible chat-completions endpoint.

Works with api.openai.com and the servers that mimic it (vLLM, Ollama, llama.cpp, TGI, Azure).
Requests run in a bounded thread pool; rate limits, server errors, timeouts and dropped
connections are retried with capped exponential backoff; whatever still fails becomes a failed
judgment for that pair, never an exception.

When the server returns token logprobs, the judge's probability comes from the answer token
(P("A") against P("B") among the top alternatives); otherwise only the verdict is known.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from typing import Any

import openai
from openai import OpenAI

from rlthf_backend.core.judges.base import NOT_ASKED, current_call
from rlthf_backend.core.judges.configs import OpenAIJudgeConfig
from rlthf_backend.core.judges.lanes import LanePool
from rlthf_backend.core.judges.orders import OrderAnswer, PromptedJudge
from rlthf_backend.core.judges.prompt import excerpt, parse_verdict
from rlthf_backend.core.types import JudgeStatus

#: How many alternatives to ask for at each answer position (the API allows up to 20).
TOP_LOGPROBS = 5


def _is_retryable(exc: Exception) -> bool:
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return False


def _describe(exc: Exception, timeout: float) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return f"timed out after {timeout:g} s"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} ({excerpt(str(exc.message), 120)})"
    if isinstance(exc, openai.APIConnectionError):
        return f"connection error ({excerpt(str(exc.__cause__ or exc), 120)})"
    return f"{type(exc).__name__}: {excerpt(str(exc), 120)}"


def _retry_after(exc: Exception) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``), if it said so in seconds."""
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date; rare from LLM servers, fall back to our own backoff


def answer_probability(logprobs: Any, content: str, letter_offset: int) -> float | None:
    """P(first response better) from the logprobs at the answer letter, or None.

    Finds the token that covers ``letter_offset`` in ``content`` (tokens concatenate to the
    content on conforming servers; otherwise the last token reading "A" or "B" is used), then
    sums the probability of the alternatives that read "A" and "B" once whitespace and markdown
    are stripped (" A", "A", "**A"...), and normalises between the two.
    """
    tokens = list(getattr(logprobs, "content", None) or [])
    if not tokens:
        return None
    answer_token = None
    if "".join(t.token for t in tokens) == content:
        pos = 0
        for t in tokens:
            if pos <= letter_offset < pos + len(t.token):
                answer_token = t
                break
            pos += len(t.token)
    if answer_token is None:
        answer_token = next((t for t in reversed(tokens) if t.token.strip(" *_\"'[]()") in ("A", "B")), None)
    if answer_token is None:
        return None
    alternatives = list(answer_token.top_logprobs or []) or [answer_token]
    mass = {"A": 0.0, "B": 0.0}
    for alt in alternatives:
        key = alt.token.strip(" \t\n*_\"'[]()").upper()
        if key in mass and alt.logprob is not None:
            mass[key] += math.exp(alt.logprob)
    total = mass["A"] + mass["B"]
    return mass["A"] / total if total > 0 else None


class OpenAIJudge(PromptedJudge):
    """Judge pairs with a chat model behind an OpenAI-compatible API.

    ``retry_base_delay`` and ``retry_max_delay`` (seconds) shape the backoff: attempt ``n``
    waits ``min(max, base * 2**n)``, jittered down to half of that so that many workers hit by
    the same rate limit do not come back in lockstep; a ``Retry-After`` header, capped by
    ``retry_max_delay``, takes precedence. ``client`` replaces the OpenAI client (tests).
    """

    kind = "openai"
    cacheable = True

    def __init__(
        self,
        config: OpenAIJudgeConfig,
        *,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        client: OpenAI | None = None,
    ):
        super().__init__(
            model=config.model,
            **self.prompt_options(config),
        )
        self.base_url = config.base_url
        self.timeout = config.timeout
        self.max_retries = config.max_retries
        self.concurrency = config.concurrency
        self.logprobs = config.logprobs
        self.max_tokens = config.max_tokens
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self._client = client or self._make_client(config)
        self._pool: LanePool | None = None
        self._pool_lock = threading.Lock()
        self._usage = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}
        self._usage_lock = threading.Lock()
        # Set when the server rejects the logprobs parameters, so later requests stop sending them.
        self._logprobs_rejected = False

    def _make_client(self, config: OpenAIJudgeConfig) -> OpenAI:
        key = config.api_key
        if key is None and config.base_url:
            key = "unused"  # self-hosted servers usually need no key, but the client insists on one
        try:
            # Retries are ours (they must turn into a per-pair failure, with a reason).
            return OpenAI(base_url=config.base_url, api_key=key, timeout=config.timeout, max_retries=0)
        except openai.OpenAIError as exc:
            raise ValueError(
                f"cannot create the OpenAI client ({exc}); set RLTHF_OPENAI_API_KEY, or "
                "RLTHF_OPENAI_BASE_URL for a self-hosted server"
            ) from exc

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **self.prompt_config(),
            # The same model name on another server may be another model (e.g. llama.cpp's).
            "base_url": self.base_url,
            "logprobs": self.logprobs,
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }

    # --- requests -------------------------------------------------------------------------

    def _executor(self) -> LanePool:
        # One pool per judge, shared by concurrent calls (server threads, a background job), so
        # the bound holds for the whole process; urgent calls (an opened task) go first.
        with self._pool_lock:
            if self._pool is None:
                self._pool = LanePool(self.concurrency, name="openai-judge")
            return self._pool

    def close(self) -> None:
        """Stop the worker threads (idempotent); a later call starts new ones."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    def usage(self) -> dict[str, int]:
        with self._usage_lock:
            return dict(self._usage)

    def _ask_many(self, prompts: Sequence[str]) -> list[OrderAnswer]:
        answers: list[OrderAnswer | None] = [None] * len(prompts)
        for i, answer in self._ask_stream(prompts):
            answers[i] = answer
        return answers  # type: ignore[return-value]

    def _ask_stream(self, prompts: Sequence[str], group_size: int = 1) -> Iterator[tuple[int, OrderAnswer]]:
        # Always through the pool, even for one prompt: the bound must hold for small calls too.
        # A worker sleeping in backoff keeps its slot, which slows everyone down under 429s.
        call = current_call()
        pool = self._executor()
        started: set[int] = set()  # groups (a pair's orders) with a prompt asked
        lock = threading.Lock()

        def ask(k: int, prompt: str) -> OrderAnswer:
            # A stopped call asks nothing new, but finishes a pair it began: half a pair is no
            # judgment, so its answer would be paid for and then asked again.
            with lock:
                if call.stopped and k // group_size not in started:
                    return OrderAnswer.failed(NOT_ASKED)
                started.add(k // group_size)
            return self._ask(prompt)

        futures = {pool.submit(ask, i, p, urgent=call.urgent): i for i, p in enumerate(prompts)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield futures[future], future.result()
        finally:
            for future in pending:  # the caller stopped listening: do not start what is left
                future.cancel()

    def _count(self, response: Any) -> None:
        usage = getattr(response, "usage", None)
        with self._usage_lock:
            self._usage["requests"] += 1
            for key in ("prompt_tokens", "completion_tokens"):
                value = getattr(usage, key, None) if usage is not None else None
                if isinstance(value, int):
                    self._usage[key] += value

    def _create(self, prompt: str) -> Any:
        kwargs: dict[str, Any] = {
            "model": self._model_id,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0,
            # The verdict is the answer's last line: an unbounded answer costs time and money and
            # is cut anyway by the server's own limit, so the budget is ours to choose.
            "max_tokens": self.max_tokens,
        }
        if self.logprobs and not self._logprobs_rejected:
            kwargs.update(logprobs=True, top_logprobs=TOP_LOGPROBS)
        try:
            response = self._client.chat.completions.create(**kwargs)
        except openai.BadRequestError as exc:
            with self._usage_lock:
                self._usage["requests"] += 1
            # Some servers and models refuse logprobs; judge without them rather than not at all.
            if "logprobs" in kwargs and "logprob" in str(exc).lower():
                self._logprobs_rejected = True
                return self._create(prompt)
            raise
        except Exception:
            with self._usage_lock:
                self._usage["requests"] += 1
            raise
        self._count(response)
        return response

    def _backoff(self, attempt: int, exc: Exception) -> float:
        delay = min(self.retry_max_delay, self.retry_base_delay * 2**attempt)
        delay = delay / 2 + random.uniform(0, delay / 2)
        asked = _retry_after(exc)
        return min(self.retry_max_delay, asked) if asked is not None else delay

    def _ask(self, prompt: str) -> OrderAnswer:
        attempt = 0
        while True:
            try:
                response = self._create(prompt)
                break
            except Exception as exc:  # noqa: BLE001 - the contract: one bad request never raises
                if not _is_retryable(exc) or attempt >= self.max_retries:
                    reason = _describe(exc, self.timeout)
                    if _is_retryable(exc):
                        reason += f" after {attempt} retr{'y' if attempt == 1 else 'ies'}"
                    return OrderAnswer.failed(reason)
                time.sleep(self._backoff(attempt, exc))
                attempt += 1
        try:
            return self._read(response)
        except Exception as exc:  # noqa: BLE001 - a malformed response is that pair's problem
            return OrderAnswer.failed(f"malformed response: {type(exc).__name__}: {excerpt(str(exc), 120)}")

    def _read(self, response: Any) -> OrderAnswer:
        choices = getattr(response, "choices", None) or []
        if not choices:
            return OrderAnswer.failed("the server returned no choices")
        choice = choices[0]
        content = choice.message.content or ""
        parsed = parse_verdict(content)
        if parsed.letter is None:
            reason = parsed.reason or "unreadable answer"
            if choice.finish_reason == "length":
                reason += " (the answer was cut at the token limit)"
            return OrderAnswer.failed(reason, JudgeStatus.PARSE_FAILED, raw=content)
        p_first = None
        extra: dict[str, Any] = {}
        if choice.logprobs is not None and parsed.letter_offset is not None:
            p_first = answer_probability(choice.logprobs, content, parsed.letter_offset)
        if p_first is not None and (p_first < 0.5 if parsed.letter == "A" else p_first > 0.5):
            # The token probabilities favour the other letter (a sampled answer, or a token that is
            # not the verdict's): the written verdict stands, without a probability.
            extra = {"token_probs_disagree": True, "token_p_first": round(p_first, 4)}
            p_first = None
        return OrderAnswer(status=JudgeStatus.OK, letter=parsed.letter, p_first=p_first, raw=content, extra=extra)
