"""The registry: notes, chunks, the embedding cache and sync runs, in SQLite or PostgreSQL.

It is the source of truth for what is indexed; the vector store and the keyword index are
kept equal to it (see sync.indexer for how a crashed sync is repaired)."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Engine,
    Float,
    Integer,
    String,
    Text,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import Connection

from engine import migrations
from engine import schema as t
from engine.models import ChunkRecord, ParsedNote, suspect_words
from engine.readcache import GenerationCache


@dataclass(frozen=True)
class NoteState:
    """What the precheck needs to decide whether a file changed."""

    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    embed_model: str
    embedded: tuple[str, ...]
    missing_embeds: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoteInfo:
    path: str
    title: str
    tags: tuple[str, ...]
    aliases: tuple[str, ...]
    private: bool
    kind: str
    frontmatter: dict[str, Any]
    version: int
    content_hash: str = ""  # with version: what the note holds (a re-added note restarts at 1)
    embedded: tuple[str, ...] = ()  # notes whose text it pulls in through embeds
    suspect: tuple[str, ...] = ()  # words of unparseable frontmatter (see ParsedNote)
    language: str | None = None  # 'ko'/'en' as sync judged it; None: stored before it was


@dataclass(frozen=True)
class SkipState:
    path: str
    reason: str
    size: int
    mtime_ns: int
    mode: int | None = None  # None in rows written before these were recorded: never matches
    ctime_ns: int | None = None


@dataclass(frozen=True)
class NoteEvent:
    """A note a sync deleted or moved (`note_events`): `before` is the note as it was at its
    old path, `after` as it is at its new one (None for a deletion), each with the fields the
    visibility rule reads (engine/provenance.py `note_visible`); None also when a stored row
    cannot be read, so that side is hidden (fail closed)."""

    at: float
    kind: str  # moved, deleted
    path: str
    new_path: str | None
    before: NoteInfo | None
    after: NoteInfo | None


# Days a note event is kept (MCP recent_changes looks back 7 days by default): purged with
# the kept chunk versions, hourly (vaultbot/serve.py purge_expired).
NOTE_EVENTS_DAYS = 30


@dataclass(frozen=True)
class NoteWrite:
    """A note to write: what was parsed, the file's identity, its chunks, and the old path
    when it moved."""

    note: ParsedNote
    content_hash: str
    size: int
    mtime_ns: int
    chunks: list[ChunkRecord]
    replaces: str | None = None
    language: str | None = None  # engine/language.py's judgement of the chunks


def _sqlite_file(url: str) -> Path | None:
    return Path(url.removeprefix("sqlite:///").split("?", 1)[0]) if url.startswith("sqlite:///") else None


def sqlite_read_only(url: str) -> bool:
    """A SQLite registry that exists in a directory this process cannot write (a read-only
    mount, another user's dir): it can still be read, but not with WAL or schema changes."""
    path = _sqlite_file(url)
    return path is not None and path.is_file() and not os.access(path.parent, os.W_OK)


def make_engine(url: str) -> Engine:
    if sqlite_read_only(url):
        path = _sqlite_file(url)
        assert path is not None

        def connect() -> sqlite3.Connection:
            # immutable: without a writable dir SQLite cannot make the WAL's -shm file, and
            # mode=ro alone then fails; nothing can write here anyway.
            uri = f"{path.resolve().as_uri()}?immutable=1"
            return sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)

        return create_engine("sqlite://", creator=connect)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets `search`/`serve` read while `sync` writes; NORMAL is durable at checkpoints
            # and still crash-consistent, which is what the registry needs.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Zero what a DELETE frees: purged questions and cached answers must not live on in
            # free pages. Unlike a VACUUM it covers every delete and needs no exclusive lock.
            cur.execute("PRAGMA secure_delete=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


class Registry:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.read_only = sqlite_read_only(url)
        # What retrieval reads for every question, kept per generation (engine/readcache.py).
        self._note_cache: GenerationCache[NoteInfo] = GenerationCache(20_000)
        self._chunk_cache: GenerationCache[ChunkRecord] = GenerationCache(20_000)
        # Optional tables (migrations.OPTIONAL_TABLES) an older read-only registry lacks: empty;
        # and optional columns ("table.column", OPTIONAL_COLUMNS): NULL.
        self.absent_tables: frozenset[str] = frozenset()
        try:
            # Created and upgraded by migrations only; a read-only one is never written.
            if self.read_only:
                self.absent_tables = migrations.check_readable(self.engine, url)
            else:
                migrations.upgrade(self.engine, url, _sqlite_file(url))
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ notes
    def note_states(self) -> dict[str, NoteState]:
        # Read the JSON lists as text: almost all are "[]", and decoding 20,000 of them through
        # the JSON type is half the time of a no-op sync of a 10,000-note vault.
        cols = (
            t.notes.c.id,
            t.notes.c.path,
            t.notes.c.size,
            t.notes.c.mtime_ns,
            t.notes.c.content_hash,
            t.notes.c.embed_model,
            type_coerce(t.notes.c.embedded, Text).label("embedded"),
            type_coerce(t.notes.c.missing_embeds, Text).label("missing_embeds"),
        )
        with self.engine.connect() as conn:
            rows = conn.execute(select(*cols)).all()
        return {
            r.path: NoteState(r.id, r.path, r.size, r.mtime_ns, r.content_hash, r.embed_model,
                              _json_list(r.embedded), _json_list(r.missing_embeds))
            for r in rows
        }

    def touch_note(self, path: str, size: int, mtime_ns: int) -> None:
        """Same content, new mtime (e.g. `touch` or a checkout): remember it so the next
        precheck is cheap again."""
        with self.engine.begin() as conn:
            conn.execute(
                update(t.notes).where(t.notes.c.path == path).values(size=size, mtime_ns=mtime_ns)
            )

    def note_info(self, paths: Iterable[str]) -> dict[str, NoteInfo]:
        """The notes at these paths that exist (served from the per-generation cache)."""
        return self._note_cache.get_many(self.generation(), paths, self._read_note_info)

    def warm(self) -> int:
        """Read every note's info into the cache (serve's start-up, so that a fresh process's
        first questions find their candidates' notes there); how many, 0 when they would not
        fit (reading stops one past the limit). One scan: ~0.1 s for 10,000 notes."""
        generation = self.generation()
        limit = self._note_cache.limit
        rows = self._driver_rows(f"{_NOTE_INFO_SELECT} LIMIT {limit + 1}", ())
        if len(rows) > limit:
            return 0
        infos = _note_infos(rows)
        self._note_cache.fill(generation, infos)
        return len(infos)

    def forget_cached(self) -> None:
        """Empty this process's per-generation cache (for writes that leave the generation)."""
        self._note_cache.clear()
        self._chunk_cache.clear()

    def _read_note_info(self, paths: list[str]) -> dict[str, NoteInfo]:
        return _note_infos(self._rows_in(_NOTE_INFO_SQL, paths))

    def _rows_in(self, sql: str, keys: Iterable[str]) -> list[tuple[Any, ...]]:
        """Rows of `sql` (its `{in}` is a membership test on the keys) through the driver
        itself, one statement whatever the number of keys: retrieval reads its candidates'
        chunks and notes this way on every question, and SQLAlchemy's statement and row
        handling cost more than the lookups themselves (docs/benchmarks.md)."""
        keys = list(keys)
        if not keys:
            return []
        sqlite = self.engine.dialect.name == "sqlite"
        # SQLite: one JSON array parameter; PostgreSQL: one array parameter.
        query = sql.format(in_="IN (SELECT value FROM json_each(?))" if sqlite else "= ANY(%s)")
        param = json.dumps(keys) if sqlite else keys
        return self._driver_rows(query, (param,))

    def _driver_rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """All rows of `sql` through the driver's own cursor (no SQLAlchemy row handling)."""
        with self.engine.connect() as conn:
            cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.execute(sql, params)
                return cur.fetchall()
            finally:
                cur.close()

    def notes_without_language(self) -> list[str]:
        """Notes stored before sync judged their language (NULL), for the indexer to fill in."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(t.notes.c.path).where(t.notes.c.language.is_(None))
                                     .order_by(t.notes.c.path)).scalars())

    def set_languages(self, languages: dict[str, str]) -> None:
        """Fill in notes' languages (only where still NULL: a note written meanwhile has its
        own). What the note holds is unchanged, so the generation is not bumped."""
        if not languages:
            return
        with self.engine.begin() as conn:
            for path, lang in languages.items():
                conn.execute(update(t.notes).where(t.notes.c.path == path,
                                                   t.notes.c.language.is_(None))
                             .values(language=lang))
        self.forget_cached()  # so this process stops judging them per question

    def privacy_notes(self) -> list[dict[str, str]]:
        """Notes whose visibility was decided by a fail-closed rule or that lost text to it:
        unparseable frontmatter, and embeds of private notes left out (for `status`)."""
        cols = (t.notes.c.path, t.notes.c.private, t.notes.c.warnings,
                t.notes.c.frontmatter_error.is_not(None).label("bad"))
        with self.engine.connect() as conn:
            rows = conn.execute(select(*cols).order_by(t.notes.c.path)).all()
        out = []
        for r in rows:
            if r.bad:
                out.append({"path": r.path, "reason": "frontmatter is not valid YAML; "
                            + ("private (it names the private key)" if r.private else
                               "hidden wherever a private tag appears in it")})
            out += [{"path": r.path, "reason": w} for w in (r.warnings or [])
                    if w.startswith("embed of a private note left out")]
        return out

    def paths_where(self, frontmatter: dict[str, str]) -> list[str]:
        """Notes whose frontmatter has each key with that value (or holding it, for lists);
        values compare as case-insensitive strings, so `status=Active` matches `active`."""
        want = {k: v.lower() for k, v in frontmatter.items()}

        def matches(fm: dict[str, Any]) -> bool:
            for key, value in want.items():
                got = fm.get(key)
                items = got if isinstance(got, list) else [got]
                if not any(g is not None and str(g).lower() == value for g in items):
                    return False
            return True

        with self.engine.connect() as conn:
            rows = conn.execute(select(t.notes.c.path, t.notes.c.frontmatter)).all()
        return sorted(r.path for r in rows if matches(r.frontmatter or {}))

    def note_stamps(self, paths: Iterable[str]) -> dict[str, str]:
        """A value that changes whenever a note is rewritten, and never repeats for a path
        (a deleted and re-added note gets a new one): what the answer cache checks."""
        paths = list(set(paths))
        out: dict[str, str] = {}
        with self.engine.connect() as conn:
            for part in _batches(paths):
                q = select(t.notes.c.path, t.notes.c.version, t.notes.c.indexed_at).where(
                    t.notes.c.path.in_(part))
                out.update({r.path: f"{r.version}:{r.indexed_at!r}" for r in conn.execute(q)})
        return out

    def write_note(
        self,
        note: ParsedNote,
        *,
        content_hash: str,
        size: int,
        mtime_ns: int,
        embed_model: str,
        chunks: list[ChunkRecord],
        replaces: str | None = None,
    ) -> list[str]:
        """Insert or replace a note and all its chunks in one transaction. `replaces` is the
        old path of a moved note. Returns the chunk ids that no longer exist."""
        return self.write_notes(
            [NoteWrite(note, content_hash, size, mtime_ns, chunks, replaces)], embed_model)

    def write_notes(self, writes: list[NoteWrite], embed_model: str) -> list[str]:
        """`write_note` for several notes in one transaction, with the outcome of writing them
        in order (a sync writes a group at a time: one commit and a few statements per group
        instead of six statements and a commit per note). Returns the vanished chunk ids."""
        if not writes:
            return []
        new = {c.id for w in writes for c in w.chunks}
        with self.engine.begin() as conn:
            _keep_versions(conn, [p for w in writes for p in (w.note.path, w.replaces) if p], new)
            if any(w.replaces for w in writes) or len({w.note.path for w in writes}) < len(writes):
                # Moves (and a path written twice) depend on order: one note at a time.
                removed: set[str] = set()
                for w in writes:
                    removed |= _write_note(conn, w, embed_model)
            else:
                removed = _write_notes_bulk(conn, writes, embed_model)
            _bump_generation(conn)
        return sorted(removed - new)

    def delete_notes(self, paths: Iterable[str], *, vanished: bool = False) -> list[str]:
        """Delete notes and their chunks; returns the deleted chunk ids. `vanished`: the files
        are gone from the vault (not merely no longer indexable), recorded as `deleted` note
        events in the same transaction."""
        paths = list(paths)
        with self.engine.begin() as conn:
            _keep_versions(conn, paths, set())
            if vanished:
                _record_deletions(conn, paths)
            return _delete_notes(conn, paths)

    # ---------------------------------------------------------- note events
    def note_events(self, since: float, limit: int = 500) -> list[NoteEvent]:
        """Notes deleted or moved at or after `since`, newest first."""
        if "note_events" in self.absent_tables:
            return []
        ne = t.note_events
        with self.engine.connect() as conn:
            rows = conn.execute(select(ne).where(ne.c.at >= since)
                                .order_by(ne.c.at.desc(), ne.c.id.desc()).limit(limit)).all()
        return [NoteEvent(r.at, r.kind, r.path, r.new_path,
                          _event_side(r.path, r.tags, r.private, r.suspect),
                          _event_side(r.new_path, r.new_tags, r.new_private, r.new_suspect))
                for r in rows]

    def purge_note_events(self, older_than: float, now: float | None = None) -> int:
        """Forget note events older than `older_than` seconds before `now`; returns how many."""
        if "note_events" in self.absent_tables:
            return 0
        cutoff = (time.time() if now is None else now) - older_than
        with self.engine.begin() as conn:
            return conn.execute(delete(t.note_events).where(t.note_events.c.at < cutoff)
                                ).rowcount or 0

    # ------------------------------------------------------- chunk versions
    def chunk_version(self, chunk_id: str) -> ChunkRecord | None:
        """A chunk a sync dropped, as it was (kept until `purge_versions` forgets it); None
        when it was never dropped or is no longer kept. Only `ordinal`, `span` and `tokens`
        are not kept (0)."""
        if "chunk_versions" in self.absent_tables:
            return None
        cv = t.chunk_versions
        with self.engine.connect() as conn:
            r = conn.execute(select(cv).where(cv.c.chunk_id == chunk_id)).first()
        if r is None:
            return None
        return ChunkRecord(id=r.chunk_id, note_path=r.note_path, ordinal=0, text=r.text,
                           text_hash=r.text_hash, heading_path=tuple(r.heading or ()),
                           page=r.page, span=(0, 0), tokens=0,
                           sources=None if r.sources is None else tuple(r.sources))

    def purge_versions(self, older_than: float, now: float | None = None) -> int:
        """Forget chunks dropped more than `older_than` seconds before `now` (VAULTBOT_KEEP_
        VERSIONS_DAYS; 0 forgets every one dropped before now); returns how many."""
        if "chunk_versions" in self.absent_tables:
            return 0
        cutoff = (time.time() if now is None else now) - older_than
        cv = t.chunk_versions
        with self.engine.begin() as conn:
            return conn.execute(delete(cv).where(cv.c.dropped_at < cutoff)).rowcount or 0

    def record_skip(
        self, path: str, reason: str, size: int = 0, mtime_ns: int = 0,
        mode: int | None = None, ctime_ns: int | None = None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.skipped).where(t.skipped.c.path == path))
            conn.execute(insert(t.skipped).values(
                path=path, reason=reason, size=size, mtime_ns=mtime_ns, mode=mode, ctime_ns=ctime_ns,
                at=time.time(),
            ))

    def skipped(self) -> dict[str, SkipState]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.skipped).order_by(t.skipped.c.path)).all()
        return {r.path: SkipState(r.path, r.reason, r.size, r.mtime_ns, r.mode, r.ctime_ns) for r in rows}

    def forget_skips(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        if not paths:
            return
        with self.engine.begin() as conn:
            for part in _batches(paths):
                conn.execute(delete(t.skipped).where(t.skipped.c.path.in_(part)))

    # ----------------------------------------------------------------- chunks
    def chunk_ids(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(select(t.chunks.c.id)).scalars())

    def chunks_by_id(self, ids: Iterable[str], *, text: bool = True) -> dict[str, ChunkRecord]:
        """The chunks with these ids. `text=False`: every field but the text (left empty), for
        candidates of which only a few will be shown (`chunk_texts` reads theirs)."""
        ids = list(ids)
        if not text:
            return self._chunk_cache.get_many(self.generation(), ids, self._read_chunks_no_text)
        out: dict[str, ChunkRecord] = {}
        with self.engine.connect() as conn:
            for part in _batches(ids):
                for r in conn.execute(_chunks_with_paths().where(t.chunks.c.id.in_(part))):
                    out[r.id] = _chunk_record(r)
        return out

    def _read_chunks_no_text(self, ids: list[str]) -> dict[str, ChunkRecord]:
        out: dict[str, ChunkRecord] = {}
        for row in self._rows_in(_CHUNK_NO_TEXT_SQL, ids):
            rec = _chunk_record_no_text(row)
            out[rec.id] = rec
        return out

    def chunk_texts(self, ids: Iterable[str]) -> dict[str, str]:
        return dict(self._rows_in("SELECT id, text FROM chunks WHERE id {in_}", ids))  # type: ignore[arg-type]

    def chunks_of_notes(self, paths: Iterable[str]) -> dict[str, list[ChunkRecord]]:
        paths = list(paths)
        out: dict[str, list[ChunkRecord]] = {p: [] for p in paths}
        with self.engine.connect() as conn:
            for part in _batches(paths):
                q = (_chunks_with_paths().where(t.notes.c.path.in_(part))
                     .order_by(t.chunks.c.ordinal))
                for r in conn.execute(q):
                    out[r.path].append(_chunk_record(r))
        return out

    def iter_chunks(self, batch: int = 2000) -> Iterator[list[ChunkRecord]]:
        """Every chunk, in batches (for rebuilding derived indexes)."""
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=batch).execute(_chunks_with_paths())
            for part in result.partitions(batch):
                yield [_chunk_record(r) for r in part]

    # ------------------------------------------------------- embedding cache
    def cached_vectors(self, model: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        hashes = list(set(hashes))
        out: dict[str, np.ndarray] = {}
        with self.engine.connect() as conn:
            for part in _batches(hashes):
                q = select(t.embeddings.c.text_hash, t.embeddings.c.vector).where(
                    t.embeddings.c.model == model, t.embeddings.c.text_hash.in_(part)
                )
                for h, blob in conn.execute(q):
                    out[h] = np.frombuffer(blob, dtype="<f4")
        return out

    def store_vectors(self, model: str, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        rows = [
            {"model": model, "text_hash": h, "dim": int(v.shape[-1]),
             "vector": np.asarray(v, dtype="<f4").tobytes()}
            for h, v in vectors.items()
        ]
        with self.engine.begin() as conn:
            present = set()
            keys = list(vectors)
            for part in _batches(keys):
                present.update(conn.execute(
                    select(t.embeddings.c.text_hash).where(
                        t.embeddings.c.model == model, t.embeddings.c.text_hash.in_(part)
                    )
                ).scalars())
            rows = [r for r in rows if r["text_hash"] not in present]
            if rows:
                conn.execute(insert(t.embeddings), rows)

    # ------------------------------------------------------------ sync runs
    def start_run(self, embed_model: str) -> int:
        with self.engine.begin() as conn:
            return conn.execute(
                insert(t.sync_runs).values(started_at=time.time(), status="running",
                                           embed_model=embed_model, stats={})
            ).inserted_primary_key[0]

    def finish_run(self, run_id: int, status: str, stats: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(t.sync_runs).where(t.sync_runs.c.id == run_id)
                .values(status=status, finished_at=time.time(), stats=_jsonable(stats))
            )

    def unfinished_runs(self) -> list[int]:
        """Runs still marked running: only possible after a crash, since callers hold the lock."""
        with self.engine.connect() as conn:
            return list(conn.execute(
                select(t.sync_runs.c.id).where(t.sync_runs.c.status == "running")
            ).scalars())

    def close_runs(self, ids: list[int], status: str) -> None:
        if ids:
            with self.engine.begin() as conn:
                conn.execute(update(t.sync_runs).where(t.sync_runs.c.id.in_(ids))
                             .values(status=status, finished_at=time.time()))

    def last_run(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            r = conn.execute(
                select(t.sync_runs).where(t.sync_runs.c.status != "running")
                .order_by(t.sync_runs.c.id.desc()).limit(1)
            ).first()
        if r is None:
            return None
        return {"id": r.id, "started_at": r.started_at, "finished_at": r.finished_at,
                "status": r.status, "embed_model": r.embed_model, "stats": r.stats}

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        with self.engine.connect() as conn:
            v = conn.execute(select(t.meta.c.value).where(t.meta.c.key == key)).scalar()
        return default if v is None else v

    def set_meta(self, key: str, value: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.meta).where(t.meta.c.key == key))
            conn.execute(insert(t.meta).values(key=key, value=value))

    def generation(self) -> int:
        # Read on every question (the retrieval cache keys on it): the driver's own path.
        rows = self._rows_in("SELECT value FROM meta WHERE key {in_}", ["generation"])
        return int(rows[0][0] or 0) if rows else 0

    # ---------------------------------------------------------------- counts
    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                "notes": conn.execute(select(func.count()).select_from(t.notes)).scalar_one(),
                "chunks": conn.execute(select(func.count()).select_from(t.chunks)).scalar_one(),
                "embeddings": conn.execute(select(func.count()).select_from(t.embeddings)).scalar_one(),
            }


def _json_list(raw: str | list[str] | None) -> tuple[str, ...]:
    if isinstance(raw, list):  # PostgreSQL's driver has already decoded json columns
        return tuple(raw)
    return () if raw in (None, "[]", "null") else tuple(json.loads(raw))


def _json_dict(raw: str | dict[str, Any] | None) -> dict[str, Any]:
    if isinstance(raw, dict):
        return dict(raw)
    return {} if raw in (None, "{}", "null") else json.loads(raw)


def _note_infos(rows: Iterable[tuple[Any, ...]]) -> dict[str, NoteInfo]:
    # Only NoteInfo's columns, JSON read as text and decoded here (empty ones without the
    # json module): every retrieval reads this for its ~50 candidate notes, and decoding
    # the links, warnings and every JSON value through SQLAlchemy was most of its cost.
    out: dict[str, NoteInfo] = {}
    for (path, title, tags, aliases, private, kind, frontmatter, version, content_hash,
         embedded, frontmatter_error, language) in rows:
        out[path] = NoteInfo(path, title, _json_list(tags), _json_list(aliases), bool(private),
                             kind, _json_dict(frontmatter), version, content_hash,
                             _json_list(embedded),
                             suspect_words(frontmatter_error) if frontmatter_error else (),
                             language)
    return out


# NoteInfo's columns only (not the links, warnings, ...), for Registry._rows_in.
_NOTE_INFO_SELECT = (
    "SELECT path, title, tags, aliases, private, kind, frontmatter, version, content_hash, "
    "embedded, frontmatter_error, language FROM notes"
)
_NOTE_INFO_SQL = _NOTE_INFO_SELECT + " WHERE path {in_}"
# A chunk's record without its text (for candidates, of which few are shown).
_CHUNK_NO_TEXT_SQL = (
    "SELECT c.id, n.path, c.ordinal, c.text_hash, c.heading, c.page, c.span_start, "
    "c.span_end, c.tokens, c.sources FROM chunks c JOIN notes n ON n.id = c.note_id "
    "WHERE c.id {in_}"
)


def _note_values(w: NoteWrite, embed_model: str) -> dict[str, Any]:
    note = w.note
    return dict(
        path=note.path,
        kind=note.kind,
        content_hash=w.content_hash,
        size=w.size,
        mtime_ns=w.mtime_ns,
        title=note.title,
        aliases=list(note.aliases),
        tags=list(note.tags),
        links=[_link_json(link) for link in note.links],
        frontmatter=_jsonable(note.frontmatter),
        embedded=list(note.embedded),
        missing_embeds=list(note.missing_embeds),
        warnings=list(note.warnings),
        private=note.private,
        frontmatter_error=note.frontmatter_error,
        language=w.language,
        embed_model=embed_model,
        indexed_at=time.time(),
    )


def _write_note(conn: Connection, w: NoteWrite, embed_model: str) -> set[str]:
    """One note's row and chunks; returns the chunk ids it had before."""
    values = _note_values(w, embed_model)
    old_path = w.replaces or w.note.path
    row = conn.execute(
        select(t.notes.c.id, t.notes.c.version, t.notes.c.tags, t.notes.c.private,
               t.notes.c.frontmatter_error).where(t.notes.c.path == old_path)
    ).first()
    if row is not None and w.replaces and w.replaces != w.note.path:
        note = w.note  # the same note moved: judged as it was, and as it is at its new path
        conn.execute(insert(t.note_events).values(
            at=values["indexed_at"], kind="moved", path=w.replaces, new_path=note.path,
            **_visibility(row.tags, row.private, row.frontmatter_error),
            **{f"new_{k}": v for k, v in
               _visibility(list(note.tags), note.private, note.frontmatter_error).items()}))
    old_ids: set[str] = set()
    if w.replaces and w.replaces != w.note.path:
        # A stale row at the destination (e.g. overwritten by the move) goes first.
        old_ids.update(_delete_notes(conn, [w.note.path]))
    if row is None:
        note_id = conn.execute(insert(t.notes).values(version=1, **values)).inserted_primary_key[0]
    else:
        note_id = row.id
        conn.execute(
            update(t.notes).where(t.notes.c.id == note_id).values(version=row.version + 1, **values)
        )
        old_ids.update(conn.execute(select(t.chunks.c.id).where(t.chunks.c.note_id == note_id)).scalars())
    conn.execute(delete(t.chunks).where(t.chunks.c.note_id == note_id))
    if w.chunks:
        conn.execute(insert(t.chunks), [_chunk_row(note_id, c) for c in w.chunks])
    conn.execute(delete(t.skipped).where(t.skipped.c.path == w.note.path))
    return old_ids


def _write_notes_bulk(conn: Connection, writes: list[NoteWrite], embed_model: str) -> set[str]:
    """Notes at distinct paths, none moved: each kind of statement once for all of them.
    Returns the chunk ids the notes had before."""
    paths = [w.note.path for w in writes]
    existing: dict[str, Any] = {}
    for part in _batches(paths):
        q = select(t.notes.c.id, t.notes.c.path, t.notes.c.version).where(t.notes.c.path.in_(part))
        existing.update({r.path: r for r in conn.execute(q)})
    ids = {p: r.id for p, r in existing.items()}
    fresh = [dict(version=1, **_note_values(w, embed_model)) for w in writes if w.note.path not in existing]
    if fresh:
        ids.update({r.path: r.id for r in conn.execute(
            insert(t.notes).returning(t.notes.c.id, t.notes.c.path), fresh)})
    old_ids: set[str] = set()
    for w in writes:
        row = existing.get(w.note.path)
        if row is not None:
            conn.execute(update(t.notes).where(t.notes.c.id == row.id)
                         .values(version=row.version + 1, **_note_values(w, embed_model)))
    for part in _batches([r.id for r in existing.values()]):
        old_ids.update(conn.execute(select(t.chunks.c.id).where(t.chunks.c.note_id.in_(part))).scalars())
        conn.execute(delete(t.chunks).where(t.chunks.c.note_id.in_(part)))
    rows = [_chunk_row(ids[w.note.path], c) for w in writes for c in w.chunks]
    if rows:
        conn.execute(insert(t.chunks), rows)
    for part in _batches(paths):
        conn.execute(delete(t.skipped).where(t.skipped.c.path.in_(part)))
    return old_ids


def _batches(items: list[Any], size: int = 500) -> Iterator[list[Any]]:
    """IN lists of a size every backend accepts."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _delete_notes(conn: Connection, paths: list[str]) -> list[str]:
    removed: list[str] = []
    for part in _batches(paths):
        ids = list(conn.execute(select(t.notes.c.id).where(t.notes.c.path.in_(part))).scalars())
        if not ids:
            continue
        removed += conn.execute(select(t.chunks.c.id).where(t.chunks.c.note_id.in_(ids))).scalars()
        # Explicit chunk delete: SQLite only cascades with the pragma, which another client
        # of the same file may not have set.
        conn.execute(delete(t.chunks).where(t.chunks.c.note_id.in_(ids)))
        conn.execute(delete(t.notes).where(t.notes.c.id.in_(ids)))
    if removed or paths:
        _bump_generation(conn)
    return removed


def _visibility(tags: Any, private: Any, frontmatter_error: str | None) -> dict[str, Any]:
    """What `Scope.allows` reads of a note besides its path, as a note event stores it."""
    return {"tags": list(_json_list(tags)), "private": bool(private),
            "suspect": list(suspect_words(frontmatter_error)) if frontmatter_error else []}


def _record_deletions(conn: Connection, paths: list[str]) -> None:
    now = time.time()
    n = t.notes
    for part in _batches(paths):
        rows = conn.execute(select(n.c.path, n.c.tags, n.c.private, n.c.frontmatter_error)
                            .where(n.c.path.in_(part))).all()
        if rows:
            conn.execute(insert(t.note_events), [
                {"at": now, "kind": "deleted", "path": r.path, "new_path": None,
                 "new_tags": None, "new_private": None, "new_suspect": None,
                 **_visibility(r.tags, r.private, r.frontmatter_error)} for r in rows])


def _event_side(path: str | None, tags: Any, private: Any, suspect: Any) -> NoteInfo | None:
    """One side of a note event as the visibility rule reads it; None when it is absent or
    cannot be read (then hidden)."""
    if not path or private is None or tags is None or suspect is None:
        return None
    try:
        return NoteInfo(path, "", _json_list(tags), (), bool(private), "", {}, 0,
                        suspect=_json_list(suspect))
    except (TypeError, ValueError):
        return None


def _keep_versions(conn: Connection, paths: list[str], new: set[str]) -> None:
    """Before a write replaces or deletes the notes at `paths`: copy their chunks that it
    drops (all but `new`) into chunk_versions, in the write's transaction, so a note page can
    show a passage as an older answer cited it. A chunk id dropped again (a revert, then an
    edit) replaces its row: idempotent, the newest drop wins."""
    dropped: list[str] = []
    for part in _batches(sorted(set(paths))):
        q = select(t.chunks.c.id).join(t.notes, t.notes.c.id == t.chunks.c.note_id)
        dropped += [i for i in conn.execute(q.where(t.notes.c.path.in_(part))).scalars()
                    if i not in new]
    cv, c = t.chunk_versions, t.chunks
    for part in _batches(dropped):
        conn.execute(delete(cv).where(cv.c.chunk_id.in_(part)))
        rows = (select(c.c.id, t.notes.c.path, c.c.text, c.c.text_hash, c.c.heading, c.c.page,
                       c.c.sources, literal(time.time(), Float))
                .join(t.notes, t.notes.c.id == c.c.note_id).where(c.c.id.in_(part)))
        conn.execute(insert(cv).from_select(
            ["chunk_id", "note_path", "text", "text_hash", "heading", "page", "sources",
             "dropped_at"], rows))


def _bump_generation(conn: Connection) -> None:
    """A counter that changes with every registry write, for cache keys."""
    n = conn.execute(update(t.meta).where(t.meta.c.key == "generation")
                     .values(value=cast(cast(t.meta.c.value, Integer) + 1, String)))
    if n.rowcount == 0:
        conn.execute(insert(t.meta).values(key="generation", value="1"))


def _chunk_row(note_id: int, c: ChunkRecord) -> dict[str, Any]:
    return dict(id=c.id, note_id=note_id, ordinal=c.ordinal, text=c.text, text_hash=c.text_hash,
                heading=list(c.heading_path), page=c.page, span_start=c.span[0],
                span_end=c.span[1], tokens=c.tokens,
                sources=None if c.sources is None else list(c.sources))


def _chunks_with_paths() -> Any:
    """Chunk rows with their note's path: what `_chunk_record` reads."""
    return select(t.chunks, t.notes.c.path).join(t.notes, t.notes.c.id == t.chunks.c.note_id)


def _chunk_record(r: Any) -> ChunkRecord:
    return ChunkRecord(id=r.id, note_path=r.path, ordinal=r.ordinal, text=r._mapping.get("text", ""),
                       text_hash=r.text_hash, heading_path=tuple(r.heading or ()), page=r.page,
                       span=(r.span_start, r.span_end), tokens=r.tokens,
                       sources=None if r.sources is None else tuple(r.sources))


def _chunk_record_no_text(row: tuple[Any, ...]) -> ChunkRecord:
    cid, path, ordinal, text_hash, heading, page, start, end, tokens, sources = row
    # JSON null (SQLAlchemy writes None that way) and SQL NULL both mean "not recorded".
    return ChunkRecord(id=cid, note_path=path, ordinal=ordinal, text="", text_hash=text_hash,
                       heading_path=_json_list(heading), page=page, span=(start, end),
                       tokens=tokens,
                       sources=None if sources in (None, "null") else _json_list(sources))


def _link_json(link: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(link).items() if v not in (None, False)}


def _jsonable(value: Any) -> Any:
    """Frontmatter may hold dates and other YAML types JSON cannot store."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
