"""Export of the curated dataset: one row per pair with its final label and provenance.

``curated_dataset(settings, project_id, include_dropped=False, min_confidence=None)`` reads a
project through the Label Studio SDK and the model registry; ``write_dataset`` writes it as
TRL preference JSONL, full-provenance JSONL / Parquet / CSV, or a ``datasets`` dataset.
"""

from rlthf_backend.export.dataset import CuratedDataset, ExportError, assemble, curated_dataset
from rlthf_backend.export.rows import SOURCES, DecidingRound, ExportRow, TaskDecision, build_rows, select_rows
from rlthf_backend.export.writers import FORMATS, trl_records, write_dataset

__all__ = [
    "CuratedDataset", "DecidingRound", "ExportError", "ExportRow", "FORMATS", "SOURCES", "TaskDecision",
    "assemble", "build_rows", "curated_dataset", "select_rows", "trl_records", "write_dataset",
]
