"""What the application's use cases raise: typed, each with one line that says what is wrong."""

from __future__ import annotations


class ProjectError(RuntimeError):
    """The project cannot be opened, trained or exported as it is; the message says why."""


class ProjectNotFound(ProjectError):
    """Label Studio has no such project (deleted, or a stray event): retrying cannot help."""
