"""Every Redis key the backend writes, in one place: the names are a format shared by web
processes and workers of possibly different versions, so they must not drift apart.

Per project:
- ``rlthf:project:<id>:pending``: id of the queued, not yet started training (SET NX);
- ``rlthf:project:<id>:force_round``: a Train click is waiting for the next job;
- ``rlthf:project:<id>:last_event``: unix time of the newest label event;
- ``rlthf:project:<id>:lock``: held by the training running for the project (a lease: ``jobs.lease``);
- ``rlthf:project:<id>:lease:<run>``: alive while the run of a training renews it (value: the job id);
- ``rlthf:project:<id>:status``: the hash ``/jobs`` and ``/health`` read (``jobs.status``).

And ``rlthf:metrics``: job counters for ``/metrics``; ``rlthf:leases``: the set of runs holding a
lease (``<project>:<run>:<job id>``), which the workers' keepers look through for dead ones.
"""

from __future__ import annotations

import re

PREFIX = "rlthf"
METRICS_KEY = f"{PREFIX}:metrics"
LEASES_KEY = f"{PREFIX}:leases"
#: SCAN pattern of every project's status hash.
STATUS_PATTERN = f"{PREFIX}:project:*:status"
_STATUS_KEY = re.compile(rf"{PREFIX}:project:(-?[0-9]+):status")


def _project_key(project_id: int, name: str) -> str:
    return f"{PREFIX}:project:{int(project_id)}:{name}"


def pending_key(project_id: int) -> str:
    return _project_key(project_id, "pending")


def force_round_key(project_id: int) -> str:
    return _project_key(project_id, "force_round")


def last_event_key(project_id: int) -> str:
    return _project_key(project_id, "last_event")


def lock_key(project_id: int) -> str:
    return _project_key(project_id, "lock")


def lease_key(project_id: int, run_id: str) -> str:
    return _project_key(project_id, f"lease:{run_id}")


def status_key(project_id: int) -> str:
    return _project_key(project_id, "status")


def project_keys_pattern(project_id: int) -> str:
    """SCAN pattern of all of one project's keys."""
    return _project_key(project_id, "*")


def status_key_project(key: str | bytes) -> int | None:
    """The project a key matched by :data:`STATUS_PATTERN` belongs to; None for a key that is not one
    :func:`status_key` writes (``rlthf:project:x:status``, ``rlthf:project:007:status``...)."""
    if isinstance(key, bytes):
        key = key.decode("utf-8", "replace")
    match = _STATUS_KEY.fullmatch(key)
    if match is None or str(int(match[1])) != match[1]:
        return None
    return int(match[1])
