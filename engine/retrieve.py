"""Retrieval: dense vectors, keyword BM25, or both fused by reciprocal rank fusion (RRF).

RRF needs no score calibration between the two lists, which matters here because cosine
similarities and BM25 scores live on unrelated scales."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

import numpy as np

from engine.index import Index
from engine.language import language_of_chunks, question_language
from engine.models import ChunkRecord, Hit, Scope
from engine.provenance import sources_of, visible
from engine.registry import NoteInfo

if TYPE_CHECKING:  # engine.rerank loads the Ollama client, which plain retrieval never needs
    from engine.rerank import Reranker

Mode = Literal["dense", "lexical", "hybrid"]
MODES: tuple[Mode, ...] = ("dense", "lexical", "hybrid")


@dataclass(frozen=True)
class RetrievalConfig:
    rrf_k: int = 60  # the constant from Cormack et al.; larger flattens rank differences
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    candidates: int = 40  # per list, before fusion
    per_note: int = 2  # diversity: at most this many chunks of one note in the results
    neighbours: int = 0  # add this many chunks on each side of a hit for context
    # Adaptive fusion (docs/benchmarks.md, "Fusion"). The best keyword hit decides, by the
    # language of its note: in the question's language, keywords are trusted (weights 1:16,
    # k 10), which is what keeps hybrid at least as good as BM25 alone on KorQuAD; in another
    # language, the match is a borrowed word (an English UI name inside a Korean note, say)
    # and the keyword list gets `foreign_lexical_weight` (0: dense alone), which is what keeps
    # cross-lingual questions as good as dense alone.
    adaptive: bool = True
    trusted_dense_weight: float = 1.0
    trusted_lexical_weight: float = 16.0
    trusted_rrf_k: int = 10
    foreign_lexical_weight: float = 0.0
    # In the trusted case, a dense candidate from a note in another language cannot have keyword
    # evidence, so its missing keyword rank says nothing: it is scored as if its keyword rank
    # equalled its dense rank, at this share of the keyword weight (0: off). Without it, in a
    # vault of Korean and English notes the keyword weight buried every note in the other
    # language; below 1, a note in the question's language with the same ranks still comes
    # first (docs/benchmarks.md, "Mixed vault").
    impute_foreign: float = 0.9
    # Hybrid: run the dense search in a worker thread beside the keyword search.
    concurrent: bool = True


V = TypeVar("V")

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _searches() -> ThreadPoolExecutor:
    """The threads that run hybrid retrieval's dense half, shared by every Retriever."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dense-search")
        return _POOL


class LRU(Generic[V]):
    """A small thread-safe LRU map."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[object, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: object) -> V | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                self.hits += 1
                return self._data[key]
            self.misses += 1
            return None

    def put(self, key: object, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def normalize_query(q: str) -> str:
    return " ".join(q.lower().split())


def rrf(rankings: list[tuple[list[str], float]], k: int) -> dict[str, float]:
    """Reciprocal rank fusion: score(d) = sum over lists of weight / (k + rank)."""
    scores: dict[str, float] = {}
    for ids, weight in rankings:
        if weight == 0:
            continue  # a list turned off must not add its own ids (at score 0) either
        for rank, cid in enumerate(ids, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (k + rank)
    return scores


class Retriever:
    def __init__(
        self,
        index: Index,
        config: RetrievalConfig | None = None,
        *,
        query_cache_size: int = 2048,
        result_cache_size: int = 1024,
        reranker: Reranker | None = None,
        rerank_pool: int = 3,
    ) -> None:
        self.index = index
        self.config = config or RetrievalConfig()
        self.reranker = reranker
        self.rerank_pool = rerank_pool  # the reranker sees k * rerank_pool candidates
        self.query_vectors: LRU[np.ndarray] = LRU(query_cache_size)  # layer 1: query embeddings
        self.results: LRU[tuple[Hit, ...]] = LRU(result_cache_size)  # layer 2: per index generation
        # (path, version, hash) -> language, for notes synced before sync stored it
        self.note_languages: LRU[str] = LRU(8192)

    def generation(self) -> str:
        """Changes whenever the index changes, so cached results never outlive their data."""
        kw = self.index.keywords
        kw_gen = kw.generation if kw is not None else 0
        return f"{self.index.registry.generation()}:{kw_gen}"

    def embed_query(self, query: str) -> np.ndarray:
        key = (self.index.model, normalize_query(query))
        vec = self.query_vectors.get(key)
        if vec is None:
            vec = self.index.embedder.embed_query(query)
            self.query_vectors.put(key, vec)
        return vec

    def search(
        self, query: str, k: int = 8, *, scope: Scope | None = None, mode: Mode = "hybrid",
        use_cache: bool = True, timings: dict[str, float] | None = None,
    ) -> list[Hit]:
        """`timings`, if given, receives the rerank stage's milliseconds."""
        scope = scope if scope is not None else Scope()
        key = (normalize_query(query), k, scope.key(), mode, self.generation(),
               self.reranker.name if self.reranker is not None else None)
        if use_cache:
            cached = self.results.get(key)
            if cached is not None:
                return list(cached)
        hits = self._search(query, k, scope, mode, timings)
        if use_cache:
            self.results.put(key, tuple(hits))
        return hits

    def _search(self, query: str, k: int, scope: Scope, mode: Mode,
                timings: dict[str, float] | None = None) -> list[Hit]:
        cfg = self.config
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}: use one of {', '.join(MODES)}")
        if mode == "lexical" and self.index.keywords is None:
            raise ValueError("lexical retrieval needs a keyword index")
        if scope.frontmatter:
            paths = set(self.index.registry.paths_where(dict(scope.frontmatter)))
            if scope.notes:
                paths &= set(scope.notes)
            if not paths:
                return []
            scope = replace(scope, notes=tuple(sorted(paths)), frontmatter=())
        n = max(cfg.candidates, k * 3)
        scores: dict[str, float] = {}
        rankings: list[tuple[list[str], float]] = []
        origin: dict[str, set[str]] = {}
        keywords = self.index.keywords if mode in ("lexical", "hybrid") else None
        pending: Future[list[tuple[str, float]]] | None = None
        if mode in ("dense", "hybrid"):
            vector = self.embed_query(query)
            if keywords is not None and cfg.concurrent:
                # The vector store's query (Rust or faiss) and the keyword search (Kiwi, numpy)
                # both release the GIL for much of their work: side by side they take about the
                # longer of the two on 2 cores, not the sum (docs/benchmarks.md).
                pending = _searches().submit(self.index.vectors.query, vector, n, scope)
            else:
                dense = self.index.vectors.query(vector, n, scope)
        lexical = keywords.search(query, n, scope) if keywords is not None else None
        if mode in ("dense", "hybrid"):
            if pending is not None:
                dense = pending.result()
            rankings.append(([cid for cid, _ in dense], cfg.dense_weight))
            for cid, _ in dense:
                origin.setdefault(cid, set()).add("dense")
            if mode == "dense":
                scores = dict(dense)
        if lexical is not None:
            rankings.append(([cid for cid, _ in lexical], cfg.lexical_weight))
            for cid, _ in lexical:
                origin.setdefault(cid, set()).add("lexical")
            if mode == "lexical":
                scores = dict(lexical)
        # Every candidate's record (but its text) and note, read once: the fusion rule needs the
        # best keyword hit's note, and the hits below need the rest. Only the hits' text is read.
        records = self.index.registry.chunks_by_id(list(origin), text=False)
        notes = self.index.registry.note_info({r.note_path for r in records.values()})
        if mode == "hybrid":
            rrf_k = cfg.rrf_k
            same = None
            lang = question_language(query)
            if cfg.adaptive and len(rankings) == 2 and rankings[1][0]:
                same = self._same_language(lang, rankings[1][0][0], records, notes)
            if same:
                rankings = [(rankings[0][0], cfg.trusted_dense_weight),
                            (rankings[1][0], cfg.trusted_lexical_weight)]
                rrf_k = cfg.trusted_rrf_k
            elif same is False:
                rankings = [rankings[0], (rankings[1][0], cfg.foreign_lexical_weight)]
            scores = rrf(rankings, rrf_k)
            if same and cfg.impute_foreign:
                self._impute_foreign(lang, rankings, rrf_k, records, notes, scores)
        ranked = sorted(scores, key=lambda c: scores[c], reverse=True)
        # The decision on what may be shown (engine/provenance.py): the stores filtered by each
        # chunk's own note; this also checks every note embedded into it.
        shown = visible(scope, records.values(), self.index.registry, notes)
        want = k * self.rerank_pool if self.reranker is not None else k
        hits: list[Hit] = []
        per_note: dict[str, int] = {}
        for cid in ranked:
            rec = records.get(cid)
            if rec is None:  # deleted between the store lookup and now
                continue
            info = notes.get(rec.note_path)
            if info is None or cid not in shown:
                continue
            if per_note.get(rec.note_path, 0) >= cfg.per_note:
                continue
            per_note[rec.note_path] = per_note.get(rec.note_path, 0) + 1
            hits.append(Hit(cid, rec.note_path, info.title, rec.heading_path, rec.page, rec.text,
                            float(scores[cid]), rec.ordinal, tuple(sorted(origin.get(cid, ()))),
                            sources_of(rec, info)))
            if len(hits) >= want:
                break
        if hits:
            texts = self.index.registry.chunk_texts([h.chunk_id for h in hits])
            hits = [replace(h, text=texts[h.chunk_id]) for h in hits if h.chunk_id in texts]
        if self.reranker is not None and hits:
            t = time.perf_counter()
            hits = self.reranker(query, hits)[:k]
            if timings is not None:
                timings["rerank"] = round((time.perf_counter() - t) * 1000, 2)
        if cfg.neighbours:
            hits = self._expand(hits, scope)
        return hits

    def _same_language(self, lang: str, top_keyword_chunk: str, records: dict[str, ChunkRecord],
                       notes: dict[str, NoteInfo]) -> bool | None:
        """Is the note of the best keyword hit written in the question's language? None when
        the chunk is gone (deleted since the search)."""
        top = records.get(top_keyword_chunk)
        info = notes.get(top.note_path) if top is not None else None
        if top is None or info is None:
            return None
        return self.languages_of_notes([info])[info.path] == lang

    def _impute_foreign(self, lang: str, rankings: list[tuple[list[str], float]], rrf_k: int,
                        records: dict[str, ChunkRecord], notes: dict[str, NoteInfo],
                        scores: dict[str, float]) -> None:
        (dense, dense_w), (lexical, lexical_w) = rankings
        keyword_ids = set(lexical)
        only_dense = [(rank, records[cid]) for rank, cid in enumerate(dense, start=1)
                      if cid not in keyword_ids and cid in records]
        langs = self.languages_of_notes([notes[r.note_path] for _, r in only_dense if r.note_path in notes])
        for rank, rec in only_dense:
            if langs.get(rec.note_path, lang) != lang:
                scores[rec.id] = (dense_w + self.config.impute_foreign * lexical_w) / (rrf_k + rank)

    def languages_of_notes(self, infos: list[NoteInfo]) -> dict[str, str]:
        """Each note's language: the one sync stored, or for a note stored before sync did
        (NULL until the next sync fills it), `language_of_note`."""
        out = {i.path: i.language for i in infos if i.language is not None}
        if len(out) < len(infos):
            out.update(self._languages({i.path: (i.path, i.version, i.content_hash)
                                        for i in infos if i.language is None}))
        return out

    def language_of_note(self, path: str, version: int, content_hash: str = "") -> str:
        """'ko' or 'en' for a whole note. A single chunk misleads: Korean notes hold chunks that
        are mostly English (code, UI names), and those made English questions trust keyword
        hits in them (docs/benchmarks.md, "Fusion"). Cached per note version and content (a
        note deleted and written again starts again at version 1)."""
        return self._languages({path: (path, version, content_hash)})[path]

    def _languages(self, keys: dict[str, tuple[str, int, str]]) -> dict[str, str]:
        out: dict[str, str] = {}
        todo: dict[str, tuple[str, int, str]] = {}
        for path, key in keys.items():
            lang = self.note_languages.get(key)
            if lang is None:
                todo[path] = key
            else:
                out[path] = lang
        if todo:  # the uncached notes' chunks in one query
            chunks = self.index.registry.chunks_of_notes(list(todo))
            for path, key in todo.items():
                out[path] = language_of_chunks(chunks.get(path, []))
                self.note_languages.put(key, out[path])
        return out

    def _expand(self, hits: list[Hit], scope: Scope) -> list[Hit]:
        """Widen each hit with its neighbouring chunks of the same note (same section order),
        those the scope may see: a neighbour may hold another note's embedded text."""
        registry = self.index.registry
        by_note = registry.chunks_of_notes({h.note_path for h in hits})
        notes: dict[str, NoteInfo] = {}
        shown = visible(scope, (c for cs in by_note.values() for c in cs), registry, notes)
        out = []
        for h in hits:
            lo, hi = h.ordinal - self.config.neighbours, h.ordinal + self.config.neighbours
            around = [c for c in by_note.get(h.note_path, [])
                      if lo <= c.ordinal <= hi and c.id in shown]
            if not around:
                out.append(h)
                continue
            provenance = {p for c in around for p in sources_of(c, notes.get(h.note_path))}
            out.append(replace(h, text="\n\n".join(c.text for c in around),
                               provenance=tuple(sorted(provenance))))
        return out
