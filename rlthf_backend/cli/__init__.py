"""The ``rlthf-backend`` command line: one subcommand per thing a user does (``main.py``), each
body beside it (``simulate.py``, ``doctor.py``); errors end in one line (``errors.py``)."""

from rlthf_backend.cli.main import main

__all__ = ["main"]
