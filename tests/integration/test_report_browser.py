"""The report page in a real browser (Debian's headless chromium), served by the real backend
behind basic auth: it renders, the pictures are there, nothing errs in the console."""

from __future__ import annotations

import base64
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.backend import rlthf_backend_exe, start_backend
from tests.support.browser import Browser, chromium_path
from tests.support.registry_rounds import two_round_project

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    registry = two_round_project(root / "models", project_id=7)
    server = start_backend(root / "backend", {"RLTHF_JUDGE": "precomputed", "RLTHF_MODEL_DIR": str(registry.root),
                                              "BASIC_AUTH_USER": "viewer", "BASIC_AUTH_PASS": "s3cret"})
    yield server, registry
    server.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium_path()
    b = Browser(tmp_path_factory.mktemp("browser"))
    yield b
    b.close()


def test_served_report_renders_with_its_plots_and_no_console_errors(served, browser):
    server, _ = served
    auth = "Basic " + base64.b64encode(b"viewer:s3cret").decode()

    refused = browser.visit(f"{server.url}/report?project=7")
    assert refused.status == 401  # no credentials, no page

    visit = browser.visit(f"{server.url}/report?project=7", headers={"Authorization": auth})
    assert visit.status == 200
    assert visit.errors == []
    assert browser.evaluate("document.title") == "RLTHF report: project 7"
    curve = browser.evaluate("""(() => {
        const svg = document.querySelector('#margin-curve');
        const box = svg.getBoundingClientRect();
        const line = svg.querySelector('polyline.margin-line');
        return {w: box.width, h: box.height, points: line.points.numberOfItems,
                lineWidth: line.getBBox().width, dots: svg.querySelectorAll('circle.dot').length,
                regions: svg.querySelectorAll('rect.region').length,
                marks: [...svg.querySelectorAll('line.point')].map(l => l.getAttribute('class'))};
    })()""")
    assert curve["w"] > 600 and curve["h"] > 200 and curve["lineWidth"] > 500
    assert curve["points"] == 240 and curve["dots"] == 12 + 10 + 8 + 10  # labelled, queued, flipped, dropped
    assert curve["regions"] >= 3 and "point point-elbow" in curve["marks"] and "point point-knee" in curve["marks"]
    for chart in ("round-status", "effort", "disagreement", "wrong-left"):
        assert browser.evaluate(f"document.querySelector('#{chart}').getBoundingClientRect().height") > 50, chart
    assert browser.evaluate("document.querySelectorAll('#rounds-table tbody tr').length") == 2
    assert browser.evaluate("document.querySelectorAll('ol.queue li').length") == 10

    shot = browser.screenshot(ARTIFACTS / "report-screenshot.png")
    assert shot.stat().st_size > 20_000


def test_cli_report_file_renders_the_same_page(served, browser, tmp_path):
    _, registry = served
    out = tmp_path / "report.html"
    env = {"PATH": "/usr/bin:/bin", "RLTHF_MODEL_DIR": str(registry.root), "RLTHF_DATA_DIR": str(tmp_path)}
    done = subprocess.run([rlthf_backend_exe(), "report", "--project", "7", "--out", str(out)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    visit = browser.visit(out.as_uri())
    assert visit.errors == []
    assert browser.evaluate("document.querySelectorAll('#margin-curve circle.dot').length") == 40
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(out, ARTIFACTS / "report.html")  # kept next to the screenshot, for people to open
