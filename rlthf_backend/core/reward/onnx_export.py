"""ONNX copies of a sentence encoder's transformer, made once per model and reused.

The export runs torch's ONNX exporter (``torch.onnx.export``, the torch.export-based one) on the
checkpoint's transformer; the int8 variant then goes through ONNX Runtime's dynamic quantisation
(``onnxruntime.quantization.quantize_dynamic``): int8 weights per output channel, activations
quantised on the fly (one scale per batch, so a text's int8 vector moves slightly with the texts
batched with it; the embedding cache keeps the first), MatMuls only. Those are the tools Optimum
and sentence-transformers' ONNX backend wrap; we call them directly because optimum-onnx (which
both need) pins transformers below 4.58.

Each export lands in ``<root>/<model identity>/<variant>-r<recipe>/`` with a record written last
(:class:`ExportRecord`, ``export.json``). A folder whose record is missing, unreadable, for
another model or recipe, or whose ONNX file does not match the record's size and sha256 (an
export killed halfway, a disk that lost a write) is thrown away and made again. Exports are
built in a scratch folder and renamed into place under a file lock, so two processes never
export the same model at once and a reader never sees half a folder. Nothing is downloaded:
the source must be a local folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

log = logging.getLogger(__name__)

#: Bump when the export or the quantisation changes: folders of an older recipe are then remade.
RECIPE = 1
#: The variants an export folder can hold.
VARIANTS = ("fp32", "int8")
_ONNX_FILE = "model.onnx"
_RECORD_FILE = "export.json"


@dataclass(frozen=True)
class ExportRecord:
    """What an export folder holds, written last: its presence means the export finished."""

    source_identity: str
    variant: str
    recipe: int
    onnx_bytes: int
    onnx_sha256: str
    input_names: tuple[str, ...]

    @classmethod
    def read(cls, folder: Path) -> "ExportRecord":
        d = json.loads((folder / _RECORD_FILE).read_text(encoding="utf-8"))
        d["input_names"] = tuple(d["input_names"])
        return cls(**d)

    def write(self, folder: Path) -> None:
        (folder / _RECORD_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=1), encoding="utf-8")


@dataclass(frozen=True)
class OnnxExport:
    """A finished export: its ONNX file and record."""

    folder: Path
    record: ExportRecord

    @property
    def onnx_file(self) -> Path:
        return self.folder / _ONNX_FILE


def export_folder(root: Path, identity: str, variant: str) -> Path:
    """Where the export of the model ``identity`` in ``variant`` lives under ``root``."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", identity).strip("-")
    return Path(root) / slug / f"{variant}-r{RECIPE}"


def ensure_export(transformer_dir: Path, identity: str, variant: str, root: Path) -> OnnxExport:
    """The export of the transformer in ``transformer_dir`` (a local Hugging Face folder), made
    now unless a valid one exists. ``identity`` names the checkpoint (see
    ``encoder.encoder_identity``); ``variant`` is "fp32" or "int8"."""
    if variant not in VARIANTS:
        raise ValueError(f"ONNX export variant must be one of {VARIANTS}, not {variant!r}")
    folder = export_folder(root, identity, variant)
    found = _valid_export(folder, identity, variant)
    if found is not None:
        return found
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        found = _valid_export(folder, identity, variant)  # another process may have made it meanwhile
        if found is not None:
            return found
        if folder.exists():
            log.warning("ONNX export in %s is incomplete or damaged; exporting it again", folder)
        fp32 = ensure_export(transformer_dir, identity, "fp32", root) if variant == "int8" else None
        scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            if fp32 is None:
                input_names = _export_fp32(transformer_dir, scratch / _ONNX_FILE)
            else:
                _quantize_int8(fp32.onnx_file, scratch / _ONNX_FILE)
                input_names = fp32.record.input_names
            onnx_file = scratch / _ONNX_FILE
            ExportRecord(identity, variant, RECIPE, onnx_file.stat().st_size, _sha256(onnx_file),
                         tuple(input_names)).write(scratch)
            scratch.chmod(0o755)  # mkdtemp's 0700 would hide the export from other users of the cache
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        log.info("exported %s (%s) to ONNX in %s", identity, variant, folder)
    found = _valid_export(folder, identity, variant)
    if found is None:  # only if the disk lies to us: say so rather than loop
        raise RuntimeError(f"the ONNX export written to {folder} does not read back as complete")
    return found


def _valid_export(folder: Path, identity: str, variant: str) -> OnnxExport | None:
    try:
        record = ExportRecord.read(folder)
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if (record.source_identity, record.variant, record.recipe) != (identity, variant, RECIPE):
        return None
    onnx_file = folder / _ONNX_FILE
    try:
        if onnx_file.stat().st_size != record.onnx_bytes or _sha256(onnx_file) != record.onnx_sha256:
            return None
    except OSError:
        return None
    return OnnxExport(folder, record)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _export_fp32(transformer_dir: Path, out: Path) -> list[str]:
    """Export the transformer's last hidden state for dynamic batch and sequence sizes; returns
    the graph's input names (the tokenizer outputs it takes, in order)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(str(transformer_dir), local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(transformer_dir), local_files_only=True)
    sample = tokenizer(["an example sentence", "and a second, somewhat longer example sentence"],
                       padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class LastHiddenState(torch.nn.Module):
        """Keyword inputs as positional ones, in a fixed order: what the exporter traces."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, inputs))).last_hidden_state

    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    with torch.no_grad(), warnings.catch_warnings():
        # The exporter warns that the two dynamic axes shared by every input get one name each.
        warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
        torch.onnx.export(
            LastHiddenState(model).eval(), tuple(sample[n] for n in names), str(out),
            input_names=names, output_names=["last_hidden_state"],
            dynamic_shapes=(tuple({0: batch, 1: seq} for _ in names),), dynamo=True, external_data=False,
            verbose=False,
        )
    return names


def _quantize_int8(fp32_file: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantiser logs a line per tensor at INFO on the root logger: hide those for its run.
    before = logging.root.manager.disable
    logging.disable(max(before, logging.INFO))
    try:
        # Per-channel weights: per-tensor scales cost MiniLM a mean cosine of 0.95 to the fp32
        # vectors on real texts, per-channel 0.99, at the same speed.
        quantize_dynamic(str(fp32_file), str(out), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
    finally:
        logging.disable(before)
