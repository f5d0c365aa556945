"""note_events: notes a sync deleted or moved, with what the visibility rule needs to judge
them as they were, so MCP `recent_changes` can name the ones a place may see. Additive only
(a new table), and optional for a read-only registry (engine.migrations.OPTIONAL_TABLES)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "note_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("private", sa.Boolean(), nullable=False),
        sa.Column("suspect", sa.JSON(), nullable=False),
        sa.Column("new_path", sa.String(length=1024), nullable=True),
        sa.Column("new_tags", sa.JSON(), nullable=True),
        sa.Column("new_private", sa.Boolean(), nullable=True),
        sa.Column("new_suspect", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_note_events_at", "note_events", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_note_events_at", table_name="note_events")
    op.drop_table("note_events")
