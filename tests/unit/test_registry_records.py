"""The typed records a training leaves in the registry: written once, read back identically by the
next training, the export and the report; a damaged file is named, never half-read."""

from __future__ import annotations

import json

import pytest

from rlthf_backend.core.types import JudgeStatus, Judgment, MemberVerdict
from rlthf_backend.registry.versions import ModelRegistry
from rlthf_backend.registry.records import (
    JUDGMENTS_FILE,
    ROUND_FILE,
    STATE_FILE,
    CarriedState,
    RoundFileError,
    RoundLogLine,
    RoundRecord,
    TaskDecision,
    append_round_log,
    newest_round_version,
    read_judgments,
    read_round_log,
    write_judgments,
)


def test_records_round_trip_through_a_published_version(tmp_path):
    registry = ModelRegistry(tmp_path)
    carried = CarriedState(next_round_index=2, flipped={5}, rm_excluded={5, 7}, audited={3},
                           human_batch=[9, 3], human_labels_at_round=4, predictions_version="v")
    record = RoundRecord(
        strategy="fused", round_index=1, reason="human batch done", counts={"keep": 2}, summary={"x": float("nan")},
        log=[{"event": "fit"}], engine={"strategy": "fused"},
        tasks={3: TaskDecision("human", "a", rank=1, audit=True, margin=0.5, p_wrong=0.4, scores={"spread": 0.1}),
               5: TaskDecision("flip", "b", margin=-1.0)},
    )
    judgments = [Judgment("a", 0.9, JudgeStatus.OK, "j", "a", "a", panel=(MemberVerdict("j", "a", "a"),),
                          raw=("long answer",)), None]

    def write(folder, version):
        (folder / STATE_FILE).write_text(json.dumps(carried.to_json()))
        record.write(folder)
        write_judgments(folder, [3, 5], judgments)

    info = registry.publish(7, write)
    assert CarriedState.read(info) == carried
    again = RoundRecord.read(newest_round_version(registry, 7))
    assert again.tasks == record.tasks and again.summary == {"x": None} and again.engine == record.engine
    stored = read_judgments(info.path)
    assert list(stored) == [3] and stored[3].panel == judgments[0].panel and stored[3].raw == ()
    append_round_log(registry, 7, RoundLogLine(version=info.version, at=1.0, round_index=1, reason="r",
                                               pool_size=2, human_labels=1, human_batch=[9, 3]))
    with open(registry.project_dir(7) / "rounds.jsonl", "a") as f:
        f.write('{"version": "torn')  # a writer killed mid-line
    assert [line.human_batch for line in read_round_log(registry, 7)] == [[9, 3]]
    assert CarriedState.read(None) == CarriedState()


@pytest.mark.parametrize("name, text", [(ROUND_FILE, "{not json"), (ROUND_FILE, '{"strategy": "fused"}'),
                                        (STATE_FILE, '{"flipped": 3}'), (JUDGMENTS_FILE, '{"task_id": "x"}')])
def test_a_damaged_file_is_named(tmp_path, name, text):
    registry = ModelRegistry(tmp_path)
    info = registry.publish(7, lambda folder, version: (folder / name).write_text(text))
    with pytest.raises(RoundFileError, match=name.split(".")[0]):
        if name == ROUND_FILE:
            RoundRecord.read(info)
        elif name == STATE_FILE:
            CarriedState.read(info)
        else:
            read_judgments(info.path)
