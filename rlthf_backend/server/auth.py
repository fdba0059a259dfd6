"""Optional HTTP basic auth on every endpoint (Label Studio's ``BASIC_AUTH`` method)."""

from __future__ import annotations

import hmac

from flask import Flask, Response, request

from rlthf_backend.app.settings import Settings


def _utf8(text: str | None) -> bytes:
    # compare_digest takes str only when ASCII; bytes work for every credential.
    return (text or "").encode("utf-8", "surrogatepass")


def install_basic_auth(app: Flask, settings: Settings) -> None:
    """Refuse every request without the configured credentials, when credentials are configured.

    Settings refuse half-set credentials, so "not enabled" here means neither was given.
    """
    if not settings.auth_enabled:
        return
    user = _utf8(settings.basic_auth_user)
    password = _utf8(settings.basic_auth_pass.get_secret_value() if settings.basic_auth_pass else "")

    @app.before_request
    def _check_basic_auth() -> Response | None:
        auth = request.authorization
        given = auth if auth is not None and auth.type == "basic" else None
        # Both comparisons always run (no short-circuit), so timing does not reveal a valid user.
        user_ok = hmac.compare_digest(_utf8(given.username if given else ""), user)
        password_ok = hmac.compare_digest(_utf8(given.password if given else ""), password)
        if given is not None and user_ok & password_ok:
            return None
        return Response(
            '{"error": "authentication required (HTTP basic auth)"}',
            status=401,
            mimetype="application/json",
            headers={"WWW-Authenticate": 'Basic realm="rlthf-backend"'},
        )
