"""Prometheus metrics of the HTTP layer.

Label values come from fixed sets only (:func:`method_label`, :func:`action_label`, the route
rules, the status code): a client-chosen string never becomes a series, so clients can neither
grow ``/metrics`` without bound nor break its encoding.

Under gunicorn with several workers, ``rlthf-backend serve`` points ``PROMETHEUS_MULTIPROC_DIR``
at a fresh folder before the workers start, and ``/metrics`` aggregates every worker's values.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.core import CounterMetricFamily, REGISTRY

if TYPE_CHECKING:  # pragma: no cover
    from rlthf_backend.jobs.dispatch import TrainingDispatcher

#: HTTP methods counted under their own name; any other is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: Label Studio's webhook actions; any other is counted as "other".
KNOWN_ACTIONS = frozenset({
    "PROJECT_CREATED", "PROJECT_UPDATED", "PROJECT_DELETED", "TASKS_CREATED", "TASKS_DELETED",
    "ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED",
    "LABEL_LINK_CREATED", "LABEL_LINK_UPDATED", "LABEL_LINK_DELETED",
    "REVIEW_CREATED", "REVIEW_UPDATED", "REVIEWS_DELETED", "START_TRAINING",
})


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


def action_label(action: str) -> str:
    return action if action in KNOWN_ACTIONS else "other"


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
WEBHOOKS_NOT_QUEUED = Counter(
    "rlthf_webhooks_not_queued_total", "Webhook events acknowledged without queueing (Redis unreachable)"
)
PREDICTIONS = Counter(
    "rlthf_predictions_total", "Tasks answered by /predict", ["outcome"]  # judged | cached | failed | deferred
)


class _JobCollector:
    """Training-job counters, which workers keep in Redis (they serve no HTTP themselves)."""

    def __init__(self, jobs: "TrainingDispatcher") -> None:
        self.jobs = jobs

    def collect(self):
        try:
            counters = self.jobs.job_counters()
        except Exception:  # Redis down or disabled: /metrics still answers, without these
            return
        for outcome in ("finished", "failed"):
            total = CounterMetricFamily(f"rlthf_jobs_{outcome}", f"Training jobs {outcome}")
            total.add_metric([], counters.get(f"jobs_{outcome}_total", 0.0))
            yield total
            secs = CounterMetricFamily(f"rlthf_job_{outcome}_seconds", f"Seconds spent in training jobs {outcome}")
            secs.add_metric([], counters.get(f"job_{outcome}_seconds_sum", 0.0))
            yield secs


def render(jobs: "TrainingDispatcher | None" = None) -> tuple[bytes, str]:
    """The metrics page body and its content type."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    if jobs is not None:
        extra = CollectorRegistry()
        extra.register(_JobCollector(jobs))
        body += generate_latest(extra)
    return body, CONTENT_TYPE_LATEST
