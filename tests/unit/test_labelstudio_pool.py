from pathlib import Path

from rlthf_backend.core.curation.state import HUMAN_A, HUMAN_B, HUMAN_NONE, HUMAN_TIE
from rlthf_backend.labelstudio.config import parse_label_config
from rlthf_backend.labelstudio.pool import pool_from_tasks
from rlthf_backend.labelstudio.snapshot import human_label
from rlthf_backend.labelstudio.results import result_for_label

CFG = parse_label_config((Path(__file__).resolve().parents[2] / "label_config" / "choices.xml").read_text())


def ann(label, user=1, cancelled=False):
    return {"result": result_for_label(CFG, label), "completed_by": user, "was_cancelled": cancelled}


def test_majority_of_submitted_annotations():
    assert human_label(CFG, [])[0] == HUMAN_NONE
    assert human_label(CFG, [ann("a")])[0] == HUMAN_A
    assert human_label(CFG, [ann("b", 1), ann("b", 2), ann("a", 3)])[0] == HUMAN_B
    assert human_label(CFG, [ann("a", 1), ann("b", 2)])[0] == HUMAN_TIE  # no clear winner
    assert human_label(CFG, [ann("tie")])[0] == HUMAN_TIE


def test_skipped_annotations_are_not_labels():
    code, votes, who = human_label(CFG, [ann("a", 1, cancelled=True), ann("b", 2)])
    assert (code, votes, who) == (HUMAN_B, ["b"], [2])
    assert human_label(CFG, [ann("a", cancelled=True)])[0] == HUMAN_NONE


def test_pool_from_tasks_skips_bad_tasks_with_reasons():
    tasks = [
        {"id": 1, "data": {"prompt": "p", "answer1": "x", "answer2": "y"}, "annotations": [ann("a")],
         "predictions": [{"model_version": "v1"}]},
        {"id": 2, "data": {"prompt": "p", "answer1": "x"}},
        {"id": 3, "data": {"prompt": "q", "answer1": "x", "answer2": "y"}},
    ]
    pool = pool_from_tasks(CFG, tasks)
    assert pool.task_ids == [1, 3]
    assert list(pool.human_codes) == [HUMAN_A, HUMAN_NONE] and pool.n_human == 1
    assert "answer2" in pool.skipped[2]
