"""Optional HTTP basic auth on every endpoint (Label Studio's ``BASIC_AUTH`` method)."""

from __future__ import annotations

import hmac

from flask import Flask, Response, request

from rlthf_backend.settings import Settings


def install_basic_auth(app: Flask, settings: Settings) -> None:
    """Refuse every request without the configured credentials, when credentials are configured."""
    if not settings.auth_enabled:
        return
    user = settings.basic_auth_user or ""
    password = settings.basic_auth_pass.get_secret_value() if settings.basic_auth_pass else ""

    @app.before_request
    def _check_basic_auth() -> Response | None:
        auth = request.authorization
        if (
            auth is not None
            and auth.type == "basic"
            and hmac.compare_digest(auth.username or "", user)
            and hmac.compare_digest(auth.password or "", password)
        ):
            return None
        return Response(
            '{"error": "authentication required (HTTP basic auth)"}',
            status=401,
            mimetype="application/json",
            headers={"WWW-Authenticate": 'Basic realm="rlthf-backend"'},
        )
