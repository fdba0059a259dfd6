"""Per-project training status in Redis: queued / running / last finished / last failed.

One Redis hash per project, each field a JSON object, written by the web side (queued) and by
the job (running, finished, failed). ``/jobs``, ``/health`` and the webhook read it through
:func:`read`, the one parser: Redis is shared, and whatever else sits under our keys (a value
from an older or foreign writer, a hand-edited field, a key of another type) reads as no status,
with a warning, rather than failing those endpoints.

A "running" record names its run's lease (``jobs.lease``); once that lease lapsed (the worker
died) the record reads as not running: it is kept aside as ``abandoned`` until a worker's keeper
clears it and records the failure.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from redis import Redis
from redis.exceptions import ResponseError, WatchError

from rlthf_backend.jobs.keys import METRICS_KEY, STATUS_PATTERN, lease_key, status_key, status_key_project

log = logging.getLogger(__name__)

FIELDS = ("queued", "running", "last_finished", "last_failed")
#: The status hash's field holding the latest pre-labelling of the project (:class:`PrelabelProgress`).
PRELABEL_FIELD = "prelabel"
#: A project's status is forgotten after this long without news (abandoned or mistyped projects).
STATUS_TTL_S = 30 * 24 * 3600
#: How long a project Label Studio said it does not have is not queued again.
MISSING_PROJECT_MEMORY_S = 600

__all__ = ["FIELDS", "METRICS_KEY", "MISSING_PROJECT_MEMORY_S", "PRELABEL_FIELD", "STATUS_TTL_S", "PrelabelProgress",
           "ProjectStatus", "StatusRecord", "clear", "clear_run", "count_job", "job_counters", "missing_project",
           "projects", "read", "record", "record_prelabel"]


@dataclass(frozen=True)
class StatusRecord:
    """One field of a project's status, as written: the parts the backend decides on, typed,
    and the whole object (``info``) for ``/jobs`` to show."""

    at: float
    job_id: str | None = None
    reason: str | None = None  # queued: the event; last_failed: the exception
    retries_left: int | None = None  # last_failed
    #: last_failed: Label Studio has no such project (so it was not retried, and is not queued again).
    project_missing: bool = False
    lease: str | None = None  # running: the run's lease (jobs.lease); absent in records of older writers
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PrelabelProgress:
    """Where a pre-labelling (a background job after /predict, or ``rlthf-backend prelabel``) stands.

    ``done`` of ``total`` tasks have an answer (``judged`` paid for now, ``cached`` from the
    judgment store, ``failed``); ``written`` predictions are in Label Studio. ``rate_per_s`` and
    ``eta_s`` are over this run; ``requests`` and the token counts are what it paid for (tokens
    when the judge's server reports usage). ``state``: running, finished, failed or interrupted.
    """

    total: int
    done: int = 0
    judged: int = 0
    cached: int = 0
    failed: int = 0
    written: int = 0
    seconds: float = 0.0
    rate_per_s: float | None = None
    eta_s: float | None = None
    requests: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    state: str = "running"
    job_id: str | None = None
    reason: str | None = None
    at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def describe(self) -> str:
        """One line for logs and the CLI."""
        parts = [f"{self.state}: {self.done}/{self.total} tasks ({self.judged} judged now, {self.cached} from cache, "
                 f"{self.failed} failed), {self.written} predictions written"]
        if self.rate_per_s is not None:
            parts.append(f"{self.rate_per_s:.2f} tasks/s")
        if self.eta_s is not None and self.state == "running":
            parts.append(f"about {_duration(self.eta_s)} left")
        cost = f"{self.requests} judge requests"
        if self.prompt_tokens is not None:
            cost += f", {self.prompt_tokens} prompt + {self.completion_tokens or 0} completion tokens"
        parts.append(cost)
        took = _duration(self.seconds)
        parts.append(f"{took} so far" if self.state == "running" else f"in {took}")
        if self.reason:
            parts.append(self.reason)
        return "; ".join(parts)

    @classmethod
    def parse(cls, raw: bytes | str) -> "PrelabelProgress | None":
        """The stored record; None for anything this backend did not write in this shape."""
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        if not isinstance(obj, dict):
            return None
        kinds = {"total": int, "done": int, "judged": int, "cached": int, "failed": int, "written": int,
                 "requests": int, "seconds": float, "at": float}
        optional = {"rate_per_s": float, "eta_s": float, "prompt_tokens": int, "completion_tokens": int,
                    "job_id": str, "reason": str, "state": str}
        values: dict[str, Any] = {}
        for name, kind in {**kinds, **optional}.items():
            value = obj.get(name)
            if value is None and name in optional:
                continue
            if kind is str:
                ok = isinstance(value, str)
            else:
                ok = _number(value) and (kind is float or (isinstance(value, int) and value >= 0))
            if not ok:
                return None
            values[name] = float(value) if kind is float else value
        return cls(**values)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


@dataclass(frozen=True)
class ProjectStatus:
    queued: StatusRecord | None = None
    running: StatusRecord | None = None
    last_finished: StatusRecord | None = None
    last_failed: StatusRecord | None = None
    #: A "running" record whose run's lease lapsed: its worker died (not one of ``FIELDS``).
    abandoned: StatusRecord | None = None
    prelabel: PrelabelProgress | None = None

    def as_dict(self) -> dict[str, Any]:
        """What ``/jobs`` shows: each field's stored object, or None."""
        shown = {f: (dict(rec.info) if (rec := getattr(self, f)) is not None else None) for f in FIELDS}
        shown[PRELABEL_FIELD] = self.prelabel.as_dict() if self.prelabel is not None else None
        if self.abandoned is not None:  # its worker died; the keeper hands the job back to RQ
            shown["abandoned"] = dict(self.abandoned.info)
        return shown

    @property
    def failing(self) -> bool:
        """The latest training that ended failed."""
        return self.last_failed is not None and (self.last_finished is None
                                                 or self.last_failed.at > self.last_finished.at)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _is_wrongtype(exc: ResponseError) -> bool:
    """Redis's answer for a key of another type (redis-py >= 8 names the code; older ones only the
    message, which a pipeline prefixes with the command)."""
    code = getattr(exc, "status_code", None)
    return code == "WRONGTYPE" or (code is None and str(exc).split(" caused error: ")[-1].startswith("WRONGTYPE"))


def _number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float
        return False


def _parse(raw: bytes | str) -> StatusRecord | None:
    """A stored field as a record; None for anything the backend did not write in this shape."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, too deep
        return None
    if not isinstance(obj, dict) or not _number(obj.get("at")):
        return None
    job_id, reason, retries_left = obj.get("job_id"), obj.get("reason"), obj.get("retries_left")
    lease = obj.get("lease")
    missing = obj.get("project_missing", None)
    if missing is None:  # written before the field existed (such records expire within minutes)
        missing = obj.get("retries_left") == 0 and str(reason or "").startswith("ProjectNotFound")
    if (not isinstance(job_id, (str, type(None))) or not isinstance(reason, (str, type(None)))
            or not (retries_left is None or (isinstance(retries_left, int) and not isinstance(retries_left, bool)))
            or not isinstance(missing, bool) or not isinstance(lease, (str, type(None)))):
        return None
    return StatusRecord(at=float(obj["at"]), job_id=job_id, reason=reason, retries_left=retries_left,
                        project_missing=missing, lease=lease, info=obj)


def record(redis: Redis, project_id: int, field: str, info: dict[str, Any]) -> None:
    assert field in FIELDS, field
    key = status_key(project_id)
    missing = field == "last_failed" and bool(info.get("project_missing"))

    def write() -> None:
        pipe = redis.pipeline()
        pipe.hset(key, field, json.dumps({"at": time.time(), **info}, default=str))
        # A project Label Studio does not have keeps its record only as long as it is remembered as
        # missing: ids invented by a client cannot pile up records (and slow /health down).
        pipe.expire(key, MISSING_PROJECT_MEMORY_S if missing else STATUS_TTL_S)
        pipe.execute()

    try:
        write()
    except ResponseError as exc:
        if not _is_wrongtype(exc):
            raise
        # Not our hash (read() ignores it too): the status is ours to write, so replace it.
        log.warning("project %s: %s held a Redis value of another type; replaced by the status", project_id, key)
        redis.delete(key)
        write()


def record_prelabel(redis: Redis, project_id: int, progress: PrelabelProgress) -> None:
    """Store the project's pre-labelling progress (what ``/jobs`` shows under ``prelabel``)."""
    key = status_key(project_id)
    try:
        pipe = redis.pipeline()
        pipe.hset(key, PRELABEL_FIELD, json.dumps(progress.as_dict()))
        pipe.expire(key, STATUS_TTL_S)
        pipe.execute()
    except ResponseError as exc:  # a foreign value there: progress must not stop the work
        log.warning("project %s: pre-labelling progress not recorded (%s): %s", project_id, key, exc)


def clear(redis: Redis, project_id: int, field: str) -> None:
    try:
        redis.hdel(status_key(project_id), field)
    except ResponseError as exc:
        if not _is_wrongtype(exc):
            raise


def clear_run(redis: Redis, project_id: int, lease: str) -> bool:
    """Clear the "running" record if it is still that of the run holding ``lease`` (another run
    of the project may have written its own since); whether it was cleared."""
    key = status_key(project_id)
    with redis.pipeline() as pipe:
        try:
            pipe.watch(key)
            raw = pipe.hget(key, "running")
            record = _parse(raw) if raw is not None else None
            if record is None or record.lease != lease:
                return False
            pipe.multi()
            pipe.hdel(key, "running")
            pipe.execute()
            return True
        except WatchError:  # rewritten meanwhile: by a live run
            return False
        except ResponseError as exc:
            if not _is_wrongtype(exc):
                raise
            return False


def read(redis: Redis, project_id: int) -> ProjectStatus:
    """The project's status; a field that does not parse (or a key that is no hash) reads as absent,
    and a "running" record whose run's lease lapsed reads as ``abandoned``."""
    key = status_key(project_id)
    try:
        raw = redis.hgetall(key)
    except ResponseError as exc:
        if not _is_wrongtype(exc):
            raise
        log.warning("project %s: %s is not a hash; read as no status", project_id, key)
        return ProjectStatus()
    found: dict[str, StatusRecord] = {}
    ignored = []
    for k, v in raw.items():
        name = _text(k)
        if name == PRELABEL_FIELD:
            if (progress := PrelabelProgress.parse(v)) is None:
                ignored.append(name)
            else:
                found[name] = progress  # type: ignore[assignment]
            continue
        if name not in FIELDS:
            continue
        parsed = _parse(v)
        if parsed is None:
            ignored.append(name)
        else:
            found[name] = parsed
    if ignored:
        log.warning("project %s: status field(s) %s of %s are not status records; read as absent",
                    project_id, ", ".join(sorted(ignored)), key)
    running = found.get("running")
    if running is not None and running.lease is not None and not redis.exists(lease_key(project_id, running.lease)):
        found["abandoned"] = found.pop("running")
    return ProjectStatus(**found)


def missing_project(redis: Redis, project_id: int) -> str | None:
    """Why a recent training found no such project in Label Studio, if that is its latest news.

    The training records that final failure with ``project_missing`` (and no retries left).
    """
    state = read(redis, project_id)
    failed = state.last_failed
    if failed is None or not failed.project_missing:
        return None
    if state.last_finished is not None and state.last_finished.at > failed.at:
        return None
    if time.time() - failed.at > MISSING_PROJECT_MEMORY_S:
        return None
    return (failed.reason or "").removeprefix("ProjectNotFound: ")


def projects(redis: Redis) -> list[int]:
    """Projects that have any recorded status (keys that only look like status keys are skipped)."""
    ids, foreign = [], []
    for key in redis.scan_iter(match=STATUS_PATTERN, count=500):
        project_id = status_key_project(key)
        if project_id is None:
            foreign.append(_text(key))
        else:
            ids.append(project_id)
    if foreign:
        log.warning("skipped %d key(s) that are not status keys although they match %s, e.g. %r",
                    len(foreign), STATUS_PATTERN, foreign[0])
    return sorted(ids)


def count_job(redis: Redis, outcome: str, seconds: float) -> None:
    """Job counters for ``/metrics`` (workers have no HTTP port of their own)."""
    pipe = redis.pipeline()
    pipe.hincrby(METRICS_KEY, f"jobs_{outcome}_total", 1)
    pipe.hincrbyfloat(METRICS_KEY, f"job_{outcome}_seconds_sum", seconds)
    try:
        pipe.execute()
    except ResponseError as exc:  # a foreign value there: a job's outcome must not depend on its counters
        log.warning("job counters not counted (%s): %s", METRICS_KEY, exc)


def job_counters(redis: Redis) -> dict[str, float]:
    """The counters :func:`count_job` wrote; anything else under that key is left out."""
    try:
        raw = redis.hgetall(METRICS_KEY)
    except ResponseError as exc:
        if not _is_wrongtype(exc):
            raise
        log.warning("%s is not a hash; no job counters", METRICS_KEY)
        return {}
    counters, ignored = {}, []
    for k, v in raw.items():
        try:
            value = float(v)
        except ValueError:
            value = math.nan
        if math.isfinite(value):
            counters[_text(k)] = value
        else:
            ignored.append(_text(k))
    if ignored:
        log.warning("%s: ignored non-numeric counter(s) %s", METRICS_KEY, ", ".join(sorted(ignored)))
    return counters
