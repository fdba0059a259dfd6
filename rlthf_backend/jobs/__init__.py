"""Background work on RQ: training jobs, their queue, their status, and the worker.

- ``connection``: the Redis connection (short timeouts on the web side).
- ``queue``: enqueueing a project's training, coalesced (at most one queued per project).
- ``status``: what each project's training is doing, for ``/jobs`` and ``/health``.
- ``training``: the job itself (Label Studio -> reward model -> curation round -> queue order).
- ``worker``: ``rlthf-backend worker``.
"""
