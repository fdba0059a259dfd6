"""The demo project after people answered two batches, seen in a real browser: the report page
(what to do next, the queue's yield, the curve) and Label Studio's Data Manager ordered as the label
stream serves it. The two screenshots of docs/engine.md come from here (``artifacts/*.png``, copied
to ``docs/``)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from label_studio_sdk import LabelStudio

from rlthf_backend.demo import load_sample_pairs
from rlthf_backend.registry.records import write_check
from rlthf_backend.demo.run import demo_queue_check, task_for_pair
from rlthf_backend.labelstudio.config import parse_label_config, shipped_config
from rlthf_backend.app.prelabel import prelabel_project
from rlthf_backend.labelstudio.results import result_for_label
from rlthf_backend.registry.versions import ModelRegistry
from rlthf_backend.app.settings import Settings
from tests.support.backend import start_backend
from tests.support.browser import Browser, chromium_path
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
ANSWERED_ROUNDS = 2  # batches people answer before the pictures are taken


def _small_png(path: Path, width: int) -> None:
    """Scale a screenshot down and to 256 colours: a few hundred KB becomes README-sized."""
    from PIL import Image

    img = Image.open(path).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.LANCZOS)
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


@pytest.fixture(scope="module")
def demo(label_studio, ls: LabelStudio, tmp_path_factory):
    """The demo's project on the session's Label Studio, after round 0 and two answered batches."""
    root = tmp_path_factory.mktemp("screenshots")
    backend = start_backend(root / "backend", {
        "LABEL_STUDIO_URL": label_studio.url, "LABEL_STUDIO_API_KEY": label_studio.token,
        "RLTHF_JUDGE": "precomputed", "RLTHF_DEBOUNCE_SECONDS": "0"}, workers=1)
    try:
        pairs = load_sample_pairs()
        project = ls.projects.create(title="RLTHF demo", label_config=shipped_config("pairwise"))
        ls.projects.import_tasks(id=project.id, request=[task_for_pair(p) for p in pairs])
        [ml] = [ls.ml.create(project=project.id, url=backend.url, title="RLTHF")]
        settings = Settings(label_studio_url=label_studio.url, label_studio_api_key=label_studio.token,
                            judge="precomputed", data_dir=root / "backend" / "data", redis_url=None, _env_file=None)
        judge_version = prelabel_project(settings, project.id).model_version

        def finished_round(index: int):
            done = backend.get(f"/jobs?project={project.id}").json()["last_finished"]
            return done if done and done["round_run"] and done["round_index"] == index else None

        ls.ml.train(id=ml.id)
        wait_until(lambda: finished_round(0), 240, "round 0")
        check = demo_queue_check(ls, project.id, judge_version, "precomputed")
        write_check(ModelRegistry(settings.resolved_model_dir).project_dir(project.id), check)

        # People answer each batch (as the shipped human labels say); the last answer starts the next round.
        config = parse_label_config(shipped_config("pairwise"))
        truth = {p["id"]: p["human_label"] for p in pairs}
        for index in range(ANSWERED_ROUNDS):
            batch = finished_round(index)["human_batch"]
            for task_id in batch:
                task = ls.tasks.get(id=task_id)
                ls.annotations.create(id=task_id, result=result_for_label(config, truth[task.data["pair_id"]]),
                                      lead_time=12.0)
            wait_until(lambda i=index: finished_round(i + 1), 240, f"round {index + 1}")
        yield backend, project.id, check
    finally:
        backend.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium_path()
    b = Browser(tmp_path_factory.mktemp("browser"), width=1100, height=1000)
    yield b
    b.close()


def test_report_page_of_the_demo_after_two_answered_batches(demo, browser):
    backend, project_id, check = demo
    visit = browser.visit(f"{backend.url}/report?project={project_id}")
    assert visit.status == 200 and visit.errors == []
    text = browser.evaluate("document.body.innerText")
    print(text[:1500])
    assert "What to do next" in text
    assert re.search(r"The next batch \(\d+ tasks?\) is expected to fix about [\d.]+ wrong labels? "
                     r"\([\d.]+ per human label\)( of the [\d.]+ expected left in the export)?: (continue|stop)\.",
                     text)
    assert browser.evaluate("document.querySelectorAll('#yield-table tbody tr').length") == ANSWERED_ROUNDS
    assert f"Of the first {check.first} tasks the queue served after round 0, {check.wrong_in_first}" in text
    assert re.search(r"Expected wrong labels left in the export after round \d+: [\d.]+ \(", text)
    # the tiles repeat the yield table's newest row (same set, same round)
    for kind in ("targeted", "audited"):
        tile = browser.evaluate(f"document.querySelector('#tile-{kind} b').textContent")
        cell = browser.evaluate(f"[...document.querySelectorAll('#yield-table td[data-set={kind}]')].pop().textContent")
        assert tile == cell or (tile == "–" and cell.startswith("– ")), (kind, tile, cell)
    for chart in ("queue-yield", "margin-curve", "round-status"):
        assert browser.evaluate(f"document.querySelector('#{chart}').getBoundingClientRect().height") > 50, chart
    # no degenerate axis anywhere on the page (the newest round's disagreement is an empty series)
    ticks = browser.evaluate("[...document.querySelectorAll('svg text')].map(t => t.textContent)")
    assert not [t for t in ticks if "e-" in t or "e+" in t]

    height = browser.evaluate("document.querySelector('#margin-curve').closest('figure').getBoundingClientRect()"
                              ".bottom + 24")  # down to the curve's legend
    shot = browser.screenshot(ARTIFACTS / "report.png", max_height=int(height))
    _small_png(shot, 900)
    assert 20_000 < shot.stat().st_size < 400_000


def test_data_manager_shows_the_queue_in_the_order_label_studio_serves_it(demo, browser, label_studio, ls):
    _, project_id, _ = demo
    project = ls.projects.get(id=project_id)
    assert project.sampling == "Uncertainty sampling"
    hidden = ["tasks:inner_id", "tasks:completed_at", "tasks:cancelled_annotations", "tasks:total_predictions",
              "tasks:annotators", "tasks:annotations_results", "tasks:annotations_ids", "tasks:predictions_results",
              "tasks:predictions_model_versions", "tasks:file_upload", "tasks:storage_filename", "tasks:created_at",
              "tasks:updated_at", "tasks:updated_by", "tasks:avg_lead_time", "tasks:draft_exists",
              "tasks:data.answer1", "tasks:data.answer2", "tasks:data.llm_model", "tasks:data.prompt"]
    view = ls.views.create(project=project_id, data={
        "title": "Queue order", "ordering": ["tasks:predictions_score"],
        "hiddenColumns": {"explore": hidden, "labeling": hidden},
        "filters": {"conjunction": "and", "items": [
            {"filter": "filter:tasks:total_annotations", "operator": "equal", "type": "Number", "value": 0}]}})
    # The view's first task is the one the label stream serves next (lowest score of the project's version).
    first = next(iter(ls.tasks.list(project=project_id, view=view.id, fields="all"))).model_dump()
    served = [p for p in first["predictions"] if p["model_version"] == project.model_version]
    assert served and served[0]["score"] < 0.5  # the newest round's batch comes first

    login = browser.visit(f"{label_studio.url}/user/login/")
    assert login.status == 200
    browser.evaluate(f"""(() => {{
        document.querySelector('input[name=email]').value = {label_studio.username!r};
        document.querySelector('input[name=password]').value = {label_studio.password!r};
        document.querySelector('form').submit(); }})()""")
    time.sleep(3)
    browser.visit(f"{label_studio.url}/projects/{project_id}/data?tab={view.id}", settle_s=3)
    wait_until(lambda: browser.evaluate(
        "document.body.innerText.includes('Queue order') && document.querySelectorAll('[class*=row]').length > 10"),
        60, "the Data Manager's table")
    time.sleep(2)  # the table fills its cells after the rows
    shot = browser.screenshot(ARTIFACTS / "label-studio-queue.png", max_height=720)
    _small_png(shot, 900)
    assert 10_000 < shot.stat().st_size < 400_000


@pytest.fixture(autouse=True, scope="module")
def _artifacts_folder():
    ARTIFACTS.mkdir(exist_ok=True)

