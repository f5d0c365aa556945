"""The keyword index in PostgreSQL (`VAULTBOT_KEYWORDS=postgres`), a `KeywordIndex`
(engine/stores.py) that several `serve` processes share with the registry.

Same tokens and same BM25 as the local index (engine/lexical.py): vaultbot's Korean-aware
tokenizer (engine/korean.py) runs in Python, and its terms go into a postings table
(keyword_postings: term, doc, tf, with the chunk's length and meta copied in so that a query
joins nothing); one statement per query reads its terms' postings by an index-only scan of the
primary key (which INCLUDEs tf, length and meta), counts each term's df the same way, and
computes BM25 in SQL with the local index's k1, b and Lucene idf, grouped by an integer doc id;
only the top k are joined to their chunk ids. Measurements: docs/benchmarks.md, "Keyword search
in PostgreSQL". The tables are made by the registry's
migrations (engine/schema.py); a registry must have been opened (migrated) before this is used.

Scopes are judged as the local index judges them: `Scope.allows` over the distinct (note path,
tags, private) combinations (keyword_metas, append-only, mirrored here by id); the verdicts go
into the query as a bit string indexed by meta id, tested per posting before top-k. A meta
written after the mirror was read has no bit: left out (fail closed).

Writes hold the keyword_state row's lock for their transaction, so writers queue (one sync at a
time does them anyway), and bump its generation in the same transaction: every process reads
the same generation, so retrieval's result cache never outlives a write made elsewhere."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import Connection

from engine.korean import TOKENIZERS, tokenize, tokenize_many
from engine.lexical import DEFAULT_TOKENIZER, K1, B, LexDoc, lex_docs
from engine.models import Scope
from engine.versions import KEYWORD_SCHEMA

if TYPE_CHECKING:
    from engine.models import ChunkRecord
    from engine.registry import NoteInfo

_TF_MAX = 65535  # as the local index, which stores term frequencies as uint16

# One statement, one snapshot. Each query term's weight idf * (k1 + 1) from its df (counted
# over the whole index, as the local index does, before any scope), then its postings: both
# LATERAL, so the planner must read them per term through the primary key (an index-only scan)
# however few or many it guesses a term has. Every operand is float8: a numeric literal in the
# per-posting expression made aggregation 5x slower. Only the top k rows meet keyword_docs.
_SEARCH = """
WITH st AS (
    SELECT n_docs::float8 AS n, GREATEST(total_len::float8 / GREATEST(n_docs, 1), 1e-9) AS avgdl
    FROM keyword_state WHERE id = 1
), q AS (
    SELECT t.id AS term_id,
           LN(1.0::float8 + (st.n - x.df + 0.5::float8) / (x.df + 0.5::float8)) * :k1p AS w
    FROM st CROSS JOIN keyword_terms t
    CROSS JOIN LATERAL (SELECT COUNT(*)::float8 AS df FROM keyword_postings c
                        WHERE c.term_id = t.id) x
    WHERE t.term = ANY(:terms)
), top AS (
    SELECT p.doc_id, SUM(q.w * p.tf / (p.tf + :a + :c / st.avgdl * p.length)) AS score
    FROM st CROSS JOIN q
    CROSS JOIN LATERAL (SELECT doc_id, tf, length, meta_id FROM keyword_postings
                        WHERE term_id = q.term_id) p
    WHERE {where}
    GROUP BY p.doc_id
    ORDER BY score DESC, p.doc_id
    LIMIT :k
)
SELECT d.chunk_id, top.score FROM top JOIN keyword_docs d ON d.id = top.doc_id
ORDER BY top.score DESC, top.doc_id
"""
# The scope's verdict on a posting's meta: bit meta_id of the mask, none past its end.
_IN_SCOPE = "CASE WHEN p.meta_id < :nbits THEN get_bit(:mask, p.meta_id) = 1 ELSE FALSE END"


def _meta_key(note_path: str, tags: Sequence[str], private: bool) -> str:
    return hashlib.sha256(json.dumps([note_path, list(tags), bool(private)]).encode()).hexdigest()


class PgKeywordIndex:
    """BM25 keyword index in the PostgreSQL registry at `url`. Connects on first use, so it may
    be made before the registry has migrated the database."""

    def __init__(self, url: str | Engine, tokenizer: str = DEFAULT_TOKENIZER, *,
                 k1: float = K1, b: float = B) -> None:
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; expected one of {TOKENIZERS}")
        self._own = isinstance(url, str)
        self.engine = create_engine(url, pool_pre_ping=True) if isinstance(url, str) else url
        if self.engine.dialect.name != "postgresql":
            raise ValueError("the PostgreSQL keyword index needs a PostgreSQL registry "
                             "(VAULTBOT_DATABASE_URL=postgresql+psycopg://...)")
        # Reads in autocommit: each is one statement (one snapshot), and no ROLLBACK follows it
        # when the pool takes the connection back, which would make psycopg forget its prepared
        # statements (it prepares a query on its 5th run on a connection: ~10% off a search).
        self._reads = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.tokenizer = tokenizer
        self.k1, self.b = k1, b
        self._ready = False
        self._lock = threading.Lock()  # guards the mirrored metas and scope masks
        self._metas: dict[int, tuple[str, tuple[str, ...], bool]] = {}
        self._last_meta = 0
        # scope key -> (metas judged up to this id, bit string: bit i set = meta i allowed)
        self._masks: dict[str, tuple[int, bytes]] = {}

    # ------------------------------------------------------------------ KeywordIndex
    @property
    def generation(self) -> int:
        self._ensure()
        with self._reads.connect() as conn:
            return int(conn.execute(text("SELECT generation FROM keyword_state WHERE id = 1"))
                       .scalar_one())

    def __len__(self) -> int:
        self._ensure()
        with self._reads.connect() as conn:
            return int(conn.execute(text("SELECT n_docs FROM keyword_state WHERE id = 1"))
                       .scalar_one())

    def ids(self) -> set[str]:
        self._ensure()
        with self._reads.connect() as conn:
            return set(conn.execute(text("SELECT chunk_id FROM keyword_docs")).scalars())

    def upsert_chunks(self, chunks: Sequence[ChunkRecord], notes: Mapping[str, NoteInfo]) -> None:
        """As LexicalIndex.upsert_chunks: each chunk indexed with its note's title, and scoped
        by the note's tags (with unparseable frontmatter's words) and privacy."""
        self.upsert(lex_docs(chunks, notes))

    def upsert(self, docs: Iterable[LexDoc]) -> None:
        """Add or replace these chunks in one transaction (idempotent)."""
        batch = {d.chunk_id: d for d in docs}  # last one wins inside a batch
        if not batch:
            return
        items = list(batch.values())
        # Tokenised before the transaction: the slow part, and it needs no lock.
        counted = [Counter(toks) for toks in tokenize_many([d.text for d in items], self.tokenizer)]
        self._ensure()
        with self.engine.begin() as conn:
            self._lock_state(conn)
            removed_docs, removed_len = self._remove(conn, list(batch))
            terms = sorted({t for c in counted for t in c})
            tid = self._term_ids(conn, terms)
            mid = self._meta_ids(conn, items)
            doc_ids = conn.execute(text(
                "SELECT nextval(pg_get_serial_sequence('keyword_docs', 'id')) "
                "FROM generate_series(1, :n)"), {"n": len(items)}).scalars().all()
            doc_rows: list[tuple[int, str, int, int]] = []
            post_rows: list[tuple[int, int, int, int, int]] = []
            total = 0
            for d, counts, doc in zip(items, counted, doc_ids, strict=True):
                tfs = {t: min(n, _TF_MAX) for t, n in counts.items()}
                length = sum(tfs.values())
                total += length
                meta = mid[_meta_key(d.note_path, d.tags, d.private)]
                doc_rows.append((doc, d.chunk_id, meta, length))
                post_rows += [(tid[t], doc, n, length, meta) for t, n in tfs.items()]
            raw = conn.connection.driver_connection
            assert raw is not None
            with raw.cursor() as cur:
                with cur.copy("COPY keyword_docs (id, chunk_id, meta_id, length) "
                              "FROM STDIN") as cp:
                    for row in doc_rows:
                        cp.write_row(row)
                with cur.copy("COPY keyword_postings (term_id, doc_id, tf, length, meta_id) "
                              "FROM STDIN") as cp:
                    for posting in post_rows:
                        cp.write_row(posting)
            self._bump(conn, len(items) - removed_docs, total - removed_len)

    def delete(self, chunk_ids: Iterable[str]) -> int:
        """Remove these chunks; unknown ids are ignored. Returns how many were removed."""
        wanted = list(dict.fromkeys(chunk_ids))
        if not wanted:
            return 0
        self._ensure()
        with self.engine.begin() as conn:
            self._lock_state(conn)
            n, length = self._remove(conn, wanted)
            if n:
                self._bump(conn, -n, -length)
        return n

    def search(self, query: str, k: int = 20, scope: Scope | None = None) -> list[tuple[str, float]]:
        """Chunk ids and BM25 scores, best first; only chunks `scope` allows are considered."""
        terms = sorted(set(tokenize(query, self.tokenizer)))
        if not terms or k <= 0:
            return []
        self._ensure()
        # norm = k1 * (1 - b + b * length / avgdl) = a + (c / avgdl) * length
        params: dict[str, Any] = {"terms": terms, "k": k, "k1p": float(self.k1 + 1.0),
                                  "a": float(self.k1 * (1.0 - self.b)),
                                  "c": float(self.k1 * self.b)}
        with self._reads.connect() as conn:
            where = "TRUE"
            if scope is not None:
                params["nbits"], params["mask"] = self._scope_mask(conn, scope)
                where = _IN_SCOPE
            rows = conn.execute(text(_SEARCH.format(where=where)), params).all()
        return [(r.chunk_id, float(r.score)) for r in rows if r.score > 0]

    def close(self) -> None:
        if self._own:
            self.engine.dispose()

    # ------------------------------------------------------------------ internals
    def _ensure(self) -> None:
        """The state row, made on first use; a row for another tokenizer or keyword schema
        (its column holds "tokenizer@schema") means terms this process cannot use: the index
        is cleared (derived data: the next sync's repair re-adds every chunk)."""
        if self._ready:
            return
        stamp = f"{self.tokenizer}@{KEYWORD_SCHEMA}"
        with self.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO keyword_state (id, tokenizer, generation, n_docs, total_len) "
                "VALUES (1, :t, 0, 0, 0) ON CONFLICT (id) DO NOTHING"), {"t": stamp})
            row = self._lock_state(conn)
            if row.tokenizer != stamp:
                for table in ("keyword_postings", "keyword_docs", "keyword_terms"):
                    conn.execute(text(f"DELETE FROM {table}"))
                conn.execute(text(
                    "UPDATE keyword_state SET tokenizer = :t, generation = generation + 1, "
                    "n_docs = 0, total_len = 0 WHERE id = 1"), {"t": stamp})
        self._ready = True

    @staticmethod
    def _lock_state(conn: Connection) -> Any:
        return conn.execute(text("SELECT tokenizer, generation FROM keyword_state WHERE id = 1 "
                                 "FOR UPDATE")).one()

    @staticmethod
    def _bump(conn: Connection, docs: int, length: int) -> None:
        conn.execute(text(
            "UPDATE keyword_state SET generation = generation + 1, n_docs = n_docs + :d, "
            "total_len = total_len + :l WHERE id = 1"), {"d": docs, "l": length})

    @staticmethod
    def _remove(conn: Connection, ids: list[str]) -> tuple[int, int]:
        """Delete these chunks' rows; returns how many existed and their total length."""
        gone = conn.execute(text("DELETE FROM keyword_docs WHERE chunk_id = ANY(:ids) "
                                 "RETURNING id, length"), {"ids": ids}).all()
        if gone:
            conn.execute(text("DELETE FROM keyword_postings WHERE doc_id = ANY(:docs)"),
                         {"docs": [r.id for r in gone]})
        return len(gone), int(sum(r.length for r in gone))

    @staticmethod
    def _term_ids(conn: Connection, terms: list[str]) -> dict[str, int]:
        conn.execute(text("INSERT INTO keyword_terms (term) SELECT unnest(CAST(:t AS text[])) "
                          "ON CONFLICT (term) DO NOTHING"), {"t": terms})
        rows = conn.execute(text("SELECT term, id FROM keyword_terms WHERE term = ANY(:t)"),
                            {"t": terms})
        return {r.term: r.id for r in rows}

    @staticmethod
    def _meta_ids(conn: Connection, docs: list[LexDoc]) -> dict[str, int]:
        metas = {_meta_key(d.note_path, d.tags, d.private): d for d in docs}
        conn.execute(text(
            "INSERT INTO keyword_metas (key, note_path, tags, private) "
            "VALUES (:key, :path, CAST(:tags AS json), :private) ON CONFLICT (key) DO NOTHING"),
            [{"key": key, "path": d.note_path, "tags": json.dumps(list(d.tags)),
              "private": bool(d.private)} for key, d in metas.items()])
        rows = conn.execute(text("SELECT key, id FROM keyword_metas WHERE key = ANY(:k)"),
                            {"k": list(metas)})
        return {r.key: r.id for r in rows}

    def _scope_mask(self, conn: Connection, scope: Scope) -> tuple[int, bytes]:
        """(number of meta ids judged + 1, the verdicts as bits: bit i, counted from the low
        bit of byte 0, set when meta i is allowed) for this scope, extended as new metas appear
        (they are never changed or removed). Bits never set stay refused."""
        new = conn.execute(text("SELECT id, note_path, tags, private FROM keyword_metas "
                                "WHERE id > :last ORDER BY id"), {"last": self._last_meta}).all()
        with self._lock:
            for r in new:
                self._metas[r.id] = (r.note_path, tuple(r.tags), bool(r.private))
                self._last_meta = max(self._last_meta, r.id)
            key = scope.key()
            last, bits = self._masks.get(key, (0, b""))
            if last < self._last_meta or not bits:
                mask = bytearray(bits) + bytes(self._last_meta // 8 + 1 - len(bits))
                for mid, (path, tags, private) in self._metas.items():
                    if mid > last and scope.allows(path, tags, private):
                        mask[mid >> 3] |= 1 << (mid & 7)
                if len(self._masks) > 64:
                    self._masks.clear()
                last, bits = self._last_meta, bytes(mask)
                self._masks[key] = (last, bits)
            return last + 1, bits
