"""Registry tables (SQLAlchemy Core): the same definitions serve SQLite and PostgreSQL.

They are created and changed only by migrations (engine/migrations): a change here needs a new
revision there, and tests/test_migrations.py fails until the two agree."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

notes = Table(
    "notes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("path", String(1024), nullable=False, unique=True),
    Column("kind", String(8), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("title", Text, nullable=False),
    Column("aliases", JSON, nullable=False, default=list),
    Column("tags", JSON, nullable=False, default=list),
    Column("links", JSON, nullable=False, default=list),
    Column("frontmatter", JSON, nullable=False, default=dict),
    # Vault paths whose text this note pulls in through ![[embeds]]: when one changes, this
    # note must be re-chunked although its own bytes did not change.
    Column("embedded", JSON, nullable=False, default=list),
    # Embed targets that resolved to nothing: when such a note appears, this one is re-chunked.
    Column("missing_embeds", JSON, nullable=False, default=list),
    Column("warnings", JSON, nullable=False, default=list),
    Column("private", Boolean, nullable=False, default=False),
    # The raw frontmatter when it is not valid YAML (visibility is judged on it: fail closed).
    Column("frontmatter_error", Text, nullable=True),
    Column("version", Integer, nullable=False, default=1),
    Column("embed_model", String(200), nullable=False),
    Column("indexed_at", Float, nullable=False),
)

chunks = Table(
    "chunks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("note_id", Integer, ForeignKey("notes.id", ondelete="CASCADE"), nullable=False),
    Column("ordinal", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("text_hash", String(64), nullable=False),
    Column("heading", JSON, nullable=False, default=list),
    Column("page", Integer, nullable=True),
    Column("span_start", Integer, nullable=False),
    Column("span_end", Integer, nullable=False),
    Column("tokens", Integer, nullable=False),
    # Other notes whose text is in this chunk through embeds (any depth); NULL in rows written
    # before provenance was recorded, read as "every note the chunk's note embeds".
    Column("sources", JSON, nullable=True),
    Index("ix_chunks_note", "note_id"),
)

embeddings = Table(
    "embeddings",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("text_hash", String(64), primary_key=True),
    Column("dim", Integer, nullable=False),
    Column("vector", LargeBinary, nullable=False),  # float32, little-endian
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("status", String(16), nullable=False),  # running, ok, failed
    Column("embed_model", String(200), nullable=False),
    Column("stats", JSON, nullable=False, default=dict),
)

skipped = Table(
    "skipped",
    metadata,
    Column("path", String(1024), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("size", BigInteger, nullable=False, default=0),
    Column("mtime_ns", BigInteger, nullable=False, default=0),
    # A skip holds while the file's whole stat stamp is the same: a chmod changes only the mode
    # and ctime, and an unreadable note made readable must be tried again.
    Column("mode", Integer, nullable=True),
    Column("ctime_ns", BigInteger, nullable=True),
    Column("at", Float, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", Text, nullable=False),
)

# Semantic answer cache: reused for a close-enough question in the same scope while every note
# it drew on still has the stamp recorded here.
answer_cache = Table(
    "answer_cache",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope_key", String(64), nullable=False),
    Column("question", Text, nullable=False),
    Column("vector", LargeBinary, nullable=False),
    Column("answer", JSON, nullable=False),
    Column("notes", JSON, nullable=False),  # {path: stamp}
    Column("created_at", Float, nullable=False),
    Index("ix_answer_cache_scope", "scope_key"),
    # Never reuse a deleted row's id: other processes mirror rows by id (AnswerCache).
    sqlite_autoincrement=True,
)

query_log = Table(
    "query_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("channel", String(200), nullable=False, default=""),  # cli, api, slack:C123, discord:...
    Column("question", Text, nullable=False),
    Column("scope", Text, nullable=False, default=""),
    Column("mode", String(16), nullable=False),  # llm, extractive
    Column("model", String(200), nullable=True),
    Column("cached", String(16), nullable=True),  # answer, retrieval, or null
    Column("timings", JSON, nullable=False, default=dict),  # ms per stage
    Column("sources", JSON, nullable=False, default=list),
    Column("citations_valid", Integer, nullable=False, default=0),
    Column("citations_invalid", Integer, nullable=False, default=0),
    Column("unsupported", Boolean, nullable=False, default=False),
    Column("error", Text, nullable=True),
    Column("feedback", Integer, nullable=True),  # +1 / -1
    Column("feedback_note", Text, nullable=True),
)
