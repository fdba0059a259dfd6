"""``GET /report?project=ID``: the curation report as an HTML page (behind the app's basic auth)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from rlthf_backend.server.routes import BadRequest

report_bp = Blueprint("report", __name__)


@report_bp.get("/report")
def report() -> Response:
    raw = request.args.get("project", "")
    if not raw.isdigit():
        raise BadRequest(f"project must be a number, got {raw!r}")
    from rlthf_backend.report import build_report  # numpy / curation code: loaded on first request

    html = build_report(current_app.extensions["rlthf"].settings, int(raw))
    return Response(html, mimetype="text/html", headers={"Cache-Control": "no-store"})
