"""The Flask app factory."""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from rlthf_backend.core.judges.base import Judge
from rlthf_backend.server import metrics
from rlthf_backend.server.auth import install_basic_auth
from rlthf_backend.server.context import BackendContext
from rlthf_backend.server.report_routes import report_bp
from rlthf_backend.server.routes import bp
from rlthf_backend.server.validation import BadRequest
from rlthf_backend.app.settings import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, judge: Judge | None = None) -> Flask:
    """Build the backend app. ``judge`` replaces the configured one (tests, embedding in other apps)."""
    settings = settings or get_settings()
    app = Flask("rlthf_backend")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Werkzeug refuses a larger body before reading it (Content-Length) or while streaming it.
    app.config["MAX_CONTENT_LENGTH"] = int(settings.max_request_mb * 1024 * 1024)
    app.extensions["rlthf"] = BackendContext(settings, judge)
    install_basic_auth(app, settings)
    app.register_blueprint(bp)
    app.register_blueprint(report_bp)
    _install_request_metrics(app)
    _install_error_handlers(app, settings)
    return app


def _install_request_metrics(app: Flask) -> None:
    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response: Response) -> Response:
        endpoint = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.HTTP_REQUESTS.labels(endpoint, metrics.method_label(request.method), str(response.status_code)).inc()
        if "started" in g:
            metrics.HTTP_SECONDS.labels(endpoint).observe(time.perf_counter() - g.started)
        return response


def _install_error_handlers(app: Flask, settings: Settings) -> None:
    """Every error is a JSON object with an ``error`` message; never an HTML page or a traceback."""

    @app.errorhandler(BadRequest)
    def _bad_request(exc: BadRequest):
        log.warning("400 %s %s: %.300s", request.method, request.path, exc)
        return jsonify(error=str(exc)), 400

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge):
        log.warning("413 %s %s: body of %s bytes", request.method, request.path, request.content_length)
        return jsonify(error=f"request body over the limit of {settings.max_request_mb:g} MB "
                             "(RLTHF_MAX_REQUEST_MB)"), 413

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return jsonify(error=exc.description or exc.name), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # The details (paths, library messages) go to the log, not to whoever sent the request.
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error=f"internal error ({type(exc).__name__}); the backend's log has the details"), 500
