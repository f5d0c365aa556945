"""The registry as it was when migrations began (commit 2dd3a1f): exactly what
`metadata.create_all` made then, every column of the old `ADDED_COLUMNS` included.

It also adopts a registry from before migrations (tables, no `alembic_version`): a table it
has is kept, and what that registry's release did not have yet is added, as the old
`_add_missing_columns` did at every start-up (every such column is nullable)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _create_or_adopt(
        "notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("path", sa.String(1024), nullable=False, unique=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("aliases", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("links", sa.JSON, nullable=False),
        sa.Column("frontmatter", sa.JSON, nullable=False),
        sa.Column("embedded", sa.JSON, nullable=False),
        sa.Column("missing_embeds", sa.JSON, nullable=False),
        sa.Column("warnings", sa.JSON, nullable=False),
        sa.Column("private", sa.Boolean, nullable=False),
        sa.Column("frontmatter_error", sa.Text, nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("embed_model", sa.String(200), nullable=False),
        sa.Column("indexed_at", sa.Float, nullable=False),
    )
    _create_or_adopt(
        "chunks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("note_id", sa.Integer, sa.ForeignKey("notes.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("ordinal", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("text_hash", sa.String(64), nullable=False),
        sa.Column("heading", sa.JSON, nullable=False),
        sa.Column("page", sa.Integer, nullable=True),
        sa.Column("span_start", sa.Integer, nullable=False),
        sa.Column("span_end", sa.Integer, nullable=False),
        sa.Column("tokens", sa.Integer, nullable=False),
        sa.Column("sources", sa.JSON, nullable=True),
        sa.Index("ix_chunks_note", "note_id"),
    )
    _create_or_adopt(
        "embeddings",
        sa.Column("model", sa.String(200), primary_key=True),
        sa.Column("text_hash", sa.String(64), primary_key=True),
        sa.Column("dim", sa.Integer, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
    )
    _create_or_adopt(
        "sync_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("embed_model", sa.String(200), nullable=False),
        sa.Column("stats", sa.JSON, nullable=False),
    )
    _create_or_adopt(
        "skipped",
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("mode", sa.Integer, nullable=True),
        sa.Column("ctime_ns", sa.BigInteger, nullable=True),
        sa.Column("at", sa.Float, nullable=False),
    )
    _create_or_adopt(
        "meta",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    _create_or_adopt(
        "answer_cache",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope_key", sa.String(64), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("vector", sa.LargeBinary, nullable=False),
        sa.Column("answer", sa.JSON, nullable=False),
        sa.Column("notes", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Index("ix_answer_cache_scope", "scope_key"),
        sqlite_autoincrement=True,
    )
    _create_or_adopt(
        "query_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("cached", sa.String(16), nullable=True),
        sa.Column("timings", sa.JSON, nullable=False),
        sa.Column("sources", sa.JSON, nullable=False),
        sa.Column("citations_valid", sa.Integer, nullable=False),
        sa.Column("citations_invalid", sa.Integer, nullable=False),
        sa.Column("unsupported", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("feedback", sa.Integer, nullable=True),
        sa.Column("feedback_note", sa.Text, nullable=True),
    )


def _create_or_adopt(name: str, *items: Any, **kw: Any) -> None:
    insp = sa.inspect(op.get_bind())
    if not insp.has_table(name):
        op.create_table(name, *items, **kw)
        return
    have = {c["name"] for c in insp.get_columns(name)}
    for col in items:
        if isinstance(col, sa.Column) and col.name not in have:
            if not col.nullable:
                raise RuntimeError(f"registry table {name} lacks column {col.name}, which an "
                                   "older release cannot have lacked: not a vaultbot registry?")
            op.add_column(name, col)
    indexes = {i["name"] for i in insp.get_indexes(name)}
    for ix in items:
        if isinstance(ix, sa.Index) and ix.name not in indexes:
            op.create_index(ix.name, name, [str(e) for e in ix.expressions])


def downgrade() -> None:
    raise NotImplementedError("the first revision has nothing to go back to")
