"""Each project's snapshot of Label Studio, so a round reads only what changed.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_sync",
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("config_key", sa.String(64), nullable=False),
        sa.Column("cursor", sa.String(64), nullable=True),
        sa.Column("queue_version", sa.String(128), nullable=True),
        sa.Column("saved_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_project_sync"),
    )
    op.create_table(
        "project_tasks",
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.String(64), nullable=False),
        sa.Column("total_annotations", sa.Integer(), nullable=False),
        sa.Column("cancelled_annotations", sa.Integer(), nullable=False),
        sa.Column("human", sa.Integer(), nullable=False),
        sa.Column("votes", sa.Text(), nullable=False),
        sa.Column("annotators", sa.Text(), nullable=False),
        sa.Column("problem", sa.Text(), nullable=True),
        sa.Column("shown_prediction_id", sa.BigInteger(), nullable=True),
        sa.Column("shown_label", sa.String(8), nullable=True),
        sa.Column("shown_score", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("project_id", "task_id", name="pk_project_tasks"),
    )


def downgrade() -> None:
    op.drop_table("project_tasks")
    op.drop_table("project_sync")
