"""Helpers that start the real servers the integration tests talk to."""
