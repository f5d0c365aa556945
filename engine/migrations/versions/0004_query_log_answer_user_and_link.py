"""query_log gains the answer shown, the asking user and the answer's permalink (`vaultbot
stats` shows a 👎 answer; Slack App Home reads a person's recent questions from the log, so
they survive a restart). Additive only: nullable columns, every row kept (NULL in the old ones).
`user` is quoted by SQLAlchemy where the backend reserves the word (PostgreSQL)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("query_log", sa.Column("answer", sa.Text(), nullable=True))
    op.add_column("query_log", sa.Column("user", sa.String(length=200), nullable=True))
    op.add_column("query_log", sa.Column("link", sa.Text(), nullable=True))
    op.create_index("ix_query_log_user", "query_log", ["user", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_query_log_user", table_name="query_log")
    with op.batch_alter_table("query_log") as batch_op:  # SQLite drops columns by copying
        batch_op.drop_column("link")
        batch_op.drop_column("user")
        batch_op.drop_column("answer")
