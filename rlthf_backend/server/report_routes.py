"""``GET /report?project=ID``: the curation report as an HTML page (behind the app's basic auth)."""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from rlthf_backend.server.validation import query_project_id

report_bp = Blueprint("report", __name__)


@report_bp.get("/report")
def report() -> Response:
    project_id = query_project_id()
    from rlthf_backend.app.report import build_report  # numpy / curation code: loaded on first request

    html = build_report(current_app.extensions["rlthf"].settings, project_id)
    return Response(html, mimetype="text/html", headers={"Cache-Control": "no-store"})
