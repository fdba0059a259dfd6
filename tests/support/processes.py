"""The tests start servers the way the demo does."""

from rlthf_backend.demo.processes import ManagedProcess, free_port, http_ok, wait_until

__all__ = ["ManagedProcess", "free_port", "http_ok", "wait_until"]
