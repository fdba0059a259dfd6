"""The doctor's own logic without servers: token kinds, Label Studio's error bodies, the output line."""

from __future__ import annotations

import base64
import json

import httpx

from rlthf_backend.cli.doctor import Check, _detail, _is_jwt, passed


def _jwt() -> str:
    part = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")  # noqa: E731
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'token_type': 'refresh'})}.c2lnbmF0dXJl"


def test_personal_access_tokens_are_told_from_legacy_tokens():
    assert _is_jwt(_jwt())
    assert not _is_jwt("0123456789abcdef0123456789abcdef01234567")  # a legacy token: 40 hex characters
    assert not _is_jwt("a.b.c") and not _is_jwt("")


def test_label_studio_error_bodies_become_one_readable_line():
    validation = httpx.Response(400, json={"detail": "Validation error", "validation_errors": {"non_field_errors": [
        "Can't connect to ML backend http://x, health check failed. <a href=\"https://l\">Learn more</a> here"]}})
    assert _detail(validation) == "Can't connect to ML backend http://x, health check failed. Learn more here"
    assert _detail(httpx.Response(403, json={"detail": "URL resolves to a reserved network address"})) == \
        "URL resolves to a reserved network address"
    assert _detail(httpx.Response(502, text="<html>\n bad gateway\n</html>")) == "bad gateway"


def test_a_line_per_check_with_the_fix_only_when_it_failed():
    ok = Check("jobs", "ok", "embedded mode", "start a worker")
    fail = Check("token", "FAIL", "refused", "create a new token")
    skip = Check("webhook", "skip", "needs a connected ML backend", "connect it first")
    assert ok.line() == "[  ok] jobs                 embedded mode"
    assert fail.line() == "[FAIL] token                refused -> fix: create a new token"
    assert skip.line().endswith("needs a connected ML backend (connect it first)")
    assert passed([ok, skip]) and not passed([ok, fail])


def test_the_database_check_says_which_database_and_never_its_password(tmp_path):
    from rlthf_backend.cli.doctor import _Context, check_database
    from rlthf_backend.app.settings import Settings
    from rlthf_backend.store.database import head_revision

    ok = check_database(_Context(Settings(data_dir=tmp_path, _env_file=None), None, None, None))
    assert ok.verdict == "ok" and "SQLite" in ok.detail and f"revision {head_revision()}" in ok.detail
    down = check_database(_Context(Settings(data_dir=tmp_path, _env_file=None,
                                            database_url="postgresql://rlthf:hunter2@127.0.0.1:1/rlthf"),
                                   None, None, None))
    assert down.verdict == "FAIL" and "Connection refused" in down.detail and "RLTHF_DATABASE_URL" in down.fix
    assert "hunter2" not in down.line()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "state.sqlite3").write_bytes(b"not a database" * 100)
    corrupt = check_database(_Context(Settings(data_dir=tmp_path / "broken", _env_file=None), None, None, None))
    assert corrupt.verdict == "FAIL" and "not a database" in corrupt.detail and "state.sqlite3" in corrupt.fix
