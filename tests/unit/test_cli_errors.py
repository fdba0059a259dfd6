"""Every command answers bad input with one line naming the problem and a non-zero exit.

The commands run as users run them: the installed ``rlthf-backend`` in a clean environment.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import threading
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rlthf_backend.cli.errors import OneLineErrors
from rlthf_backend.demo.processes import rlthf_backend_exe


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"),
             "RLTHF_DATA_DIR": str(tmp_path / "data"), **env}
    return subprocess.run([rlthf_backend_exe(), *args], env=clean, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str, status: int = 1) -> str:
    err = done.stderr.strip()
    assert done.returncode == status, (done.returncode, err[-2000:])
    assert "Traceback" not in err, err[-2000:]
    last = err.splitlines()[-1]
    assert last.startswith("Error:"), err[-2000:]
    for needle in needles:
        assert needle in last, last
    return last


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"BASIC_AUTH_USER": "ls"}, "BASIC_AUTH_PASS"),
        ({"BASIC_AUTH_PASS": "pw"}, "BASIC_AUTH_USER"),
        ({"RLTHF_LOG_LEVEL": "loud"}, "RLTHF_LOG_LEVEL"),
        ({"RLTHF_JUDGE_MAX_CHARS": "-5"}, "RLTHF_JUDGE_MAX_CHARS"),
        ({"RLTHF_JUDGE": "openai"}, "OpenAI"),  # no key, no base URL: the client cannot be made
        ({"RLTHF_MODEL_DIR": "/etc/hostname/models"}, "cannot be written"),
    ],
    ids=["only-user", "only-pass", "log-level", "negative-limit", "openai-without-key", "registry-unwritable"],
)
def test_serve_refuses_a_configuration_that_cannot_work_in_one_line(tmp_path, env, needle):
    done = run_cli(tmp_path, "serve", "--port", "1", **env)
    assert_one_line_error(done, needle)
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["serve", "--port", "99999"], ["prelabel", "--project", "²"],
                                  ["train", "--project", "0"], ["report", "--project", "-1", "--out", "x.html"]])
def test_bad_options_are_usage_errors(tmp_path, args):
    done = run_cli(tmp_path, *args)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "Error: Invalid value" in done.stderr


def test_report_on_a_corrupt_registry_renders_and_names_the_damaged_file(tmp_path):
    version = tmp_path / "data" / "models" / "project-1" / "rlthf-p1-v0001"
    version.mkdir(parents=True)
    (version.parent / "LATEST").write_text("rlthf-p1-v0001")
    (version / "meta.json").write_text("{garbage")
    done = run_cli(tmp_path, "report", "--project", "1", "--out", str(tmp_path / "r.html"))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    warning = next(line for line in done.stderr.splitlines() if "meta.json" in line)
    assert "unreadable" in warning and "rlthf-p1-v0001" in warning  # passed over, and said so
    assert (tmp_path / "r.html").is_file()


def test_report_to_an_unwritable_path_is_one_line(tmp_path):
    (tmp_path / "a-file").write_text("x")
    done = run_cli(tmp_path, "report", "--project", "1", "--out", str(tmp_path / "a-file" / "report.html"))
    assert_one_line_error(done, "a-file")


@pytest.fixture
def not_label_studio(tmp_path):
    """A real web server that is not Label Studio (it answers HTML pages)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.html").write_text("<html><body>It works!</body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_export_against_something_that_is_not_label_studio(tmp_path, not_label_studio):
    done = run_cli(tmp_path, "export", "--project", "1", "--format", "jsonl", "--out", str(tmp_path / "x.jsonl"),
                   LABEL_STUDIO_URL=not_label_studio, LABEL_STUDIO_API_KEY="token")
    last = assert_one_line_error(done, "HTML page", "LABEL_STUDIO_URL")
    assert "<html" not in done.stderr.lower() and len(last) < 400


def test_prelabel_against_something_that_is_not_label_studio(tmp_path, not_label_studio):
    done = run_cli(tmp_path, "prelabel", "--project", "1", LABEL_STUDIO_URL=not_label_studio, LABEL_STUDIO_API_KEY="t")
    assert_one_line_error(done, "HTML page", "LABEL_STUDIO_URL")
    assert "<html" not in done.stderr.lower()


def test_train_without_label_studio_is_one_line(tmp_path):
    assert_one_line_error(run_cli(tmp_path, "train", "--project", "1"), "LABEL_STUDIO_API_KEY")


def test_the_boundary_turns_any_failure_into_one_line():
    @click.group(cls=OneLineErrors)
    def cli():
        pass

    @cli.command()
    def explode():
        raise KeyError("a key\nwith a second line")

    @cli.command()
    def missing():
        open("/nonexistent/dir/file.txt")  # noqa: SIM115 - the OSError is the point

    @cli.command()
    def refuse():
        raise click.ClickException("first line\n<html>\n<body>second</body>")

    runner = CliRunner()
    for name, needle in [("explode", "KeyError: 'a key\\nwith a second line'"),
                         ("missing", "No such file or directory: /nonexistent/dir/file.txt"),
                         ("refuse", "first line <html> <body>second</body>")]:
        result = runner.invoke(cli, [name])
        assert result.exit_code == 1, result.output
        assert result.output.strip() == f"Error: {needle}", result.output
