"""`rlthf-backend doctor` against a real Label Studio, put in each state that breaks one check.

One project is set up the way the README says (pairwise config, backend connected with basic auth,
webhook header fixed by the backend, a first round run): every check passes there, through the
command line, exit code 0. Every other test breaks one thing, checks that exactly that check
fails with its fix, and puts it back.
"""

from __future__ import annotations

import os
import subprocess

import httpx
import pytest
from label_studio_sdk import LabelStudio

from rlthf_backend.demo import load_sample_pairs
from rlthf_backend.demo.label_studio import start_label_studio
from rlthf_backend.demo.processes import ManagedProcess, free_port, rlthf_backend_exe, wait_until
from rlthf_backend.demo.run import task_for_pair
from rlthf_backend.cli.doctor import Check, passed, run_checks
from rlthf_backend.labelstudio.config import shipped_config
from rlthf_backend.app.settings import Settings
from tests.support.backend import BackendServer, start_backend
from tests.support.label_studio import ls_venv_path
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration

USER, PASSWORD = "doctor", "s3cret-pass"
SENTIMENT = """<View><Text name="text" value="$text"/>
<Choices name="sentiment" toName="text"><Choice value="Positive"/><Choice value="Negative"/></Choices></View>"""


def _tasks(n: int) -> list[dict]:
    return [task_for_pair(p) for p in load_sample_pairs()[:n]]


@pytest.fixture(scope="module")
def backend(tmp_path_factory, label_studio) -> BackendServer:
    """The backend as deployed: basic auth on, Label Studio credentials, embedded jobs."""
    server = start_backend(tmp_path_factory.mktemp("doctor-backend"), {
        "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token,
        "BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD, "RLTHF_JUDGE": "precomputed",
        "RLTHF_DEBOUNCE_SECONDS": "0"}, workers=1)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def data_dir(backend) -> str:
    # The doctor runs where the backend runs: same data folder, so the same model registry.
    return str(backend.process.log_path.parent / "data")


@pytest.fixture(scope="module")
def working(ls: LabelStudio, backend: BackendServer) -> int:
    """A project set up as the README says, after its first round."""
    project = ls.projects.create(title="doctor: working", label_config=shipped_config("pairwise"))
    ls.projects.import_tasks(id=project.id, request=_tasks(12))
    ls.ml.create(project=project.id, url=backend.url, title="rlthf", auth_method="BASIC_AUTH",
                 basic_auth_user=USER, basic_auth_pass=PASSWORD)

    def header_set() -> bool:
        hooks = [h for h in ls.webhooks.list(project=str(project.id)) if h.url == backend.url + "/webhook"]
        return bool(hooks and (hooks[0].headers or {}).get("Authorization"))

    wait_until(header_set, 60, "the backend to put its auth header on the webhook")
    [ml] = ls.ml.list(project=project.id)
    ls.ml.train(id=ml.id)  # START_TRAINING through the webhook: the first round

    def round_done() -> bool:
        done = backend.get(f"/jobs?project={project.id}").json()["last_finished"]
        return bool(done and done["round_run"])

    wait_until(round_done, 240, "the first round")
    return project.id


def _settings(label_studio, data_dir: str, **overrides) -> Settings:
    values = {"label_studio_url": label_studio.url, "label_studio_api_key": label_studio.token,
              "basic_auth_user": USER, "basic_auth_pass": PASSWORD, "redis_url": None, "judge": "precomputed",
              "data_dir": data_dir, "model_dir": None}
    return Settings(**{**values, **overrides})


def _run(settings: Settings, project_id: int | None = None, **kw) -> dict[str, Check]:
    checks = list(run_checks(settings, project_id=project_id, **kw))
    for c in checks:
        print(c.line())
    return {c.name: c for c in checks}


def _only_failure(checks: dict[str, Check], name: str) -> Check:
    failed = sorted(n for n, c in checks.items() if c.verdict == "FAIL")
    assert failed == [name], failed
    assert not passed(list(checks.values()))
    assert checks[name].fix, "a failing check names its fix"
    return checks[name]


def test_a_working_setup_passes_every_check_and_exits_0(label_studio, backend, working, data_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLTHF_") and k != "REDIS_URL"}
    env.update({"LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token,
                "BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD, "RLTHF_JUDGE": "precomputed",
                "RLTHF_DATA_DIR": data_dir})
    run = subprocess.run([rlthf_backend_exe(), "doctor", "--project", str(working)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, check=False)
    print(run.stdout, run.stderr)
    assert run.returncode == 0
    lines = run.stdout.strip().splitlines()
    assert lines[-1] == "all checks passed"
    names = ["label-studio", "token", "project-config", "ml-backend", "backend", "backend-from-ls", "webhook",
             "model-version", "jobs", "judge", "database", "registry-disk"]
    assert [line.split()[2] for line in lines[:-1]] == names
    assert all(line.startswith("[  ok]") for line in lines[:-1])
    text = run.stdout
    assert "legacy token" in text and "pairwise control" in text and "with the basic-auth header" in text
    assert "uncertainty sampling" in text and "embedded mode" in text and "on task " in text


def test_label_studio_unreachable(label_studio, data_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLTHF_") and k != "REDIS_URL"}
    env.update({"LABEL_STUDIO_URL": f"http://127.0.0.1:{free_port()}", "LABEL_STUDIO_API_KEY": "x" * 40,
                "RLTHF_JUDGE": "precomputed", "RLTHF_DATA_DIR": data_dir})
    run = subprocess.run([rlthf_backend_exe(), "doctor", "--project", "1"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 1
    assert run.stdout.splitlines()[0].startswith("[FAIL] label-studio")
    assert "fix: start Label Studio" in run.stdout
    assert "[skip] token" in run.stdout  # later checks say what they wait for, rather than failing again


def test_wrong_legacy_token(label_studio, data_dir):
    check = _only_failure(_run(_settings(label_studio, data_dir, label_studio_api_key="0" * 40)), "token")
    assert "refused the legacy token (401" in check.detail


def test_personal_access_token_then_revoked_then_legacy_tokens_disabled(label_studio, data_dir):
    legacy = {"Authorization": f"Token {label_studio.token}"}
    r = httpx.post(f"{label_studio.url}/api/token/", headers=legacy, timeout=30)
    assert r.status_code == 201, r.text
    pat = r.json()["token"]
    checks = _run(_settings(label_studio, data_dir, label_studio_api_key=pat))
    assert checks["token"].verdict == "ok" and "personal access token" in checks["token"].detail

    # Legacy tokens switched off for the organization: the legacy token stops working, the PAT does not.
    access = httpx.post(f"{label_studio.url}/api/token/refresh/", json={"refresh": pat}, timeout=30).json()["access"]
    bearer = {"Authorization": f"Bearer {access}"}
    r = httpx.post(f"{label_studio.url}/api/jwt/settings", headers=bearer, timeout=30,
                   json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": False})
    assert r.status_code in (200, 201), r.text
    try:
        check = _only_failure(_run(_settings(label_studio, data_dir)), "token")
        assert "legacy token authentication has been disabled" in check.detail
        assert "use a personal access token" in check.fix
    finally:
        r = httpx.post(f"{label_studio.url}/api/jwt/settings", headers=bearer, timeout=30,
                       json={"api_tokens_enabled": True, "legacy_api_tokens_enabled": True})
        assert r.status_code in (200, 201), r.text

    r = httpx.post(f"{label_studio.url}/api/token/blacklist/", headers=legacy, json={"refresh": pat}, timeout=30)
    assert r.status_code in (200, 204), r.text
    check = _only_failure(_run(_settings(label_studio, data_dir, label_studio_api_key=pat)), "token")
    assert "refused the personal access token" in check.detail and "create a new one" in check.fix


def test_project_missing_and_config_not_pairwise(ls, label_studio, data_dir):
    check = _only_failure(_run(_settings(label_studio, data_dir), project_id=99999), "project-config")
    assert "no project 99999" in check.detail
    project = ls.projects.create(title="doctor: sentiment", label_config=SENTIMENT)
    ls.projects.import_tasks(id=project.id, request=[{"text": "fine"}])
    checks = _run(_settings(label_studio, data_dir), project_id=project.id)
    check = _only_failure(checks, "project-config")
    assert "not a supported pairwise config" in check.detail and "label_config/pairwise.xml" in check.fix
    assert checks["ml-backend"].verdict == "skip"


def test_backend_not_connected(ls, label_studio, data_dir):
    project = ls.projects.create(title="doctor: unconnected", label_config=shipped_config("pairwise"))
    ls.projects.import_tasks(id=project.id, request=_tasks(3))
    checks = _run(_settings(label_studio, data_dir), project_id=project.id)
    failed = sorted(n for n, c in checks.items() if c.verdict == "FAIL")
    assert failed == ["ml-backend", "model-version"]  # no backend, so no round either
    assert "Connect Model" in checks["ml-backend"].fix
    assert checks["webhook"].verdict == "skip" and checks["backend-from-ls"].verdict == "skip"


def test_webhook_pointing_elsewhere_switched_off_or_without_the_auth_header(ls, label_studio, backend, working,
                                                                             data_dir):
    settings = _settings(label_studio, data_dir)
    [hook] = [h for h in ls.webhooks.list(project=str(working)) if h.url == backend.url + "/webhook"]
    headers = dict(hook.headers or {})
    try:
        ls.webhooks.update(hook.id, url=f"http://127.0.0.1:{free_port()}/webhook")
        check = _only_failure(_run(settings, working), "webhook")
        assert f"points at {backend.url}/webhook" in check.detail and "connect it again" in check.fix
        ls.webhooks.update(hook.id, url=backend.url + "/webhook", is_active=False)
        assert "switched off" in _only_failure(_run(settings, working), "webhook").detail
        ls.webhooks.update(hook.id, is_active=True, headers={})
        check = _only_failure(_run(settings, working), "webhook")
        assert "no Authorization header" in check.detail and "LABEL_STUDIO_API_KEY" in check.fix
    finally:
        ls.webhooks.update(hook.id, url=backend.url + "/webhook", is_active=True, headers=headers)
    assert _run(settings, working)["webhook"].verdict == "ok"


def test_model_version_or_sampling_not_what_the_loop_needs(ls, label_studio, working, data_dir):
    settings = _settings(label_studio, data_dir)
    project = ls.projects.get(id=working)
    try:
        ls.projects.update(id=working, sampling="Sequential sampling")
        check = _only_failure(_run(settings, working), "model-version")
        assert "sampling is 'Sequential sampling'" in check.detail and "click Train" in check.fix
        # What connecting a backend does: the project shows the backend's live title, whose
        # predictions have no scores, so the label stream falls back to Label Studio's order.
        ls.projects.update(id=working, sampling=project.sampling, model_version="rlthf")
        check = _only_failure(_run(settings, working), "model-version")
        assert "shows predictions of 'rlthf', the newest round wrote 'rlthf-p" in check.detail
    finally:
        ls.projects.update(id=working, sampling=project.sampling, model_version=project.model_version)


def test_redis_down_then_no_worker_then_a_worker(label_studio, data_dir, tmp_path):
    dead = _run(_settings(label_studio, data_dir, redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert "Redis unreachable" in _only_failure(dead, "jobs").detail
    redis = RedisServer(tmp_path)
    try:
        checks = _run(_settings(label_studio, data_dir, redis_url=redis.url))
        check = _only_failure(checks, "jobs")
        assert "no worker listens on queue 'rlthf'" in check.detail and "rlthf-backend worker" in check.fix
        env = {k: v for k, v in os.environ.items() if not k.startswith("RLTHF_")}
        env.update({"REDIS_URL": redis.url, "RLTHF_DATA_DIR": str(tmp_path / "w")})
        worker = ManagedProcess([rlthf_backend_exe(), "worker"], env=env, log_path=tmp_path / "worker.log")
        try:
            wait_until(lambda: _run(_settings(label_studio, data_dir, redis_url=redis.url))["jobs"].verdict == "ok",
                       60, "the worker to register")
        finally:
            worker.stop()
    finally:
        redis.stop()


def test_judge_that_does_not_answer(label_studio, data_dir, working):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    settings = _settings(label_studio, data_dir, judge="openai", openai_base_url=dead, openai_api_key="k",
                         judge_max_retries=0, judge_timeout=3)
    check = _only_failure(_run(settings, working), "judge")
    assert "openai judge" in check.detail and "RLTHF_OPENAI_BASE_URL" in check.fix


def test_registry_not_writable_or_too_full(label_studio, data_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    check = _only_failure(_run(_settings(label_studio, data_dir, model_dir=blocker / "models")), "registry-disk")
    assert "cannot write the registry" in check.detail
    check = _only_failure(_run(_settings(label_studio, data_dir), min_free_bytes=1 << 60), "registry-disk")
    assert "GiB free" in check.detail and "free space" in check.fix


@pytest.fixture(scope="module")
def bare_backend(tmp_path_factory) -> BackendServer:
    """Basic auth on, but no Label Studio credentials: it cannot fix its webhook's header."""
    server = start_backend(tmp_path_factory.mktemp("doctor-bare"), {
        "BASIC_AUTH_USER": USER, "BASIC_AUTH_PASS": PASSWORD, "RLTHF_JUDGE": "precomputed"}, workers=1)
    yield server
    server.stop()


def test_label_studio_with_ssrf_protection_refuses_the_backend_and_its_webhook(tmp_path, bare_backend):
    """Label Studio 1.23.1+ as it ships: connected while protection was off, then restarted with it on."""
    ls_dir = tmp_path / "ls"
    server = start_label_studio(ls_dir, venv=ls_venv_path())
    try:
        ls = LabelStudio(base_url=server.url, api_key=server.token, timeout=120)
        project = ls.projects.create(title="doctor: ssrf", label_config=shipped_config("pairwise"))
        ls.projects.import_tasks(id=project.id, request=_tasks(3))
        ls.ml.create(project=project.id, url=bare_backend.url, title="rlthf", auth_method="BASIC_AUTH",
                     basic_auth_user=USER, basic_auth_pass=PASSWORD)
    finally:
        server.stop()
    server = start_label_studio(ls_dir, port=int(server.url.rsplit(":", 1)[1]), username=server.username,
                                password=server.password, token=server.token, venv=ls_venv_path(),
                                ssrf_protection=True)
    try:
        settings = _settings(server, str(tmp_path / "data"))
        checks = _run(settings, project.id)
        ls_check = checks["backend-from-ls"]
        assert ls_check.verdict == "FAIL" and "reserved network address" in ls_check.detail, ls_check
        assert "ML_BLOCK_LOCAL_IP=false" in ls_check.fix
        assert checks["backend"].verdict == "ok"  # reachable from here: only Label Studio refuses it
        # The backend has no Label Studio key, so its webhook also lacks the auth header; that is
        # reported before the SSRF probe. Put the header on and the SSRF refusal shows.
        assert "no Authorization header" in checks["webhook"].detail
        ls = LabelStudio(base_url=server.url, api_key=server.token, timeout=120)
        [hook] = [h for h in ls.webhooks.list(project=str(project.id)) if h.url == bare_backend.url + "/webhook"]
        r = httpx.patch(f"{server.url}/api/webhooks/{hook.id}/", timeout=30,
                        headers={"Authorization": f"Token {server.token}"},
                        json={"headers": {"Authorization": _basic(USER, PASSWORD)}})
        assert r.status_code == 200, r.text
        webhook = _run(settings, project.id)["webhook"]
        assert webhook.verdict == "FAIL" and "drop the events" in webhook.detail
        assert "SSRF_PROTECTION_ENABLED=false" in webhook.fix
    finally:
        server.stop()


def test_backend_down_is_seen_here_and_from_label_studio(ls, label_studio, data_dir, bare_backend):
    project = ls.projects.create(title="doctor: backend down", label_config=shipped_config("pairwise"))
    ls.projects.import_tasks(id=project.id, request=_tasks(3))
    ls.ml.create(project=project.id, url=bare_backend.url, title="rlthf", auth_method="BASIC_AUTH",
                 basic_auth_user=USER, basic_auth_pass=PASSWORD)
    bare_backend.stop()
    checks = _run(_settings(label_studio, data_dir), project.id)
    assert checks["backend"].verdict == "FAIL" and "no answer" in checks["backend"].detail
    from_ls = checks["backend-from-ls"]
    assert from_ls.verdict == "FAIL" and "Can't connect" in from_ls.detail, from_ls
    assert "compose service name" in from_ls.fix


def _basic(user: str, password: str) -> str:
    from rlthf_backend.labelstudio.client import basic_auth_header

    return basic_auth_header(user, password)

