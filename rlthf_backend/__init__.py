"""RLTHF as a Label Studio ML backend: LLM pre-labels, reward-model triage, curated export."""

__version__ = "0.1.0"
