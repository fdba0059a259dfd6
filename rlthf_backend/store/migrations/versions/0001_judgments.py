"""Judgments per judge and pair, the claims on pairs being judged, and imported legacy files.

Revision ID: 0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "judgments",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("content_key", sa.String(64), nullable=False),
        sa.Column("judgment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", "content_key", name="pk_judgments"),
    )
    op.create_table(
        "judgment_claims",
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("content_key", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("fingerprint", "content_key", name="pk_judgment_claims"),
    )
    op.create_table(
        "legacy_imports",
        sa.Column("source", sa.String(512), nullable=False),
        sa.Column("judgments", sa.Integer(), nullable=False),
        sa.Column("imported_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("source", name="pk_legacy_imports"),
    )


def downgrade() -> None:
    op.drop_table("legacy_imports")
    op.drop_table("judgment_claims")
    op.drop_table("judgments")
