"""Every stored format's version, in one place (docs/architecture.md, "Stored formats and
migrations"). Each marker is written next to the data it describes; what happens when a stored
marker differs from the one here is said beside it. The modules that use a marker import it
from here."""

from __future__ import annotations

# The registry (engine/schema.py): the Alembic head revision, stored in its `alembic_version`
# table. An older registry is upgraded by engine/migrations when opened for writing (a SQLite
# file is backed up first); a newer one is refused (engine.migrations.RegistryTooNew).
# tests/test_migrations.py checks that this is the head of engine/migrations/versions/.
# 0002: notes.language (judged at sync), the keyword tables of VAULTBOT_KEYWORDS=postgres.
# 0003: chunk_versions (superseded chunk text for the note pages, VAULTBOT_KEEP_VERSIONS_DAYS).
# 0004: query_log.answer, .user, .link (stats shows 👎 answers; App Home reads the log).
# 0005: note_events (moved and deleted notes for MCP recent_changes, kept 30 days).
# 0006: keyword postings keyed by an integer doc id, index-only scans (emptied: repair refills).
REGISTRY_SCHEMA = "0006"

# What parsing and chunking make of a note, stored in the registry's `meta` table ("pipeline",
# with the chunk size). Bump when a note would yield other chunks: every note is then
# re-chunked by the next sync (the embedding cache still saves every embedding whose text did
# not change). 2: a long table's later chunks repeat its header; 3: chunk provenance (embed
# sources), NFC paths, private embeds left out, case-folded folder and tag metadata.
PIPELINE_VERSION = 3

# The keyword index (engine/lexical.py, keywords.sqlite3, its `meta` table "schema"): derived
# from the registry, so any other value clears and rebuilds it. 2: Latin words no longer from
# Kiwi (engine/korean.py); re-tokenise.
KEYWORD_SCHEMA = "3"  # 3: Kiwi without its multi-word dictionary, plus noun pairs; re-tokenise.

# The keyword index's snapshot files (engine/keyword_snapshot.py, `keywords.sqlite3.<uuid>.<gen>.base`,
# in each file's prefix): derived from keywords.sqlite3, so a file of any other format is
# ignored (the index loads from SQLite and writes a new one).
KEYWORD_SNAPSHOT_FORMAT = 1

# The eval harness's embedding cache (vaultbot/evaluate.py, eval-embeddings.sqlite3, SQLite's
# `PRAGMA user_version`): a cache, so any other value empties it.
EVAL_CACHE_VERSION = 1

# Not versioned because not stored across runs: the binary vector store (engine/binary.py) is
# rebuilt from the registry's embedding cache at start-up (its rescore file is per process), and
# Chroma's collections are Chroma's own format, one per embedding model.
