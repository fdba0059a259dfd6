"""Prometheus metrics of the HTTP layer.

Under gunicorn with several workers, ``rlthf-backend serve`` points ``PROMETHEUS_MULTIPROC_DIR``
at a fresh folder before the workers start, and ``/metrics`` aggregates every worker's values.
"""

from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

HTTP_REQUESTS = Counter(
    "rlthf_http_requests_total", "HTTP requests answered", ["endpoint", "method", "status"]
)
HTTP_SECONDS = Histogram(
    "rlthf_http_request_seconds",
    "Time to answer an HTTP request",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 100),
)
WEBHOOKS = Counter("rlthf_webhooks_total", "Webhook events received", ["action"])
PREDICTIONS = Counter(
    "rlthf_predictions_total", "Tasks answered by /predict", ["outcome"]  # judged | cached | failed
)


def render() -> tuple[bytes, str]:
    """The metrics page body and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
