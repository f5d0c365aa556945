"""The PostgreSQL keyword index's postings keyed (term_id, doc_id) by an integer doc id, with
tf, length and meta_id INCLUDEd in the primary key on PostgreSQL so a query's postings come
from an index-only scan (engine/pg_keywords.py). keyword_docs and keyword_postings are derived
data: they are dropped and made empty, and the next sync's repair refills them from the
registry (no re-embedding); the generation is bumped so no replica keeps a cached result. A
read-only registry at 0005 is still read (the keyword tables are used only by a writable
PostgreSQL registry: engine.migrations.OPTIONAL_COLUMNS)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_keyword_postings_chunk", "keyword_postings")
    op.drop_table("keyword_postings")
    op.drop_table("keyword_docs")
    op.create_table(
        "keyword_docs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chunk_id", sa.String(length=32), nullable=False),
        sa.Column("meta_id", sa.Integer(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chunk_id"),
    )
    op.create_table(
        "keyword_postings",
        sa.Column("term_id", sa.Integer(), nullable=False),
        sa.Column("doc_id", sa.Integer(), nullable=False),
        sa.Column("tf", sa.Integer(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("meta_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("term_id", "doc_id", name="keyword_postings_pkey",
                                postgresql_include=["tf", "length", "meta_id"]),
    )
    op.create_index("ix_keyword_postings_doc", "keyword_postings", ["doc_id"])
    if op.get_bind().dialect.name == "postgresql":
        # Index-only scans skip the heap only on pages the visibility map marks all-visible:
        # vacuum after 1% new postings rather than PostgreSQL's default 20%.
        op.execute("ALTER TABLE keyword_postings SET (autovacuum_vacuum_insert_scale_factor = "
                   "0.01, autovacuum_vacuum_scale_factor = 0.01, autovacuum_analyze_scale_factor "
                   "= 0.02)")
    op.execute("UPDATE keyword_state SET generation = generation + 1, n_docs = 0, total_len = 0")


def downgrade() -> None:
    op.drop_index("ix_keyword_postings_doc", "keyword_postings")
    op.drop_table("keyword_postings")
    op.drop_table("keyword_docs")
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
    op.execute("UPDATE keyword_state SET generation = generation + 1, n_docs = 0, total_len = 0")
