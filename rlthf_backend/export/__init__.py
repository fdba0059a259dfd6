"""Export of the curated dataset: one row per pair with its final label and provenance.

``assemble`` builds the dataset from a project's pool, judgments and deciding round
(``rlthf_backend.app.export.curated_dataset`` reads those); ``write_dataset`` writes it as TRL
preference JSONL, full-provenance JSONL / Parquet / CSV, or a ``datasets`` dataset.
"""

from rlthf_backend.export.dataset import CuratedDataset, ExportError, assemble
from rlthf_backend.export.rows import SOURCES, DecidingRound, ExportRow, TaskDecision, build_rows, select_rows
from rlthf_backend.export.writers import FORMATS, trl_records, write_dataset

__all__ = [
    "CuratedDataset", "DecidingRound", "ExportError", "ExportRow", "FORMATS", "SOURCES", "TaskDecision",
    "assemble", "build_rows", "select_rows", "trl_records", "write_dataset",
]
