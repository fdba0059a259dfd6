"""The jobs' status records in Redis: one reader, which reads garbage as absent; the failure's
kind recorded as a field; the jobs' config derived from the settings (fakeredis, no server)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import fields
from types import SimpleNamespace

import fakeredis
import pytest
import redis as redis_mod

from rlthf_backend.app.jobs import jobs_config
from rlthf_backend.app.settings import Settings
from rlthf_backend.app.training import job as job_module
from rlthf_backend.app.errors import ProjectNotFound
from rlthf_backend.jobs import keys, status
from rlthf_backend.jobs.config import JobsConfig
from rlthf_backend.server.app import create_app


@pytest.fixture
def redis():
    return fakeredis.FakeRedis()


def _good(**info) -> str:
    return json.dumps({"at": time.time(), "job_id": "j", **info})


# --- the reader --------------------------------------------------------------------------------


@pytest.mark.parametrize("garbage", [
    b"not json", b"\xff\xfe", b"[1, 2]", b'"a string"', b"null", b'{"job_id": "j"}', b'{"at": "soon"}',
    b'{"at": true}', b'{"at": NaN}', b'{"at": 1, "reason": 7}', b'{"at": 1, "retries_left": "0"}',
    b'{"at": 1, "project_missing": "yes"}', b'{"at": 1' + b"0" * 400 + b"}", b"[" * 100_000 + b"]" * 100_000,
])
def test_a_field_that_is_no_status_record_reads_as_absent(redis, caplog, garbage):
    redis.hset(keys.status_key(3), mapping={"last_failed": garbage, "queued": _good(reason="ANNOTATION_CREATED"),
                                            "someone_elses": b"\x00"})
    with caplog.at_level(logging.WARNING, logger="rlthf_backend.jobs.status"):
        state = status.read(redis, 3)
    assert state.last_failed is None and state.running is None
    assert state.queued is not None and state.queued.reason == "ANNOTATION_CREATED"
    assert state.as_dict()["queued"]["reason"] == "ANNOTATION_CREATED" and state.as_dict()["last_failed"] is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "last_failed" in warnings[0].getMessage()


@pytest.mark.parametrize("write", [
    lambda r, k: r.set(k, "a string"), lambda r, k: r.rpush(k, "a", "list"), lambda r, k: r.sadd(k, "a set"),
])
def test_a_status_key_of_another_type_reads_as_no_status(redis, caplog, write):
    write(redis, keys.status_key(4))
    with caplog.at_level(logging.WARNING, logger="rlthf_backend.jobs.status"):
        assert status.read(redis, 4) == status.ProjectStatus()
        assert status.missing_project(redis, 4) is None
    assert "not a hash" in caplog.text


def test_recording_over_a_key_of_another_type_replaces_it(redis):
    redis.set(keys.status_key(5), "foreign")
    status.record(redis, 5, "queued", {"job_id": "j5", "reason": "START_TRAINING"})
    assert status.read(redis, 5).queued.job_id == "j5"
    assert 0 < redis.ttl(keys.status_key(5)) <= status.STATUS_TTL_S
    status.clear(redis, 5, "queued")
    redis.set(keys.status_key(5), "foreign again")
    status.clear(redis, 5, "running")  # nothing to clear: no error either


def test_projects_skips_keys_that_only_look_like_status_keys(redis, caplog):
    for key in ("rlthf:project:abc:status", "rlthf:project:007:status", "rlthf:project:1:x:status",
                "rlthf:project::status", "rlthf:project:٣:status"):
        redis.hset(key, "queued", _good())
    status.record(redis, 12, "queued", {"job_id": "j"})
    status.record(redis, 3, "running", {"job_id": "j"})
    with caplog.at_level(logging.WARNING, logger="rlthf_backend.jobs.status"):
        assert status.projects(redis) == [3, 12]
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_job_counters_leave_out_what_count_job_did_not_write(redis, caplog):
    status.count_job(redis, "finished", 2.5)
    redis.hset(keys.METRICS_KEY, mapping={"jobs_odd_total": "many", "job_nan_seconds_sum": "nan"})
    with caplog.at_level(logging.WARNING, logger="rlthf_backend.jobs.status"):
        assert status.job_counters(redis) == {"jobs_finished_total": 1.0, "job_finished_seconds_sum": 2.5}
    redis.delete(keys.METRICS_KEY)
    redis.set(keys.METRICS_KEY, "foreign")
    assert status.job_counters(redis) == {}
    status.count_job(redis, "failed", 1.0)  # logged, not raised: a job's outcome does not depend on it


# --- the failure's kind is a field ---------------------------------------------------------------


def test_missing_project_decides_by_the_recorded_field(redis):
    status.record(redis, 6, "last_failed", {"job_id": "j", "reason": "ProjectNotFound: Label Studio has no project 6",
                                            "retries_left": 0, "project_missing": True})
    assert status.missing_project(redis, 6) == "Label Studio has no project 6"
    assert 0 < redis.ttl(keys.status_key(6)) <= status.MISSING_PROJECT_MEMORY_S
    # Another failure whose message merely starts the same way is not a missing project.
    status.record(redis, 7, "last_failed", {"job_id": "j", "reason": "ProjectNotFound: a message", "retries_left": 0,
                                            "project_missing": False})
    assert status.missing_project(redis, 7) is None
    assert redis.ttl(keys.status_key(7)) > status.MISSING_PROJECT_MEMORY_S
    # A later success ends it.
    status.record(redis, 6, "last_finished", {"job_id": "k"})
    assert status.missing_project(redis, 6) is None


def test_a_record_written_before_the_field_existed_still_reads(redis):
    redis.hset(keys.status_key(8), "last_failed", json.dumps(
        {"at": time.time(), "job_id": "j", "reason": "ProjectNotFound: Label Studio has no project 8",
         "retries_left": 0}))
    assert status.missing_project(redis, 8) == "Label Studio has no project 8"
    redis.hset(keys.status_key(8), "last_failed", json.dumps(
        {"at": time.time() - status.MISSING_PROJECT_MEMORY_S - 1, "job_id": "j",
         "reason": "ProjectNotFound: Label Studio has no project 8", "retries_left": 0}))
    assert status.missing_project(redis, 8) is None  # no longer remembered


def test_the_job_records_a_missing_project_as_such(redis, monkeypatch):
    def no_project(*args, **kwargs):
        raise ProjectNotFound("Label Studio has no project 9")

    monkeypatch.setattr(job_module, "get_current_job", lambda: SimpleNamespace(id="j9", connection=redis,
                                                                              retries_left=3))
    monkeypatch.setattr(job_module, "run_training", no_project)
    assert job_module.train_project_job(9) == {"project_id": 9, "error": "Label Studio has no project 9"}
    failed = status.read(redis, 9).last_failed
    assert failed.project_missing and failed.retries_left == 0
    assert status.missing_project(redis, 9) == "Label Studio has no project 9"

    def broken(*args, **kwargs):
        raise RuntimeError("Label Studio answered 502")

    monkeypatch.setattr(job_module, "run_training", broken)
    with pytest.raises(RuntimeError):
        job_module.train_project_job(10)
    failed = status.read(redis, 10).last_failed
    assert failed.project_missing is False and failed.retries_left == 3


# --- the endpoints never fail on garbage ------------------------------------------------------------


def test_health_jobs_webhook_and_metrics_answer_over_garbage(tmp_path, monkeypatch):
    fake = fakeredis.FakeRedis()
    monkeypatch.setattr(redis_mod.Redis, "from_url", classmethod(lambda cls, url, **kw: fake))
    settings = Settings(judge="precomputed", data_dir=tmp_path, redis_url="redis://redis:6379/0", _env_file=None,
                        queue_name=f"garbage-{tmp_path.name}")
    client = create_app(settings).test_client()
    fake.set(keys.status_key(21), "a string")
    fake.hset(keys.status_key(22), mapping={"last_failed": "{torn", "running": "[]"})
    fake.hset(keys.status_key(23), mapping={"last_failed": '{"at": "yesterday", "reason": "x"}',
                                             "last_finished": _good()})
    fake.hset("rlthf:project:nope:status", "queued", _good())
    fake.hset(keys.status_key(24), "last_failed", _good(reason="OSError: disk full", retries_left=0))
    fake.set(keys.METRICS_KEY, "foreign")

    health = client.get("/health")
    assert health.status_code == 200
    jobs = health.json["jobs"]
    assert jobs["ok"] is True and jobs["running"] == [] and jobs["last_failure"]["project"] == 24
    everything = client.get("/jobs")
    assert everything.status_code == 200 and set(everything.json["projects"]) == {"21", "22", "23", "24"}
    for pid in (21, 22, 23):
        one = client.get(f"/jobs?project={pid}")
        assert one.status_code == 200 and one.json["last_failed"] is None and one.json["running"] is None
        hook = client.post("/webhook", json={"action": "ANNOTATION_CREATED", "project": {"id": pid}})
        assert hook.status_code == 200 and hook.json["status"] == "queued", hook.json
        assert client.get(f"/jobs?project={pid}").json["queued"]["job_id"] == hook.json["job_id"]
    assert client.get("/metrics").status_code == 200


# --- the jobs' config ---------------------------------------------------------------------------------


def test_jobs_config_is_the_settings_fields_of_the_same_name():
    settings = Settings(_env_file=None, queue_name="q", job_timeout=7, redis_url="redis://r:6379/1")
    config = jobs_config(settings)
    assert (config.queue_name, config.job_timeout, config.redis_url) == ("q", 7, "redis://r:6379/1")
    assert JobsConfig() == jobs_config(Settings(_env_file=None))  # same defaults
    for f in fields(JobsConfig):
        assert f.metadata["help"] == Settings.model_fields[f.name].description, f.name


# --- leases: a run whose worker died is not shown running -------------------------------------------


def test_a_running_record_whose_lease_lapsed_reads_as_abandoned(redis):
    redis.hset(keys.status_key(30), "running", _good(stage="fitting", lease="run1"))
    redis.set(keys.lease_key(30, "run1"), "j", ex=30)
    assert status.read(redis, 30).running.lease == "run1" and status.read(redis, 30).abandoned is None
    redis.delete(keys.lease_key(30, "run1"))  # the worker died: nobody renewed it
    state = status.read(redis, 30)
    assert state.running is None and state.abandoned.info["stage"] == "fitting"
    assert state.as_dict()["running"] is None
    redis.hset(keys.status_key(31), "running", _good(stage="fitting"))  # an older writer's record: no lease
    assert status.read(redis, 31).running is not None


def test_a_run_clears_only_its_own_running_record(redis):
    redis.hset(keys.status_key(32), "running", _good(lease="other-run"))
    assert status.clear_run(redis, 32, "my-run") is False and status.read(redis, 32).abandoned is not None
    assert status.clear_run(redis, 32, "other-run") is True and redis.hget(keys.status_key(32), "running") is None
