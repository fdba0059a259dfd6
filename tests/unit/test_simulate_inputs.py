"""`rlthf-backend simulate` and its reader answer bad data files with one line naming the file and
the line, and read upper-case labels as the letters they are."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import pytest

from rlthf_backend.core.simulate.data import load_pool
from rlthf_backend.demo.processes import rlthf_backend_exe


def _plain(i: int, human: str = "a", llm: str = "a") -> dict:
    return {"prompt": f"q{i}", "response_a": f"a{i}", "response_b": f"b{i}", "human_label": human, "llm_label": llm}


def _write(path: Path, lines: list[str], gz: bool = False) -> Path:
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_upper_case_and_padded_labels_are_read_as_their_letters(tmp_path):
    records = [_plain(0, "A", "B"), _plain(1, " b ", "a"), _plain(2, "Tie", "a"), _plain(3, "b", "TIE")]
    pool = load_pool(_write(tmp_path / "d.jsonl", [json.dumps(r) for r in records]))
    assert len(pool) == 3 and pool.dropped_ties == 1
    assert pool.human_a_preferred.tolist() == [True, False, False]
    judged = {"prompt": "q", "response_a": "x", "response_b": "y", "human_label": "B",
              "llm_labels": {"GPT-4/Vanilla_NoRules": {"ab": "A", "ba": "B"}}}
    other = {**judged, "prompt": "q2", "human_label": "A"}
    pool = load_pool(_write(tmp_path / "j.jsonl", [json.dumps(judged), json.dumps(other)]))
    assert len(pool) == 2 and pool.human_a_preferred.tolist() == [False, True]


@pytest.mark.parametrize(
    "lines, gz, needles",
    [
        ([], False, ["no records"]),
        ([json.dumps(_plain(0)), "{broken", json.dumps(_plain(2))], False, [":2", "not JSON"]),
        ([json.dumps(_plain(0)), json.dumps(_plain(1, human="maybe"))], False, [":2", "human_label", "maybe"]),
        ([json.dumps(_plain(0)), json.dumps(_plain(1, llm="C"))], False, [":2", "llm_label", "'C'"]),
        ([json.dumps(_plain(0)), "[1, 2]"], False, [":2", "JSON object"]),
        (["5"], False, [":1", "JSON object"]),
        ([json.dumps(_plain(0)), json.dumps({"prompt": "q", "response_a": "a"})], False, [":2", "response_b"]),
        ([json.dumps(_plain(0, human="tie")), json.dumps(_plain(1, human="tie"))], False, ["no usable pairs"]),
    ],
    ids=["empty", "broken-line", "unknown-human-label", "unknown-llm-label", "list-line", "scalar-line",
         "missing-field", "only-ties"],
)
def test_bad_data_is_one_clear_error(tmp_path, lines, gz, needles):
    path = _write(tmp_path / "d.jsonl", lines, gz)
    with pytest.raises(ValueError) as err:
        load_pool(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_a_truncated_gzip_names_the_file(tmp_path):
    whole = gzip.compress(("\n".join(json.dumps(_plain(i)) for i in range(2000)) + "\n").encode())
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="cut.jsonl.gz.*(truncated|damaged)"):
        load_pool(path)


def _simulate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"),
           "RLTHF_DATA_DIR": str(tmp_path / "state")}
    return subprocess.run([rlthf_backend_exe(), "simulate", "--quiet", "--out", str(tmp_path / "out"), *args],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("case", ["empty", "broken-line", "truncated-gzip", "unknown-label", "budgets"])
def test_simulate_answers_bad_input_in_one_line(tmp_path, case):
    good = [json.dumps(_plain(i)) for i in range(10)]
    data = tmp_path / "d.jsonl"
    args: list[str] = []
    if case == "empty":
        data.write_bytes(b"")
    elif case == "broken-line":
        _write(data, [*good, '{"prompt": "cut'])
    elif case == "truncated-gzip":
        data = tmp_path / "d.jsonl.gz"
        data.write_bytes(gzip.compress(("\n".join(good * 50)).encode())[:200])
    elif case == "unknown-label":
        _write(data, [*good, json.dumps(_plain(11, human="yes"))])
    else:
        _write(data, good)
        args = ["--budgets", "abc"]
    done = _simulate(tmp_path, "--data", str(data), *args)
    assert done.returncode in (1, 2), done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error:"), done.stderr[-2000:]
    assert ("budgets" in last) if case == "budgets" else (data.name in last), last
