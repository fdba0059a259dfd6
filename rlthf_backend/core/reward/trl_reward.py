"""A fine-tuned reward model: ``AutoModelForSequenceClassification(num_labels=1)`` trained with
TRL's ``RewardTrainer`` (Bradley-Terry loss on chosen/rejected), optionally through LoRA.

This is the paper's kind of reward model (they used Llama-3.1-8B + LoRA). It is much slower
to refit than :class:`~rlthf_backend.core.reward.embedding.EmbeddingRewardModel` and is meant
for a GPU worker or for a final model; on a CPU it runs with small backbones (the default is
the packaged all-MiniLM-L6-v2, a 22M-parameter BERT, with a fresh scoring head).

Per-pair weights are applied by repetition: pair i appears floor(w_i) times plus once more
with probability frac(w_i) (seeded), so alpha-amplified human labels (integer weights, as in
the paper) are exact and weight 0 leaves a pair out.

GPU worker settings (one recent GPU): ``bf16=True`` (the default on CUDA), ``batch_size=16``
to ``32`` with ``gradient_accumulation_steps`` making the effective batch ~128 as in the paper,
``gradient_checkpointing=True`` only for backbones that do not fit otherwise, and
``use_lora=True, lora_r=32, lora_alpha=64, learning_rate=1e-4`` for 7-8B backbones.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_backend.core.reward.base import FitReport, RewardModel, check_fit_inputs
from rlthf_backend.core.reward.encoder import resolve_encoder, torch_threads
from rlthf_backend.core.reward.manifest import read_manifest, write_manifest
from rlthf_backend.core.reward.trl_tokenize import encode_pairs
from rlthf_backend.core.types import Pair

log = logging.getLogger(__name__)

_MODEL_SUBDIR = "model"


def _help(text: str) -> dict[str, str]:
    return {"help": "trl RM: " + text}


@dataclass
class TrlRewardConfig:
    """Every knob of :class:`TrlRewardModel`. Each field is documented once, in its ``help``."""

    # the model
    backbone: str = field(default="all-MiniLM-L6-v2", metadata=_help(
        "backbone fine-tuned as a sequence-classification reward model, a HF id or local folder "
        "(e.g. meta-llama/Llama-3.1-8B-Instruct as in the paper; the default is the packaged MiniLM). "
        "A missing classification head is created fresh."))
    max_length: int = field(default=256, metadata=_help(
        "tokens of prompt + response (prompt cut from the left, response from the right; see "
        "`core/reward/trl_tokenize.py`). No pair is dropped for being long."))
    device: str = field(default="auto", metadata=_help("auto (CUDA when available), cpu, cuda."))
    num_threads: int | str | None = field(default="auto", metadata=_help(
        "torch intra-op CPU threads while training and scoring: an int, None (torch's default: one per core) "
        "or auto (the cores other processes leave idle). On a busy shared CPU torch's default oversubscribes "
        "the cores and training crawls: 1.5 pairs/s with 2 threads vs 5.0 with 1 measured on 2 cores at "
        "load ~4."))

    # training
    epochs: float = field(default=1.0, metadata=_help("passes over the (weight-repeated) training pairs."))
    learning_rate: float = field(default=5e-5, metadata=_help(
        "AdamW peak learning rate (1e-4 with LoRA as in the paper; 5e-5 for full fine-tuning of small "
        "encoders)."))
    batch_size: int = field(default=8, metadata=_help("pairs per device step (each pair is two sequences)."))
    gradient_accumulation_steps: int = field(default=1, metadata=_help("device steps per optimiser update."))
    weight_decay: float = field(default=0.0, metadata=_help("as in `transformers.TrainingArguments`."))
    warmup_ratio: float = field(default=0.0, metadata=_help("as in `transformers.TrainingArguments`."))
    lr_scheduler_type: str = field(default="linear", metadata=_help("as in `transformers.TrainingArguments`."))
    bf16: bool | None = field(default=None, metadata=_help(
        "mixed precision; None = on where bf16 is native (CUDA with bf16, or a CPU with AVX512-BF16/AMX), "
        "off elsewhere."))
    gradient_checkpointing: bool = field(default=False, metadata=_help(
        "trade compute for memory. TRL turns it on by default; it is off here, because for small models it "
        "only costs time."))
    center_rewards_coefficient: float | None = field(default=None, metadata=_help(
        "TRL's mean-zero reward penalty (None: off; 0.01 typical)."))
    seed: int = field(default=0, metadata=_help("seeds the model head init, data order and weight rounding."))
    eval_batch_size: int = field(default=32, metadata=_help(
        "pairs per forward pass in `TrlRewardModel.margins`."))
    dataloader_num_workers: int = field(default=0, metadata=_help(
        "DataLoader workers (0: in-process, which is fastest for pre-tokenised data)."))

    # LoRA (peft)
    use_lora: bool = field(default=False, metadata=_help(
        "train LoRA adapters (peft) instead of every weight (the scoring head is trained either way)."))
    lora_r: int = field(default=32, metadata=_help("LoRA rank (the paper: 32)."))
    lora_alpha: int = field(default=64, metadata=_help("LoRA alpha (the paper: 64)."))
    lora_dropout: float = field(default=0.05, metadata=_help("LoRA dropout."))
    lora_target_modules: list[str] | None = field(default=None, metadata=_help(
        "module names to adapt; None = every linear layer (all-linear)."))

    extra_training_args: dict[str, Any] = field(default_factory=dict, metadata=_help(
        "any other `trl.RewardConfig` fields, passed through unchanged."))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrlRewardConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _bf16_supported(device: str) -> bool:
    """Whether bf16 autocast is native here: a bf16-capable GPU, or a CPU with AVX512-BF16/AMX
    (measured on such a CPU: ~1.5x the fp32 training throughput; without them bf16 is emulated
    and slower than fp32)."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def repeat_counts(weights: np.ndarray, seed: int) -> np.ndarray:
    """Integer copies per pair: floor(w) plus one with probability frac(w), seeded."""
    base = np.floor(weights)
    extra = np.random.default_rng(seed).random(len(weights)) < (weights - base)
    return (base + extra).astype(int)


class TrlRewardModel(RewardModel):
    """Sequence-classification reward model fine-tuned with TRL's ``RewardTrainer``."""

    kind = "trl"

    def __init__(self, config: TrlRewardConfig | None = None, **overrides: Any) -> None:
        base = (config or TrlRewardConfig()).to_dict()
        unknown = set(overrides) - set(base)
        if unknown:
            raise TypeError(f"unknown TrlRewardConfig fields: {sorted(unknown)}")
        base.update(overrides)
        self.config = TrlRewardConfig.from_dict(base)
        self.model: Any = None
        self.tokenizer: Any = None
        self._version = ""

    @property
    def version(self) -> str:
        return self._version

    # ------------------------------------------------------------------ model and data
    def _load_backbone(self) -> tuple[Any, Any]:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        location = resolve_encoder(self.config.backbone)
        tokenizer = AutoTokenizer.from_pretrained(location)
        model = AutoModelForSequenceClassification.from_pretrained(location, num_labels=1)
        return model, tokenizer

    @staticmethod
    def _prepare_tokenizer(model: Any, tokenizer: Any) -> None:
        # BERT-style tokenizers have no EOS, and TRL needs one (it appends EOS to raw text and
        # uses it as the fallback pad token): [SEP] ends every BERT sequence, so it is the EOS.
        if tokenizer.eos_token is None and tokenizer.sep_token is not None:
            tokenizer.eos_token = tokenizer.sep_token
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id

    def _ids(self, prompts: Sequence[str], responses: Sequence[str]) -> list[list[int]]:
        return encode_pairs(self.tokenizer, prompts, responses, self.config.max_length)

    def _training_args(self, output_dir: str, device: str) -> Any:
        from trl import RewardConfig

        c = self.config
        bf16 = _bf16_supported(device) if c.bf16 is None else c.bf16
        kwargs: dict[str, Any] = dict(
            output_dir=output_dir,
            num_train_epochs=c.epochs,
            learning_rate=c.learning_rate,
            per_device_train_batch_size=c.batch_size,
            per_device_eval_batch_size=c.eval_batch_size,
            gradient_accumulation_steps=c.gradient_accumulation_steps,
            weight_decay=c.weight_decay,
            lr_scheduler_type=c.lr_scheduler_type,
            bf16=bool(bf16),
            center_rewards_coefficient=c.center_rewards_coefficient,
            seed=c.seed,
            data_seed=c.seed,
            use_cpu=device == "cpu",
            dataloader_num_workers=c.dataloader_num_workers,
            # No checkpoints, evaluation or reporting integrations during a fit: we save the
            # final model ourselves, and every extra pass or logger costs time.
            save_strategy="no",
            eval_strategy="no",
            report_to="none",
            logging_steps=50,
            disable_tqdm=True,
            max_length=None,  # we tokenize and truncate ourselves; TRL would drop long pairs
        )
        # transformers 5 folded warmup_ratio into warmup_steps (a float < 1 is a ratio).
        names = {f.name for f in fields(RewardConfig)}
        kwargs["warmup_ratio" if "warmup_ratio" in names else "warmup_steps"] = c.warmup_ratio
        # ... and renamed gradient_checkpointing to activation_checkpointing.
        ckpt = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
        kwargs[ckpt] = c.gradient_checkpointing
        kwargs.update(c.extra_training_args)
        return RewardConfig(**kwargs)

    def _peft_config(self) -> Any:
        if not self.config.use_lora:
            return None
        from peft import LoraConfig, TaskType

        c = self.config
        return LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=c.lora_r,
            lora_alpha=c.lora_alpha,
            lora_dropout=c.lora_dropout,
            target_modules=c.lora_target_modules or "all-linear",
        )

    # ------------------------------------------------------------------ RewardModel API
    def fit(
        self,
        pairs: Sequence[Pair],
        a_preferred: np.ndarray,
        weights: np.ndarray | None = None,
    ) -> FitReport:
        from datasets import Dataset
        from transformers import set_seed
        from trl import RewardTrainer

        t0 = time.perf_counter()
        c = self.config
        y, w = check_fit_inputs(pairs, a_preferred, weights)
        counts = repeat_counts(w, c.seed)
        if counts.sum() == 0:
            raise ValueError("no pair has a positive weight")

        device = _resolve_device(c.device)
        with torch_threads(c.num_threads):
            set_seed(c.seed)  # the fresh scoring head is drawn at load time
            model, self.tokenizer = self._load_backbone()
            self._prepare_tokenizer(model, self.tokenizer)
            prompts = [p.prompt for p in pairs]
            ids_a = self._ids(prompts, [p.response_a for p in pairs])
            ids_b = self._ids(prompts, [p.response_b for p in pairs])
            rows: dict[str, list[list[int]]] = {"chosen_ids": [], "rejected_ids": []}
            for i, k in enumerate(counts):
                chosen, rejected = (ids_a[i], ids_b[i]) if y[i] else (ids_b[i], ids_a[i])
                rows["chosen_ids"] += [chosen] * int(k)
                rows["rejected_ids"] += [rejected] * int(k)
            with tempfile.TemporaryDirectory(prefix="rlthf-trl-") as out:
                trainer = RewardTrainer(
                    model=model,
                    args=self._training_args(out, device),
                    train_dataset=Dataset.from_dict(rows),
                    processing_class=self.tokenizer,
                    peft_config=self._peft_config(),
                )
                t_train = time.perf_counter()
                result = trainer.train()
                train_seconds = time.perf_counter() - t_train
                # Accelerate wraps forward() in autocast for bf16 training; unwrap it so scoring
                # runs in the weights' own precision, exactly as after save() and load().
                model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
            if c.use_lora:
                model = model.merge_and_unload()  # plain weights: loading needs no peft
            self.model = model.eval()
            self._version = uuid.uuid4().hex[:16]
            kept = np.flatnonzero(counts > 0)
            train_margins = self.margins([pairs[i] for i in kept])
        n_seqs = int(counts.sum())
        log.info(
            "trl reward model %s: %d training rows in %.1f s (%.2f pairs/s, %s)",
            self._version, n_seqs, train_seconds, n_seqs * c.epochs / train_seconds, device,
        )
        return FitReport(
            n_pairs=int(kept.size),
            seconds=time.perf_counter() - t0,
            train_accuracy=float(np.mean((train_margins > 0) == y[kept])),
            details={
                "n_excluded": int(len(pairs) - kept.size),
                "n_training_rows": n_seqs,
                "train_seconds": train_seconds,
                "pairs_per_second": n_seqs * c.epochs / train_seconds,
                "train_loss": float(result.training_loss),
                "device": device,
                "version": self._version,
            },
        )

    def margins(self, pairs: Sequence[Pair]) -> np.ndarray:
        import torch

        if self.model is None:
            raise RuntimeError("the reward model is not fitted: call fit() or load() first")
        if len(pairs) == 0:
            return np.zeros(0)
        prompts = [p.prompt for p in pairs]
        seqs = self._ids(prompts, [p.response_a for p in pairs]) + self._ids(prompts, [p.response_b for p in pairs])
        rewards = np.zeros(len(seqs))
        order = np.argsort([len(s) for s in seqs])  # similar lengths per batch: less padding
        device = next(self.model.parameters()).device
        bs = self.config.eval_batch_size
        pad = self.tokenizer.pad_token_id
        with torch_threads(self.config.num_threads), torch.no_grad():
            self.model.eval()
            for start in range(0, len(seqs), bs):
                idx = order[start : start + bs]
                width = max(len(seqs[i]) for i in idx)
                input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
                mask = torch.zeros((len(idx), width), dtype=torch.long)
                for row, i in enumerate(idx):
                    input_ids[row, : len(seqs[i])] = torch.tensor(seqs[i])
                    mask[row, : len(seqs[i])] = 1
                logits = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
                rewards[idx] = logits.squeeze(-1).float().cpu().numpy()
        n = len(pairs)
        return rewards[:n] - rewards[n:]

    def save(self, directory: Path) -> None:
        if self.model is None:
            raise RuntimeError("nothing to save: the reward model is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory / _MODEL_SUBDIR)
        self.tokenizer.save_pretrained(directory / _MODEL_SUBDIR)
        write_manifest(directory, self.kind, {"config": self.config.to_dict(), "version": self._version})

    @classmethod
    def load(cls, directory: Path, **overrides: Any) -> "TrlRewardModel":
        """Read a saved model; ``overrides`` may change runtime fields (device, num_threads...);
        names that are no field of this kind are ignored, so callers can pass one set to any kind."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        directory = Path(directory)
        manifest = read_manifest(directory, expected_kind=cls.kind)
        rm = cls(TrlRewardConfig.from_dict({**manifest["config"], **overrides}))
        rm.tokenizer = AutoTokenizer.from_pretrained(directory / _MODEL_SUBDIR)
        rm.model = AutoModelForSequenceClassification.from_pretrained(directory / _MODEL_SUBDIR).eval()
        rm._prepare_tokenizer(rm.model, rm.tokenizer)
        rm.model.to(_resolve_device(rm.config.device))
        rm._version = manifest["version"]
        return rm


