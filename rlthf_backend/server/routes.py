"""The ML backend protocol as Label Studio 1.23 speaks it.

We implement it ourselves rather than through the PyPI package ``label-studio-ml`` (frozen at
1.0.9: Flask 1.1 / Werkzeug 2.0 pins, no ``START_TRAINING``, 405 on ``/versions``).
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, jsonify, request

from rlthf_backend.jobs.connection import RedisUnavailable
from rlthf_backend.jobs.dispatch import TRAINING_EVENTS, ProjectMissing, QueueFull, only_skips
from rlthf_backend.labelstudio.predict import predict_tasks
from rlthf_backend.server import metrics
from rlthf_backend.server.context import BackendContext
from rlthf_backend.server.validation import (
    BadRequest,
    extra_params,
    json_body,
    label_config,
    optional_json_body,
    optional_project_id,
    query_project_id,
    tasks_list,
    webhook_action,
    webhook_project_id,
)

log = logging.getLogger(__name__)
bp = Blueprint("ml_backend", __name__)


def _ctx() -> BackendContext:
    return current_app.extensions["rlthf"]


@bp.get("/health")
@bp.get("/")
def health() -> Response:
    ctx = _ctx()
    return jsonify(
        status="UP",
        model_class="RLTHFBackend",
        judge=ctx.settings.judge,
        auth=ctx.settings.auth_enabled,
        jobs=ctx.jobs.health(),
        judge_cache=ctx.judge_cache_health(),
        uptime_s=round(time.time() - ctx.started_at, 1),
    )


@bp.post("/setup")
def setup() -> Response:
    body = json_body()
    ctx = _ctx()
    label_config(body.get("schema"))
    extra_params(body.get("extra_params"))
    project_id = optional_project_id(body.get("project"), uid=True)
    if project_id is not None:
        ctx.schedule_webhook_auth_fix(project_id)
    return jsonify(model_version=ctx.model_version)


@bp.post("/predict")
def predict() -> Response:
    started = time.monotonic()
    body = json_body()
    ctx = _ctx()
    tasks = tasks_list(body.get("tasks"))
    config = label_config(body.get("label_config"))
    try:  # only the background job needs it: a project we cannot read must not cost the answer
        project_id = optional_project_id(body.get("project"), uid=True)
    except BadRequest:
        project_id = None
    model_version = ctx.model_version
    # One task: an annotator opened it and waits; it goes ahead of any bulk judging. Whatever is not
    # judged within the budget is answered "not yet" (Label Studio stores nothing for it) and
    # judged by a background job that writes the predictions to Label Studio.
    judge = ctx.judge  # built on first use: that time counts against the budget too
    budget_s = max(0.0, ctx.settings.predict_budget_s - (time.monotonic() - started))
    outcomes = predict_tasks(config, tasks, judge, budget_s=budget_s, urgent=len(tasks) == 1)
    for o in outcomes:
        metrics.PREDICTIONS.labels(
            "deferred" if o.pending else "failed" if not o.ok else "cached" if o.cached else "judged").inc()
    pending = [o.task_id for o in outcomes if o.pending]
    if pending:
        ctx.judge_later(project_id, pending, model_version)
    return jsonify(results=[o.wire(model_version) for o in outcomes], model_version=model_version)


@bp.post("/webhook")
def webhook() -> Response:
    body = json_body()
    action = webhook_action(body)
    metrics.WEBHOOKS.labels(metrics.action_label(action)).inc()
    if action not in TRAINING_EVENTS:
        return jsonify(status="ignored", action=action)
    project_id = webhook_project_id(body)
    if action != "START_TRAINING" and only_skips(body):
        return jsonify(status="ignored", action=action, reason="skipped tasks are not labels")
    if project_id is None:
        raise BadRequest(f"{action} webhook without a project id")
    try:
        queued = _ctx().jobs.submit(project_id, action, force_round=action == "START_TRAINING")
    except ProjectMissing as exc:
        return jsonify(status="ignored", action=action, reason=str(exc))
    except QueueFull as exc:
        log.warning("webhook %s for project %s not queued: %s", action, project_id, exc)
        return jsonify(status="not queued", action=action, error=str(exc)), 429
    except RedisUnavailable as exc:
        metrics.WEBHOOKS_NOT_QUEUED.inc()
        log.error("webhook %s for project %s not queued: %s", action, project_id, exc)
        # Label Studio never retries; the next successful training reads everything anyway.
        code = 503 if action == "START_TRAINING" else 200
        return jsonify(status="not queued", action=action, error=str(exc)), code
    log.info("webhook %s for project %s -> job %s%s", action, project_id, queued.job_id,
             " (coalesced)" if queued.coalesced else "")
    return jsonify(status="queued", action=action, job_id=queued.job_id, coalesced=queued.coalesced)


@bp.get("/jobs")
def jobs() -> Response:
    ctx = _ctx()
    project_id = query_project_id(required=False)
    try:
        if project_id is None:
            return jsonify(projects={str(k): v.as_dict() for k, v in ctx.jobs.all_status().items()})
        return jsonify(project=project_id, **ctx.jobs.project_status(project_id).as_dict())
    except RedisUnavailable as exc:
        return jsonify(error=str(exc)), 503


@bp.get("/versions")
def versions() -> Response:
    """The judge's version, then the project's reward-model versions (newest last)."""
    ctx = _ctx()
    found = [ctx.model_version]
    project_id = optional_project_id(optional_json_body().get("project") or request.args.get("project"), uid=True)
    if project_id is not None:
        found += [v.version for v in ctx.registry.versions(project_id)]
    return jsonify(versions=found)


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.render(_ctx().jobs)
    return Response(body, content_type=content_type)
