"""Trainings against a real Label Studio keep a project's snapshot in the state database: the
second training reads only what changed, a lost or stale snapshot means a full read, and
``train --full`` re-reads the project without starting a new queue version."""

from __future__ import annotations

import time

import pytest

from rlthf_backend.app.settings import Settings
from rlthf_backend.store.database import open_database
from rlthf_backend.store.projects import ProjectStore
from rlthf_backend.app.training.pipeline import run_training
from tests.integration.test_active_loop import human_result, make_project
from tests.support.data import judged_pairs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONFIG = "choices.xml"


def test_trainings_read_what_changed_and_a_full_read_keeps_the_queue(ls, label_studio, tmp_path):
    rows = judged_pairs(48)
    truth = {r["id"]: r["human_label"] for r in rows}
    project_id = make_project(ls, rows, CONFIG, "incremental trainings")
    settings = Settings(label_studio_url=label_studio.url, label_studio_api_key=label_studio.token,
                        judge="precomputed", data_dir=tmp_path / "data", human_batch_fraction=0.125,
                        round_every_n_labels=0, _env_file=None)
    time.sleep(12)  # the import's stamps settle (a read reaches back 10 s while a change may be committing)

    first = run_training(settings, project_id)
    assert first.sync["mode"] == "full" and first.sync["tasks_read"] == 48
    assert first.round_run and first.predictions_written == 48  # every task, under the new queue version
    queue_version = first.model_version_in_label_studio
    assert ls.projects.get(id=project_id).model_version == queue_version

    data = {t.id: t.data for t in ls.tasks.list(project=project_id, fields="all")}
    for task_id in first.human_batch:
        ls.annotations.create(id=task_id, result=human_result(CONFIG, truth[data[task_id]["pair_id"]]))
    second = run_training(settings, project_id)
    assert second.sync["mode"] == "incremental"
    assert second.sync["tasks_read"] == len(first.human_batch)  # the answered tasks, nothing else
    assert second.round_reason == "human batch done" and second.human_labels == len(first.human_batch)
    assert second.model_version_in_label_studio == queue_version  # predictions updated in place
    assert len(second.human_batch) <= second.predictions_written < 48 - len(first.human_batch)
    # A snapshot reads fast but answers like Label Studio itself: the engine saw every label.
    store = ProjectStore(open_database(settings.database_url_resolved()).engine)
    assert {t for t, r in store.load(project_id).rows.items() if r.votes} == set(first.human_batch)

    full = run_training(settings, project_id, full_sync=True)
    assert full.sync["mode"] == "full" and full.sync["reason"] == "asked for"
    assert full.human_labels == second.human_labels and not full.round_run
    assert ls.projects.get(id=project_id).model_version == queue_version

    store.forget(project_id)  # a lost snapshot: the next training reads the project whole
    again = run_training(settings, project_id, force_round=True)
    assert again.sync["mode"] == "full" and again.sync["reason"] == "no stored state"
    assert again.human_labels == second.human_labels
    # Label Studio still shows the queue version's predictions: the round updates them, it does not
    # write a prediction for every task again.
    assert again.round_run and again.model_version_in_label_studio == queue_version
    assert again.predictions_written < 48 - second.human_labels
