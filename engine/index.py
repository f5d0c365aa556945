"""The index as one object: registry, vector store, keyword index and embedder.

Sync writes through it, retrieval reads from it. Every write goes registry-last for additions
and registry-first for deletions' bookkeeping, and `repair()` makes the derived stores equal to
the registry again after a crash."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.embedders import Embedder
from engine.models import ChunkRecord
from engine.registry import NoteInfo, Registry
from engine.stores import KeywordIndex, VectorStore
from engine.vectors import ChromaVectorStore, VectorMeta

log = logging.getLogger(__name__)


@dataclass
class RepairReport:
    vectors_removed: int = 0
    vectors_added: int = 0
    keywords_removed: int = 0
    keywords_added: int = 0
    embedded: int = 0
    details: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any((self.vectors_removed, self.vectors_added, self.keywords_removed, self.keywords_added))


class Index:
    def __init__(
        self,
        registry: Registry,
        vectors: VectorStore,
        embedder: Embedder,
        keywords: KeywordIndex | None = None,
    ) -> None:
        self.registry = registry
        self.vectors = vectors
        self.embedder = embedder
        self.keywords = keywords

    @classmethod
    def open(
        cls,
        *,
        data_dir: Path,
        registry_url: str,
        embedder: Embedder,
        chroma_url: str = "",
        keywords: KeywordIndex | None = None,
        registry: Registry | None = None,
    ) -> Index:
        """`registry`: one already open on `registry_url`, to use instead of opening another."""
        registry = registry if registry is not None else Registry(registry_url)
        vectors = ChromaVectorStore(embedder.name, path=data_dir / "chroma", url=chroma_url,
                                    registry=registry)
        return cls(registry, vectors, embedder, keywords)

    @property
    def model(self) -> str:
        return self.embedder.name

    # ------------------------------------------------------------- embedding
    def vectors_for(self, texts_by_hash: dict[str, str]) -> tuple[dict[str, np.ndarray], int]:
        """Vectors for these texts, from the cache where possible. Returns (vectors, n embedded).
        New vectors are stored in the cache before they are returned, so a crash after this
        point never costs the embedding again."""
        found = self.registry.cached_vectors(self.model, texts_by_hash)
        missing = [h for h in texts_by_hash if h not in found]
        if missing:
            # Texts differ by hash yet can be the same text to embed (chunk.vector_text drops
            # link targets: every obsidian-hub footer is one text): each is embedded once.
            unique = list(dict.fromkeys(texts_by_hash[h] for h in missing))
            new = self.embedder.embed_passages(unique)
            row = {text: i for i, text in enumerate(unique)}
            fresh = {h: new[row[texts_by_hash[h]]] for h in missing}
            self.registry.store_vectors(self.model, fresh)
            found.update(fresh)
        return found, len(unique) if missing else 0

    # ---------------------------------------------------------------- writes
    def put_chunks(
        self,
        chunks: list[ChunkRecord],
        notes: dict[str, NoteInfo],
        vectors: dict[str, np.ndarray],
    ) -> None:
        """Upsert chunks into the vector store and the keyword index (idempotent)."""
        self._put_vectors(chunks, notes, vectors)
        if chunks and self.keywords is not None:
            self.keywords.upsert_chunks(chunks, notes)

    def _put_vectors(
        self, chunks: list[ChunkRecord], notes: dict[str, NoteInfo], vectors: dict[str, np.ndarray]
    ) -> None:
        if not chunks:
            return
        metas = [VectorMeta.of(c, notes[c.note_path]) for c in chunks]
        matrix = np.vstack([vectors[c.text_hash] for c in chunks])
        self.vectors.upsert([c.id for c in chunks], matrix, metas)

    def drop_chunks(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        if not ids:
            return
        self.vectors.delete(ids)
        if self.keywords is not None:
            self.keywords.delete(ids)

    def settled(self) -> None:
        """A sync of this process finished: a store that follows the registry for other
        processes' writes (the binary one) need not diff for these."""
        self.vectors.settle(self.registry.generation())

    def close(self) -> None:
        """Close the three stores (their files, connections and threads)."""
        if self.keywords is not None:
            self.keywords.close()
        self.vectors.close()
        self.registry.close()

    # ---------------------------------------------------------------- repair
    def in_step(self) -> bool:
        """Cheap check: do the stores hold as many entries as the registry has chunks?"""
        n = self.registry.counts()["chunks"]
        if self.vectors.count() != n:
            return False
        return self.keywords is None or len(self.keywords) == n

    def repair(self) -> RepairReport:
        """Make the vector store and keyword index hold exactly the registry's chunks."""
        report = RepairReport()
        want = self.registry.chunk_ids()
        have = self.vectors.all_ids()
        extra, missing = have - want, want - have
        if extra:
            self.vectors.delete(extra)
            report.vectors_removed = len(extra)
        kw_missing: set[str] = set()
        if self.keywords is not None:
            kw_have = self.keywords.ids()
            kw_extra = kw_have - want
            if kw_extra:
                self.keywords.delete(kw_extra)
                report.keywords_removed = len(kw_extra)
            kw_missing = want - kw_have
        todo = missing | kw_missing
        if todo:
            records = list(self.registry.chunks_by_id(todo).values())
            notes = self.registry.note_info({c.note_path for c in records})
            texts = {c.text_hash: c.vector_text for c in records if c.id in missing}
            vecs, report.embedded = self.vectors_for(texts)
            vec_records = [c for c in records if c.id in missing]
            self._put_vectors(vec_records, notes, vecs)
            report.vectors_added = len(vec_records)
            kw_records = [c for c in records if c.id in kw_missing]
            if kw_records and self.keywords is not None:
                self.keywords.upsert_chunks(kw_records, notes)
                report.keywords_added = len(kw_records)
        return report

    def status(self) -> dict[str, Any]:
        counts = self.registry.counts()
        out: dict[str, Any] = {
            "notes": counts["notes"],
            "chunks": counts["chunks"],
            "vectors": self.vectors.count(),
            "embedding_model": self.model,
            "cached_embeddings": counts["embeddings"],
        }
        if self.keywords is not None:
            out["keyword_entries"] = len(self.keywords)
        return out
