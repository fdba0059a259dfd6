"""The ML backend protocol as Label Studio 1.23 speaks it.

We implement it ourselves rather than through the PyPI package ``label-studio-ml`` (frozen at
1.0.9: Flask 1.1 / Werkzeug 2.0 pins, no ``START_TRAINING``, 405 on ``/versions``).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from rlthf_backend.jobs.connection import RedisUnavailable
from rlthf_backend.jobs.dispatch import TRAINING_EVENTS, event_project_id, only_skips
from rlthf_backend.labelstudio.client import project_id_from_uid
from rlthf_backend.labelstudio.config import LabelConfigError, parse_label_config
from rlthf_backend.labelstudio.predict import predict_tasks
from rlthf_backend.server import metrics
from rlthf_backend.server.context import BackendContext

log = logging.getLogger(__name__)
bp = Blueprint("ml_backend", __name__)


class BadRequest(Exception):
    """A request the backend cannot act on; answered as 400 with the message."""


def _ctx() -> BackendContext:
    return current_app.extensions["rlthf"]


def _json_body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    if not raw:
        raise BadRequest("empty request body: expected a JSON object")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def _extra_params(value: Any) -> dict[str, Any]:
    """``extra_params`` arrives as stored in Label Studio: an object, a JSON string, or nothing."""
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise BadRequest(f"extra_params is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadRequest(f"extra_params must be a JSON object, got {type(value).__name__}")
    return value


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
        uptime_s=round(time.time() - ctx.started_at, 1),
    )


@bp.post("/setup")
def setup() -> Response:
    body = _json_body()
    ctx = _ctx()
    try:
        parse_label_config(body.get("schema"))
    except LabelConfigError as exc:
        raise BadRequest(f"unsupported label config: {exc}") from exc
    _extra_params(body.get("extra_params"))
    project_id = project_id_from_uid(body.get("project"))
    if project_id is not None:
        ctx.schedule_webhook_auth_fix(project_id)
    return jsonify(model_version=ctx.model_version)


@bp.post("/predict")
def predict() -> Response:
    body = _json_body()
    ctx = _ctx()
    tasks = body.get("tasks")
    if not isinstance(tasks, list):
        raise BadRequest("'tasks' must be a list of Label Studio tasks")
    try:
        config = parse_label_config(body.get("label_config"))
    except LabelConfigError as exc:
        raise BadRequest(f"unsupported label config: {exc}") from exc
    if not all(isinstance(t, dict) for t in tasks):
        raise BadRequest("every item of 'tasks' must be a JSON object")

    model_version = ctx.model_version
    outcomes = predict_tasks(config, tasks, ctx.judge)
    for o in outcomes:
        metrics.PREDICTIONS.labels("failed" if not o.ok else "cached" if o.cached else "judged").inc()
    return jsonify(results=[o.wire(model_version) for o in outcomes], model_version=model_version)


@bp.post("/webhook")
def webhook() -> Response:
    body = _json_body()
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise BadRequest("webhook body has no 'action'")
    metrics.WEBHOOKS.labels(action).inc()
    project_id = event_project_id(body)
    if action not in TRAINING_EVENTS:
        return jsonify(status="ignored", action=action)
    if action != "START_TRAINING" and only_skips(body):
        return jsonify(status="ignored", action=action, reason="skipped tasks are not labels")
    if project_id is None:
        raise BadRequest(f"{action} webhook without a project id")
    try:
        queued = _ctx().jobs.submit(project_id, action, force_round=action == "START_TRAINING")
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
    raw = request.args.get("project")
    try:
        if raw is None:
            return jsonify(projects={str(k): v for k, v in ctx.jobs.all_status().items()})
        if not raw.isdigit():
            raise BadRequest(f"project must be a number, got {raw!r}")
        return jsonify(project=int(raw), **ctx.jobs.project_status(int(raw)))
    except RedisUnavailable as exc:
        return jsonify(error=str(exc)), 503


@bp.get("/versions")
def versions() -> Response:
    """The judge's version, then the project's reward-model versions (newest last)."""
    ctx = _ctx()
    found = [ctx.model_version]
    project_id = project_id_from_uid(_optional_json().get("project") or request.args.get("project"))
    if project_id is not None:
        found += [v.version for v in ctx.registry.versions(project_id)]
    return jsonify(versions=found)


def _optional_json() -> dict[str, Any]:
    """Label Studio sends ``GET /versions`` with a JSON body; tolerate none or a bad one."""
    body = request.get_json(silent=True, force=True)
    return body if isinstance(body, dict) else {}


@bp.get("/metrics")
def prometheus_metrics() -> Response:
    body, content_type = metrics.render(_ctx().jobs)
    return Response(body, content_type=content_type)
