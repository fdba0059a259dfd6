"""The one settings object.

Every option is read from an environment variable with the prefix ``RLTHF_`` (or from a
``.env`` file in the working directory), except the Label Studio conventions that other ML
backends share: ``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``, ``BASIC_AUTH_USER``,
``BASIC_AUTH_PASS`` and ``REDIS_URL``. ``docs/configuration.md`` lists them all (generated from
this class by :mod:`rlthf_backend.app.settings_reference`).

The settings that are fields of config dataclasses (the curation engine's, the reward models', the
judges' and the jobs') are not written out here: :data:`KNOBS` names each once, with its validation
bounds, and the settings fields, :meth:`Settings.config_of` (which builds any of those dataclasses),
:meth:`Settings.engine_config`, :meth:`Settings.reward_model_spec` and :data:`ENGINE_SETTINGS`
follow from it, taking defaults and descriptions (``metadata["help"]``) from the dataclasses.

Nothing else in the package reads ``os.environ`` for its configuration: code takes a
``Settings`` (or the few values it needs) as an argument, and entry points call
:func:`get_settings`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_origin, get_type_hints

from pydantic import AliasChoices, Field, SecretStr, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rlthf_backend.core.curation import (
    DEFAULT_STRATEGY,
    AdaptiveConfig,
    EngineConfig,
    FusedConfig,
    PaperConfig,
    RoundPolicy,
)
from rlthf_backend.core.curation.hardness import check_prior_weights
from rlthf_backend.core.curation.paper import check_schedule
from rlthf_backend.core.judges.configs import OpenAIJudgeConfig, TransformersJudgeConfig
from rlthf_backend.core.judges.orders import PromptConfig
from rlthf_backend.core.reward.embedding_config import EmbeddingRewardConfig
from rlthf_backend.core.reward.factory import RewardModelSpec
from rlthf_backend.core.reward.trl_reward import TrlRewardConfig
from rlthf_backend.jobs.config import JobsConfig

JudgeKind = Literal["openai", "transformers", "precomputed"]
C = TypeVar("C")

#: Upper bounds for durations and sizes: far above any real use, low enough that no timer, Redis
#: expiry or byte count computed from them overflows.
DAY_S = 24 * 3600.0
MAX_REQUEST_MB = 1024.0


# ---- checks a setting's value must pass (each raises ValueError saying what is wrong) -----------
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def device(value: str) -> str:
    """A torch device this backend can place a model on."""
    if not _DEVICE.match(value):
        raise ValueError(f"{value!r} is not a device: use auto, cpu, cuda, cuda:N or mps")
    return value


def model_source(value: str) -> str:
    """A model name (a hub id, an alias) or a local folder; one written as a path must exist."""
    if not value.strip():
        raise ValueError("must name a model (a hub id, an alias or a local folder)")
    if value.startswith(("/", "./", "../", "~")) and not Path(value).expanduser().is_dir():
        raise ValueError(f"no model folder at {value}")
    return value


def non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def existing_file(value: Path | None) -> Path | None:
    if value is not None and not value.expanduser().is_file():
        raise ValueError(f"no file at {value}")
    return value


def secret_text(value: SecretStr | None) -> SecretStr | None:
    """A key or password sent in an HTTP header: printable ASCII without spaces (anything else
    could not be sent, and would fail at the first request instead of at start)."""
    if value is not None and not re.fullmatch(r"[\x21-\x7e]*", value.get_secret_value()):
        raise ValueError("must be printable ASCII without spaces (check for a pasted quote or line break)")
    return value


@dataclasses.dataclass(frozen=True)
class Knob:
    """A setting that is one field of a config dataclass. The default and the description (the
    field's ``metadata["help"]``) are the field's: the dataclass stays the one place they are written."""

    config: type
    field: str
    #: more pydantic Field arguments: the bounds (gt, ge, lt, le), a validation_alias...
    constraints: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: narrower than the field's own type, so settings refuse a bad value at start (a Literal), or
    #: SecretStr for a field holding a secret (never shown in errors or reprs; config_of unwraps it)
    annotation: Any = None
    #: what the value must pass beyond its type and bounds (an existing path, a known device...)
    check: Callable[[Any], Any] | None = None

    def settings_field(self) -> tuple[Any, Any]:
        """(annotation, pydantic Field) of the setting."""
        f = {f.name: f for f in dataclasses.fields(self.config)}[self.field]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        annotation = self.annotation or get_type_hints(self.config)[self.field]
        if get_origin(annotation) is tuple:  # read "4,2,1" as well as JSON "[4, 2, 1]" (see _listed)
            annotation = Annotated[annotation, NoDecode]
        return annotation, Field(default, description=f.metadata["help"], **self.constraints)


def knob(config: type, field: str, *, annotation: Any = None, check: Callable[[Any], Any] | None = None,
         **constraints: Any) -> Knob:
    return Knob(config, field, constraints, annotation, check)


def every_field(prefix: str, config: type, *, exclude: tuple[str, ...] = (),
                checks: dict[str, Callable[[Any], Any]] | None = None,
                **constraints: dict[str, Any]) -> dict[str, Knob]:
    """``prefix`` + each field of ``config`` (but ``exclude``): a new field of the dataclass becomes
    a setting by itself. ``constraints`` maps field names to more pydantic Field arguments (bounds...),
    ``checks`` field names to their check."""
    names = [f.name for f in dataclasses.fields(config) if f.name not in exclude]
    checks = checks or {}
    if unknown := (set(constraints) | set(checks)) - set(names):
        raise TypeError(f"{config.__name__} has no field {', '.join(sorted(unknown))}")
    return {prefix + name: Knob(config, name, constraints.get(name, {}), check=checks.get(name)) for name in names}


#: Setting name -> the config dataclass field it sets. Adding one here adds the setting (environment
#: variable RLTHF_<NAME>), its place in the config built by Settings.config_of and, for the engine's and
#: the reward models' configs, its `simulate` flag.
KNOBS: dict[str, Knob] = {
    # the round policy (core/curation/loop.py)
    "human_batch_fraction": knob(RoundPolicy, "batch_fraction", gt=0, le=1),
    "round_every_n_labels": knob(RoundPolicy, "round_every_n_labels", ge=0),
    "max_rm_pairs": knob(RoundPolicy, "max_rm_pairs", ge=0),
    # the fused strategy (core/curation/fused.py)
    **every_field(
        "fused_", FusedConfig,
        audit_fraction=dict(ge=0, le=1), audit_enough=dict(ge=0), n_folds=dict(ge=2), human_weight=dict(gt=0),
        prior_error_rate=dict(gt=0, lt=1), prior_sd=dict(gt=0), drop_threshold=dict(gt=0, le=1),
        max_drop_fraction=dict(ge=0, le=1), flip_confidence=dict(gt=0, le=1), min_audit_for_flip=dict(ge=0),
        stop_min_yield=dict(ge=0), checks={"prior_weights": check_prior_weights},
    ),
    # the adaptive strategy (core/curation/adaptive.py); its shared knobs are the fused strategy's
    **every_field(
        "adaptive_", AdaptiveConfig, exclude=("fused",),
        audit_fraction=dict(ge=0, le=1), audit_floor=dict(gt=0), switch_z=dict(ge=0),
        interval_level=dict(gt=0, lt=1), audits_per_stratum=dict(ge=1), max_strata=dict(ge=1),
        prior_strength=dict(ge=0),
    ),
    # the paper's strategy (core/curation/paper.py); its curve-point finder keeps its defaults
    **every_field("paper_", PaperConfig, exclude=("points",),
                  checks={"alpha_schedule": check_schedule, "beta_schedule": check_schedule}),
    # the embedding reward model (core/reward/embedding_config.py)
    "rm_encoder": knob(EmbeddingRewardConfig, "encoder", check=model_source),
    "rm_heads": knob(EmbeddingRewardConfig, "n_ensemble", ge=1),
    "rm_max_seq_length": knob(EmbeddingRewardConfig, "max_seq_length", gt=0),
    "rm_device": knob(EmbeddingRewardConfig, "device", check=device),
    "rm_encoder_backend": knob(EmbeddingRewardConfig, "backend",
                               annotation=Literal["auto", "torch", "onnx", "onnx-int8"]),
    # the trl reward model (core/reward/trl_reward.py)
    "trl_backbone": knob(TrlRewardConfig, "backbone", check=model_source),
    "trl_use_lora": knob(TrlRewardConfig, "use_lora"),
    "trl_lora_rank": knob(TrlRewardConfig, "lora_r", gt=0),
    "trl_lora_alpha": knob(TrlRewardConfig, "lora_alpha", gt=0),
    "trl_max_length": knob(TrlRewardConfig, "max_length", gt=0),
    "trl_epochs": knob(TrlRewardConfig, "epochs", gt=0, le=10_000),
    "trl_batch_size": knob(TrlRewardConfig, "batch_size", gt=0),
    "trl_learning_rate": knob(TrlRewardConfig, "learning_rate", gt=0),
    "trl_device": knob(TrlRewardConfig, "device", check=device),
    # the prompt every judge asks (core/judges/orders.py)
    "judge_both_orders": knob(PromptConfig, "both_orders"),
    "judge_criteria": knob(PromptConfig, "criteria"),
    "judge_prompt_file": knob(PromptConfig, "prompt_file", annotation=Path | None, check=existing_file),
    "judge_max_chars": knob(PromptConfig, "max_chars", gt=0),
    # the openai judge (core/judges/configs.py)
    "judge_concurrency": knob(OpenAIJudgeConfig, "concurrency", gt=0),
    "judge_timeout": knob(OpenAIJudgeConfig, "timeout", gt=0, le=DAY_S),
    "judge_max_retries": knob(OpenAIJudgeConfig, "max_retries", ge=0),
    "openai_base_url": knob(OpenAIJudgeConfig, "base_url"),  # Settings._http_url checks it
    "openai_api_key": knob(OpenAIJudgeConfig, "api_key", annotation=SecretStr | None, check=secret_text),
    "openai_model": knob(OpenAIJudgeConfig, "model", check=non_empty),
    "openai_logprobs": knob(OpenAIJudgeConfig, "logprobs"),
    "openai_max_tokens": knob(OpenAIJudgeConfig, "max_tokens", gt=0),
    # the transformers judge (core/judges/configs.py)
    **every_field(
        "transformers_", TransformersJudgeConfig, exclude=tuple(f.name for f in dataclasses.fields(PromptConfig)),
        batch_size=dict(gt=0), max_tokens=dict(gt=0), checks={"model": model_source, "device": device},
    ),
    # the job queue and its workers (jobs/config.py); REDIS_URL is the shared convention, without prefix
    **every_field(
        "", JobsConfig,
        redis_url=dict(validation_alias=AliasChoices("REDIS_URL", "redis_url")),
        job_timeout=dict(gt=0, le=DAY_S), job_retries=dict(ge=0, le=100), debounce_seconds=dict(ge=0, le=3600),
        debounce_max_seconds=dict(ge=0, le=DAY_S), max_queued_trainings=dict(gt=0),
        job_lease_seconds=dict(ge=1, le=3600), checks={"queue_name": non_empty},
    ),
}


def _knob_names(*configs: type) -> tuple[str, ...]:
    return tuple(name for name, k in KNOBS.items() if k.config in configs)


#: The fields KNOBS generates; Settings inherits them (pydantic lists them first in model_fields).
_KnobFields = create_model(
    "_KnobFields", __base__=BaseSettings, **{name: k.settings_field() for name, k in KNOBS.items()}
)


def _default_data_dir() -> Path:
    return Path.home() / ".cache" / "rlthf-backend"


class Settings(_KnobFields):
    """Every setting: those declared below, and the config knobs of :data:`KNOBS`."""

    model_config = SettingsConfigDict(
        env_prefix="RLTHF_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # Errors name the setting and the problem, never the value: values hold passwords and keys.
        hide_input_in_errors=True,
        # 1e400 reads as infinity, and NaN passes every bound: no setting means either.
        allow_inf_nan=False,
    )

    # --- Label Studio and shared-infrastructure conventions (no prefix) ---------------------
    label_studio_url: str = Field(
        "http://127.0.0.1:8080",
        validation_alias=AliasChoices("LABEL_STUDIO_URL", "label_studio_url"),
        description="Base URL of Label Studio, used by `prelabel`, the webhook auth fix-up and jobs.",
    )
    label_studio_api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("LABEL_STUDIO_API_KEY", "label_studio_api_key"),
        description="Label Studio access token (legacy token or personal access token).",
    )
    basic_auth_user: str | None = Field(
        None,
        validation_alias=AliasChoices("BASIC_AUTH_USER", "basic_auth_user"),
        description="When set with BASIC_AUTH_PASS, every endpoint requires HTTP basic auth.",
    )
    basic_auth_pass: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("BASIC_AUTH_PASS", "basic_auth_pass"),
        description="Password for HTTP basic auth.",
    )
    label_studio_timeout: float = Field(
        600.0, gt=0, le=DAY_S,
        description="Seconds a training waits for one Label Studio answer: bulk writes and reads of a 100,000-task "
        "project take tens of seconds each on a busy server.")
    # REDIS_URL (the job queue) is a field of JobsConfig: see KNOBS.

    # --- Storage ----------------------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="This host's own files (created on first use): the embedding cache, and the state "
        "database (`state.sqlite3`) unless DATABASE_URL names one.",
    )
    model_dir: Path | None = Field(
        None, description="Reward-model registry; defaults to DATA_DIR/models."
    )
    database_url: SecretStr | None = Field(
        None,
        description="The database every process and host shares (judgments and other state): "
        "`postgresql://USER:PASSWORD@HOST:5432/NAME` for several hosts; unset = SQLite in "
        "DATA_DIR/state.sqlite3 (one host). Migrated to the newest schema on first use.",
    )

    # --- Judge (core/judges); the fields of its configs are in KNOBS -------------------------
    judge: JudgeKind = Field(
        "transformers", description="Which LLM judge pre-labels pairs: openai, transformers, precomputed."
    )
    judges: str | None = Field(
        None,
        description="A judge panel instead of the single JUDGE: comma-separated KIND[:MODEL] entries, the first the "
        "primary (e.g. `openai:gpt-4o-mini,openai:gpt-4o` or `openai,transformers:smollm2`; MODEL sets "
        "OPENAI_MODEL or TRANSFORMERS_MODEL for that member, every other judge setting is shared). Each member is "
        "asked in both orders and cached on its own; their disagreement is evidence for the curation engine.",
    )
    judge_panel_label: Literal["primary", "majority"] = Field(
        "primary", description="Where a panel's label comes from: the primary judge, or the majority of every "
        "member's a/b verdicts over both orders (a tied vote keeps the primary's)."
    )

    # --- Curation engine (core/curation: EngineConfig); its knobs are in KNOBS ----------------
    strategy: Literal["adaptive", "fused", "paper", "random", "llm_only", "swap_first"] = Field(
        DEFAULT_STRATEGY, description=f"Curation strategy ({DEFAULT_STRATEGY} by default): adaptive (learns from the "
        "project's answers, by probing each ranking's top, which evidence ranks its LLM mistakes best; a few "
        "audits drawn with known probabilities estimate the wrong labels left), fused (one hardness model), "
        "paper (RLTHF as published), or a baseline: random, llm_only, swap_first (order-swap disagreements first)."
    )
    queue_score_tolerance: float = Field(
        0.05, ge=0, le=0.5,
        description="A round rewrites a task's prediction when its label changes, it enters or leaves the human "
        "batch, or its score (0.5 + P(label right) / 2) moves by more than this; smaller keeps the score column "
        "fresher at the cost of more writes per round.")
    queue_max_updates: int = Field(
        1000, ge=0,
        description="Most predictions a round rewrites for a changed label or a moved score, the largest changes first "
        "(the batch and tasks without a prediction are always written); the rest follow in later rounds. Bounds a "
        "round's writes on a large project. 0: no limit.")
    seed: int = Field(0, ge=0, le=2**32 - 1,
                      description="Seed of every random choice of the engine (audit slices, folds...).")

    # --- Reward model (core/reward); the config fields are in KNOBS ---------------------------
    reward_model: Literal["embedding", "trl"] = Field(
        "embedding", description="Reward model the training job fits: embedding (frozen encoder + Bradley-Terry "
        "heads; CPU, seconds) or trl (TRL RewardTrainer fine-tuning a backbone; GPU workers)."
    )
    trl_precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="trl RM: bf16 mixed precision, fp32, or auto (bf16 where the hardware has it natively)."
    )
    keep_versions: int = Field(5, ge=1, le=10_000, description="Model versions kept per project in the registry.")

    # --- Jobs: the fields of JobsConfig, in KNOBS --------------------------------------------

    # --- Export -----------------------------------------------------------------------------
    hf_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("HF_TOKEN", "hf_token"),
        description="Hugging Face token with write access, used only by `export --format hf --push-to-hub`.",
    )

    # --- Server (LOG_LEVEL is a field of JobsConfig, in KNOBS) -------------------------------
    model_title: str = Field("rlthf", pattern=r"^[\w.-]+$", description=(
        "Prefix of model_version names shown in Label Studio (letters, digits, '_', '.', '-': it names "
        "the registry's version folders)."))
    predict_budget_s: float = Field(
        60.0, gt=0, le=DAY_S,
        description="Seconds a /predict spends judging before it answers; keep it well under Label Studio's "
        "ML_TIMEOUT_PREDICT (100 s), after which Label Studio stores nothing. Tasks not judged by then are answered "
        "\"not yet\" and judged by a background job that writes their predictions to Label Studio (it needs "
        "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY).")

    # --- Limits and refusals (docs/troubleshooting.md: "Limits: what is refused, and how") ----
    # (and OPENAI_MAX_TOKENS, MAX_QUEUED_TRAININGS: in KNOBS)
    max_request_mb: float = Field(
        16.0, gt=0, le=MAX_REQUEST_MB,
        description="Largest request body the server reads (MB); a larger one is answered 413."
    )

    @field_validator(*(name for name, k in KNOBS.items() if get_origin(k.settings_field()[0]) is Annotated),
                     mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        """A list from the environment: JSON (``[4, 2, 1]``) or comma-separated (``4,2,1``)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"not a JSON list ({exc.msg})") from None
            return [part.strip() for part in text.split(",")] if text else []
        return value

    @field_validator(*(name for name, k in KNOBS.items() if k.check is not None))
    @classmethod
    def _knob_check(cls, value: Any, info: Any) -> Any:
        """The check KNOBS names for the setting."""
        return KNOBS[info.field_name].check(value)  # type: ignore[misc]

    @field_validator("label_studio_api_key", "hf_token")
    @classmethod
    def _secret_text(cls, value: SecretStr | None) -> SecretStr | None:
        return secret_text(value)

    @field_validator("data_dir", "model_dir", mode="before")
    @classmethod
    def _named_folder(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must name a folder (empty would write into the working directory)")
        return value

    @field_validator("data_dir", "model_dir")
    @classmethod
    def _folder(cls, value: Path | None) -> Path | None:
        """A folder this host writes to, or will create: never a file."""
        if value is not None and value.expanduser().exists() and not value.expanduser().is_dir():
            raise ValueError(f"{value} is a file, not a folder")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if not isinstance(logging.getLevelName(value.upper()), int):  # the name's level number, if known
            raise ValueError(f"RLTHF_LOG_LEVEL={value!r} is not a logging level (DEBUG, INFO, WARNING, ERROR)")
        return value

    @field_validator("label_studio_url", "openai_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"{value!r} is not an http(s) URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from rlthf_backend.store.database import engine_url  # raises ValueError without the password

            engine_url(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _gguf_file_in_a_local_model(self) -> "Settings":
        """A GGUF file named inside a local model folder must be there (a hub id is checked on load)."""
        folder = Path(self.transformers_model).expanduser()
        if self.transformers_gguf_file and folder.is_dir() and not (folder / self.transformers_gguf_file).is_file():
            raise ValueError(f"RLTHF_TRANSFORMERS_GGUF_FILE: no file {self.transformers_gguf_file} in {folder}")
        return self

    @model_validator(mode="after")
    def _basic_auth_is_all_or_nothing(self) -> "Settings":
        """Half-set basic auth would silently serve without any: refuse it instead."""
        has_user = bool(self.basic_auth_user)
        has_pass = bool(self.basic_auth_pass and self.basic_auth_pass.get_secret_value())
        if has_user != has_pass:
            given, missing = ("BASIC_AUTH_USER", "BASIC_AUTH_PASS")[:: 1 if has_user else -1]
            raise ValueError(f"{given} is set but {missing} is not: set both (basic auth on) or neither (off)")
        if self.basic_auth_user and ":" in self.basic_auth_user:
            raise ValueError("BASIC_AUTH_USER must not contain ':' (HTTP basic auth cannot carry it)")
        return self

    def _fields_of(self, config: type) -> dict[str, Any]:
        """The values of the fields of ``config`` (and of its bases) that KNOBS makes settings, by
        field name; secrets as plain strings."""
        values = {}
        for name, k in KNOBS.items():
            if issubclass(config, k.config):
                value = getattr(self, name)
                values[k.field] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return values

    def config_of(self, config: type[C]) -> C:
        """``config``, a dataclass that KNOBS names, as configured: each field a knob sets (on it or
        on a base class) has the setting's value, every other field its default."""
        return config(**self._fields_of(config))

    def engine_config(self) -> EngineConfig:
        """The curation engine as configured (what the training job runs and simulate replays)."""
        return EngineConfig(
            strategy=self.strategy,
            fused=self.config_of(FusedConfig),
            paper=self.config_of(PaperConfig),
            rounds=self.config_of(RoundPolicy),
            seed=self.seed,
            adaptive=self.config_of(AdaptiveConfig),
        )

    def reward_model_spec(self) -> RewardModelSpec:
        """The reward model as configured: its kind and that kind's config fields."""
        if self.reward_model == "trl":
            return RewardModelSpec("trl", {
                **self._fields_of(TrlRewardConfig),
                "bf16": {"auto": None, "bf16": True, "fp32": False}[self.trl_precision],
                "seed": self.seed,
            })
        return RewardModelSpec("embedding", {
            **self._fields_of(EmbeddingRewardConfig),
            "seed": self.seed,
            "cache_dir": str(self.data_dir / "embeddings"),
        })

    @property
    def auth_enabled(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_pass)

    def database_url_resolved(self) -> str:
        """The state database's URL (it may hold a password: show only ``store.database.redact``-ed)."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'state.sqlite3'}"

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir or self.data_dir / "models"


#: The settings that define the curation engine and its reward model: what `simulate` takes as
#: flags (besides the environment) to replay a deployment, and what the training job runs.
ENGINE_SETTINGS: tuple[str, ...] = (
    "strategy", *_knob_names(RoundPolicy, FusedConfig, AdaptiveConfig, PaperConfig),
    "reward_model", *_knob_names(EmbeddingRewardConfig, TrlRewardConfig), "trl_precision",
    "judge_panel_label",
)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``.env`` (``overrides`` win), every value checked; a
    ``.env`` that is not UTF-8 text is named in one line rather than a decoding traceback."""
    try:
        return Settings(**overrides)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{Path('.env').resolve()}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                         "save it as UTF-8") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once from the environment and `.env`."""
    return load_settings()
