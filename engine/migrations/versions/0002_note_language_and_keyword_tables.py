"""notes.language (judged at sync, so a query reads no chunk text to judge it; NULL until the
next sync fills it from the stored chunks) and the keyword index's tables for
VAULTBOT_KEYWORDS=postgres (engine/pg_keywords.py; created on every backend, used only on
PostgreSQL). Additive only: a registry at 0001 keeps every row."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notes") as batch_op:  # SQLite: a plain ADD COLUMN, no copy
        batch_op.add_column(sa.Column("language", sa.String(8), nullable=True))
    op.create_table(
        "keyword_state",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("tokenizer", sa.String(64), nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("n_docs", sa.BigInteger, nullable=False),
        sa.Column("total_len", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "keyword_terms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("term", sa.Text, nullable=False, unique=True),
    )
    op.create_table(
        "keyword_metas",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(64), nullable=False, unique=True),
        sa.Column("note_path", sa.String(1024), nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("private", sa.Boolean, nullable=False),
    )
    op.create_table(
        "keyword_docs",
        sa.Column("chunk_id", sa.String(32), primary_key=True),
        sa.Column("meta_id", sa.Integer, nullable=False),
        sa.Column("length", sa.Integer, nullable=False),
    )
    op.create_table(
        "keyword_postings",
        sa.Column("term_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("chunk_id", sa.String(32), primary_key=True),
        sa.Column("tf", sa.Integer, nullable=False),
        sa.Column("length", sa.Integer, nullable=False),
        sa.Column("meta_id", sa.Integer, nullable=False),
    )
    op.create_index("ix_keyword_postings_chunk", "keyword_postings", ["chunk_id"])


def downgrade() -> None:
    op.drop_index("ix_keyword_postings_chunk", "keyword_postings")
    for table in ("keyword_postings", "keyword_docs", "keyword_metas", "keyword_terms",
                  "keyword_state"):
        op.drop_table(table)
    with op.batch_alter_table("notes") as batch_op:
        batch_op.drop_column("language")
