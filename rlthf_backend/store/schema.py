"""The tables of the state store, as SQLAlchemy Core metadata.

The queries are written against these; the migrations in ``migrations/versions`` create them
(a test checks that migrating an empty database to head gives exactly this schema, on SQLite
and on PostgreSQL). Change both together: a new revision, then the table here.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text

#: Constraint names fixed by convention, so migrations can name what they alter on every dialect.
metadata = MetaData(naming_convention={
    "pk": "pk_%(table_name)s",
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
})

#: One judge's verdict on one pair, both orders in one record (``Judgment.to_dict`` as JSON).
judgments = Table(
    "judgments", metadata,
    Column("fingerprint", String(64), nullable=False),  # the judge's config hash
    Column("content_key", String(64), nullable=False),  # the pair's content hash
    Column("judgment", Text, nullable=False),
    Column("created_at", Float, nullable=False),  # unix seconds
    PrimaryKeyConstraint("fingerprint", "content_key"),
)

#: Pairs being judged right now, so that no other process pays for them at the same time.
judgment_claims = Table(
    "judgment_claims", metadata,
    Column("fingerprint", String(64), nullable=False),
    Column("content_key", String(64), nullable=False),
    Column("owner", String(64), nullable=False),  # one judge_many call
    Column("expires_at", Float, nullable=False),  # unix seconds; others may take it over after
    PrimaryKeyConstraint("fingerprint", "content_key"),
)

#: Judgment files of earlier versions (``<data_dir>/judgments.sqlite3``) already imported.
legacy_imports = Table(
    "legacy_imports", metadata,
    Column("source", String(512), nullable=False),  # path, size and mtime of the file
    Column("judgments", Integer, nullable=False),
    Column("imported_at", Float, nullable=False),
    PrimaryKeyConstraint("source"),
)

#: Where each project's snapshot of Label Studio stands (``store/projects.py``).
project_sync = Table(
    "project_sync", metadata,
    Column("project_id", BigInteger, nullable=False),
    Column("config_key", String(64), nullable=False),  # the label config the rows were read under
    Column("cursor", String(64)),  # newest task ``updated_at`` before the last read (Label Studio's clock)
    Column("queue_version", String(128)),  # model version the label stream is ordered by
    Column("saved_at", Float, nullable=False),  # unix seconds
    PrimaryKeyConstraint("project_id"),
)

#: Each task of a project as last read from Label Studio (``store/snapshots.py::TaskRow``).
project_tasks = Table(
    "project_tasks", metadata,
    Column("project_id", BigInteger, nullable=False),
    Column("task_id", BigInteger, nullable=False),
    Column("data", Text, nullable=False),  # task data, JSON
    Column("updated_at", String(64), nullable=False),
    Column("total_annotations", Integer, nullable=False),
    Column("cancelled_annotations", Integer, nullable=False),
    Column("human", Integer, nullable=False),  # HUMAN_* code
    Column("votes", Text, nullable=False),  # JSON list of labels
    Column("annotators", Text, nullable=False),  # JSON list of user ids
    Column("problem", Text),  # why the task is not a usable pair, if it is not
    Column("shown_prediction_id", BigInteger),  # the queue version's prediction, if any
    Column("shown_label", String(8)),
    Column("shown_score", Float),
    PrimaryKeyConstraint("project_id", "task_id"),
)
