"""A judge that answers from a judgment store first, so a pair is never paid for twice.

The store (:class:`JudgmentStore`, implemented in ``rlthf_backend.store``) keeps judgments by
the judge's fingerprint (its config hash: a new model, prompt or criteria means new keys) and
the pair's content hash, for every process and host that shares it. Only successful judgments
are stored; failures are asked again next time.

Processes that need the same pairs at the same moment (two workers training projects that
share pairs, two gunicorn threads) would both miss and both pay. So misses are *claimed* before
they are judged: a pair claimed by someone else is waited for, and judged here only if its
claim lapses or is released without a judgment (its owner's call failed).

A claim is a lease: it lasts :data:`CLAIM_SECONDS` and its holder renews it while it judges, so a
live holder keeps its pairs however long the judge takes, while a dead one (a process killed
mid-judgment) loses them within one lease: another backend can still pre-label those pairs within
Label Studio's 100 s.

A store that waits (a SQLite file another process holds for writing) must not make a call wait
statement after statement: each call gives the store a deadline for all of its store work,
:data:`STORE_SECONDS` per chunk, after which the call goes on without the store.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from rlthf_backend.core.judges.base import Judge, current_call, not_asked
from rlthf_backend.core.types import Judgment, Pair

log = logging.getLogger(__name__)

#: Misses are claimed and judged this many at a time (each judgment stored as it arrives, so an
#: interrupted run keeps what it paid for); one claim covers minutes of judging, not hours.
CHUNK_PAIRS = 256
#: How long a claim holds unless renewed; its holder renews it every third of that while judging.
#: Short, so a dead holder's pairs are free again well within Label Studio's 100 s for a pre-label.
CLAIM_SECONDS = 20.0
#: Longest pause between two looks at pairs that someone else is judging.
MAX_POLL_SECONDS = 2.0
#: Seconds of store work (waits for locks included) a judge_many call may spend per chunk of
#: CHUNK_PAIRS pairs: a /predict stays within a few seconds of its judging, a long training
#: keeps waiting for the store that holds what it paid for.
STORE_SECONDS = 5.0


class JudgmentStore(Protocol):
    """Where judgments are kept, shared by every process that judges (see ``rlthf_backend.store``).

    A store is only a cache: when it cannot answer, lookups miss, writes are skipped and claims
    are all granted (so the caller judges by itself); :meth:`health` says why.
    """

    def get_many(self, fingerprint: str, keys: Sequence[str]) -> dict[str, Judgment]:
        """The stored judgments among ``keys`` (absent keys are simply missing)."""
        ...

    def put_many(self, fingerprint: str, items: Iterable[tuple[str, Judgment]]) -> int:
        """Store the OK judgments among ``items``; how many were stored."""
        ...

    def claim_many(self, fingerprint: str, keys: Sequence[str], owner: str, seconds: float) -> set[str]:
        """Claim ``keys`` for ``owner`` for ``seconds``: the keys now held by ``owner`` (those
        nobody else holds, or whose claim lapsed). Claiming keys ``owner`` holds already extends
        its claims to ``seconds`` from now (that is how a holder renews them)."""
        ...

    def release_many(self, fingerprint: str, keys: Sequence[str], owner: str) -> None:
        """Give up ``owner``'s claims on ``keys``."""
        ...

    def health(self) -> dict[str, Any]:
        """For ``/health``: ``{"ok": True}``, or ``{"ok": False, "detail": why}``."""
        ...

    def deadline(self, seconds: float) -> AbstractContextManager[None]:
        """Bound the store work of the calls made inside to ``seconds`` in all; past it they
        degrade (lookups miss, claims are granted, nothing is stored) instead of waiting."""
        ...


class CachedJudge(Judge):
    """A judge that answers from a :class:`JudgmentStore` first and asks ``inner`` only for misses.

    Misses are judged in ``inner.judge_stream`` calls of up to :data:`CHUNK_PAIRS` pairs (so the
    inner judge keeps its batching and concurrency), each distinct pair once even if repeated in
    the batch, and never while another caller holds its claim. Judgments served from the store
    carry ``extra["cached"] = True``. Config, kind and fingerprint are the inner judge's, so the
    cache is invisible in model versions.
    """

    def __init__(self, inner: Judge, store: JudgmentStore, claim_seconds: float = CLAIM_SECONDS,
                 store_seconds: float = STORE_SECONDS):
        self.inner = inner
        self.cache = store
        self.claim_seconds = claim_seconds
        self.store_seconds = store_seconds
        self.kind = inner.kind
        self.cacheable = inner.cacheable

    def config(self) -> dict[str, Any]:
        return self.inner.config()

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def fingerprint(self) -> str:
        # Computed once: it hashes the config, and judge_many needs it on every call.
        fp = self.__dict__.get("_fingerprint")
        if fp is None:
            fp = self.__dict__["_fingerprint"] = self.inner.fingerprint()
        return fp

    def usage(self) -> dict[str, int]:
        return self.inner.usage()

    def judge_many(self, pairs: Sequence[Pair]) -> list[Judgment]:
        results: list[Judgment | None] = [None] * len(pairs)
        for i, judgment in self.judge_stream(pairs):
            results[i] = judgment
        return results  # type: ignore[return-value]

    def judge_stream(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, Judgment]]:
        """Stored judgments first, then each judged pair as it arrives, stored at once (an
        interruption loses nothing paid for). The store's work has a deadline, :data:`STORE_SECONDS`
        per chunk: a store that waits (a locked SQLite file) costs a call seconds, not minutes.

        An urgent call (:class:`JudgeCall`) does not wait for pairs another caller holds: it judges
        them itself (at worst one pair paid twice, rather than a person waiting for a bulk chunk).
        A stopped call stops waiting too: what is left comes back as not asked.
        """
        chunks = max(1, math.ceil(len(pairs) / CHUNK_PAIRS))
        with self.cache.deadline(self.store_seconds * chunks):
            yield from self._judge_stream(pairs)

    def _judge_stream(self, pairs: Sequence[Pair]) -> Iterator[tuple[int, Judgment]]:
        fingerprint = self.fingerprint()
        keys = [p.content_key() for p in pairs]
        where: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            where.setdefault(key, []).append(i)
        for key, judgment in self.cache.get_many(fingerprint, list(where)).items():
            for i in where.pop(key):
                yield i, _cached(judgment)
        waiting: dict[str, Pair] = {key: pairs[ix[0]] for key, ix in where.items()}
        owner = uuid.uuid4().hex
        pause = 0.1
        call = current_call()
        while waiting:
            claimed = 0
            for key, judgment, fresh in self._judge_claimed(fingerprint, waiting, owner):
                claimed += 1
                for i in where[key]:
                    yield i, judgment if fresh else _cached(judgment)
            if not waiting:
                break
            if claimed:
                continue
            # Everything left is someone else's: wait for it, or for its claim to lapse.
            if call.stopped:
                for key in list(waiting):
                    del waiting[key]
                    for i in where[key]:
                        yield i, not_asked(self.model_id)
                break
            if call.urgent:
                yield from self._judge_unclaimed(fingerprint, waiting, where)
                break
            time.sleep(pause)
            pause = min(pause * 2, MAX_POLL_SECONDS)
            for key, judgment in self.cache.get_many(fingerprint, list(waiting)).items():
                del waiting[key]
                for i in where[key]:
                    yield i, _cached(judgment)

    def _judge_unclaimed(self, fingerprint: str, waiting: dict[str, Pair],
                         where: dict[str, list[int]]) -> Iterator[tuple[int, Judgment]]:
        keys = list(waiting)
        for j, judgment in self.inner.judge_stream([waiting[k] for k in keys]):
            self.cache.put_many(fingerprint, [(keys[j], judgment)])
            del waiting[keys[j]]
            for i in where[keys[j]]:
                yield i, judgment

    def _judge_claimed(self, fingerprint: str, waiting: dict[str, Pair],
                       owner: str) -> Iterator[tuple[str, Judgment, bool]]:
        """Claim what is free among ``waiting`` and judge it, a chunk at a time, removing each
        answered key from ``waiting``; yields ``(key, judgment, fresh)`` (fresh: judged here)."""
        pending = list(waiting)
        for start in range(0, len(pending), CHUNK_PAIRS):
            chunk = pending[start : start + CHUNK_PAIRS]
            held = self.cache.claim_many(fingerprint, chunk, owner, self.claim_seconds)
            claimed = [k for k in chunk if k in held]
            if not claimed:
                continue
            try:
                with _ClaimRenewal(self.cache, fingerprint, claimed, owner, self.claim_seconds):
                    # Someone may have stored these between our lookup and our claim.
                    for key, judgment in self.cache.get_many(fingerprint, claimed).items():
                        del waiting[key]
                        yield key, judgment, False
                    misses = [k for k in claimed if k in waiting]
                    if misses:
                        for j, judgment in self.inner.judge_stream([waiting[k] for k in misses]):
                            # Stored as it arrives: nothing paid for is lost if the caller stops.
                            self.cache.put_many(fingerprint, [(misses[j], judgment)])
                            del waiting[misses[j]]
                            yield misses[j], judgment, True
            finally:
                self.cache.release_many(fingerprint, claimed, owner)


class _ClaimRenewal:
    """Renews ``owner``'s claims on ``keys`` every third of a lease while the block runs, from a
    daemon thread: the claims then live exactly as long as this process keeps judging them."""

    def __init__(self, store: JudgmentStore, fingerprint: str, keys: Sequence[str], owner: str,
                 seconds: float) -> None:
        self.store, self.fingerprint, self.keys = store, fingerprint, list(keys)
        self.owner, self.seconds = owner, seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _ClaimRenewal:
        if self.seconds > 0:
            self._thread = threading.Thread(target=self._run, name="rlthf-claim-renewal", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()  # no renewal may land after the caller releases the claims

    def _run(self) -> None:
        lost_logged = False
        while not self._stop.wait(self.seconds / 3):
            try:
                held = self.store.claim_many(self.fingerprint, self.keys, self.owner, self.seconds)
            except Exception:  # a store is only a cache: judging goes on without the renewal
                log.warning("could not renew %d judgment claim(s); they may lapse", len(self.keys), exc_info=True)
                continue
            lost = len(set(self.keys) - held)
            if lost and not lost_logged:  # someone took them over while we were slow: they may pay twice
                log.warning("%d of %d judgment claim(s) lapsed and were taken over before renewal",
                            lost, len(self.keys))
                lost_logged = True


def _cached(judgment: Judgment) -> Judgment:
    return dataclasses.replace(judgment, extra={**judgment.extra, "cached": True})
