"""The report: numbers read from the registry, and the page built from them."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from rlthf_backend.core.curation import find_curve_points
from rlthf_backend.registry.versions import ModelRegistry
from rlthf_backend.app.report import build_report
from rlthf_backend.report import load_report_data, render_report
from rlthf_backend.report.charts import region_bounds
from rlthf_backend.server.app import create_app
from rlthf_backend.app.settings import Settings
from tests.support.registry_rounds import two_round_project


@pytest.fixture()
def registry(tmp_path):
    return two_round_project(tmp_path / "models", project_id=7)


def test_report_data_reads_rounds_curve_and_queue(registry):
    data = load_report_data(registry, 7, "http://ls.example")
    r0, r1 = data.rounds
    assert (r0.index, r0.batch_size, r0.audit_slice, r0.human_labels) == (0, 12, 2, 0)
    # people's disagreement with round 0's batch is known from round 1's summary; round 1's is pending
    assert r0.disagreement == pytest.approx(1 / 3) and r0.disagreement_answered == 12 and r1.disagreement is None
    assert r0.disagreed == 4
    assert (r1.flips, r1.flip_precision, r1.flip_precision_ci) == (8, 0.9, (0.6, 0.98))
    assert r0.flip_precision is None  # no flips, no precision
    assert (r1.est_wrong_model, r1.est_wrong_audit) == (21.25, 18.0)
    assert r1.human_effort == pytest.approx(12 / 240) and r1.counts["drop"] == 10

    curve = data.curve
    assert curve.version == r1.version and len(curve.margins) == 240
    assert np.all(np.diff(curve.margins) <= 0)
    assert curve.points == find_curve_points(curve.margins)
    assert curve.points.elbow < curve.points.knee <= curve.points.reflection < 240
    # the lowest margins are the pairs people labelled in round 0 (the fixture queued the tail)
    assert set(curve.statuses[-12:]) == {"labelled"}

    last_batch = [q.task_id for q in data.queue]
    assert len(last_batch) == 10 and data.queue[0].rank == 0 and data.queue[2].audit
    assert all(q.p_wrong == 0.7 for q in data.queue)


def test_regions_cover_the_curve_without_gaps(registry):
    curve = load_report_data(registry, 7).curve
    bounds = region_bounds(curve)
    assert bounds[0][1] == 0 and bounds[-1][2] == 240
    assert all(a[2] == b[1] for a, b in zip(bounds, bounds[1:]))


def test_page_is_self_contained_and_shows_the_pictures(registry):
    data = load_report_data(registry, 7, "http://ls.example")
    html = render_report(data, "2026-01-01 00:00:00 UTC")
    assert html.startswith("<!DOCTYPE html>") and "<script" not in html
    # no CDN, no fetches: the only links are Label Studio task links and the empty inline icon
    assert not re.search(r'\s(src|href)="(?!http://ls\.example/projects/7/data\?task=|data:,")', html)
    for chart in ("margin-curve", "round-status", "effort", "disagreement", "wrong-left"):
        assert f'<svg id="{chart}"' in html
    p = data.curve.points
    assert f"elbow ({p.elbow})" in html and f"knee ({p.knee})" in html and f"reflection ({p.reflection})" in html
    assert html.count('class="dot dot-flip"') == 8 and html.count('class="dot dot-labelled"') == 12
    assert html.count("<li>") == 10 and "audit (random)" in html
    assert "4 of 12 (33%)" in html and "90% (60%–98%)" in html


def test_page_without_any_round_says_so(tmp_path):
    html = render_report(load_report_data(ModelRegistry(tmp_path), 3), "now")
    assert "No curation round has run yet" in html and "<svg" not in html


def test_report_route_is_behind_basic_auth(tmp_path, registry):
    settings = Settings(judge="precomputed", data_dir=tmp_path, model_dir=registry.root, basic_auth_user="u",
                        basic_auth_pass="p", _env_file=None)
    client = create_app(settings).test_client()
    assert client.get("/report?project=7").status_code == 401
    auth = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
    r = client.get("/report?project=7", headers=auth)
    assert r.status_code == 200 and r.mimetype == "text/html"
    assert '<svg id="margin-curve"' in r.get_data(as_text=True)
    bad = client.get("/report?project=x", headers=auth)
    assert bad.status_code == 400 and "project must be a Label Studio project id" in bad.json["error"]
    assert "RLTHF report: project 7" in build_report(settings, 7)  # the CLI's page is the same builder


def test_queue_marks_tasks_already_answered(registry):
    asked = []

    def answered(ids):
        asked.append(list(ids))
        return {ids[0], ids[3]}

    data = load_report_data(registry, 7, answered=answered)
    assert asked == [[q.task_id for q in data.queue]]
    assert [q.answered for q in data.queue] == [True, False, False, True] + [False] * 6
    html = render_report(data, "now")
    assert html.count('<li class="answered">') == 2 and "8 of 10 still unanswered." in html
    unknown = render_report(load_report_data(registry, 7), "now")
    assert "Label Studio was not asked" in unknown and 'class="answered"' not in unknown




def test_element_ids_on_the_page_are_unique(registry):
    from collections import Counter

    html = render_report(load_report_data(registry, 7), "now")
    repeated = [i for i, n in Counter(re.findall(r'\sid="([^"]+)"', html)).items() if n > 1]
    assert repeated == []
