"""A seeded random sequence of the changes people and Label Studio make (annotations created,
updated, skipped and deleted, Data Manager deletions, tasks deleted and imported, the label
config switched), with trainings in between and changes during them: after every quiet
training, the snapshot it stored (on SQLite and on PostgreSQL), its pool and the export's
one-off read all equal a fresh full read of Label Studio."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import httpx
import pytest
from label_studio_sdk import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from sqlalchemy import text

from rlthf_backend.labelstudio.client import Traffic, iter_tasks
from rlthf_backend.labelstudio.config import parse_label_config
from rlthf_backend.labelstudio.pool import pool_from_rows, pool_from_tasks
from rlthf_backend.labelstudio.results import result_for_label
from rlthf_backend.labelstudio.sync import sync_project
from rlthf_backend.store.database import open_database
from rlthf_backend.store.projects import ProjectStore

pytestmark = pytest.mark.integration

CONFIGS = {name: (Path(__file__).resolve().parents[2] / "label_config" / f"{name}.xml").read_text()
           for name in ("choices", "pairwise")}
#: Seconds an incremental read reaches back; short here, where every change is committed before the read.
OVERLAP = 1.0
#: One sequence in the suite (about 2.5 minutes); DRIFT_SEEDS="1,2,3,4,5,6" runs more (seeds 1-6 were run
#: when it was written, none drifted). Not RLTHF_*: tests/conftest.py clears those.
SEEDS = tuple(int(s) for s in os.environ.get("DRIFT_SEEDS", "1").split(","))
STEPS = 25


@pytest.fixture
def stores(tmp_path, postgres_url) -> dict[str, ProjectStore]:
    with open_database(postgres_url).engine.begin() as connection:
        connection.execute(text("TRUNCATE project_sync, project_tasks"))
    return {"sqlite": ProjectStore(open_database(f"sqlite:///{tmp_path / 'state.sqlite3'}").engine),
            "postgresql": ProjectStore(open_database(postgres_url).engine)}


@pytest.fixture
def client(label_studio):
    """A client that watches Label Studio's clock, as trainings do."""
    traffic = Traffic()
    http = httpx.Client(timeout=120, event_hooks={"request": [traffic.on_request], "response": [traffic.on_response]})
    yield LabelStudio(base_url=label_studio.url, api_key=label_studio.token, httpx_client=http), traffic
    http.close()


def dm_action(label_studio, project_id: int, action: str, task_ids: list[int]) -> None:
    r = httpx.post(f"{label_studio.url}/api/dm/actions", params={"id": action, "project": project_id},
                   json={"selectedItems": {"all": False, "included": task_ids}},
                   headers={"Authorization": f"Token {label_studio.token}"}, timeout=60)
    r.raise_for_status()


def new_tasks(rng: random.Random, n: int) -> list[dict]:
    tasks = [{"prompt": f"p{rng.random():.6f}", "answer1": "x", "answer2": f"y é {rng.randint(0, 9)}"}
             for _ in range(n)]
    if rng.random() < 0.3:
        tasks.append({"prompt": "bad", "answer1": "x", "answer2": rng.randint(0, 9)})  # not a usable pair
    return tasks


@pytest.mark.parametrize("seed", SEEDS)
def test_a_random_sequence_of_changes_leaves_no_drift(ls, label_studio, client, stores, seed):
    rng = random.Random(seed)
    sdk, traffic = client
    project = ls.projects.create(title=f"drift {seed}", label_config=CONFIGS["choices"])
    pid = project.id
    ls.projects.import_tasks(id=pid, request=new_tasks(rng, 12))
    log: list[str] = []
    drifts: list[str] = []

    def config():
        return parse_label_config(ls.projects.get(id=pid).label_config)

    def task_ids() -> list[int]:
        return [int(t["id"]) for t in iter_tasks(ls, pid, include="id")]

    def annotations() -> list:
        return [a for t in task_ids() for a in ls.annotations.list(id=t)]

    def label_result(cfg):
        labels = ["a", "b"] + (["tie"] if cfg.kind != "pairwise" else [])
        return result_for_label(cfg, rng.choice(labels))

    # ---------------------------------------------------------------- the changes
    def annotate():
        ids = task_ids()
        if ids:
            t = rng.choice(ids)
            ls.annotations.create(id=t, result=label_result(config()))
            return f"annotate {t}"

    def skip():
        ids = task_ids()
        if ids:
            t = rng.choice(ids)
            ls.annotations.create(id=t, result=[], was_cancelled=True)
            return f"skip {t}"

    def update():
        anns = annotations()
        if anns:
            a = rng.choice(anns)
            ls.annotations.update(id=a.id, result=label_result(config()), was_cancelled=False)
            return f"update annotation {a.id} of {a.task} (was_cancelled {a.was_cancelled})"

    def delete_annotation():
        anns = annotations()
        if anns:
            a = rng.choice(anns)
            ls.annotations.delete(id=a.id)
            return f"delete annotation {a.id} of {a.task}"

    def dm_delete_annotations():
        ids = task_ids()
        if ids:
            chosen = rng.sample(ids, min(len(ids), rng.randint(1, 2)))
            dm_action(label_studio, pid, "delete_tasks_annotations", chosen)
            return f"dm delete_tasks_annotations {chosen}"

    def dm_delete_tasks():
        ids = task_ids()
        if len(ids) > 4:
            chosen = rng.sample(ids, rng.randint(1, 2))
            dm_action(label_studio, pid, "delete_tasks", chosen)
            return f"dm delete_tasks {chosen}"

    def delete_task():
        ids = task_ids()
        if len(ids) > 4:
            t = rng.choice(ids)
            ls.tasks.delete(id=t)
            return f"delete task {t}"

    def import_tasks():
        tasks = new_tasks(rng, rng.randint(1, 3))
        ls.projects.import_tasks(id=pid, request=tasks)
        return f"import {len(tasks)} tasks"

    def switch_config():
        name = "choices" if config().kind == "pairwise" else "pairwise"
        try:
            ls.projects.update(id=pid, label_config=CONFIGS[name])
        except ApiError as exc:
            if rng.random() < 0.5:
                return f"config -> {name} refused ({exc.status_code})"
            # Labels of the other control are in the way: people delete every annotation, then switch.
            dm_action(label_studio, pid, "delete_tasks_annotations", task_ids())
            ls.projects.update(id=pid, label_config=CONFIGS[name])
            return f"dm delete_tasks_annotations on every task, then config -> {name}"
        return f"config -> {name}"

    changes = [annotate] * 4 + [skip] * 2 + [update] * 3 + [delete_annotation] * 2 + [
        dm_delete_annotations, dm_delete_tasks, delete_task, import_tasks, switch_config]

    # ---------------------------------------------------------------- a training's read, as stages.py does it
    def training(store: ProjectStore, during=None):
        cfg = config()
        stored = store.load(pid)
        info = sdk.projects.get(id=pid)
        real_list, real_get, calls = sdk.tasks.list, sdk.projects.get, {"n": 0, "at": rng.randint(1, 6)}

        def after_call(real):
            def call(**kwargs):
                answer = real(**kwargs)
                calls["n"] += 1
                if during is not None and calls["n"] == calls["at"]:
                    log.append(f"  during the training's read, after call {calls['n']}: {during()}")
                return answer
            return call

        sdk.tasks.list, sdk.projects.get = after_call(real_list), after_call(real_get)
        try:
            snapshot, sync = sync_project(sdk, info, cfg, stored, overlap_s=OVERLAP,
                                          server_time=lambda: traffic.server_time)
        finally:
            sdk.tasks.list, sdk.projects.get = real_list, real_get
        if during is not None and calls["n"] < calls["at"]:
            log.append(f"  during the training, after its read: {during()}")
        if not sync.settled:  # stages.settle
            snapshot, tail = sync_project(sdk, sdk.projects.get(id=pid), cfg, snapshot, overlap_s=OVERLAP,
                                          server_time=lambda: traffic.server_time)
            sync.changed = list(dict.fromkeys(sync.changed + tail.changed))
            if tail.mode == "full":
                sync.mode, sync.changed = "full", list(snapshot.rows)
            sync.removed = sync.removed + tail.removed
        store.save(snapshot, sync.changed, sync.removed, replace=sync.mode == "full")
        return cfg, snapshot, sync

    def check(name: str, store: ProjectStore, cfg, snapshot, sync, expect_incremental: bool):
        where = f"seed {seed} step {step} {name}"
        whole, _ = sync_project(ls, ls.projects.get(id=pid), cfg, None, full=True)
        loaded = store.load(pid)
        problems = []
        if expect_incremental and sync.mode != "incremental":
            problems.append(f"read whole: {sync.reason}")
        if sorted(snapshot.rows) != sorted(whole.rows):
            problems.append(f"task ids: snapshot {sorted(snapshot.rows)} / Label Studio {sorted(whole.rows)}")
        for t in sorted(set(snapshot.rows) & set(whole.rows)):
            if snapshot.rows[t] != whole.rows[t]:
                problems.append(f"task {t}: snapshot {snapshot.rows[t]} / Label Studio {whole.rows[t]}")
        if loaded is None:
            problems.append("nothing stored")
        elif (loaded.rows, loaded.cursor, loaded.config_key) != (snapshot.rows, snapshot.cursor, snapshot.config_key):
            odd = [t for t in set(loaded.rows) | set(snapshot.rows) if loaded.rows.get(t) != snapshot.rows.get(t)]
            problems.append(f"stored != read: rows {sorted(odd)}, cursor {loaded.cursor} / {snapshot.cursor}")
        pool, export = pool_from_rows(cfg, snapshot.rows.values()), pool_from_tasks(cfg, iter_tasks(ls, pid))
        if (pool.task_ids, pool.human, pool.votes, pool.skipped) != (
                export.task_ids, export.human, export.votes, export.skipped):
            problems.append("pool differs from the export's read")
        if problems:
            drifts.append(where + ":\n    " + "\n    ".join(problems) + "\n  after:\n    " + "\n    ".join(log[-8:]))
            store.forget(pid)  # start the next training afresh, so one drift is not reported again and again

    started = time.monotonic()
    for step in range(STEPS):
        for _ in range(rng.randint(1, 2)):
            change = rng.choice(changes)
            log.append(f"step {step}: {change()}")
        if rng.random() < 0.25:
            time.sleep(OVERLAP + 2.2)  # settled: the read's cursor is the newest stamp itself
            log.append(f"step {step}: settled")
        for name, store in stores.items():
            during = rng.choice(changes) if rng.random() < 0.4 else None
            if during is not None:  # the change during it is read by the next training
                training(store, during)
            stored = store.load(pid)
            cfg, snapshot, sync = training(store)
            check(name, store, cfg, snapshot, sync,
                  expect_incremental=stored is not None and stored.config_key == snapshot.config_key)
        if time.monotonic() - started > 240:
            break
    ls.projects.delete(id=pid)
    print(f"seed {seed}: {step + 1} steps in {time.monotonic() - started:.0f} s", *log, sep="\n")
    assert not drifts, f"{len(drifts)} drift(s):\n" + "\n".join(drifts)
