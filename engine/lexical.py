"""BM25 keyword index over chunks, for Korean and English, kept in step with sync.

Design (measurements in bench/results/lexical.md):

- Search runs on an in-memory inverted index scored with numpy: p95 ~5 ms at 100k chunks.
  SQLite FTS5 with bm25() over the same pre-tokenised text was tried first and was far too slow
  there (OR queries: p95 107 ms with Kiwi morphemes, 377 ms with morphemes + bigrams; a scope
  filter through `rowid IN (subquery)` took seconds).
- The in-memory index is a compact CSR "base" (term -> slots, tfs) plus a small "delta" of
  postings added since the last merge. An upsert appends to the delta and marks the old slot
  dead, so it costs O(terms of the doc); the delta is merged into the base (and dead slots
  dropped) only when it has grown to a fraction of the base, so merges are amortised.
- Persistence is SQLite (WAL): one row per chunk with its term ids and term frequencies as
  blobs, a vocabulary table (term <-> id, append-only), and a generation number. Each batch is one
  transaction, so a crash leaves the old or the new state. Rows carry the generation that wrote
  them and deletions leave tombstones, so another process (e.g. `vaultbot search` after
  `vaultbot sync`, or the serve process while the CLI syncs) catches up by reading only the rows
  newer than the generation it has; loading from scratch needs no re-tokenisation.
- Scope filtering happens on a per-slot mask before top-k. Scope.allows is evaluated once per
  distinct (note path, tags, private) combination, not per chunk, and cached.
- Snapshots: the compact base (CSR arrays, per-slot lengths and metadata, chunk ids) is also
  written beside the SQLite file as `<file>.<uuid>.<generation>.base` after each merge and after
  a full load that found none. Searches then read postings from it by position (BaseFile) and
  merges through a read-only mapping, so the ~140 MB of postings at 100k chunks stay in the page
  cache rather than in the process (RSS after 300 searches: -180 MB), and a fresh process opens
  the index from the newest snapshot plus the rows committed after it, through the same
  catch-up as other processes' commits, instead of parsing every row (0.13 s instead of ~3 s). A
  snapshot is used only when its header (CRC-checked, as is all its data) names this index's
  uuid, schema and tokenizer, a generation not newer than the file's and not older than the
  tombstone floor, and the document count after catch-up agrees with SQLite; otherwise the
  index loads from SQLite as before. Files are written to a temporary name and renamed, never
  changed in place, so a process that has an older one mapped keeps a valid mapping; older ones
  are unlinked best-effort. A read-only data dir simply gets none. SQLite stays the only truth.
"""

from __future__ import annotations

import array
import json
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from contextlib import suppress as contextlib_suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.keyword_snapshot import (
    SNAP_SUFFIX,
    BaseFile,
    SnapshotRejected,
    read_snapshot,
    write_snapshot,
)
from engine.korean import TOKENIZERS, tokenize, tokenize_many
from engine.memory import release_free_memory
from engine.models import Scope, filter_tags
from engine.versions import KEYWORD_SCHEMA

log = logging.getLogger(__name__)

# Kiwi morphemes + Hangul bigrams ranked best on KorQuAD 1.0 dev (nDCG@10 0.954 vs 0.948 for
# morphemes alone, paired 95% CI of the gain +0.003..+0.009; bigrams alone 0.945) and bigrams
# also match parts of compounds ("회의" in "회의록") that the analyser keeps whole. The price:
# ~2.4x postings, so ~2x search time and load time, all still well inside budget at 100k chunks.
# See bench/results/lexical.md.
DEFAULT_TOKENIZER = "kiwi+bigram"
SCHEMA_VERSION = KEYWORD_SCHEMA  # engine/versions.py
K1 = 1.2
B = 0.75
# Merge the delta into the base once it holds this share of the base's postings (or of dead
# slots): bigger means rarer merges, smaller means less memory and dead weight between them.
_MERGE_FRACTION = 0.25
_MERGE_MIN_POSTINGS = 200_000
_MERGE_MIN_DEAD = 20_000
# Tombstones older than this many generations are pruned; a reader that far behind reloads.
_TOMBSTONE_KEEP = 1000
_TAG_SEP = "\n"
_SNAP_TMP_MAX_AGE = 3600.0  # seconds; older temporary files are a crashed writer's


@dataclass(frozen=True)
class LexDoc:
    """One chunk as the keyword index sees it. `text` is what gets indexed (heading path + text)."""

    chunk_id: str
    text: str
    note_path: str
    tags: tuple[str, ...] = ()
    private: bool = False


# Read-only members: the registry's NoteInfo and ChunkRecord are frozen dataclasses.
class _NoteLike(Protocol):
    @property
    def title(self) -> str: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def private(self) -> bool: ...
    @property
    def suspect(self) -> tuple[str, ...]: ...


class _ChunkLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def note_path(self) -> str: ...
    @property
    def embed_text(self) -> str: ...


@dataclass
class _Parsed:
    """A document reduced to what the postings need."""

    chunk_id: str
    tids: np.ndarray  # int32, distinct term ids
    tfs: np.ndarray  # uint16, term frequencies
    note_path: str
    tags: tuple[str, ...]
    private: bool


def _order_by_term(term: np.ndarray, n_terms: int) -> np.ndarray:
    """Stable argsort of term ids. numpy radix-sorts 16-bit keys (~6x faster than its
    general sort on 10M postings), so larger ids go in two 16-bit passes."""
    if n_terms <= 1 << 16:
        return np.argsort(term.astype(np.uint16), kind="stable")
    order = np.argsort((term & 0xFFFF).astype(np.uint16), kind="stable")
    return order[np.argsort((term[order] >> 16).astype(np.uint16), kind="stable")]


def _build_csr(
    term: np.ndarray, doc: np.ndarray, tf: np.ndarray, n_terms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = _order_by_term(term, n_terms)
    offsets = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(np.bincount(term, minlength=n_terms), out=offsets[1:])
    return offsets, doc[order].astype(np.int32, copy=False), tf[order].astype(np.uint16, copy=False)


def _split_tags(joined: str) -> tuple[str, ...]:
    return tuple(joined.split(_TAG_SEP)) if joined else ()


def _total_len(length: np.ndarray) -> float:
    """The sum of document lengths, exactly: they are integers, and a float32 sum would round
    (at 100k chunks it passes 2**24), so a fresh load, a snapshot plus catch-up and a writer that
    added documents one by one would disagree on avgdl in the last bits of every score."""
    return float(length.sum(dtype=np.float64))


class _Postings:
    """The in-memory inverted index. No locking and no I/O: LexicalIndex does both."""

    def __init__(self, k1: float = K1, b: float = B) -> None:
        self.k1, self.b = k1, b
        self.ids: list[str | None] = []
        self.slot_of: dict[str, int] = {}
        cap = 1024
        self.length = np.zeros(cap, dtype=np.float32)
        self.alive = np.zeros(cap, dtype=bool)
        self.meta = np.zeros(cap, dtype=np.int32)
        self.n_slots = 0
        self.n_live = 0
        self.total_len = 0.0
        # Distinct (note path, tags, private) combinations; scope is evaluated per entry.
        self.metas: list[tuple[str, tuple[str, ...], bool]] = []
        self.meta_of: dict[tuple[str, tuple[str, ...], bool], int] = {}
        self.scope_masks: dict[str, np.ndarray] = {}
        self.base_off = np.zeros(1, dtype=np.int64)
        self.base_doc = np.zeros(0, dtype=np.int32)
        self.base_tf = np.zeros(0, dtype=np.uint16)
        self.delta_doc: dict[int, array.array] = {}
        self.delta_tf: dict[int, array.array] = {}
        self.delta_count = 0
        # Set when base_doc and base_tf are a snapshot's (see BaseFile).
        self.base_file: BaseFile | None = None

    # ---------------------------------------------------------------- building
    @classmethod
    def build(
        cls, rows: Sequence[tuple[Any, ...]], n_terms: int, k1: float = K1, b: float = B
    ) -> _Postings:
        """A fresh index straight into the CSR base from `docs` rows (chunk_id, note_path,
        tags, private, tids blob, tfs blob). Columnar on purpose: one frombuffer over all the
        blobs instead of two per row keeps a 100k-chunk load around a second."""
        p = cls(k1, b)
        n = len(rows)
        p._grow(n)
        if n == 0:
            return p
        chunk_ids, note_paths, tags, private, tid_blobs, tf_blobs = zip(*rows, strict=True)
        p.ids = list(chunk_ids)
        p.slot_of = {cid: i for i, cid in enumerate(chunk_ids)}
        p.meta[:n] = [
            p._meta_id(path, _split_tags(t), bool(pr))
            for path, t, pr in zip(note_paths, tags, private, strict=True)
        ]
        counts = np.fromiter((len(x) // 4 for x in tid_blobs), dtype=np.int64, count=n)
        term = np.frombuffer(b"".join(tid_blobs), dtype=np.int32)
        tf = np.frombuffer(b"".join(tf_blobs), dtype=np.uint16)
        doc = np.repeat(np.arange(n, dtype=np.int32), counts)
        p.length[:n] = np.bincount(doc, weights=tf, minlength=n)
        n_terms = max(n_terms, int(term.max()) + 1 if term.size else 0)
        p.base_off, p.base_doc, p.base_tf = _build_csr(term, doc, tf, n_terms)
        p.alive[:n] = True
        p.n_slots = p.n_live = n
        p.total_len = _total_len(p.length[:n])
        return p

    def compacted(self, n_terms: int) -> _Postings:
        """A copy with the delta merged into the base and dead slots and metas dropped.
        Reads self only, so searches may keep using self while this runs."""
        n = self.n_slots
        live = np.flatnonzero(self.alive[:n])
        new_slot = np.full(max(n, 1), -1, dtype=np.int32)
        new_slot[live] = np.arange(live.size, dtype=np.int32)
        n_base_terms = self.base_off.size - 1
        terms = [np.repeat(np.arange(n_base_terms, dtype=np.int32), np.diff(self.base_off))]
        docs = [self.base_doc]
        tfs = [self.base_tf]
        if self.delta_doc:
            keys = np.fromiter(self.delta_doc.keys(), dtype=np.int32, count=len(self.delta_doc))
            lens = np.fromiter((len(a) for a in self.delta_doc.values()), dtype=np.int64)
            terms.append(np.repeat(keys, lens))
            # One join + frombuffer: per-term frombuffer calls cost more than the copying.
            joined = b"".join(a.tobytes() for a in self.delta_doc.values())
            docs.append(np.frombuffer(joined, dtype=np.int32))
            joined = b"".join(self.delta_tf[t].tobytes() for t in self.delta_doc)
            tfs.append(np.frombuffer(joined, dtype=np.float32))
        term = np.concatenate(terms)
        doc = np.concatenate(docs)
        tf = np.concatenate([t.astype(np.uint16, copy=False) for t in tfs])
        keep = self.alive[doc]
        term, doc, tf = term[keep], new_slot[doc[keep]], tf[keep]

        p = _Postings(self.k1, self.b)
        m = live.size
        p._grow(m)
        p.ids = [self.ids[i] for i in live.tolist()]
        p.slot_of = {cid: i for i, cid in enumerate(p.ids) if cid is not None}
        used, remap = np.unique(self.meta[live], return_inverse=True)
        p.metas = [self.metas[i] for i in used.tolist()]
        p.meta_of = {mt: i for i, mt in enumerate(p.metas)}
        p.meta[:m] = remap
        p.length[:m] = self.length[live]
        p.alive[:m] = True
        p.n_slots = p.n_live = m
        p.total_len = _total_len(p.length[:m])
        n_terms = max(n_terms, n_base_terms, int(term.max()) + 1 if term.size else 0)
        p.base_off, p.base_doc, p.base_tf = _build_csr(term, doc, tf, n_terms)
        return p

    def needs_merge(self) -> bool:
        dead = self.n_slots - self.n_live
        return self.delta_count > max(
            _MERGE_MIN_POSTINGS, _MERGE_FRACTION * self.base_doc.size
        ) or (dead > max(_MERGE_MIN_DEAD, _MERGE_FRACTION * self.n_slots))

    # ---------------------------------------------------------------- updates
    def _grow(self, need: int) -> None:
        cap = self.length.size
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        for name in ("length", "alive", "meta"):
            old = getattr(self, name)
            new = np.zeros(cap, dtype=old.dtype)
            new[: old.size] = old
            setattr(self, name, new)

    def _meta_id(self, note_path: str, tags: tuple[str, ...], private: bool) -> int:
        key = (note_path, tuple(tags), bool(private))
        mid = self.meta_of.get(key)
        if mid is None:
            mid = self.meta_of[key] = len(self.metas)
            self.metas.append(key)
        return mid

    def remove(self, chunk_id: str) -> bool:
        slot = self.slot_of.pop(chunk_id, None)
        if slot is None:
            return False
        # The slot's postings stay in place and are skipped via `alive` until the next merge.
        self.alive[slot] = False
        self.ids[slot] = None
        self.n_live -= 1
        self.total_len -= float(self.length[slot])
        return True

    def add(self, d: _Parsed) -> None:
        self.remove(d.chunk_id)
        slot = self.n_slots
        self._grow(slot + 1)
        self.n_slots += 1
        self.ids.append(d.chunk_id)
        self.slot_of[d.chunk_id] = slot
        length = float(d.tfs.sum())
        self.length[slot] = length
        self.alive[slot] = True
        self.meta[slot] = self._meta_id(d.note_path, d.tags, d.private)
        self.n_live += 1
        self.total_len += length
        # The hot loop of indexing: one dict lookup and two appends per distinct term.
        delta_doc, delta_tf = self.delta_doc, self.delta_tf
        for tid, tf in zip(d.tids.tolist(), d.tfs.tolist(), strict=True):
            docs = delta_doc.get(tid)
            if docs is None:
                docs = delta_doc[tid] = array.array("i")
                delta_tf[tid] = array.array("f")
            docs.append(slot)
            delta_tf[tid].append(tf)
        self.delta_count += d.tids.size

    def slots_of_note(self, note_path: str) -> list[str]:
        mids = [i for i, mt in enumerate(self.metas) if mt[0] == note_path]
        if not mids:
            return []
        n = self.n_slots
        hit = np.flatnonzero(np.isin(self.meta[:n], mids) & self.alive[:n])
        return [cid for cid in (self.ids[i] for i in hit) if cid is not None]

    # ---------------------------------------------------------------- search
    def _postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        parts_doc: list[np.ndarray] = []
        parts_tf: list[np.ndarray] = []
        if tid < self.base_off.size - 1:
            start, end = int(self.base_off[tid]), int(self.base_off[tid + 1])
            if end > start:
                if self.base_file is not None:
                    docs, tfs = self.base_file.read(start, end)
                else:
                    docs, tfs = self.base_doc[start:end], self.base_tf[start:end]
                parts_doc.append(docs)
                parts_tf.append(tfs.astype(np.float32))
        if tid in self.delta_doc:
            # Copies (not views): a live buffer export would stop array.append from resizing.
            parts_doc.append(np.array(self.delta_doc[tid], dtype=np.int32))
            parts_tf.append(np.array(self.delta_tf[tid], dtype=np.float32))
        if not parts_doc:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        if len(parts_doc) == 1:
            return parts_doc[0], parts_tf[0]
        return np.concatenate(parts_doc), np.concatenate(parts_tf)

    def scope_mask(self, scope: Scope) -> np.ndarray:
        """Allowed flag per meta entry; extended (not recomputed) when new metas appear."""
        key = scope.key()
        mask = self.scope_masks.get(key)
        if mask is None or mask.size < len(self.metas):
            start = 0 if mask is None else mask.size
            extra = np.fromiter(
                (scope.allows(p, t, pr) for p, t, pr in self.metas[start:]),
                dtype=bool,
                count=len(self.metas) - start,
            )
            mask = extra if mask is None else np.concatenate([mask, extra])
            if len(self.scope_masks) > 64:
                self.scope_masks.clear()
            self.scope_masks[key] = mask
        return mask

    def search(self, tids: Iterable[int], k: int, scope: Scope | None) -> list[tuple[str, float]]:
        n, n_live = self.n_slots, self.n_live
        if n_live == 0 or k <= 0:
            return []
        avgdl = max(self.total_len / n_live, 1e-9)
        alive, length = self.alive[:n], self.length[:n]
        scores = np.zeros(n, dtype=np.float32)
        k1, b = self.k1, self.b
        all_alive = n_live == n  # nothing deleted since the last merge: no filtering to do
        for tid in tids:
            docs, tfs = self._postings(tid)
            if docs.size == 0:
                continue
            if not all_alive:
                keep = alive[docs]
                if not keep.all():
                    docs, tfs = docs[keep], tfs[keep]
            df = docs.size
            if df == 0:
                continue
            # Lucene's BM25 idf: always positive, so a term in most docs still counts a little.
            idf = math.log(1.0 + (n_live - df + 0.5) / (df + 0.5))
            norm = k1 * (1.0 - b + b * (length[docs] / avgdl))
            scores[docs] += (idf * (k1 + 1.0)) * tfs / (tfs + norm)
        cand = np.flatnonzero(scores > 0)
        if scope is not None:  # before top-k, so a narrow scope still fills k; only the
            # matching slots are looked up (a mask over all slots cost ~2 ms at 1M chunks)
            cand = cand[self.scope_mask(scope)[self.meta[cand]]]
        if cand.size > k:
            cand = cand[np.argpartition(-scores[cand], k - 1)[:k]]
        cand = cand[np.argsort(-scores[cand], kind="stable")]
        ids = self.ids
        return [(ids[i], float(scores[i])) for i in cand.tolist()]  # type: ignore[misc]


# ---------------------------------------------------------------- snapshots
def _snapshot_arrays(p: _Postings) -> dict[str, np.ndarray]:
    n = p.n_slots
    names = json.dumps({"ids": p.ids, "metas": p.metas}, ensure_ascii=False).encode()
    return {
        "base_off": p.base_off,
        "base_doc": p.base_doc,
        "base_tf": p.base_tf,
        "length": p.length[:n],
        "meta": p.meta[:n],
        "names": np.frombuffer(names, dtype=np.uint8),
    }


def _postings_from_snapshot(
    header: Mapping[str, Any],
    arrays: Mapping[str, np.ndarray],
    base: BaseFile,
    n_terms: int,
    k1: float,
    b: float,
) -> _Postings:
    """A base-only _Postings on the snapshot: postings and tfs stay in the file (mapped for
    merges, read by position for searches), offsets and the per-slot arrays are copied (small,
    and updates write the per-slot ones)."""
    try:
        names = json.loads(arrays["names"].tobytes())
        ids = names["ids"]
        metas = [(str(path), tuple(str(t) for t in tags), bool(pr))
                 for path, tags, pr in names["metas"]]
    except (ValueError, KeyError, TypeError) as e:
        raise SnapshotRejected(f"unreadable ids: {e!r}") from None
    off, doc, tf = arrays["base_off"], arrays["base_doc"], arrays["base_tf"]
    length, meta = arrays["length"], arrays["meta"]
    n = len(ids)
    if header.get("n_slots") != n or length.size != n or meta.size != n:
        raise SnapshotRejected("slot arrays disagree on the number of chunks")
    if not all(isinstance(c, str) for c in ids) or len(set(ids)) != n:
        raise SnapshotRejected("chunk ids are not distinct strings")
    if n and (int(meta.min()) < 0 or int(meta.max()) >= len(metas)):
        raise SnapshotRejected("metadata index out of range")
    if off.size < 1 or off.size - 1 > n_terms:
        raise SnapshotRejected(f"{off.size - 1} terms, the vocabulary has {n_terms}")
    if int(off[0]) != 0 or int(off[-1]) != doc.size or tf.size != doc.size:
        raise SnapshotRejected("postings offsets disagree with the postings")
    if off.size > 1 and not bool(np.all(off[1:] >= off[:-1])):
        raise SnapshotRejected("postings offsets are not sorted")
    if not bool(np.all(np.isfinite(length) & (length >= 0))):
        raise SnapshotRejected("bad document lengths")
    p = _Postings(k1, b)
    p._grow(n)
    p.ids = ids
    p.slot_of = {cid: i for i, cid in enumerate(ids)}
    p.metas = metas
    p.meta_of = {mt: i for i, mt in enumerate(metas)}
    p.length[:n] = length
    p.meta[:n] = meta
    p.alive[:n] = True
    p.n_slots = p.n_live = n
    p.total_len = _total_len(p.length[:n])
    p.base_off, p.base_doc, p.base_tf = np.array(off, dtype=np.int64), doc, tf
    p.base_file = base
    return p


def lex_docs(chunks: Sequence[_ChunkLike], notes: Mapping[str, _NoteLike]) -> list[LexDoc]:
    """Registry chunks as keyword documents, for every keyword index: the note's title indexed
    with each chunk (a search for a note's name finds it), scoped by the note's tags (with
    unparseable frontmatter's words) and privacy; a chunk without its note is private."""
    docs = []
    for c in chunks:
        note = notes.get(c.note_path)
        title = note.title if note is not None else ""
        text = f"{title}\n{c.embed_text}" if title else c.embed_text
        tags = filter_tags(note) if note is not None else ()
        private = bool(note.private) if note is not None else True
        docs.append(LexDoc(c.id, text, c.note_path, tags, private))
    return docs


class LexicalIndex:
    """BM25 keyword index over chunks; persisted in SQLite at `path` (None: memory only).

    Thread-safe: searches may run from several threads while another thread writes. Several
    processes may open the same file; each batch of writes is one transaction and every reader
    picks up other processes' commits incrementally on its next call.
    """

    def __init__(
        self,
        path: Path | str | None,
        tokenizer: str = DEFAULT_TOKENIZER,
        *,
        k1: float = K1,
        b: float = B,
    ) -> None:
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; expected one of {TOKENIZERS}")
        self.tokenizer = tokenizer
        self.path = Path(path) if path is not None else None
        self._k1, self._b = k1, b
        # _write serialises writers (and catch-up from disk); _read guards the in-memory index
        # and is held only briefly by writers, so a slow merge does not stall searches.
        self._write = threading.RLock()
        self._read = threading.Lock()
        self._vocab: dict[str, int] = {}
        self._next_tid = 0  # == len(self._vocab): ids are dense, and on disk shared by processes
        self._mem = _Postings(k1, b)
        self._generation = 0
        self._db: sqlite3.Connection | None = None
        self._uuid = ""
        self._data_version = -1
        # The snapshot this process's base was loaded from or written to (None: built here);
        # _snapshot_due: a full load found no usable one, so one is written once it can be.
        self.snapshot: Path | None = None
        self._snapshot_due = False
        if self.path is not None:
            self._open_db()

    # ------------------------------------------------------------------ public
    @property
    def generation(self) -> int:
        """Bumps on every change (the retrieval cache keys on it); for a persisted index it is
        the generation stored on disk, so all processes agree on it."""
        self._catch_up()
        return self._generation

    def __len__(self) -> int:
        self._catch_up()
        return self._mem.n_live

    def ids(self) -> set[str]:
        self._catch_up()
        with self._read:
            return set(self._mem.slot_of)

    def upsert(self, docs: Iterable[LexDoc]) -> None:
        """Add or replace these chunks (one transaction)."""
        batch = {d.chunk_id: d for d in docs}  # last one wins inside a batch
        if not batch:
            return
        items = list(batch.values())
        # Tokenise before taking any lock: it is the slow part and needs no shared state.
        token_lists = tokenize_many([d.text for d in items], self.tokenizer)
        counted = [Counter(toks) for toks in token_lists]
        with self._write:
            self._check_open()
            if self._db is None:
                parsed, new_terms = self._parse(items, counted)
                with self._read:
                    self._apply(parsed, new_terms)
                    self._generation += 1
            else:
                self._upsert_db(items, counted)
            self._maybe_merge()

    def delete(self, chunk_ids: Iterable[str]) -> int:
        """Remove these chunks; unknown ids are ignored. Returns how many were removed."""
        wanted = list(dict.fromkeys(chunk_ids))
        if not wanted:
            return 0
        with self._write:
            self._check_open()
            if self._db is None:
                with self._read:
                    removed = sum(self._mem.remove(cid) for cid in wanted)
                    if removed:
                        self._generation += 1
            else:
                removed = self._delete_db(wanted)
            self._maybe_merge()
        return removed

    def delete_note(self, note_path: str) -> int:
        """Remove every chunk of this note. Returns how many were removed."""
        with self._write:
            self._catch_up_locked()
            with self._read:
                ids = self._mem.slots_of_note(note_path)
            return self.delete(ids)

    def search(
        self, query: str, k: int = 20, scope: Scope | None = None
    ) -> list[tuple[str, float]]:
        """Chunk ids and BM25 scores, best first; only chunks `scope` allows are considered."""
        tokens = tokenize(query, self.tokenizer)
        if not tokens:
            return []
        self._catch_up()
        with self._read:
            tids = {self._vocab[t] for t in tokens if t in self._vocab}
            return self._mem.search(sorted(tids), k, scope)

    def upsert_chunks(self, chunks: Sequence[_ChunkLike], notes: Mapping[str, _NoteLike]) -> None:
        """Adapter for the engine's Index: registry chunks plus their notes' metadata. The note
        title is indexed with each chunk so that a search for a note's name finds it."""
        self.upsert(lex_docs(chunks, notes))

    def merge(self) -> None:
        """Fold pending updates into the compact base now (normally automatic)."""
        with self._write:
            self._swap_in(self._mem.compacted(self._n_terms()))

    def close(self) -> None:
        with self._write:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _check_open(self) -> None:
        if self.path is not None and self._db is None:
            raise RuntimeError(f"lexical index {self.path} is closed")

    def __enter__(self) -> LexicalIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ memory
    def _n_terms(self) -> int:
        return self._next_tid

    def _parse(
        self, items: Sequence[LexDoc], counted: Sequence[Counter[str]]
    ) -> tuple[list[_Parsed], dict[str, int]]:
        """Documents as term ids, and the terms not in the vocabulary yet with the ids they get.
        The vocabulary itself is left alone until the caller has committed."""
        get = self._vocab.get
        new: dict[str, int] = {}
        start = self._next_tid
        out = []
        for d, counts in zip(items, counted, strict=True):
            terms = list(counts)
            tids = [get(t) for t in terms]
            if None in tids:
                for i, found in enumerate(tids):
                    if found is None:
                        tids[i] = new.setdefault(terms[i], start + len(new))
            tfs = np.minimum(np.array(list(counts.values()), dtype=np.int64), 65535)
            out.append(
                _Parsed(
                    d.chunk_id,
                    np.array(tids, dtype=np.int32),
                    tfs.astype(np.uint16),
                    d.note_path,
                    tuple(d.tags),
                    d.private,
                )
            )
        return out, new

    def _apply(self, parsed: Sequence[_Parsed], new_terms: dict[str, int]) -> None:
        """Put committed documents into memory. Caller holds _read."""
        self._vocab.update(new_terms)
        self._next_tid += len(new_terms)
        for p in parsed:
            self._mem.add(p)

    def _maybe_merge(self) -> None:
        if self._mem.needs_merge():
            self._swap_in(self._mem.compacted(self._n_terms()))

    def _swap_in(self, new: _Postings) -> None:
        # Caller holds _write, so nothing changed self._mem while `new` was being built.
        with self._read:
            self._mem = new
            self.snapshot = None
        self._save_snapshot()

    # ------------------------------------------------------------------ snapshots
    def _snapshot_files(self) -> list[tuple[str, int, Path]]:
        """(uuid, generation, path) of every snapshot file beside the index."""
        assert self.path is not None
        out = []
        prefix = self.path.name + "."
        try:
            names = os.listdir(self.path.parent)
        except OSError:
            return []
        for name in names:
            if not (name.startswith(prefix) and name.endswith(SNAP_SUFFIX)):
                continue
            uid, _, gen = name[len(prefix) : -len(SNAP_SUFFIX)].partition(".")
            if uid and gen.isdigit():
                out.append((uid, int(gen), self.path.parent / name))
        return out

    def _snapshot_path(self, uid: str, gen: int) -> Path:
        assert self.path is not None
        return self.path.with_name(f"{self.path.name}.{uid}.{gen}{SNAP_SUFFIX}")

    def _load_snapshot(
        self, meta: Mapping[str, str], n_terms: int
    ) -> tuple[_Postings, int, Path] | None:
        """The newest usable snapshot's base for this index, its generation and path, or None.
        Every rejected file is logged with its reason and never used."""
        if self.path is None:
            return None
        expect = {
            "uuid": meta["uuid"],
            "schema": meta["schema"],
            "tokenizer": self.tokenizer,
            "generation": int(meta["generation"]),
            "floor": int(meta["floor"]),
        }
        found = sorted(
            ((gen, path) for uid, gen, path in self._snapshot_files() if uid == meta["uuid"]),
            reverse=True,
        )
        for _, path in found:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as e:  # e.g. removed by a process that wrote a newer one
                log.debug("keyword snapshot %s: cannot open (%s)", path.name, e)
                continue
            try:
                header, arrays, base = read_snapshot(fd, expect)
                mem = _postings_from_snapshot(header, arrays, base, n_terms, self._k1, self._b)
            except (SnapshotRejected, OSError) as e:
                log.warning("keyword snapshot %s not used: %s", path, e)
                continue
            finally:
                os.close(fd)
            return mem, int(header["generation"]), path
        return None

    def _save_snapshot(self) -> None:
        """Write the base to a new snapshot and map its arrays from there (caller holds _write).
        Only a pure base (right after a merge or a full load) is written; any failure (a
        read-only dir, a full disk) leaves the in-memory base and is only logged."""
        self._snapshot_due = False
        mem = self._mem
        if (
            self.path is None
            or self._db is None
            or not self._uuid
            or mem.n_slots == 0
            or mem.n_live != mem.n_slots
            or mem.delta_doc
        ):
            return
        gen, uid = self._generation, self._uuid
        final = self._snapshot_path(uid, gen)
        tmp = final.with_name(f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        header = {
            "uuid": uid,
            "schema": SCHEMA_VERSION,
            "tokenizer": self.tokenizer,
            "generation": gen,
            "n_slots": mem.n_slots,
        }
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            log.info("keyword snapshot not written (%s): the index loads from SQLite", e)
            return
        try:
            write_snapshot(fd, _snapshot_arrays(mem), header)
            # Read back as any process would, from this file (not whatever has its final name:
            # another process may write the same generation with its own slot order).
            expect = {**header, "floor": 0}
            _, arrays, base = read_snapshot(fd, expect)
            os.replace(tmp, final)
        except (OSError, SnapshotRejected) as e:
            log.warning("keyword snapshot not written (%s): the index loads from SQLite", e)
            with contextlib_suppress(OSError):
                os.unlink(tmp)
            return
        finally:
            os.close(fd)
        with self._read:
            if self._mem is mem:  # values equal, so searches see no difference
                mem.base_doc, mem.base_tf = arrays["base_doc"], arrays["base_tf"]
                mem.base_file = base
                self.snapshot = final
        self._remove_stale_snapshots(uid, gen)

    def _remove_stale_snapshots(self, uid: str, gen: int) -> None:
        """Best-effort: older snapshots (a process that maps one keeps its pages: unlinking
        does not touch them) and temporary files that crashed writers left."""
        assert self.path is not None
        for u, g, path in self._snapshot_files():
            if u != uid or g < gen:
                with contextlib_suppress(OSError):
                    path.unlink()
        prefix = f".{self.path.name}."
        now = time.time()
        with contextlib_suppress(OSError):
            for name in os.listdir(self.path.parent):
                if name.startswith(prefix) and name.endswith(".tmp"):
                    path = self.path.parent / name
                    with contextlib_suppress(OSError):
                        if now - path.stat().st_mtime > _SNAP_TMP_MAX_AGE:
                            path.unlink()

    def _drop_future_snapshots(self, gen: int) -> None:
        """About to commit `gen` (inside the write transaction): no snapshot of this index can
        legitimately claim it or a later one yet, so any that does comes from another history
        (a restored or copied file that went back in time) and would be trusted once the index
        reaches its generation again."""
        if self.path is None:
            return
        for u, g, path in self._snapshot_files():
            if u == self._uuid and g >= gen:
                log.warning("keyword snapshot %s is ahead of the index (generation %d): removed",
                            path, gen - 1)
                with contextlib_suppress(FileNotFoundError):  # other errors: no commit
                    path.unlink()

    # ------------------------------------------------------------------ sqlite
    def _open_db(self) -> None:
        assert self.path is not None
        if self.path.is_file() and not os.access(self.path.parent, os.W_OK):
            # A read-only data dir: SQLite cannot create the WAL's -shm file there, so open the
            # file immutable (nothing can write it) and never touch the schema.
            uri = f"{self.path.resolve().as_uri()}?immutable=1"
            self._db = sqlite3.connect(uri, uri=True, isolation_level=None,
                                       check_same_thread=False)
            with self._write:
                self._catch_up_locked(force=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=60)
        db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, nor it them
        db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses no committed state
        self._db = db
        try:
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError:  # a new file
            meta = {}
        if meta.get("tokenizer") != self.tokenizer or meta.get("schema") != SCHEMA_VERSION:
            self._init_schema()  # only then take the write lock: plain readers never need it
        with self._write:
            self._catch_up_locked(force=True)
            if self._snapshot_due:
                self._save_snapshot()

    def _init_schema(self) -> None:
        with self._transaction() as db:
            for stmt in _SCHEMA:
                db.execute(stmt)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                self._put_meta(
                    schema=SCHEMA_VERSION,
                    tokenizer=self.tokenizer,
                    uuid=uuid.uuid4().hex,
                    generation="0",
                    floor="0",
                )
            elif meta.get("tokenizer") != self.tokenizer or meta.get("schema") != SCHEMA_VERSION:
                # Term ids from another tokenizer are meaningless here. The index is derived
                # data: start empty and let the engine's repair re-add every chunk.
                log.warning(
                    "lexical index %s was built with tokenizer %r (schema %s); clearing it for %r",
                    self.path,
                    meta.get("tokenizer"),
                    meta.get("schema"),
                    self.tokenizer,
                )
                for table in ("docs", "vocab", "tombstones"):
                    db.execute(f"DELETE FROM {table}")
                gen = str(int(meta.get("generation", "0")) + 1)
                self._put_meta(
                    schema=SCHEMA_VERSION,
                    tokenizer=self.tokenizer,
                    uuid=uuid.uuid4().hex,
                    generation=gen,
                    floor=gen,
                )

    @contextmanager
    def _transaction(self, begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
        """One transaction on the index file: committed when the block ends, rolled back (and
        the error re-raised) on any exception, KeyboardInterrupt included. IMMEDIATE takes the
        write lock at once, so two writers never both read and then both try to write."""
        db = self._db
        assert db is not None
        db.execute(begin)
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _put_meta(self, **values: str) -> None:
        assert self._db is not None
        self._db.executemany(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", list(values.items())
        )

    def _catch_up(self) -> None:
        """Apply other processes' commits. Skipped when a writer in this process is busy: it
        catches up itself inside its transaction, and searches should not wait for it."""
        if self._db is None:
            return
        if self._write.acquire(blocking=False):
            try:
                self._catch_up_locked()
            finally:
                self._write.release()

    def _catch_up_locked(self, force: bool = False) -> None:
        db = self._db
        if db is None:
            return
        in_txn = db.in_transaction
        # data_version changes only when another connection commits: a cheap "anything new?".
        version = db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version and not force:
            return
        # One read snapshot for all the queries below (a writer calls this inside its own).
        with nullcontext(db) if in_txn else self._transaction("BEGIN"):
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if meta["tokenizer"] != self.tokenizer:
                raise RuntimeError(
                    f"{self.path} was rebuilt for tokenizer {meta['tokenizer']!r} by another "
                    f"process; this one uses {self.tokenizer!r}: configure both alike"
                )
            gen, floor = int(meta["generation"]), int(meta["floor"])
            if (
                force
                or meta["uuid"] != self._uuid
                or floor > self._generation
                or gen < self._generation
            ):
                self._load_all(meta)
            elif gen > self._generation:
                self._load_since(self._generation, gen)
        self._data_version = version
        if self._snapshot_due and not in_txn and not force:
            self._save_snapshot()  # another process rebuilt the index (force: _open_db does it)

    def _read_vocab(self, after: int) -> dict[str, int]:
        assert self._db is not None
        rows = self._db.execute("SELECT term, tid FROM vocab WHERE tid > ?", (after,)).fetchall()
        return dict(rows)

    @staticmethod
    def _row_doc(row: tuple[Any, ...]) -> _Parsed:
        chunk_id, note_path, tags, private, tids, tfs = row
        return _Parsed(
            chunk_id,
            np.frombuffer(tids, dtype=np.int32),
            np.frombuffer(tfs, dtype=np.uint16),
            note_path,
            _split_tags(tags),
            bool(private),
        )

    def _load_all(self, meta: dict[str, str]) -> None:
        """Load the index as of `meta` (read in the caller's transaction): from the newest usable
        snapshot plus the rows committed after it, else from every row."""
        assert self._db is not None
        vocab = self._read_vocab(-1)
        next_tid = max(vocab.values(), default=-1) + 1
        loaded = self._load_snapshot(meta, next_tid)
        if loaded is not None:
            # Caught up (the vocabulary is already complete) before anything is published.
            mem, snap_gen, snap = loaded
            self._apply_changes(mem, *self._changes_since(snap_gen))
            (count,) = self._db.execute("SELECT count(*) FROM docs").fetchone()
            if count == mem.n_live:
                self._publish(vocab, next_tid, mem, meta, snap)
                return
            log.warning("keyword snapshot %s not used: %d chunks after catching up, the index "
                        "has %d", snap, mem.n_live, count)
            del mem, loaded
        rows = self._db.execute(
            "SELECT chunk_id, note_path, tags, private, tids, tfs FROM docs"
        ).fetchall()
        mem = _Postings.build(rows, next_tid, self._k1, self._b)
        del rows
        self._publish(vocab, next_tid, mem, meta, None)
        release_free_memory()  # the rows' blobs, freed above, would stay in the heap otherwise

    def _publish(self, vocab: dict[str, int], next_tid: int, mem: _Postings,
                 meta: Mapping[str, str], snap: Path | None) -> None:
        """Make a loaded index the one searches see; without a snapshot, one is due."""
        with self._read:
            self._vocab, self._next_tid, self._mem = vocab, next_tid, mem
            self._uuid = meta["uuid"]
            self._generation = int(meta["generation"])
            self.snapshot = snap
        self._snapshot_due = snap is None

    def _changes_since(self, since: int) -> tuple[list[str], list[_Parsed]]:
        """Chunk ids deleted and documents written after generation `since`."""
        assert self._db is not None
        gone = [
            r[0]
            for r in self._db.execute("SELECT chunk_id FROM tombstones WHERE seq > ?", (since,))
        ]
        rows = self._db.execute(
            "SELECT chunk_id, note_path, tags, private, tids, tfs FROM docs WHERE seq > ?", (since,)
        ).fetchall()
        return gone, [self._row_doc(r) for r in rows]

    @staticmethod
    def _apply_changes(mem: _Postings, gone: Sequence[str], docs: Sequence[_Parsed]) -> None:
        for cid in gone:
            mem.remove(cid)
        for d in docs:
            mem.add(d)

    def _load_since(self, since: int, gen: int) -> None:
        assert self._db is not None
        vocab = self._read_vocab(self._next_tid - 1)
        gone, docs = self._changes_since(since)
        with self._read:
            self._vocab.update(vocab)
            if vocab:
                self._next_tid = max(self._next_tid, max(vocab.values()) + 1)
            self._apply_changes(self._mem, gone, docs)
            self._generation = gen

    def _commit_generation(self) -> int:
        assert self._db is not None
        gen = self._generation + 1
        self._drop_future_snapshots(gen)
        self._put_meta(generation=str(gen))
        if gen > _TOMBSTONE_KEEP:
            floor = gen - _TOMBSTONE_KEEP
            self._db.execute("DELETE FROM tombstones WHERE seq <= ?", (floor,))
            self._put_meta(floor=str(floor))
        return gen

    def _upsert_db(self, items: Sequence[LexDoc], counted: Sequence[Counter[str]]) -> None:
        with self._transaction() as db:
            # Memory brought up to date inside the write lock: term ids handed out below
            # cannot clash with another process's.
            self._catch_up_locked()
            parsed, new_terms = self._parse(items, counted)
            gen = self._commit_generation()
            db.executemany("INSERT INTO vocab(term, tid) VALUES (?, ?)", new_terms.items())
            db.executemany(
                "INSERT OR REPLACE INTO docs(chunk_id, note_path, tags, private, tids, tfs, seq) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        p.chunk_id,
                        p.note_path,
                        _TAG_SEP.join(p.tags),
                        int(p.private),
                        p.tids.tobytes(),
                        p.tfs.tobytes(),
                        gen,
                    )
                    for p in parsed
                ],
            )
            db.executemany(
                "DELETE FROM tombstones WHERE chunk_id = ?", [(p.chunk_id,) for p in parsed]
            )
        with self._read:
            self._apply(parsed, new_terms)
            self._generation = gen

    def _delete_db(self, wanted: Sequence[str]) -> int:
        with self._transaction() as db:
            self._catch_up_locked()  # as in _upsert_db
            with self._read:
                present = [cid for cid in wanted if cid in self._mem.slot_of]
            if not present:
                return 0
            gen = self._commit_generation()
            db.executemany("DELETE FROM docs WHERE chunk_id = ?", [(c,) for c in present])
            db.executemany(
                "INSERT OR REPLACE INTO tombstones(chunk_id, seq) VALUES (?, ?)",
                [(c, gen) for c in present],
            )
        with self._read:
            for cid in present:
                self._mem.remove(cid)
            self._generation = gen
        return len(present)


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS vocab(tid INTEGER PRIMARY KEY, term TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS docs(chunk_id TEXT PRIMARY KEY, note_path TEXT NOT NULL, "
    "tags TEXT NOT NULL, private INTEGER NOT NULL, tids BLOB NOT NULL, tfs BLOB NOT NULL, "
    "seq INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS docs_seq ON docs(seq)",
    "CREATE INDEX IF NOT EXISTS docs_note ON docs(note_path)",
    "CREATE TABLE IF NOT EXISTS tombstones(chunk_id TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS tombstones_seq ON tombstones(seq)",
)
