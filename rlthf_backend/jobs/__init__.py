"""Background work on RQ: training jobs, their queue, their status, and the worker.

- ``connection``: the Redis connection (short timeouts on the web side).
- ``queue``: enqueueing a project's training, coalesced (at most one queued per project).
- ``status``: what each project's training is doing, for ``/jobs`` and ``/health``.
- ``keys``: every Redis key the backend writes.
- ``config``: what the jobs are configured with (the application derives it from its settings).
- ``worker``: ``rlthf-backend worker``.

The job itself is ``rlthf_backend.app.training.job`` (it needs the whole application).
"""
