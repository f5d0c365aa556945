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
    PrimaryKeyConstraint,
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
    # 'ko' or 'en', judged at sync on the note's first chunks (engine/language.py) for adaptive
    # fusion; NULL in rows from before it was stored: retrieval then judges it itself, and the
    # next sync fills it in from the stored chunks.
    Column("language", String(8), nullable=True),
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
    # The answer as the asker saw it (markdown, [n] markers), who asked (a Slack or Discord
    # user id, "cli"; NULL for the API, MCP and /v1, which know no user) and the permalink of
    # the posted answer when one is known (Slack): `vaultbot stats` shows 👎 answers, App Home
    # a person's own recent questions. Purged with the row (VAULTBOT_QUERYLOG_DAYS).
    Column("answer", Text, nullable=True),
    Column("user", String(200), nullable=True),
    Column("link", Text, nullable=True),
    Index("ix_query_log_user", "user", "at"),
)

# The keyword index in PostgreSQL (engine/pg_keywords.py, VAULTBOT_KEYWORDS=postgres), so that
# several serve processes share one. Created on every backend (so one schema.metadata describes
# every registry); only used, and only filled, on PostgreSQL. Derived data: repair re-adds it.
keyword_state = Table(
    "keyword_state",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # one row, id 1
    Column("tokenizer", String(64), nullable=False),
    # Bumped in the same transaction as every write (retrieval's result cache keys on it); the
    # row is also the writers' lock.
    Column("generation", BigInteger, nullable=False),
    Column("n_docs", BigInteger, nullable=False),
    Column("total_len", BigInteger, nullable=False),  # BM25's average length = total_len / n_docs
)

keyword_terms = Table(
    "keyword_terms",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("term", Text, nullable=False, unique=True),
)

# Distinct (note path, tags, private) combinations, which scopes are judged on (as the local
# index's metas): one row per note state, not per chunk.
keyword_metas = Table(
    "keyword_metas",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(64), nullable=False, unique=True),  # sha256 of the three below
    Column("note_path", String(1024), nullable=False),
    Column("tags", JSON, nullable=False),
    Column("private", Boolean, nullable=False),
)

keyword_docs = Table(
    "keyword_docs",
    metadata,
    # The postings' doc_id: a query groups and sorts 4-byte integers, not 32-character ids.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chunk_id", String(32), nullable=False, unique=True),
    Column("meta_id", Integer, nullable=False),
    Column("length", Integer, nullable=False),  # tokens, for BM25's length normalisation
)

# One row per (term, chunk): a query reads only its terms' rows, with what BM25 needs
# denormalised into them (the chunk's length and meta) so no join is needed. On PostgreSQL the
# primary key INCLUDEs those columns: an index-only scan reads a term's postings from a few
# adjacent index pages instead of one heap page per posting (10x at 10k chunks, migration 0006).
keyword_postings = Table(
    "keyword_postings",
    metadata,
    Column("term_id", Integer, nullable=False),
    Column("doc_id", Integer, nullable=False),
    Column("tf", Integer, nullable=False),
    Column("length", Integer, nullable=False),
    Column("meta_id", Integer, nullable=False),
    PrimaryKeyConstraint("term_id", "doc_id", name="keyword_postings_pkey",
                         postgresql_include=["tf", "length", "meta_id"]),
    Index("ix_keyword_postings_doc", "doc_id"),
)

# Superseded chunk text, kept VAULTBOT_KEEP_VERSIONS_DAYS after a sync dropped it (in the same
# transaction), so a note page opened from an older answer can show the passage as it was
# cited (vaultbot/web/routes_note.py, under the provenance rule of today). Optional for a
# read-only registry (engine.migrations.OPTIONAL_TABLES): without it nothing is shown as kept.
chunk_versions = Table(
    "chunk_versions",
    metadata,
    Column("chunk_id", String(32), primary_key=True),
    Column("note_path", String(1024), nullable=False),
    Column("text", Text, nullable=False),
    Column("text_hash", String(64), nullable=False),
    Column("heading", JSON, nullable=False),
    Column("page", Integer, nullable=True),
    Column("sources", JSON, nullable=True),
    Column("dropped_at", Float, nullable=False),
    Index("ix_chunk_versions_dropped", "dropped_at"),
)

# Notes a sync deleted or moved (the notes table keeps no row for a deleted note and no old
# path for a moved one), written in the registry transaction that deletes or moves the note,
# with what the visibility rule (Scope.allows: path, tags, private, unparseable frontmatter's
# words) needs to judge the note as it was then, and the moved note as it is at its new path:
# MCP `recent_changes` names only what the place may see. Kept NOTE_EVENTS_DAYS (30), purged
# hourly with the kept chunk versions. Optional for a read-only registry (read as empty).
note_events = Table(
    "note_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("kind", String(8), nullable=False),  # moved, deleted
    Column("path", String(1024), nullable=False),  # the note's path before the event
    Column("tags", JSON, nullable=False),
    Column("private", Boolean, nullable=False),
    Column("suspect", JSON, nullable=False),
    # A moved note's new path and its visibility there; NULL for a deletion.
    Column("new_path", String(1024), nullable=True),
    Column("new_tags", JSON, nullable=True),
    Column("new_private", Boolean, nullable=True),
    Column("new_suspect", JSON, nullable=True),
    Index("ix_note_events_at", "at"),
)
