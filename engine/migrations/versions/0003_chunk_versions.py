"""chunk_versions: the text of superseded chunks, kept VAULTBOT_KEEP_VERSIONS_DAYS after a sync
dropped them, so a note page opened from an older answer shows the passage as it was cited.
Additive only: a registry at 0002 keeps every row, and a read-only one without the table is
still read (engine.migrations.OPTIONAL_TABLES)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "chunk_versions",
        sa.Column("chunk_id", sa.String(length=32), nullable=False),
        sa.Column("note_path", sa.String(length=1024), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("text_hash", sa.String(length=64), nullable=False),
        sa.Column("heading", sa.JSON(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=True),
        sa.Column("dropped_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("chunk_id"),
    )
    op.create_index("ix_chunk_versions_dropped", "chunk_versions", ["dropped_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_chunk_versions_dropped", table_name="chunk_versions")
    op.drop_table("chunk_versions")
