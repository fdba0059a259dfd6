"""`rlthf-backend demo` (what `make run` calls) as a user runs it: start, use, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import httpx
import pytest
from label_studio_sdk import LabelStudio

from rlthf_backend.demo import load_sample_pairs
from rlthf_backend.demo.processes import free_port, rlthf_backend_exe, wait_until

pytestmark = pytest.mark.integration


def test_demo_starts_everything_prelabels_orders_and_stops_on_ctrl_c(tmp_path, label_studio):
    # `label_studio` only makes sure Label Studio's virtualenv exists before the clock starts.
    ls_port, port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLTHF_") and k != "REDIS_URL"}
    # The demo's default judge is the precomputed one (the verdicts GPT-4 / gpt-3.5-turbo gave the
    # shipped pairs); `--judge smollm2` runs the live local model, which has its own tests.
    env.update({"RLTHF_DATA_DIR": str(tmp_path / "data"), "RLTHF_DEBOUNCE_SECONDS": "0"})
    log = open(tmp_path / "demo.log", "w+")
    proc = subprocess.Popen([rlthf_backend_exe(), "demo", "--ls-port", str(ls_port), "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_until(lambda: "Ready." in (tmp_path / "demo.log").read_text(), 300, "the demo to be ready")
        out = (tmp_path / "demo.log").read_text()
        creds = json.loads((tmp_path / "data" / "demo" / "credentials.json").read_text())
        assert creds["password"] in out and creds["username"] in out
        assert f"http://127.0.0.1:{ls_port}/projects/" in out

        ls = LabelStudio(base_url=f"http://127.0.0.1:{ls_port}", api_key=creds["token"])
        [project] = [p for p in ls.projects.list() if p.title == "RLTHF demo"]
        tasks = [t.model_dump() for t in ls.tasks.list(project=project.id, fields="all")]
        assert len(tasks) == len(load_sample_pairs()) == 60
        assert all("human_label" not in t["data"] for t in tasks)  # annotators never see the truth
        assert all(t["predictions"] for t in tasks)
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["jobs"]["mode"] == "embedded"

        # The first round (queued by the Train click the demo makes) re-orders the queue.
        def ordered() -> bool:
            done = httpx.get(f"http://127.0.0.1:{port}/jobs?project={project.id}").json()["last_finished"]
            return bool(done and done["round_run"])

        wait_until(ordered, 180, "the first round")
        assert ls.projects.get(id=project.id).sampling == "Uncertainty sampling"

        # The demo waited for that round and checked the queue against the shipped human labels.
        check = json.loads((tmp_path / "data" / "models" / f"project-{project.id}" / "queue_check.json").read_text())
        print("demo queue check:", check)  # the figure the README quotes (pytest -s shows it)
        assert check["pool"] == 60 and check["first"] == 10 and check["batch"] >= 2
        assert check["wrong_in_pool"] == sum(p["llm_label"] != p["human_label"] for p in load_sample_pairs())
        assert check["share_first"] > 1.5 * check["share_random"], check  # the queue finds the judge's mistakes
        assert f"Of the first {check['first']} tasks the queue serves, {check['wrong_in_first']}" in out
        assert all(t["data"].get("llm_model", "").startswith(("GPT-4", "gpt-3.5")) for t in tasks)
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(60)
    assert rc == 0
    assert "stopping" in (tmp_path / "demo.log").read_text()
    for p in (ls_port, port):  # both servers are gone
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{p}/health", timeout=2)
