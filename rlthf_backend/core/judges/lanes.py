"""A bounded thread pool with two lanes: urgent work (a person waiting) before bulk work.

A judge has one pool per process, shared by every caller, so its concurrency bound holds for the
whole process. With one first-come-first-served queue, an annotator's two prompts would wait
behind every prompt of a bulk request queued before them; here they are taken next, so they wait
at most for one request already in flight to finish.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

URGENT, BULK = 0, 1


class LanePool:
    """``workers`` threads (started on demand) taking the urgent lane first, each lane in order."""

    def __init__(self, workers: int, name: str = "lane-pool") -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.workers = workers
        self.name = name
        self._heap: list[tuple[int, int, Callable[..., Any], tuple[Any, ...], Future]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._busy = 0

    def submit(self, fn: Callable[..., T], *args: Any, urgent: bool = False) -> "Future[T]":
        future: Future[T] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self.name} is shut down")
            heapq.heappush(self._heap, (URGENT if urgent else BULK, next(self._seq), fn, args, future))
            idle = len(self._threads) - self._busy
            if idle < len(self._heap) and len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"{self.name}-{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
            self._cond.notify()
        return future

    def queued(self) -> int:
        with self._cond:
            return len(self._heap)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._heap and not self._closed:
                    self._cond.wait()
                if not self._heap:
                    return
                _, _, fn, args, future = heapq.heappop(self._heap)
                self._busy += 1
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(fn(*args))
                    except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
                        future.set_exception(exc)
            finally:
                with self._cond:
                    self._busy -= 1

    def shutdown(self, wait: bool = True) -> None:
        """Finish what is queued, then stop the threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            threads = list(self._threads)
        if wait:
            for thread in threads:
                thread.join()
