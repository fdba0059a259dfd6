"""Two workers on two "hosts" (two data folders) sharing one PostgreSQL database and one registry
folder: projects that hold the same pairs train in parallel, and the LLM judge is paid once per
pair and order across both.

Real Label Studio, Redis, PostgreSQL, RQ workers and embedding reward model; the only fake is the
paid chat-completions API (tests/fakes/openai_server.py, a local HTTP server counting requests).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from rq import Worker

from rlthf_backend.registry.versions import ModelRegistry
from rlthf_backend.store.judgments import DatabaseJudgmentStore
from tests.fakes.openai_server import Behaviour, FakeOpenAIServer
from tests.integration.test_active_loop import make_project, start_worker, wait_for_training
from tests.support.backend import start_backend
from tests.support.data import judged_pairs
from tests.support.postgres import throwaway_database
from tests.support.processes import wait_until
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.integration


def _shown(body: dict) -> str:
    """What one judge request showed: the pair, in the order it was shown."""
    return "\n".join(str(m.get("content")) for m in body["messages"])


def test_two_hosts_train_in_parallel_and_never_pay_twice_for_a_judgment(ls, label_studio, tmp_path):
    rows = judged_pairs(30)
    redis_server = RedisServer(tmp_path)
    registry = ModelRegistry(tmp_path / "shared-models")
    # 150 ms per answer: both workers are judging the pool at the same time, not one after the other.
    with throwaway_database("rlthf_two_hosts") as database_url, FakeOpenAIServer(Behaviour(latency_ms=150)) as llm:
        common = {
            "RLTHF_JUDGE": "openai", "RLTHF_OPENAI_BASE_URL": llm.base_url, "RLTHF_OPENAI_API_KEY": "test",
            "RLTHF_JUDGE_CONCURRENCY": "4", "RLTHF_DATABASE_URL": database_url,
            "RLTHF_MODEL_DIR": str(tmp_path / "shared-models"), "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": label_studio.token, "REDIS_URL": redis_server.url,
            "RLTHF_DEBOUNCE_SECONDS": "0",
        }
        backend = start_backend(tmp_path / "host0", {**common, "RLTHF_DATA_DIR": str(tmp_path / "host0" / "data")})
        workers = [start_worker({**common, "RLTHF_DATA_DIR": str(tmp_path / f"host{i}" / "data")},
                                tmp_path / f"host{i}", name=f"worker{i}") for i in (1, 2)]
        try:
            a = make_project(ls, rows, "choices.xml", "two hosts a")
            b = make_project(ls, rows, "choices.xml", "two hosts b")
            # Both listening before anything is queued, so each takes one project.
            wait_until(lambda: len(Worker.all(connection=redis_server.client())) == 2, 180, "two RQ workers")
            t0 = time.time()
            for pid in (a, b):
                assert backend.post("/webhook", json={"action": "START_TRAINING", "project": {"id": pid}}).json()[
                    "status"] == "queued"
            wait_for_training(backend, a, after=t0, timeout_s=600)
            wait_for_training(backend, b, after=t0, timeout_s=600)

            version_a, version_b = registry.latest(a), registry.latest(b)
            assert version_a is not None and version_b is not None, "a training published no version"
            (a_from, a_until), (b_from, b_until) = ((v.meta["trained_from"], v.meta["trained_until"])
                                                    for v in (version_a, version_b))
            assert a_from < b_until and b_from < a_until, "the two trainings did not run in parallel"

            shown = Counter(_shown(body) for body in llm.stats.bodies)
            assert len(shown) == 2 * len(rows), f"{len(shown)} distinct requests for {len(rows)} pairs in both orders"
            assert max(shown.values()) == 1, f"judged more than once: {max(shown.values())} times"
            assert llm.stats.requests == 2 * len(rows)
            # The judgments are in the shared database, one per pair; neither host keeps a file of them.
            assert DatabaseJudgmentStore(database_url).count() == len(rows)
            for host in ("host1", "host2"):
                assert not list((tmp_path / host / "data").glob("*.sqlite3")), host
        finally:
            for w in workers:
                w.stop()
            backend.stop()
            redis_server.stop()
