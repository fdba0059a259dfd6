"""Redis connections for the web side (must fail fast) and for workers (may wait)."""

from __future__ import annotations

import threading
import time

from redis import Redis
from redis.exceptions import RedisError

from rlthf_backend.jobs.config import JobsConfig


class RedisUnavailable(RuntimeError):
    pass


def redis_from_config(config: JobsConfig, *, fast: bool = False) -> Redis:
    """A client for ``REDIS_URL``. ``fast`` = short timeouts, for code that answers HTTP requests."""
    if not config.redis_url:
        raise RedisUnavailable("REDIS_URL is not set")
    timeouts = {"socket_connect_timeout": 0.2, "socket_timeout": 0.5} if fast else {
        "socket_connect_timeout": 5, "socket_timeout": 30, "health_check_interval": 30}
    return Redis.from_url(config.redis_url, **timeouts)


class CircuitBreaker:
    """Skips a failing dependency for ``cooldown_s`` after an error, so callers answer at once.

    The webhook must answer Label Studio within 50 ms even when Redis is gone; after the first
    failure we stop trying for a while instead of paying a connect timeout per request.
    """

    def __init__(self, cooldown_s: float = 5.0) -> None:
        self.cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self._open_until = 0.0
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    @property
    def open(self) -> bool:
        return time.monotonic() < self._open_until

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self._open_until = time.monotonic() + self.cooldown_s
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.last_error_at = time.time()

    def succeeded(self) -> None:
        with self._lock:
            self._open_until = 0.0
            self.last_error = None


__all__ = ["CircuitBreaker", "RedisError", "RedisUnavailable", "redis_from_config"]
