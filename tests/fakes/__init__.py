"""Test doubles that speak real protocols (no mocks of the code under test)."""
