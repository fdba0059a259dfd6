"""Writing a curated dataset: TRL's preference format, full-provenance JSONL / Parquet / CSV,
and a ``datasets`` dataset with its card (optionally pushed to the Hugging Face Hub)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlthf_backend.export.dataset import CuratedDataset, ExportError
from rlthf_backend.export.rows import ExportRow

FORMATS = ("trl", "jsonl", "parquet", "hf", "csv")


def trl_records(rows: Sequence[ExportRow], conversational: bool = False) -> list[dict[str, Any]]:
    """TRL's preference examples: ``prompt``, ``chosen``, ``rejected`` and ``margin``.

    Ties are left out (no preference to learn). ``margin`` (the reward model's
    r(chosen) - r(rejected), which TRL's RewardTrainer subtracts inside its loss) is written only
    when every example has one: TRL batches it as one tensor, so a missing value cannot be
    represented. ``conversational``: prompt as ``[{"role": "user", ...}]``, chosen / rejected as
    ``[{"role": "assistant", ...}]``.
    """
    kept = [r for r in rows if not r.tie]
    with_margin = bool(kept) and all(r.margin is not None for r in kept)
    out = []
    for r in kept:
        if conversational:
            rec: dict[str, Any] = {
                "prompt": [{"role": "user", "content": r.prompt}],
                "chosen": [{"role": "assistant", "content": r.chosen}],
                "rejected": [{"role": "assistant", "content": r.rejected}],
            }
        else:
            rec = {"prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected}
        if with_margin:
            rec["margin"] = float(r.margin)  # type: ignore[arg-type]
        out.append(rec)
    return out


def write_jsonl(records: Sequence[dict[str, Any]], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False, default=str) + "\n")


def write_csv(records: Sequence[dict[str, Any]], path: Path) -> None:
    """One column per field; lists as JSON text (CSV has no lists)."""
    if not records:
        path.write_text("")
        return
    fields = list(records[0])
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for rec in records:
            writer.writerow({k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in rec.items()})


def write_parquet(records: Sequence[dict[str, Any]], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(list(records)), path)


def write_hf(data: CuratedDataset, path: Path) -> Any:
    """``datasets.Dataset.save_to_disk`` at ``path`` plus a README.md dataset card; returns the Dataset."""
    from datasets import Dataset

    from rlthf_backend.export.card import dataset_card

    ds = Dataset.from_list(data.as_dicts()) if data.rows else Dataset.from_dict({})
    ds.save_to_disk(str(path))
    (path / "README.md").write_text(dataset_card(data), encoding="utf-8")
    return ds


def push_to_hub(dataset: Any, card: str, repo: str, token: str | None, private: bool = True) -> None:
    """Upload the dataset and its card to ``repo``; refuses before any network call without a token."""
    check_options("hf", push_repo=repo, hub_token=token)
    from huggingface_hub import DatasetCard

    dataset.push_to_hub(repo, token=token, private=private)
    DatasetCard(card).push_to_hub(repo, token=token, repo_type="dataset")


def check_options(fmt: str, conversational: bool = False, push_repo: str | None = None,
                  hub_token: str | None = None) -> None:
    """Refuse a combination of options that cannot work, before anything is read or written."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if conversational and fmt != "trl":
        raise ExportError("--conversational applies to --format trl only")
    if push_repo and fmt != "hf":
        raise ExportError("--push-to-hub needs --format hf")
    if push_repo and not hub_token:
        raise ExportError(
            f"--push-to-hub {push_repo}: no Hugging Face token configured; set HF_TOKEN to a token with write access"
        )


def write_dataset(
    data: CuratedDataset,
    fmt: str,
    out: Path,
    conversational: bool = False,
    push_repo: str | None = None,
    hub_token: str | None = None,
) -> int:
    """Write ``data`` to ``out`` in format ``fmt`` (see :data:`FORMATS`); returns the rows written.

    ``conversational`` applies to ``trl`` only; ``push_repo`` to ``hf`` only (checked first, so a
    missing token fails before anything is written).
    """
    check_options(fmt, conversational, push_repo, hub_token)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "trl":
        records = trl_records(data.rows, conversational)
        write_jsonl(records, out)
        return len(records)
    if fmt == "hf":
        from rlthf_backend.export.card import dataset_card

        ds = write_hf(data, out)
        if push_repo:
            push_to_hub(ds, dataset_card(data), push_repo, hub_token)
        return len(data.rows)
    writer = {"jsonl": write_jsonl, "parquet": write_parquet, "csv": write_csv}[fmt]
    writer(data.as_dicts(), out)
    return len(data.rows)
