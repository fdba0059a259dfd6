"""The training's stages and their bookkeeping, without a server: the pure helpers of
``app/training/rounds.py``, the judge -> plan -> fit -> publish chain on a small real pool (the
precomputed judge, the packaged MiniLM reward model, a registry in a temporary folder) and the
stage clock that feeds ``/jobs``."""

from __future__ import annotations

import numpy as np
import pytest

from rlthf_backend.app.errors import ProjectError
from rlthf_backend.app.project import Project
from rlthf_backend.app.settings import Settings
from rlthf_backend.app.training import stages
from rlthf_backend.app.training.pipeline import StageClock
from rlthf_backend.app.training.rounds import (
    batch_disagreement,
    next_carried,
    p_label_right,
    state_from_pool,
    why_round_now,
)
from rlthf_backend.core.curation import HUMAN_A, HUMAN_B, HUMAN_NONE, JudgeEvidence, RoundPolicy
from rlthf_backend.core.curation.plan import empty_plan
from rlthf_backend.core.judges.precomputed import PrecomputedJudge
from rlthf_backend.core.types import Pair
from rlthf_backend.labelstudio.pool import ProjectPool
from rlthf_backend.registry.records import ROUND_FILE, CarriedState, RoundRecord, read_judgments, read_margins
from rlthf_backend.registry.versions import ModelRegistry

TOPICS = ["rivers", "bread", "stars", "chess", "rain", "music", "glass", "trees", "salt", "clocks", "bees", "ice"]


def small_pool(n: int = 12, labelled: dict[int, int] | None = None) -> ProjectPool:
    """``n`` pairs whose better answer is a (a real sentence against a curt one), task ids 10, 20, ...;
    the precomputed judge says ``a`` except on every fourth pair."""
    labelled = labelled or {}
    pool = ProjectPool()
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        pool.task_ids.append(10 * (i + 1))
        pool.pairs.append(Pair(f"Tell me about {topic}.", f"Here is a short, careful note about {topic}.",
                               "no.", extra={"llm_label": "b" if i % 4 == 3 else "a"}))
        pool.human.append(labelled.get(i, HUMAN_NONE))
        pool.votes.append([])
        pool.annotators.append([])
    return pool


def evidence_for(pool: ProjectPool) -> JudgeEvidence:
    return JudgeEvidence.from_judgments(PrecomputedJudge().judge_many(pool.pairs), placeholder_seed=0)


# ---------------------------------------------------------------------------- pure bookkeeping
def test_state_from_pool_carries_the_last_rounds_decisions_by_task_id():
    pool = small_pool(4)
    carried = CarriedState(next_round_index=3, flipped={20}, rm_excluded={30, 999}, audited={10})
    state = state_from_pool(pool, evidence_for(pool), carried)
    assert state.round_index == 3
    assert list(state.flipped) == [False, True, False, False]
    assert list(state.rm_excluded) == [False, False, True, False]  # 999 is no longer in the project
    assert list(state.audited) == [True, False, False, False]


def test_a_round_is_due_first_then_only_when_the_batch_is_done_or_forced():
    pool = small_pool(6, labelled={0: HUMAN_A})
    policy = RoundPolicy(round_every_n_labels=0)
    assert why_round_now(pool, CarriedState(), policy, forced=False)  # no predictions yet: the first round
    waiting = CarriedState(predictions_version="v1", human_batch=[10, 20], human_labels_at_round=1)
    assert why_round_now(pool, waiting, policy, forced=False) is None  # task 20 still unanswered
    assert why_round_now(pool, waiting, policy, forced=True)
    done = CarriedState(predictions_version="v1", human_batch=[10, 404], human_labels_at_round=0)
    assert why_round_now(pool, done, policy, forced=False)  # 10 answered, 404 deleted: the batch is done


def test_next_carried_keeps_the_last_rounds_state_between_rounds_and_accumulates_audits():
    pool = small_pool(4, labelled={1: HUMAN_B})
    carried = CarriedState(next_round_index=2, audited={999}, predictions_version="v1")
    assert next_carried(carried, pool, None, "v2") is carried
    state = state_from_pool(pool, evidence_for(pool), carried)
    plan = empty_plan("fused", state)
    plan.flipped[2] = True
    plan.audit[3] = True
    plan.status[[3, 0]] = "human"
    plan.human_rank[[3, 0]] = [0, 1]
    after = next_carried(carried, pool, plan, "v3")
    assert after.next_round_index == plan.round_index + 1
    assert after.flipped == {30} and after.audited == {999, 40}
    assert after.human_batch == [40, 10] and after.human_labels_at_round == 1
    assert after.predictions_version == "v3"


def test_batch_disagreement_counts_only_the_answered_pairs_of_the_last_batch():
    pool = small_pool(8, labelled={0: HUMAN_A, 3: HUMAN_A, 5: HUMAN_B})  # the judge says b on index 3
    got = batch_disagreement(pool, evidence_for(pool), [10, 40, 60, 70, 404])
    assert got == {"last_batch_answered": 3, "last_batch_disagreement": pytest.approx(2 / 3)}
    assert batch_disagreement(pool, evidence_for(pool), [70])["last_batch_answered"] == 0


def test_p_label_right_prefers_the_engines_estimate_and_falls_back_to_the_reward_model():
    pool = small_pool(3)
    plan = empty_plan("fused", state_from_pool(pool, evidence_for(pool), CarriedState()))
    plan.label_a_preferred = np.array([True, False, True])
    plan.flipped = np.array([False, False, True])
    margins = np.array([2.0, 2.0, 0.0])
    without = p_label_right(plan, margins)
    assert without[0] == pytest.approx(1 / (1 + np.exp(-2))) and without[1] == pytest.approx(1 - without[0])
    plan.scores["ranking_score"] = np.array([0.1, np.nan, 0.8])
    with_engine = p_label_right(plan, margins)
    assert with_engine[0] == pytest.approx(0.9)  # not flipped: right unless the LLM was wrong
    assert with_engine[1] == pytest.approx(without[1])  # no estimate: the reward model's
    assert with_engine[2] == pytest.approx(0.8)  # flipped: right when the LLM was wrong


# ----------------------------------------------------------------------- judge -> ... -> publish
@pytest.fixture()
def project(tmp_path):
    settings = Settings(data_dir=tmp_path, rm_heads=2, seed=0)
    return Project(id=7, settings=settings, ls=None, info=None, config=None,
                   registry=ModelRegistry(tmp_path / "models"), store=None,
                   engine=settings.engine_config(), reward_model=settings.reward_model_spec())


def test_the_first_rounds_stages_publish_a_version_the_next_training_reads_back(project):
    pool = small_pool(12, labelled={0: HUMAN_A, 5: HUMAN_A})
    judged = stages.judge(PrecomputedJudge(), pool, seed=0)
    assert [j.label for j in judged.judgments][:4] == ["a", "a", "a", "b"]
    carried = CarriedState.read(project.registry.latest(project.id))
    state = state_from_pool(pool, judged.evidence, carried)
    planned = stages.plan(project.engine, project.reward_model, state, "first round")
    assert planned.plan is not None and planned.plan.round_index == 0
    fitted = stages.fit(project.id, pool, planned)
    assert fitted.margins.shape == (12,) and np.all(np.isfinite(fitted.margins))
    published = stages.publish(project, pool, judged, carried, planned, fitted, trained_from=0.0)

    version = project.registry.latest(project.id)
    assert version.version == published.version.version and version.meta["round_index"] == 0
    record = RoundRecord.read(version)
    assert set(record.tasks) == set(pool.task_ids) and record.reason == "first round"
    assert record.summary["last_batch_answered"] == 0
    assert set(read_margins(version.path)) == set(pool.task_ids)
    assert read_judgments(version.path)[40].label == "b"
    again = CarriedState.read(version)
    assert again.next_round_index == 1 and again.predictions_version == version.version
    assert set(again.human_batch) <= set(pool.task_ids) - {10, 60}  # people's labels are never asked again


def test_between_rounds_only_the_reward_model_is_refitted_and_the_round_state_carried(project):
    pool = small_pool(12, labelled={0: HUMAN_A})
    judged = stages.judge(PrecomputedJudge(), pool, seed=0)
    carried = CarriedState(next_round_index=4, flipped={30}, human_batch=[20], predictions_version="v-old")
    planned = stages.plan(project.engine, project.reward_model, state_from_pool(pool, judged.evidence, carried), None)
    assert planned.plan is None and planned.reason is None
    fitted = stages.fit(project.id, pool, planned)
    stages.publish(project, pool, judged, carried, planned, fitted, trained_from=0.0)
    version = project.registry.latest(project.id)
    assert CarriedState.read(version) == carried
    assert not (version.path / ROUND_FILE).exists()  # no round ran: no round record


def test_fit_refuses_a_pool_with_fewer_than_two_training_pairs(project):
    pool = small_pool(3)
    judged = stages.judge(PrecomputedJudge(), pool, seed=0)
    planned = stages.plan(project.engine, project.reward_model,
                          state_from_pool(pool, judged.evidence, CarriedState()), None)
    planned.weights = np.array([1.0, 0.0, 0.0])
    with pytest.raises(ProjectError, match="fewer than 2 pairs"):
        stages.fit(project.id, pool, planned)


# --------------------------------------------------------------------------------- stage clock
def test_the_stage_clock_announces_each_stage_and_times_it_even_when_it_fails():
    said: list[str] = []
    clock = StageClock(said.append, started_at=0.0)
    with clock.stage("read", "reading Label Studio"):
        pass
    with pytest.raises(RuntimeError):
        with clock.stage("judge", "judging"):
            raise RuntimeError("the judge is down")
    assert said == ["reading Label Studio", "judging"]
    assert set(clock.seconds) == {"read", "judge"} and all(s >= 0 for s in clock.seconds.values())


class CountingJudge(PrecomputedJudge):
    """The precomputed judge, counting the pairs it is asked about."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = 0

    def judge_many(self, pairs):
        self.asked += len(pairs)
        return super().judge_many(pairs)


def test_a_training_after_an_incremental_read_asks_only_about_what_changed(project):
    from types import SimpleNamespace

    pool = small_pool(12)
    judge = CountingJudge()
    first = stages.judge(judge, pool, seed=0)
    carried = CarriedState()
    planned = stages.plan(project.engine, project.reward_model, state_from_pool(pool, first.evidence, carried), None)
    stages.publish(project, pool, first, carried, planned, stages.fit(project.id, pool, planned), trained_from=0.0,
                   judge_fingerprint=judge.fingerprint())
    assert judge.asked == 12

    def read(mode: str, changed: list[int]):
        return SimpleNamespace(sync=SimpleNamespace(mode=mode, changed=changed), pool=pool)

    reuse = stages.reusable_judgments(project, judge, read("incremental", [20, 30]))
    assert set(reuse) == set(pool.task_ids) - {20, 30}
    again = stages.judge(judge, pool, seed=0, reuse=reuse)
    assert judge.asked == 12 + 2  # O(changed): only the two changed tasks
    assert [j.label for j in again.judgments] == [j.label for j in first.judgments]
    assert stages.reusable_judgments(project, judge, read("full", [])) == {}  # a full read asks about all

    class OtherJudge(CountingJudge):
        def config(self):
            return {**super().config(), "criteria": "brevity"}

    assert stages.reusable_judgments(project, OtherJudge(), read("incremental", [])) == {}  # another judge: none
