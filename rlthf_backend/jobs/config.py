"""What the jobs need to know, and nothing more.

The jobs sit below the application layer, so they cannot read its ``Settings``; the application
hands them this instead (``rlthf_backend.app.jobs.jobs_config``). Each field is a setting of the same
name (``rlthf_backend.app.settings.KNOBS``) and is documented once, in its ``help``: the settings
reference takes its description from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class JobsConfig:
    """The job queue, its workers and the debouncing of trainings."""

    redis_url: str | None = field(
        default=None, metadata={"help": "Redis for the job queue, e.g. redis://127.0.0.1:6379/0."})
    queue_name: str = field(default="rlthf", metadata={"help": "RQ queue the training jobs go to."})
    job_timeout: int = field(
        default=3600, metadata={"help": "Seconds a training job may run before RQ stops it."})
    job_lease_seconds: int = field(
        default=30, metadata={"help": "Seconds a training whose worker died keeps its project: its lock and its "
                                      "running status are leases its process renews every third of this."})
    job_retries: int = field(
        default=3, metadata={"help": "Retries of a failed training job (backoff 10 s, 60 s, 300 s...)."})
    debounce_seconds: float = field(
        default=2.0,
        metadata={"help": "A queued training starts once no label event came for this long (bursts collapse)."})
    debounce_max_seconds: float = field(
        default=60.0, metadata={"help": "Longest a picked-up training waits for that quiet moment."})
    max_queued_trainings: int = field(
        default=100, metadata={"help": "Trainings waiting in the queue at most; a webhook for one more project is "
                                       "answered 429 and queues nothing (its next event queues it)."})
    log_level: str = field(default="INFO", metadata={"help": "Python logging level."})

    @property
    def prelabel_queue(self) -> str:
        """The RQ queue of background pre-labelling (after a large /predict); workers take
        trainings first."""
        return f"{self.queue_name}-prelabel"
