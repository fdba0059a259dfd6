"""The curation engine learns which evidence to trust from the project's answers; one round loop, one
configuration for the training job and ``simulate``; the honest metric. Judge panels:
tests/unit/test_judges_panel.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rlthf_backend.core.curation import (
    HUMAN_A,
    HUMAN_B,
    CurationState,
    EngineConfig,
    FusedConfig,
    JudgeEvidence,
    RoundPolicy,
    round_due,
)
from rlthf_backend.core.curation.plan import empty_plan
from rlthf_backend.core.reward.base import FitReport, RewardModel
from rlthf_backend.core.simulate.data import LabelledPool
from rlthf_backend.core.simulate.replay import export_metrics
from rlthf_backend.core.types import Pair
from rlthf_backend.app.settings import ENGINE_SETTINGS, Settings


class FixedMarginRM(RewardModel):
    """An RM whose margins are given per pair (keyed by prompt); fitting changes nothing. Lets a
    test decide how informative the reward model's disagreement is."""

    kind = "test-fixed"

    def __init__(self, margins: dict[str, float]):
        self.table = margins

    @property
    def version(self) -> str:
        return "fixed"

    def fit(self, pairs, a_preferred, weights=None):
        return FitReport(n_pairs=len(pairs), seconds=0.0)

    def member_margins(self, pairs):
        return np.array([[self.table[p.prompt] for p in pairs]])

    def margins(self, pairs):
        return self.member_margins(pairs)[0]

    def save(self, directory: Path) -> None:  # pragma: no cover - not needed here
        raise NotImplementedError

    @classmethod
    def load(cls, directory: Path):  # pragma: no cover
        raise NotImplementedError


def signal_pool(n: int, seed: int, swap_if_wrong: float, swap_if_right: float, rm_informative: bool | None):
    """A pool with a 20% LLM error rate where the order swap fires with the given rates and the
    RM's disagreement with the LLM label is informative (it leans against wrong labels), misleading
    (it leans against right ones: ``False``) or noise (``None``)."""
    rng = np.random.default_rng(seed)
    pairs = [Pair(f"p{i}", f"a{i}", f"b{i}") for i in range(n)]
    truth = rng.random(n) < 0.5
    wrong = rng.random(n) < 0.2
    llm = truth ^ wrong
    swap = np.where(wrong, rng.random(n) < swap_if_wrong, rng.random(n) < swap_if_right)
    ev = JudgeEvidence.from_arrays(llm, np.where(swap, ~llm, llm).astype(float))
    leans_against = wrong if rm_informative else ~wrong
    lean = np.zeros(n) if rm_informative is None else np.where(leans_against, -1.0, 1.0)
    llm_margin = lean + rng.normal(0, 1.0, n)  # in favour of the LLM label
    margins = {p.prompt: float(m if a else -m) for p, m, a in zip(pairs, llm_margin, llm)}
    return pairs, ev, truth, wrong, (lambda: FixedMarginRM(margins))


def run_fused_rounds(pairs, ev, truth, factory, rounds: int, batch: int, config: FusedConfig | None = None):
    engine = EngineConfig("fused", fused=config or FusedConfig())
    state = CurationState.initial(pairs, ev)
    for _ in range(rounds):
        plan = engine.plan(state, factory, batch)
        idx = plan.human_batch
        state = state.after_plan(plan).with_human_labels(
            idx, np.where(truth[idx], HUMAN_A, HUMAN_B), audited=plan.audit[idx])
    return state, engine.plan(state, factory, batch)


def targeted(plan):
    batch = plan.human_batch
    return batch[~plan.audit[batch]]


def test_follows_the_order_swap_when_the_reward_model_says_nothing():
    pairs, ev, truth, wrong, factory = signal_pool(1200, 0, swap_if_wrong=0.6, swap_if_right=0.05,
                                                   rm_informative=None)
    state, plan = run_fused_rounds(pairs, ev, truth, factory, rounds=5, batch=30)
    model = plan.summary["hardness_model"]
    assert model["weights"]["swap"] > 1.0 and abs(model["weights"]["rm_disagree"]) < 0.3
    batch = targeted(plan)
    swap_left = ev.swap_disagrees & ~state.labelled
    assert swap_left.sum() >= len(batch)
    assert ev.swap_disagrees[batch].mean() >= 0.9  # the informative signal picks the batch


def test_is_not_misled_by_a_reward_model_that_leans_the_wrong_way():
    pairs, ev, truth, wrong, factory = signal_pool(1200, 0, swap_if_wrong=0.6, swap_if_right=0.05,
                                                   rm_informative=False)
    state, plan = run_fused_rounds(pairs, ev, truth, factory, rounds=5, batch=30)
    model = plan.summary["hardness_model"]
    assert model["weights"]["swap"] > 1.0
    # the prior's direction for the RM (+0.5) is overruled: the answers turned its weight negative
    assert model["weights"]["rm_disagree"] < -0.5
    batch = targeted(plan)
    swap_first = EngineConfig("swap_first").plan(state, None, len(batch))
    assert wrong[batch].mean() >= wrong[swap_first.human_batch].mean()


def test_follows_the_reward_model_when_the_order_swap_misleads():
    pairs, ev, truth, wrong, factory = signal_pool(800, 1, swap_if_wrong=0.02, swap_if_right=0.3,
                                                   rm_informative=True)
    state, plan = run_fused_rounds(pairs, ev, truth, factory, rounds=5, batch=30)
    model = plan.summary["hardness_model"]
    assert model["weights"]["swap"] < 0.3  # the prior's +1.4 overruled by the answers
    assert model["weights"]["rm_disagree"] > 0.5
    batch = targeted(plan)
    unlabelled = ~state.labelled
    assert wrong[batch].mean() > 2 * wrong[unlabelled].mean()
    swap_first = EngineConfig("swap_first").plan(state, None, len(batch))
    assert wrong[batch].mean() > wrong[swap_first.human_batch].mean() + 0.2


def test_audit_slice_shrinks_once_enough_answers_were_audited():
    pairs, ev, truth, wrong, factory = signal_pool(600, 2, 0.6, 0.05, rm_informative=True)
    config = FusedConfig(audit_fraction=0.2, audit_enough=12)
    engine = EngineConfig("fused", fused=config)
    state = CurationState.initial(pairs, ev)
    audits = []
    for _ in range(4):
        plan = engine.plan(state, factory, 30)
        idx = plan.human_batch
        audits.append(int(plan.audit[idx].sum()))
        state = state.after_plan(plan).with_human_labels(idx, np.where(truth[idx], HUMAN_A, HUMAN_B),
                                                        audited=plan.audit[idx])
    assert audits == [6, 6, 1, 1]


def test_round_trigger():
    policy = RoundPolicy(batch_fraction=0.02, round_every_n_labels=10)
    assert policy.batch_size(1000) == 20 and policy.batch_size(10) == 1 and policy.batch_size(0) == 0
    kw = dict(first_round=False, batch_asked=20, batch_left=3, new_labels=4, forced=False)
    assert round_due(policy, **kw) is None
    assert round_due(policy, **{**kw, "forced": True}) == "train requested"
    assert round_due(policy, **{**kw, "first_round": True}) == "first round"
    assert round_due(policy, **{**kw, "batch_left": 0}) == "human batch done"
    assert round_due(policy, **{**kw, "new_labels": 10}) == "10 new human labels"
    assert round_due(RoundPolicy(round_every_n_labels=0), **{**kw, "new_labels": 10 ** 6}) is None


def test_training_weights_are_the_strategys_own():
    pairs, ev, truth, wrong, _ = signal_pool(50, 3, 0.6, 0.05, True)
    state = CurationState.initial(pairs, ev).with_human_labels([0, 1], [HUMAN_A, HUMAN_B])
    fused = EngineConfig("fused", fused=FusedConfig(human_weight=3.0)).training_weights(state)
    assert fused[0] == 3.0 and fused[5] == 1.0
    paper = EngineConfig("paper").training_weights(state)  # round 0 of the alpha schedule (4, 4, 4, 2, 1)
    assert paper[0] == 4.0 and paper[5] == 1.0
    later = EngineConfig("paper").training_weights(CurationState(**{**state.__dict__, "round_index": 4}))
    assert later[0] == 1.0


def test_all_pairs_accuracy_cannot_be_raised_by_dropping():
    n = 10
    pairs = [Pair(f"p{i}", "a", "b") for i in range(n)]
    truth = np.ones(n, bool)
    llm = truth.copy()
    llm[:3] = False  # three wrong LLM labels
    pool = LabelledPool(pairs, truth, JudgeEvidence.from_arrays(llm), "plain")
    state = CurationState.initial(pairs, pool.evidence)
    keep_all = empty_plan("llm_only", state)
    drop_wrong = empty_plan("x", state)
    drop_wrong.status[:3] = "drop"
    kept, dropped = export_metrics(pool, state, keep_all), export_metrics(pool, state, drop_wrong)
    assert kept["all_pairs_accuracy"] == dropped["all_pairs_accuracy"] == pytest.approx(0.7)
    assert dropped["kept_precision"] == 1.0 and dropped["kept_fraction"] == pytest.approx(0.7)


def test_one_configuration_for_the_job_and_simulate(tmp_path, monkeypatch):
    """The settings' defaults are the config dataclasses' defaults, and `simulate` replays exactly
    the configuration the settings give the training job (environment and flags alike)."""
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"RLTHF_{name.upper()}", raising=False)
    assert Settings(_env_file=None).engine_config() == EngineConfig()
    assert set(ENGINE_SETTINGS) <= set(Settings.model_fields)
    monkeypatch.setenv("RLTHF_FUSED_AUDIT_FRACTION", "0.3")
    monkeypatch.setenv("RLTHF_HUMAN_BATCH_FRACTION", "0.05")
    monkeypatch.setenv("RLTHF_PAPER_ALPHA_SCHEDULE", "[2, 1]")
    deployed = Settings(_env_file=None, rm_heads=2)
    rows = [{"prompt": f"p{i}", "response_a": f"answer {i}", "response_b": f"reply {i % 7}",
             "human_label": "ab"[i % 2], "llm_label": "ab"[(i // 3) % 2]} for i in range(60)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from rlthf_backend.cli import main

    result = CliRunner().invoke(main, ["simulate", "--data", str(data), "--seeds", "1", "--budgets", "10",
                                       "--out", str(tmp_path / "out"), "--quiet", "--rm-heads", "2"])
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["engine"] == json.loads(json.dumps(deployed.engine_config().as_dict()))
    assert doc["engine"]["fused"]["audit_fraction"] == 0.3 and doc["engine"]["rounds"]["batch_fraction"] == 0.05
    spec = deployed.reward_model_spec()
    assert doc["reward_model"] == {"kind": spec.kind, "options": spec.options}
    assert set(doc["strategies"]) >= {"llm_only", "random", "oracle", "paper", "swap_first", "fused", "adaptive"}
    assert "all_pairs_accuracy_mean" in doc["results"]["fused"]["10"]


def test_simulate_refuses_a_bad_setting_with_one_line(tmp_path):
    from rlthf_backend.cli import main

    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps({"prompt": "p", "response_a": "a", "response_b": "b", "human_label": "a",
                                "llm_label": "a"}) + "\n")
    result = CliRunner().invoke(main, ["simulate", "--data", str(data), "--fused-audit-fraction", "2"])
    assert result.exit_code == 2 and "--fused-audit-fraction" in result.output
    assert "Traceback" not in result.output


def test_the_strategy_setting_offers_every_deployable_strategy():
    from typing import get_args

    from rlthf_backend.core.curation import DEPLOYABLE_STRATEGIES

    assert set(get_args(Settings.model_fields["strategy"].annotation)) == set(DEPLOYABLE_STRATEGIES)
