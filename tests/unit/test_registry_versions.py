import json
import os

import pytest

from rlthf_backend.registry.versions import ModelRegistry


def _writer(payload):
    def write(folder, version):
        (folder / "weights.json").write_text(json.dumps({"payload": payload, "version": version}))
    return write


def test_publish_numbers_versions_and_moves_latest(tmp_path):
    reg = ModelRegistry(tmp_path, title="t")
    assert reg.latest(3) is None and reg.versions(3) == []
    v1 = reg.publish(3, _writer(1), meta={"k": 1})
    v2 = reg.publish(3, _writer(2))
    assert (v1.version, v2.version) == ("t-p3-v0001", "t-p3-v0002")
    assert reg.latest(3).version == v2.version
    assert json.loads((v2.path / "weights.json").read_text()) == {"payload": 2, "version": v2.version}
    assert reg.get(3, v1.version).meta["k"] == 1
    assert [v.version for v in reg.versions(3)] == [v1.version, v2.version]
    assert reg.versions(4) == []


def test_a_failing_writer_leaves_the_previous_version_serving(tmp_path):
    reg = ModelRegistry(tmp_path)
    good = reg.publish(1, _writer("good"))

    def crash(folder, version):
        (folder / "half.bin").write_bytes(b"\0" * 10)
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        reg.publish(1, crash)
    assert reg.latest(1).version == good.version
    assert [v.version for v in reg.versions(1)] == [good.version]
    assert not any(p.name.startswith(".tmp-") for p in reg.project_dir(1).iterdir())


def test_a_killed_publish_is_invisible_and_cleaned_later(tmp_path):
    reg = ModelRegistry(tmp_path)
    good = reg.publish(1, _writer("good"))
    # What a SIGKILL mid-write leaves: a temporary folder without meta.json.
    stale = reg.project_dir(1) / ".tmp-rlthf-p1-v0002-deadbeef"
    stale.mkdir()
    (stale / "weights.json").write_text("{")
    os.utime(stale, (0, 0))
    assert reg.latest(1).version == good.version
    nxt = reg.publish(1, _writer("next"))
    assert nxt.version.endswith("v0002") and not stale.exists()


def test_latest_falls_back_when_pointer_names_a_missing_version(tmp_path):
    reg = ModelRegistry(tmp_path)
    v1 = reg.publish(1, _writer(1))
    (reg.project_dir(1) / "LATEST").write_text("rlthf-p1-v0009")
    assert reg.latest(1).version == v1.version


def test_prune_keeps_newest_and_latest(tmp_path):
    reg = ModelRegistry(tmp_path)
    versions = [reg.publish(2, _writer(i)).version for i in range(5)]
    assert reg.prune(2, keep=2) == versions[:3]
    assert [v.version for v in reg.versions(2)] == versions[3:]
    assert reg.latest(2).version == versions[-1]
