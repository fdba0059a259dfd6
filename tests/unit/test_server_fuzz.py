"""A property-based fuzz layer over every endpoint, with and without basic auth.

Hypothesis throws arbitrary JSON (deep, huge numbers, NaN, lone surrogates), raw bytes, unicode,
sizes, invented methods, odd query strings and Authorization headers at the app. The properties:
never a 5xx, every error is JSON, and afterwards ``/metrics`` and ``/health`` still answer with a
``/metrics`` page that did not grow with what clients sent (memory bounded by the labels' sets).

Bounded for CI: a fixed number of examples per test, derandomized (the same examples every run).
"""

from __future__ import annotations

import base64
import json
import sys
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rlthf_backend.labelstudio.config import shipped_config
from rlthf_backend.server.app import create_app
from rlthf_backend.app.settings import Settings

PAIRWISE = shipped_config("pairwise")
CHOICES = shipped_config("choices")
USER, PASSWORD = "lś", "pässwörd:with colon"

ENDPOINTS = ["/", "/health", "/setup", "/predict", "/webhook", "/jobs", "/versions", "/metrics", "/report",
             "/train", "/nope", "/predict/", "//webhook"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "BREW", "get", "X" * 50]

#: Examples per property: about 5 s for the whole file on one core.
FUZZ = settings(max_examples=300, deadline=None, database=None,
                derandomize=True, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Text with everything JSON can carry, lone surrogates included (json.dumps escapes them).
texts = st.text(st.characters(codec=None, exclude_categories=()), max_size=40) | st.sampled_from(
    ["", "\ud800", "\udfff", "²", "1_000", "-1", "3.9", "1e400", "Infinity", "NaN", "4" * 400, "7.1700000000",
     "ANNOTATION_CREATED", "START_TRAINING", "<View/>", PAIRWISE, "../../etc/passwd", "\x00"])
numbers = (st.integers(min_value=-(10**30), max_value=10**30) | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([0, 1, 7, 2**31, -1]))
scalars = st.none() | st.booleans() | numbers | texts
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(texts, inner, max_size=4), max_leaves=20)


def mostly(good):
    """Usually a value of the expected shape, sometimes anything at all (one_of would favour the latter)."""
    return st.integers(0, 3).flatmap(lambda i: json_values if i == 3 else good)


small_text = st.text(max_size=30)
tasks = st.lists(mostly(st.fixed_dictionaries(
    {"id": mostly(st.integers(1, 10**6)), "data": mostly(st.fixed_dictionaries(
        {"prompt": mostly(small_text), "answer1": mostly(small_text), "answer2": mostly(small_text)},
        optional={"llm_label": mostly(st.sampled_from(["a", "b", "tie", "A"])),
                  "llm_label_swapped": mostly(st.sampled_from(["a", "b"])),
                  "llm_prob": mostly(st.floats(0, 1))}))})), max_size=4)
project_ids = st.integers(1, 50) | st.integers(1, 50).map(lambda i: f"{i}.1700000000")
actions = st.sampled_from(["ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED",
                           "START_TRAINING", "TASKS_CREATED", "PROJECT_UPDATED"])

# Bodies shaped like Label Studio's, each field usually right and sometimes anything.
predict_bodies = st.fixed_dictionaries(
    {"tasks": mostly(tasks), "label_config": mostly(st.sampled_from([PAIRWISE, CHOICES]))},
    optional={"project": mostly(project_ids), "params": json_values})
setup_bodies = st.fixed_dictionaries({"project": mostly(project_ids), "schema": mostly(st.just(PAIRWISE))},
                                     optional={"extra_params": json_values | st.just('{"a": [[[1]]]}')})
webhook_bodies = st.fixed_dictionaries(
    {"action": mostly(actions), "project": mostly(st.fixed_dictionaries({"id": mostly(st.integers(1, 50))}))},
    optional={"annotation": mostly(st.fixed_dictionaries({"id": st.integers(1, 100), "was_cancelled": st.booleans()})),
              "annotations": json_values})
versions_bodies = st.fixed_dictionaries({}, optional={"project": mostly(project_ids)})
ls_requests = st.one_of(st.tuples(st.just("/predict"), predict_bodies), st.tuples(st.just("/setup"), setup_bodies),
                        st.tuples(st.just("/webhook"), webhook_bodies),
                        st.tuples(st.just("/versions"), versions_bodies))
ls_bodies = st.one_of(predict_bodies, setup_bodies, webhook_bodies, json_values)


def _encode(value) -> bytes:
    return json.dumps(value).encode()


raw_bodies = st.one_of(
    ls_bodies.map(_encode),
    st.binary(max_size=200),
    st.integers(min_value=1, max_value=3000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(min_value=1, max_value=3000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.sampled_from([b"", b"{", b'{"tasks": NaN}', b'{"project": Infinity}', b'{"n": ' + b"9" * 5000 + b"}",
                     b'{"action": "\\ud800"}', b"\xff\xfe", b"null", b"[]"]),
)


def _auth_header(value: bytes) -> str:
    return "Basic " + base64.b64encode(value).decode()


auth_headers = st.one_of(
    st.none(),
    st.just(_auth_header(f"{USER}:{PASSWORD}".encode())),
    st.binary(max_size=40).map(_auth_header),
    st.text(max_size=40).map(lambda t: _auth_header(t.encode("utf-8", "surrogatepass"))),
    st.sampled_from(["Basic", "Basic !!!", "Bearer x", "Basic " + "A" * 500, _auth_header(b"no-colon-secret")]),
)

requests = st.fixed_dictionaries({
    "method": st.sampled_from(METHODS),
    "path": st.sampled_from(ENDPOINTS),
    "query": st.none() | st.dictionaries(st.sampled_from(["project", "x", "\ud800"]), texts, max_size=2),
    "body": st.none() | raw_bodies,
    "content_type": st.sampled_from(["application/json", "text/plain", "application/x-www-form-urlencoded", None]),
    "authorization": auth_headers,
})


_CLIENTS: dict[bool, object] = {}


def _client(auth: bool):
    """One app per auth mode for the whole module (examples share it, as a server's clients do)."""
    if auth not in _CLIENTS:
        import tempfile

        kw = {"basic_auth_user": USER, "basic_auth_pass": PASSWORD} if auth else {}
        root = tempfile.mkdtemp(prefix="rlthf-fuzz-")
        settings_ = Settings(judge="precomputed", data_dir=root, queue_name=f"fuzz-{auth}", debounce_seconds=0,
                             job_retries=0, max_request_mb=1, _env_file=None, **kw)
        _CLIENTS[auth] = create_app(settings_).test_client()
    return _CLIENTS[auth]


def _query(params: dict[str, str]) -> str:
    """Percent-encoded UTF-8, lone surrogates included, as a client would put them on the wire."""
    return "&".join(f"{quote(k, errors='surrogatepass')}={quote(v, errors='surrogatepass')}"
                    for k, v in params.items())


def _send(client, req):
    headers = {}
    if req["authorization"] is not None:
        headers["Authorization"] = req["authorization"]
    return client.open(req["path"], method=req["method"], query_string=_query(req["query"] or {}), data=req["body"],
                       headers=headers, content_type=req["content_type"])


def _check(response) -> None:
    # Shown by --hypothesis-show-statistics: which answers the examples reached.
    event(f"{response.request.method} {response.request.path} -> {response.status_code}")
    assert response.status_code < 500, (response.status_code, response.get_data(as_text=True)[:500])
    if response.status_code >= 400 and response.request.method != "HEAD":
        assert response.is_json and "error" in response.get_json(), response.get_data(as_text=True)[:300]


def _still_healthy(client, auth: bool) -> None:
    headers = {"Authorization": _auth_header(f"{USER}:{PASSWORD}".encode())} if auth else {}
    health = client.get("/health", headers=headers)
    assert health.status_code == 200 and health.get_json()["status"] == "UP"
    page = client.get("/metrics", headers=headers)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    # Bounded: fixed label sets (methods, actions, routes, statuses) whatever was sent.
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(series) < 2000 and len(text) < 400_000, (len(series), len(text))
    assert "BREW" not in text and "\\ud800" not in text


@FUZZ
@given(req=requests)
def test_no_request_gets_a_5xx_without_auth(req):
    _check(_send(_client(False), req))


@FUZZ
@given(req=requests)
def test_no_request_gets_a_5xx_with_auth(req):
    _check(_send(_client(True), req))


@FUZZ
@given(request=ls_requests, auth=st.booleans())
def test_label_studio_shaped_bodies_never_5xx(request, auth):
    """Valid JSON in Label Studio's shapes (so past the JSON layer) with arbitrary field values."""
    path, body = request
    headers = {"Authorization": _auth_header(f"{USER}:{PASSWORD}".encode())} if auth else {}
    _check(_client(auth).open(path, method="GET" if path == "/versions" else "POST", json=body, headers=headers))


@FUZZ
@given(project=texts)
def test_query_project_ids_never_5xx(project):
    for path in ("/jobs", "/versions", "/report"):
        _check(_client(False).get(path, query_string=_query({"project": project})))


@pytest.mark.parametrize("auth", [False, True], ids=["open", "basic-auth"])
def test_metrics_and_health_still_answer_after_the_fuzzing(auth):
    """Runs after the tests above (file order): the apps they hammered are still healthy."""
    recursion_limit = sys.getrecursionlimit()
    _still_healthy(_client(auth), auth)
    assert sys.getrecursionlimit() == recursion_limit
