"""The application's settings, as the jobs layer below it sees them."""

from __future__ import annotations

from rlthf_backend.app.settings import Settings
from rlthf_backend.jobs.config import JobsConfig


def jobs_config(settings: Settings) -> JobsConfig:
    """The part of ``settings`` the jobs use (every ``JobsConfig`` field is a setting of the same name)."""
    return settings.config_of(JobsConfig)
