"""Incremental reads against a real Label Studio: after every kind of change people and the
backend make, reading only what changed gives exactly what reading the whole project gives."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from label_studio_sdk import LabelStudio, PredictionRequest

from rlthf_backend.labelstudio.client import Traffic
from rlthf_backend.labelstudio.config import parse_label_config
from rlthf_backend.labelstudio.results import result_for_label
from rlthf_backend.labelstudio.pool import pool_from_rows
from rlthf_backend.store.snapshots import ProjectSnapshot
from rlthf_backend.labelstudio.sync import read_queue_predictions, sync_project

pytestmark = pytest.mark.integration

CONFIG_XML = (Path(__file__).resolve().parents[2] / "label_config" / "choices.xml").read_text()
CFG = parse_label_config(CONFIG_XML)
#: Seconds an incremental read reaches back; short here, where every change is committed before the read.
OVERLAP = 1.0


def rows_of(snapshot: ProjectSnapshot) -> dict:
    return {t: r for t, r in snapshot.rows.items()}


@pytest.fixture
def read(label_studio):
    """An incremental read through a client that watches Label Studio's clock, as trainings do."""
    traffic = Traffic()
    http = httpx.Client(timeout=120, event_hooks={"request": [traffic.on_request], "response": [traffic.on_response]})
    client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token, httpx_client=http)

    def read(project, snapshot, **kw):
        return sync_project(client, project, CFG, snapshot, overlap_s=OVERLAP, server_time=lambda: traffic.server_time,
                            **kw)

    yield read
    http.close()


@pytest.fixture
def project(ls):
    p = ls.projects.create(title="incremental", label_config=CONFIG_XML)
    ls.projects.import_tasks(id=p.id, request=[{"prompt": f"p{i}", "answer1": "x", "answer2": "y"} for i in range(30)])
    yield p
    ls.projects.delete(id=p.id)


def dm_action(label_studio, project_id: int, action: str, task_ids: list[int]) -> None:
    r = httpx.post(f"{label_studio.url}/api/dm/actions", params={"id": action, "project": project_id},
                   json={"selectedItems": {"all": False, "included": task_ids}},
                   headers={"Authorization": f"Token {label_studio.token}"}, timeout=60)
    r.raise_for_status()


def test_every_kind_of_change_is_read_incrementally_and_matches_a_full_read(ls, label_studio, project, read):
    time.sleep(OVERLAP + 2.2)  # settled: the import's stamps are not read again
    snapshot, report = read(project, None)
    assert report.mode == "full" and report.tasks_read == 30
    snapshot.queue_version = "q1"  # as the first round's full write sets it
    ids = sorted(snapshot.rows)
    res = {label: result_for_label(CFG, label) for label in ("a", "b")}
    later = {}

    def create_annotation():
        later["ann"] = ls.annotations.create(id=ids[0], result=res["a"]).id

    def update_annotation():
        ls.annotations.update(id=later["ann"], result=res["b"])

    def skip():
        ls.annotations.create(id=ids[1], result=[], was_cancelled=True)

    def delete_annotation():
        ls.annotations.delete(id=later["ann"])

    def bulk_delete_annotations():
        ls.annotations.create(id=ids[2], result=res["a"])
        ls.annotations.create(id=ids[3], result=res["b"])
        dm_action(label_studio, project.id, "delete_tasks_annotations", [ids[2]])

    def delete_task():
        dm_action(label_studio, project.id, "delete_tasks", [ids[4]])

    def import_tasks():
        ls.projects.import_tasks(id=project.id, request=[{"prompt": "new", "answer1": "x", "answer2": "y"},
                                                         {"prompt": "bad", "answer1": "x", "answer2": 5}])

    def predictions_of_the_queue_version():
        ls.projects.import_predictions(id=project.id, request=[
            PredictionRequest(task=t, result=res["a"], score=0.7, model_version="q1") for t in ids[5:10]])
        p = ls.predictions.create(task=ids[10], result=res["b"], score=0.3, model_version="q1")
        ls.predictions.update(id=p.id, score=0.9)

    for change in (create_annotation, update_annotation, skip, delete_annotation, bulk_delete_annotations,
                   delete_task, import_tasks, predictions_of_the_queue_version):
        change()
        snapshot, report = read(ls.projects.get(id=project.id), snapshot)
        if change is predictions_of_the_queue_version:
            # Bulk-imported predictions do not stamp their tasks: after its full write a training learns
            # them from the predictions list, as here.
            read_queue_predictions(ls, project.id, CFG, snapshot)
        whole, _ = sync_project(ls, project, CFG, ProjectSnapshot(project.id, snapshot.config_key,
                                                                  queue_version="q1"), full=True)
        assert report.mode == "incremental", (change.__name__, report.reason)
        assert report.tasks_read < 20, change.__name__  # what changed (and the overlap), not the project
        assert rows_of(snapshot) == rows_of(whole), change.__name__

    pool = pool_from_rows(CFG, snapshot.rows.values())
    assert ids[4] not in pool.task_ids and len(pool.skipped) == 1  # the task whose answer2 is a number
    assert snapshot.rows[ids[10]].shown.score == pytest.approx(0.9)
    assert snapshot.rows[ids[3]].human != snapshot.rows[ids[2]].human  # b kept, a deleted


def test_a_snapshot_that_disagrees_with_label_studio_is_read_whole(project, read):
    time.sleep(OVERLAP + 2.2)  # settled: the tampered task is not read again by chance
    snapshot, _ = read(project, None)
    some = next(iter(snapshot.rows.values()))
    some.total_annotations += 1  # an annotation Label Studio never had: the counters cannot match
    snapshot, report = read(project, snapshot)
    assert report.mode == "full" and "disagrees" in report.reason
    assert snapshot.totals() == (30, 0, 0)


def test_an_annotation_made_after_a_read_is_in_the_next_read(ls, project, read):
    time.sleep(OVERLAP + 2.2)
    snapshot, _ = read(project, None)
    task_id = sorted(snapshot.rows)[7]
    ls.annotations.create(id=task_id, result=result_for_label(CFG, "b"))
    time.sleep(OVERLAP + 2.2)  # settled: only the annotated task is read
    snapshot, report = read(project, snapshot)
    assert report.mode == "incremental" and report.changed == [task_id]
    assert snapshot.rows[task_id].votes == ["b"]


def test_a_task_deleted_between_two_pages_of_a_full_read_leaves_no_trace_and_misses_none(ls, label_studio,
                                                                                          project, monkeypatch):
    """Label Studio deletes (and adds) tasks while a full read pages through the project: the read
    neither holds the deleted task nor misses one that moved across the page boundary."""
    from rlthf_backend.labelstudio import client as client_module

    ids = sorted(int(t["id"]) for t in client_module.iter_tasks(ls, project.id, include="id"))
    assert len(ids) == 30
    monkeypatch.setitem(client_module.iter_tasks.__kwdefaults__, "page_size", 10)  # three pages
    real_list = ls.tasks.list
    calls = {"n": 0}

    def list_then_change(**kwargs):
        page = real_list(**kwargs)
        calls["n"] += "fields" in kwargs  # a page of the full read (tasks whole)
        if calls["n"] == 1 and "fields" in kwargs:  # after the first page: delete a task it read, add one
            ls.tasks.delete(id=ids[3])
            ls.projects.import_tasks(id=project.id, request=[{"prompt": "late", "answer1": "x", "answer2": "y"}])
            calls["n"] += 1
        return page

    ls.tasks.list = list_then_change
    try:
        snapshot, report = sync_project(ls, ls.projects.get(id=project.id), CFG, None, overlap_s=OVERLAP)
        pages = [int(t["id"]) for t in client_module.iter_tasks(ls, project.id, include="id", page_size=7)]
    finally:
        ls.tasks.list = real_list
    now = sorted(int(t["id"]) for t in client_module.iter_tasks(ls, project.id, include="id"))
    assert sorted(snapshot.rows) == now  # the deleted task gone, every other task (and the new one) there
    assert ids[3] not in snapshot.rows and len(now) == 30
    assert pages == now  # paged 7 at a time by id: each task once, in id order


def test_paging_by_id_reads_each_task_once_with_a_filter(ls, project):
    from rlthf_backend.labelstudio.client import iter_tasks

    every = [int(t["id"]) for t in iter_tasks(ls, project.id, include="id")]
    small = [int(t["id"]) for t in iter_tasks(ls, project.id, include="id", page_size=4)]
    assert small == every == sorted(every) and len(every) == 30
    chosen = {"selectedItems": {"all": False, "included": every[5:12]}}
    assert [int(t["id"]) for t in iter_tasks(ls, project.id, query=chosen, page_size=3)] == every[5:12]
