"""A setting that cannot work is refused at start, in every command, with one line naming it:
values that overflow or are not numbers, negative seeds, empty or malformed lists and mappings,
missing model folders and files, unknown devices, empty names, a data folder that is a file or
empty, keys that cannot travel in a header, a ``.env`` that is not UTF-8, a model title the
registry cannot use. What is accepted is what the code can use."""

from __future__ import annotations

import math
import os

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from rlthf_backend.app.settings import KNOBS, Settings, get_settings, load_settings
from rlthf_backend.cli import main

#: (environment variable, value, words the one line must hold)
REFUSED = [
    ("RLTHF_JUDGE_TIMEOUT", "1e400", "finite"),
    ("RLTHF_LABEL_STUDIO_TIMEOUT", "nan", "finite"),
    ("RLTHF_MAX_REQUEST_MB", "1e300", "less than or equal"),
    ("RLTHF_TRL_EPOCHS", "1e400", "finite"),
    ("RLTHF_FUSED_HUMAN_WEIGHT", "inf", "finite"),
    ("RLTHF_JOB_TIMEOUT", "99999999999", "less than or equal"),
    ("RLTHF_SEED", "-1", "greater than or equal"),
    ("RLTHF_PAPER_ALPHA_SCHEDULE", "", "at least one value"),
    ("RLTHF_PAPER_ALPHA_SCHEDULE", "[4, 2", "JSON"),
    ("RLTHF_PAPER_BETA_SCHEDULE", "0.5,-1", ">= 0"),
    ("RLTHF_PAPER_ALPHA_SCHEDULE", "4,x", "number"),
    ("RLTHF_FUSED_PRIOR_WEIGHTS", '{"swapp": 1.0}', "unknown feature"),
    ("RLTHF_FUSED_PRIOR_WEIGHTS", '{"swap": NaN}', "finite"),
    ("RLTHF_FUSED_PRIOR_WEIGHTS", "[1, 2]", "dictionary"),
    ("RLTHF_RM_DEVICE", "gpu", "not a device"),
    ("RLTHF_TRL_DEVICE", "cuda:x", "not a device"),
    ("RLTHF_TRANSFORMERS_DEVICE", "", "not a device"),
    ("RLTHF_OPENAI_MODEL", " ", "must not be empty"),
    ("RLTHF_TRANSFORMERS_MODEL", "", "must name a model"),
    ("RLTHF_TRANSFORMERS_MODEL", "/no/such/model", "no model folder"),
    ("RLTHF_RM_ENCODER", "./no-such-encoder", "no model folder"),
    ("RLTHF_TRL_BACKBONE", "", "must name a model"),
    ("RLTHF_JUDGE_PROMPT_FILE", "/no/such/prompt.txt", "no file"),
    ("RLTHF_QUEUE_NAME", "", "must not be empty"),
    ("RLTHF_DATA_DIR", "", "must name a folder"),
    ("LABEL_STUDIO_API_KEY", "k\u00e9y", "printable ASCII"),
    ("RLTHF_OPENAI_API_KEY", "sk-abc\n", "printable ASCII"),
    ("RLTHF_MODEL_TITLE", "my/title", "pattern"),
    ("RLTHF_MODEL_TITLE", "", "pattern"),
    ("RLTHF_KEEP_VERSIONS", "0", "greater than or equal"),
]


@pytest.fixture(autouse=True)
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(("name", "value", "words"), REFUSED)
def test_a_setting_that_cannot_work_is_refused_with_its_name(monkeypatch, name, value, words):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert words.lower() in str(caught.value).lower()


@pytest.mark.parametrize(("name", "value", "words"), REFUSED[::5] + [REFUSED[26]])
def test_every_command_stops_with_one_line_naming_the_setting(monkeypatch, name, value, words):
    monkeypatch.setenv(name, value)
    for command in (["worker", "--burst"], ["report", "--project", "1", "--out", os.devnull]):
        result = CliRunner().invoke(main, command)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert result.exit_code == 1, result.output
        assert len(lines) == 1 and lines[0].startswith("Error: configuration:"), result.output
        assert name in lines[0] and words.lower() in lines[0].lower()
        if name.endswith(("_KEY", "_PASS", "_TOKEN")):
            assert value.strip() not in lines[0]  # a secret is never echoed


def test_a_data_folder_that_is_a_file_is_refused_by_every_command(monkeypatch, tmp_path):
    afile = tmp_path / "data"
    afile.write_text("not a folder")
    monkeypatch.setenv("RLTHF_DATA_DIR", str(afile))
    with pytest.raises(ValidationError, match="is a file, not a folder"):
        load_settings()
    assert "RLTHF_DATA_DIR" in CliRunner().invoke(main, ["worker", "--burst"]).output


def test_a_gguf_file_missing_from_a_local_model_folder_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("RLTHF_TRANSFORMERS_MODEL", str(tmp_path))
    monkeypatch.setenv("RLTHF_TRANSFORMERS_GGUF_FILE", "model.gguf")
    with pytest.raises(ValidationError, match="no file model.gguf"):
        load_settings()
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    assert load_settings().transformers_gguf_file == "model.gguf"


def test_a_dotenv_that_is_not_utf8_is_named(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(Settings.model_config, "env_file", ".env")  # tests/conftest.py turns .env off
    (tmp_path / ".env").write_bytes(b"RLTHF_MODEL_TITLE=caf\xe9\n")
    with pytest.raises(ValueError, match=r"\.env: not UTF-8 text"):
        load_settings()
    result = CliRunner().invoke(main, ["worker", "--burst"])
    assert result.exit_code == 1 and "not UTF-8 text" in result.output and "Traceback" not in result.output


def test_lists_read_as_json_or_comma_separated_like_the_docs_say(monkeypatch):
    monkeypatch.setenv("RLTHF_PAPER_ALPHA_SCHEDULE", "4, 2, 1")
    monkeypatch.setenv("RLTHF_PAPER_BETA_SCHEDULE", "[0.5, 0.25]")
    s = load_settings()
    assert s.paper_alpha_schedule == (4.0, 2.0, 1.0) and s.paper_beta_schedule == (0.5, 0.25)
    assert s.engine_config().paper.alpha_schedule == (4.0, 2.0, 1.0)


def test_the_defaults_pass_every_check():
    s = load_settings()
    assert s.engine_config() and s.reward_model_spec()


NUMBERS = [name for name, field in Settings.model_fields.items()
           if field.annotation in (int, float) and name not in ("seed",)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(NUMBERS),
       text=st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                      st.integers(min_value=-(10**30), max_value=10**30).map(str),
                      st.text(max_size=12)))
def test_any_text_for_a_number_is_refused_as_a_setting_or_read_as_a_usable_one(name, text):
    """Whatever the environment holds, a number setting is either refused with a ValidationError
    (never another exception) or a finite number the configs are built from."""
    if "\x00" in text:
        return  # the environment cannot hold it
    try:
        value = getattr(Settings(**{name: text}), name)
    except ValidationError:
        return
    assert math.isfinite(value)
    built = Settings(**{name: text})
    assert built.engine_config() and built.reward_model_spec()  # the configs the code runs build from it


def test_every_knob_check_names_a_real_setting():
    assert all(name in Settings.model_fields for name, k in KNOBS.items() if k.check is not None)
