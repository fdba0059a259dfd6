"""A damaged registry heals: every reader falls back to the newest intact version and says so,
and a new version can always be published past the damage (a garbage or missing ``state.json``,
a version folder an interrupted copy left without ``meta.json``, a truncated ``round.json``, a
garbage ``meta.json``)."""

from __future__ import annotations

import logging

import numpy as np

from rlthf_backend.app.report import build_report
from rlthf_backend.app.settings import Settings
from rlthf_backend.registry.records import (
    ROUND_FILE,
    STATE_FILE,
    CarriedState,
    newest_round_version,
)
from rlthf_backend.registry.versions import ModelRegistry, write_json_atomic
from tests.support.registry_rounds import publish_round


def publish_state(registry: ModelRegistry, project_id: int, state: CarriedState) -> str:
    def write(folder, version):
        write_json_atomic(folder / STATE_FILE, state.to_json())

    return registry.publish(project_id, write).version


def test_a_garbage_state_file_falls_back_to_the_version_before_it(tmp_path, caplog):
    registry = ModelRegistry(tmp_path)
    publish_state(registry, 1, CarriedState(next_round_index=3, flipped={7}, predictions_version="v"))
    damaged = publish_state(registry, 1, CarriedState(next_round_index=4))
    (registry.get(1, damaged).path / STATE_FILE).write_text("{garbage")
    with caplog.at_level(logging.WARNING):
        carried = CarriedState.newest(registry, 1)
    assert carried.next_round_index == 3 and carried.flipped == {7}  # nothing a round decided is forgotten
    assert damaged in caplog.text
    assert publish_state(registry, 1, carried) != damaged  # the next training publishes past it


def test_a_newest_version_with_only_meta_json_does_not_reset_the_rounds(tmp_path):
    registry = ModelRegistry(tmp_path)
    publish_state(registry, 2, CarriedState(next_round_index=5, audited={1, 2}, human_batch=[3]))
    registry.publish(2, lambda folder, version: None)  # a version that lost everything but meta.json
    carried = CarriedState.newest(registry, 2)
    assert (carried.next_round_index, carried.audited, carried.human_batch) == (5, {1, 2}, [3])


def test_a_version_folder_without_meta_json_is_never_in_the_way_of_the_next_publish(tmp_path):
    registry = ModelRegistry(tmp_path, title="t")
    registry.publish(3, lambda folder, version: None)
    stray = registry.project_dir(3) / "t-p3-v0002"  # an interrupted copy of a version folder
    stray.mkdir()
    (stray / "state.json").write_text("{}")
    published = registry.publish(3, lambda folder, version: None)
    assert published.version == "t-p3-v0003"
    assert [v.version for v in registry.versions(3)] == ["t-p3-v0001", "t-p3-v0003"]
    assert registry.latest(3).version == "t-p3-v0003"


def test_a_garbage_meta_json_leaves_that_version_out_and_latest_falls_back(tmp_path):
    registry = ModelRegistry(tmp_path, title="t")
    good = registry.publish(4, lambda folder, version: None).version
    bad = registry.publish(4, lambda folder, version: None)
    (bad.path / "meta.json").write_text("\x00\x01 not json")
    assert [v.version for v in registry.versions(4)] == [good]
    assert registry.latest(4).version == good  # LATEST still names the damaged one
    assert registry.publish(4, lambda folder, version: None).version == "t-p4-v0003"


def test_a_truncated_round_file_is_passed_over_by_the_report_and_the_export(tmp_path):
    settings = Settings(data_dir=tmp_path)
    registry = ModelRegistry(settings.resolved_model_dir, settings.model_title)
    ids = [1, 2, 3, 4]
    margins = np.array([1.0, -0.5, 0.2, 2.0])
    first = publish_round(registry, 9, ids, margins, {}, {}, round_index=0, human_batch=[2])
    second = publish_round(registry, 9, ids, margins, {}, {}, round_index=1, human_batch=[3])
    path = registry.get(9, second).path / ROUND_FILE
    path.write_text(path.read_text()[:40])  # a writer killed mid-file
    assert newest_round_version(registry, 9).version == first
    page = build_report(settings, 9, ask_label_studio=False)
    assert "RLTHF report: project 9" in page and first in page
