"""``rlthf-backend doctor``: check a deployment the way Label Studio will use it, one line per check.

Each check says what it saw and, when it fails, the fix. They cover what breaks in practice with
Label Studio 1.23 ML backends: an unreachable server or a token of the wrong kind; a backend that
Label Studio refuses to reach (SSRF protection, ``localhost`` inside a container); a label config
the backend cannot read; a project without the backend, without its webhook, or with a webhook
that lacks the basic-auth header; a project whose ``model_version`` / sampling do not follow the
rounds (so the queue is not ordered); no Redis or no worker (Train does nothing); a judge that
does not answer; a registry without room.

Checks that need something an earlier one could not establish are skipped, saying which.
Label Studio is read over its REST API (httpx) so the doctor can tell apart what the SDK hides
(legacy vs personal access tokens, the 403 of its SSRF protection). The only writes are two
no-op probes, and only where they diagnose: re-submitting the connected backend's own URL (when
Label Studio says it cannot reach it) and the webhook's own URL, which Label Studio validates
against its SSRF rules on every save.

Whatever answers, every check ends in one line: each request has a deadline for the whole of it
(httpx's timeouts are per read, so a server that sends a byte a second never trips them), and an
answer that is not what Label Studio or the backend sends (an HTML page, a closed connection)
fails that check, naming the URL and what answered, while the other checks go on.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from rlthf_backend.labelstudio.client import basic_auth_header
from rlthf_backend.labelstudio.config import LabelConfigError, parse_label_config
from rlthf_backend.labelstudio.queue_order import UNCERTAINTY_SAMPLING
from rlthf_backend.registry.records import newest_round_version
from rlthf_backend.app.project import model_registry
from rlthf_backend.app.settings import Settings

Verdict = Literal["ok", "FAIL", "skip"]

#: Free space the registry needs, by reward-model kind: a few versions of the small embedding
#: heads, or of fine-tuned transformer reward models (hundreds of MB each, RLTHF_KEEP_VERSIONS kept).
REGISTRY_MIN_FREE_BYTES = {"embedding": 1 << 30, "trl": 10 << 30}
#: Actions a webhook must send for the loop to run (label events and the Train button).
NEEDED_ACTIONS = frozenset({"ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED",
                            "ANNOTATIONS_DELETED", "START_TRAINING"})
ML_STATES = {"CO": "connected", "DI": "disconnected", "ER": "error", "TR": "training", "PR": "predicting"}
#: Seconds one request may take in all (connecting, waiting, reading every byte).
TIMEOUT_S = 15.0
#: Longest answer read: Label Studio's and the backend's answers here are a few KiB.
MAX_BODY_BYTES = 16 << 20
LS_FIX = ("LABEL_STUDIO_URL must be Label Studio's own base URL (not another web app, a proxy's login page "
          "or a /projects/... path)")
BACKEND_FIX = "the URL must point at rlthf-backend serve"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""

    def line(self) -> str:
        fix = f" -> fix: {self.fix}" if self.fix and self.verdict == "FAIL" else ""
        hint = f" ({self.fix})" if self.fix and self.verdict == "skip" else ""
        return f"[{self.verdict:>4}] {self.name:<20} {self.detail}{fix}{hint}"


class DeadlineExceeded(httpx.TimeoutException):
    """A request that did not end within its deadline; the message names the URL."""


class UnexpectedAnswer(Exception):
    """An answer the doctor cannot read (not JSON, not the shape asked for); the message names the
    URL and what answered, ``fix`` says what to check."""

    def __init__(self, message: str, fix: str = "") -> None:
        super().__init__(message)
        self.fix = fix


def _what_answered(response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    return f"{response.status_code} {kind}, {len(response.content)} bytes"


def http(method: str, url: str, *, timeout: float = TIMEOUT_S, **kwargs: Any) -> httpx.Response:
    """``httpx.request`` that ends within ``timeout`` seconds in all, whatever the server does.

    The request runs in a daemon thread that the caller stops waiting for at the deadline: a
    server dripping its status line or headers keeps httpx's reads alive forever. The body is read
    piece by piece and given up at the deadline (closing the connection). ``kwargs``: ``headers``,
    ``auth``, ``params``, ``json``.
    """
    deadline = time.monotonic() + timeout
    auth = kwargs.pop("auth", None)
    outcome: dict[str, Any] = {}

    def fetch() -> None:
        try:
            with httpx.Client(timeout=timeout, auth=auth) as client, \
                    client.stream(method, url, **kwargs) as head:
                outcome["head"] = head
                body = bytearray()
                for chunk in head.iter_raw():
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise UnexpectedAnswer(f"{url} answered {head.status_code} with more than "
                                               f"{MAX_BODY_BYTES >> 20} MiB")
                    if time.monotonic() > deadline:
                        break  # the caller has stopped waiting already
                else:
                    outcome["response"] = httpx.Response(head.status_code, headers=head.headers,
                                                         content=bytes(body), request=head.request)
        except Exception as exc:  # noqa: BLE001 - handed to the caller, which sorts it
            outcome["error"] = exc

    thread = threading.Thread(target=fetch, name="doctor-http", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline - time.monotonic()))
    if "response" in outcome:
        return outcome["response"]
    if "error" in outcome:
        raise outcome["error"]
    head = outcome.get("head")
    so_far = (f"answered {head.status_code} {head.headers.get('content-type', 'no content type')} but"
              if head is not None else "sent")
    raise DeadlineExceeded(f"{url} {so_far} no complete answer within {timeout:g} s",
                           request=httpx.Request(method, url))


def _json(response: httpx.Response, shape: type | tuple[type, ...] = dict, fix: str = LS_FIX) -> Any:
    """The answer's JSON when it has ``shape``; else :class:`UnexpectedAnswer` naming what answered."""
    try:
        body = response.json()
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        body = UnexpectedAnswer  # never a JSON value: fails the shape test
    if not isinstance(body, shape):
        raise UnexpectedAnswer(f"{response.request.url} answered {_what_answered(response)}, not the JSON expected",
                               fix)
    return body


def _http_error(exc: httpx.HTTPError) -> str:
    """``exc`` in one line that names the URL."""
    text = f"{type(exc).__name__}: {exc}"
    try:
        url = str(exc.request.url)
    except RuntimeError:  # no request attached
        return text
    return text if url in text else f"{url}: {text}"


def passed(checks: list[Check]) -> bool:
    """All checks that ran passed (exit code 0). A skipped check is not a pass when it was skipped
    because an earlier one failed: that one already fails the run."""
    return not any(c.verdict == "FAIL" for c in checks)


@dataclass
class _Context:
    """What earlier checks established, for the later ones."""

    settings: Settings
    project_id: int | None
    backend_url: str | None
    min_free_bytes: int | None
    timeout: float = TIMEOUT_S
    ls_up: bool = False
    auth: dict[str, str] = field(default_factory=dict)  # the Authorization header that works
    project: dict[str, Any] | None = None
    ml: dict[str, Any] | None = None
    config_ok: bool = False

    @property
    def ls_url(self) -> str:
        return self.settings.label_studio_url.rstrip("/")

    def ls(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return http(method, self.ls_url + path, headers=self.auth, timeout=self.timeout, **kwargs)

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        s = self.settings
        if not s.auth_enabled:
            return None
        return s.basic_auth_user or "", s.basic_auth_pass.get_secret_value()  # type: ignore[union-attr]


def _detail(response: httpx.Response) -> str:
    """Label Studio's error message, flattened to one line."""
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        # Label Studio answers a failed validation with detail "Validation error" and the reasons
        # in validation_errors: the reasons first.
        for key in ("validation_errors", "detail", "message", "error"):
            if body.get(key):
                body = body[key]
                break
    if isinstance(body, dict):  # {"field": ["reason", ...]}: the reasons, in words
        body = " ".join(str(r) for rs in body.values() for r in (rs if isinstance(rs, list) else [rs]))
    text = body if isinstance(body, str) else json.dumps(body)
    return " ".join(re.sub(r"<[^>]+>", "", text).split())[:400]  # Label Studio puts HTML links in some


def _is_jwt(token: str) -> bool:
    """Personal access tokens are JWTs (three base64url parts); legacy tokens are 40 hex characters."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    try:
        json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError:
        return False
    return True


# --- the checks, in order -------------------------------------------------------------------------


def check_label_studio(ctx: _Context) -> Check:
    try:
        r = http("GET", ctx.ls_url + "/health", timeout=ctx.timeout)
    except httpx.HTTPError as exc:
        return Check("label-studio", "FAIL", f"no answer from {ctx.ls_url} ({_http_error(exc)})",
                     "start Label Studio, or set LABEL_STUDIO_URL to the address this machine reaches it at")
    if r.status_code != 200:
        return Check("label-studio", "FAIL", f"{ctx.ls_url}/health answered {r.status_code}",
                     "LABEL_STUDIO_URL must be Label Studio's base URL (no /projects/... path)")
    _json(r)  # Label Studio's /health answers {"status": "UP"}; a page there is another server
    ctx.ls_up = True
    version = ""
    try:
        version = _json(http("GET", ctx.ls_url + "/api/version", timeout=ctx.timeout)).get("release", "")
    except (httpx.HTTPError, UnexpectedAnswer):
        pass  # the version is only shown, never needed
    return Check("label-studio", "ok", f"Label Studio {version} answers at {ctx.ls_url}".replace("  ", " "))


def check_token(ctx: _Context) -> Check:
    name = "token"
    if not ctx.ls_up:
        return Check(name, "skip", "needs Label Studio")
    key = ctx.settings.label_studio_api_key
    if key is None or not key.get_secret_value().strip():
        return Check(name, "FAIL", "LABEL_STUDIO_API_KEY is not set",
                     "set it to your access token (Label Studio: Account & Settings)")
    token = key.get_secret_value().strip()
    if _is_jwt(token):
        kind = "personal access token"
        r = http("POST", ctx.ls_url + "/api/token/refresh/", json={"refresh": token}, timeout=ctx.timeout)
        if r.status_code != 200:
            return Check(name, "FAIL", f"Label Studio refused the {kind} ({r.status_code}: {_detail(r)})",
                         "the token is revoked, expired or from another Label Studio: create a new one in "
                         "Account & Settings > Personal Access Token")
        headers = {"Authorization": f"Bearer {_json(r).get('access', '')}"}
    else:
        kind = "legacy token"
        headers = {"Authorization": f"Token {token}"}
    r = http("GET", ctx.ls_url + "/api/current-user/whoami", headers=headers, timeout=ctx.timeout)
    if r.status_code != 200:
        message = _detail(r)
        if "legacy token authentication has been disabled" in message:
            fix = ("this organization turned legacy tokens off: use a personal access token (Account & Settings), "
                   "or enable legacy tokens (Organization > API Tokens Settings)")
        else:
            fix = "copy the token again from Account & Settings (legacy token) or create a personal access token"
        return Check(name, "FAIL", f"Label Studio refused the {kind} ({r.status_code}: {message})", fix)
    me = _json(r)
    ctx.auth = headers
    user = me.get("email") or me.get("username") or "?"
    return Check(name, "ok", f"{kind} of {user}")


def check_project_config(ctx: _Context) -> Check:
    name = "project-config"
    if ctx.project_id is None:
        return Check(name, "skip", "no project given", "run with --project ID for the project checks")
    if not ctx.auth:
        return Check(name, "skip", "needs a valid token")
    r = ctx.ls("GET", f"/api/projects/{ctx.project_id}")
    if r.status_code == 404:
        return Check(name, "FAIL", f"Label Studio has no project {ctx.project_id}",
                     "use the id from the project's URL (/projects/ID)")
    if r.status_code != 200:
        return Check(name, "FAIL", f"reading project {ctx.project_id} answered {r.status_code}: {_detail(r)}",
                     "the token's user must be a member of the project's organization")
    ctx.project = _json(r)
    try:
        config = parse_label_config(ctx.project.get("label_config"))
    except LabelConfigError as exc:
        return Check(name, "FAIL", f"the label config is not a supported pairwise config: {exc}",
                     "use label_config/pairwise.xml or label_config/choices.xml (Settings > Labeling Interface)")
    ctx.config_ok = True
    fields = ", ".join(f"${f}" for f in config.fields)
    return Check(name, "ok", f"{config.kind} control '{config.control_name}' over {fields}")


def _backend_matches(url: str, wanted: str | None) -> bool:
    return wanted is None or url.rstrip("/") == wanted.rstrip("/")


def check_ml_backend(ctx: _Context) -> Check:
    name = "ml-backend"
    if not ctx.config_ok:
        return Check(name, "skip", "needs a project with a supported config")
    r = ctx.ls("GET", "/api/ml", params={"project": ctx.project_id})
    if r.status_code != 200:
        return Check(name, "FAIL", f"listing the project's ML backends answered {r.status_code}: {_detail(r)}")
    backends = [m for m in _json(r, list) if isinstance(m, dict)]
    ours = [m for m in backends if _backend_matches(m.get("url", ""), ctx.backend_url)]
    where = ctx.backend_url or "this backend"
    if not ours:
        seen = ", ".join(m.get("url", "?") for m in backends) or "none"
        return Check(name, "FAIL", f"no ML backend at {where} is connected to project {ctx.project_id} "
                     f"(connected: {seen})",
                     f"Project Settings > Model > Connect Model with URL {ctx.backend_url or 'http://<backend>:9090'}")
    ctx.ml = ours[0]
    if ctx.backend_url is None:
        ctx.backend_url = ctx.ml["url"].rstrip("/")
    auth = "basic auth" if ctx.ml.get("auth_method") == "BASIC_AUTH" else "no auth"
    if ctx.basic_auth and ctx.ml.get("auth_method") != "BASIC_AUTH":
        return Check(name, "FAIL", f"{ctx.ml['url']} is connected without auth, but this backend requires basic auth",
                     "Project Settings > Model > edit: choose Basic Authentication with BASIC_AUTH_USER / _PASS")
    return Check(name, "ok", f"{ctx.ml['url']} connected as '{ctx.ml.get('title')}' (id {ctx.ml['id']}, {auth})")


def check_backend_here(ctx: _Context) -> Check:
    name = "backend"
    if ctx.backend_url is None:
        return Check(name, "skip", "no backend URL", "give --backend-url, or --project ID with a connected backend")
    try:
        r = http("GET", ctx.backend_url + "/health", auth=ctx.basic_auth, timeout=ctx.timeout)
    except httpx.HTTPError as exc:
        return Check(name, "FAIL", f"no answer from {ctx.backend_url} here ({_http_error(exc)})",
                     "start it: rlthf-backend serve (or docker compose up backend)")
    if r.status_code == 401:
        return Check(name, "FAIL", f"{ctx.backend_url} wants other basic-auth credentials",
                     "run the doctor with the backend's BASIC_AUTH_USER / BASIC_AUTH_PASS")
    if r.status_code != 200:
        return Check(name, "FAIL", f"{ctx.backend_url}/health answered {r.status_code}",
                     "the URL must point at rlthf-backend serve")
    jobs = _json(r, fix=BACKEND_FIX).get("jobs")
    mode = jobs.get("mode", "?") if isinstance(jobs, dict) else "?"
    return Check(name, "ok", f"{ctx.backend_url} answers here (jobs: {mode})")


def check_backend_from_label_studio(ctx: _Context) -> Check:
    name = "backend-from-ls"
    if ctx.ml is None:
        return Check(name, "skip", "needs a connected ML backend")
    # Reading one backend makes Label Studio call its /health and /setup again (update_state).
    r = ctx.ls("GET", f"/api/ml/{ctx.ml['id']}")
    if r.status_code != 200:
        return Check(name, "FAIL", f"reading ML backend {ctx.ml['id']} answered {r.status_code}: {_detail(r)}")
    ml = _json(r)
    state = ML_STATES.get(ml.get("state"), ml.get("state"))
    if state in ("connected", "training", "predicting"):
        return Check(name, "ok", f"Label Studio reaches {ml['url']} ({state})")
    # Label Studio keeps no reason for "disconnected": submitting the same URL again runs its own
    # validation (SSRF rules, /health, /setup) and answers the reason. It saves nothing unless valid.
    probe: dict[str, Any] = {"url": ml["url"], "project": ctx.project_id}
    if ctx.basic_auth:
        probe.update(auth_method="BASIC_AUTH", basic_auth_user=ctx.basic_auth[0], basic_auth_pass=ctx.basic_auth[1])
    p = ctx.ls("PATCH", f"/api/ml/{ctx.ml['id']}", json=probe)
    reason = _detail(p) if p.status_code != 200 else (ml.get("error_message") or "")
    if p.status_code == 403 or "not allowed" in reason or "reserved network address" in reason:
        return Check(name, "FAIL", f"Label Studio refuses {ml['url']}: {reason}",
                     "Label Studio 1.23.1+ blocks ML backends on local/private addresses: start it with "
                     "ML_BLOCK_LOCAL_IP=false (and SSRF_PROTECTION_ENABLED=false for the webhooks)")
    if "authentication" in reason.lower():
        return Check(name, "FAIL", f"Label Studio reaches {ml['url']} but its credentials are refused: {reason}",
                     "Project Settings > Model > edit: enter the backend's BASIC_AUTH_USER / BASIC_AUTH_PASS")
    if p.status_code == 200:
        return Check(name, "ok", f"Label Studio reaches {ml['url']} again (it was {state})")
    return Check(name, "FAIL", f"Label Studio cannot use {ml['url']} ({state}): {reason}",
                 "the URL must be reachable from Label Studio's machine: inside a container 'localhost' is the "
                 "container itself; use the host's address or the compose service name (http://backend:9090)")


def check_webhook(ctx: _Context) -> Check:
    name = "webhook"
    if ctx.ml is None:
        return Check(name, "skip", "needs a connected ML backend")
    target = ctx.ml["url"].rstrip("/") + "/webhook"
    r = ctx.ls("GET", "/api/webhooks/", params={"project": ctx.project_id})
    if r.status_code != 200:
        return Check(name, "FAIL", f"listing webhooks answered {r.status_code}: {_detail(r)}")
    hooks = [h for h in _json(r, list) if isinstance(h, dict) and h.get("project") == ctx.project_id]
    ours = [h for h in hooks if h.get("url") == target]
    if not ours:
        seen = ", ".join(h.get("url", "?") for h in hooks) or "none"
        return Check(name, "FAIL", f"no webhook of project {ctx.project_id} points at {target} (webhooks: {seen})",
                     "Label Studio creates it when the model is connected: remove the model in Project Settings > "
                     "Model and connect it again (or add a webhook to that URL in Settings > Webhooks)")
    hook = ours[0]
    problems = []
    if not hook.get("is_active", True):
        problems.append("it is switched off")
    if not hook.get("send_for_all_actions"):
        missing = NEEDED_ACTIONS - set(hook.get("actions") or [])
        if missing:
            problems.append(f"it does not send {', '.join(sorted(missing))}")
    if ctx.basic_auth:
        wanted = basic_auth_header(*ctx.basic_auth)
        if (hook.get("headers") or {}).get("Authorization") != wanted:
            problems.append("it has no Authorization header for this backend's basic auth (every event gets 401)")
    if problems:
        fix = ("the backend adds the header itself at /setup when it has LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY: "
               "open the project's Model settings and save (or edit the webhook in Settings > Webhooks)"
               if any("Authorization" in p for p in problems) else
               "Settings > Webhooks: activate it for all actions (or reconnect the model)")
        return Check(name, "FAIL", f"webhook {hook['id']} to {target}: " + "; ".join(problems), fix)
    # Label Studio validates a webhook's URL against its SSRF rules on every save: saving the same
    # URL tells whether it would drop the events (it does so silently when sending).
    p = ctx.ls("PATCH", f"/api/webhooks/{hook['id']}/", json={"url": target})
    if p.status_code == 403:
        return Check(name, "FAIL", f"Label Studio will drop the events to {target}: {_detail(p)}",
                     "start Label Studio with SSRF_PROTECTION_ENABLED=false (1.23.1+ blocks webhooks to "
                     "local/private addresses)")
    auth = ", with the basic-auth header" if ctx.basic_auth else ""
    return Check(name, "ok", f"webhook {hook['id']} sends label events and Train to {target}{auth}")


def check_queue_settings(ctx: _Context) -> Check:
    name = "model-version"
    if ctx.project is None or not ctx.config_ok:
        return Check(name, "skip", "needs a project with a supported config")
    s = ctx.settings
    registry = model_registry(s)
    version = newest_round_version(registry, ctx.project_id) if registry.root.exists() else None
    shown, sampling = ctx.project.get("model_version") or "", ctx.project.get("sampling") or ""
    if version is None:
        return Check(name, "FAIL", f"no curation round yet in {s.resolved_model_dir} (project shows '{shown}', "
                     f"sampling '{sampling}'): the queue is in Label Studio's default order",
                     "click Train in Project Settings > Model (or annotate); run the doctor where the backend "
                     "runs, with the same RLTHF_MODEL_DIR")
    problems = []
    if shown != version.version:
        problems.append(f"the project shows predictions of '{shown}', the newest round wrote '{version.version}'")
    if sampling != UNCERTAINTY_SAMPLING:
        problems.append(f"sampling is '{sampling}', not '{UNCERTAINTY_SAMPLING}'")
    if problems:
        return Check(name, "FAIL", "; ".join(problems) + ": the label stream does not follow the round's order",
                     "click Train (each round sets both), or in Settings > Model pick that version; saving the "
                     "settings form can reset sampling")
    return Check(name, "ok", f"the project serves '{version.version}' with {UNCERTAINTY_SAMPLING.lower()}")


def check_jobs(ctx: _Context) -> Check:
    name = "jobs"
    s = ctx.settings
    if not s.redis_url:
        return Check(name, "ok", "embedded mode (REDIS_URL unset): trainings run inside `rlthf-backend serve`")
    from redis import Redis
    from redis.exceptions import RedisError
    from rq import Queue, Worker

    try:
        redis = Redis.from_url(s.redis_url, socket_connect_timeout=3, socket_timeout=5)
        redis.ping()
        workers = Worker.all(queue=Queue(s.queue_name, connection=redis))
    except (RedisError, OSError, ValueError) as exc:
        return Check(name, "FAIL", f"Redis unreachable at {s.redis_url} ({type(exc).__name__}: {exc})",
                     "start Redis, or fix REDIS_URL (unset it for embedded mode)")
    if not workers:
        return Check(name, "FAIL", f"Redis answers, but no worker listens on queue '{s.queue_name}': "
                     "Train and label events queue trainings nobody runs",
                     "start one: rlthf-backend worker (same REDIS_URL and RLTHF_QUEUE_NAME)")
    return Check(name, "ok", f"Redis at {s.redis_url}, {len(workers)} worker(s) on queue '{s.queue_name}'")


#: The pair the judge is asked when no project task is at hand (the precomputed judge reads the
#: stored verdict).
TEST_PAIR = {"prompt": "What is 2 + 2?", "response_a": "2 + 2 = 4.", "response_b": "2 + 2 = 5.",
             "extra": {"llm_label": "a"}}


def _test_pair(ctx: _Context):
    from rlthf_backend.core.types import Pair
    from rlthf_backend.labelstudio.tasks import TaskDataError, pair_from_task

    if ctx.config_ok:
        try:
            r = ctx.ls("GET", "/api/tasks", params={"project": ctx.project_id, "page_size": 1, "fields": "all"})
            body = _json(r, (dict, list)) if r.status_code == 200 else []
        except (httpx.HTTPError, UnexpectedAnswer):
            body = []  # Label Studio's own checks say so; the built-in pair still tests the judge
        tasks = body.get("tasks", []) if isinstance(body, dict) else body
        if tasks and isinstance(tasks[0], dict):
            try:
                return pair_from_task(parse_label_config(ctx.project["label_config"]), tasks[0]), \
                    f"task {tasks[0].get('id')}"
            except TaskDataError:
                pass  # the built-in pair still tells whether the judge answers
    return Pair(**TEST_PAIR), "a built-in pair"


def check_judge(ctx: _Context) -> Check:
    name = "judge"
    from rlthf_backend.app.judges import make_judge

    s = ctx.settings
    try:
        pair, what = _test_pair(ctx)
        judge = make_judge(s, cache=False)  # a cached verdict would not show the judge answers today
        t0 = time.perf_counter()
        [judgment] = judge.judge_many([pair])
        seconds = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - any failure to build or call the judge is the finding
        return Check(name, "FAIL", f"the {s.judge} judge failed: {type(exc).__name__}: {exc}", _judge_fix(s))
    if not judgment.ok:
        return Check(name, "FAIL", f"the {s.judge} judge gave no verdict on {what}: {judgment.reason}", _judge_fix(s))
    prob = f", p={judgment.prob:.2f}" if judgment.prob is not None else ""
    return Check(name, "ok", f"{s.judge} ({judgment.model}) answered '{judgment.label}'{prob} on {what} "
                 f"in {seconds:.1f} s")


def _judge_fix(s: Settings) -> str:
    return {
        "openai": "check RLTHF_OPENAI_BASE_URL, RLTHF_OPENAI_API_KEY and RLTHF_OPENAI_MODEL against the server",
        "transformers": "check RLTHF_TRANSFORMERS_MODEL (a local folder, an installed model, or smollm2)",
        "precomputed": "the tasks need llm_label (a, b or tie), optionally llm_label_swapped and llm_prob",
    }.get(s.judge, "set RLTHF_JUDGE to openai, transformers or precomputed")


def check_disk(ctx: _Context) -> Check:
    name = "registry-disk"
    s = ctx.settings
    folder = s.resolved_model_dir
    need = ctx.min_free_bytes
    if need is None:
        need = REGISTRY_MIN_FREE_BYTES.get(s.reward_model, 1 << 30)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".doctor-{time.time_ns()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        return Check(name, "FAIL", f"cannot write the registry at {folder}: {exc}",
                     "set RLTHF_MODEL_DIR (or RLTHF_DATA_DIR) to a writable folder, shared by the backend and workers")
    free = shutil.disk_usage(folder).free
    if free < need:
        return Check(name, "FAIL", f"{free / 2**30:.1f} GiB free at {folder}; the {s.reward_model} registry wants "
                     f"at least {need / 2**30:.1f} GiB",
                     "free space, or lower RLTHF_KEEP_VERSIONS / move RLTHF_MODEL_DIR")
    return Check(name, "ok", f"{free / 2**30:.1f} GiB free at {folder} (writable)")


def check_database(ctx: _Context) -> Check:
    """The state database answers and is (or could be brought) at the newest schema."""
    from sqlalchemy.exc import SQLAlchemyError

    from rlthf_backend.store.database import DatabaseUnavailable, current_revision, head_revision, open_database

    name = "database"
    url = ctx.settings.database_url_resolved()
    fix = ("check RLTHF_DATABASE_URL (host, port, user, password, database name) and that the server accepts "
           "connections from here" if ctx.settings.database_url else
           "make RLTHF_DATA_DIR a writable local folder, or move a broken state.sqlite3 away")
    try:
        database = open_database(url)  # migrates it, as every process does on first use
    except DatabaseUnavailable as exc:
        return Check(name, "FAIL", str(exc), fix)
    try:
        revision = current_revision(database.engine)
    except SQLAlchemyError as exc:  # it went away since
        return Check(name, "FAIL", f"cannot read the schema revision: {database.describe(exc)}", fix)
    where = database.display_url if database.dialect == "postgresql" else "SQLite in RLTHF_DATA_DIR (one host only)"
    return Check(name, "ok", f"{where}, schema revision {revision} (newest {head_revision()})")


CHECKS: tuple[Callable[[_Context], Check], ...] = (
    check_label_studio, check_token, check_project_config, check_ml_backend, check_backend_here,
    check_backend_from_label_studio, check_webhook, check_queue_settings, check_jobs, check_judge, check_database,
    check_disk,
)
#: The line names of the checks whose function says it otherwise (for a check that broke).
NAMES = {check_backend_here: "backend", check_backend_from_label_studio: "backend-from-ls",
         check_queue_settings: "model-version", check_disk: "registry-disk"}


def run_checks(settings: Settings, project_id: int | None = None, backend_url: str | None = None,
               min_free_bytes: int | None = None, timeout: float = TIMEOUT_S) -> Iterator[Check]:
    """Every check, in order, as each finishes. ``backend_url``: the backend as Label Studio knows it
    (default: the URL of the ML backend connected to the project); ``timeout``: seconds each
    request may take in all.

    A check that breaks on what a server answered fails with one line, and the rest go on: a
    traceback would hide the very finding."""
    ctx = _Context(settings, project_id, backend_url.rstrip("/") if backend_url else None, min_free_bytes,
                   timeout=timeout)
    for check in CHECKS:
        name = NAMES.get(check) or check.__name__.removeprefix("check_").replace("_", "-")
        try:
            yield check(ctx)
        except httpx.HTTPError as exc:  # a server that went away or stalled mid-run
            yield Check(name, "FAIL", f"no usable answer: {_http_error(exc)}")
        except UnexpectedAnswer as exc:
            yield Check(name, "FAIL", str(exc), exc.fix)
        except Exception as exc:  # noqa: BLE001 - an answer of a shape no check foresaw
            yield Check(name, "FAIL", f"the check broke on an unexpected answer: {type(exc).__name__}: {exc}")

