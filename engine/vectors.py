"""The vector store: ChromaDB, embedded in the data dir or a Chroma server.

Embeddings are always passed in explicitly: Chroma's default embedding function would try to
download a model. One collection per embedding model, so a model change never mixes spaces."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from engine.models import ChunkRecord, Scope, filter_tags, folder_ancestors
from engine.names import name_key

if TYPE_CHECKING:
    from engine.registry import NoteInfo, Registry

log = logging.getLogger(__name__)

_BATCH = 1000  # well under Chroma's max batch size on every backend


@dataclass(frozen=True)
class VectorMeta:
    """What each vector carries so that queries can be scoped without the registry: only what
    filters read (every metadata key is rows in Chroma's SQLite; the title, ordinal and page
    cost ~10% of a cold index's upserts and nothing read them)."""

    path: str
    tags: tuple[str, ...]
    private: bool

    @classmethod
    def of(cls, chunk: ChunkRecord, note: NoteInfo) -> VectorMeta:
        return cls(chunk.note_path, filter_tags(note), note.private)

    def to_chroma(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"path": self.path, "private": self.private}
        # Lists let `$contains` filter by any ancestor folder or any tag (prefix of nested tags);
        # Chroma rejects empty lists, so absent means none.
        folders = [name_key(f) for f in folder_ancestors(self.path)]
        if folders:
            meta["folders"] = folders
        tags = _tag_prefixes(self.tags)
        if tags:
            meta["tags"] = tags
        return meta


def _tag_prefixes(tags: Iterable[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        parts = name_key(tag.lstrip("#")).split("/")
        for i in range(len(parts)):
            p = "/".join(parts[: i + 1])
            if p and p not in out:
                out.append(p)
    return out


def collection_name(model: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", model).strip("-._") or "default"
    return f"vaultbot-chunks-{slug}"[:60]


def scope_where(scope: Scope | None) -> dict[str, Any] | None:
    """Translate a Scope into a Chroma `where` clause (None: no filter)."""
    if scope is None:
        return None
    clauses: list[dict[str, Any]] = []
    if not scope.include_private:
        clauses.append({"private": False})
    if scope.notes:
        clauses.append({"path": {"$in": list(scope.notes)}})
    if scope.folders:
        folders = [name_key(f.strip("/")) for f in scope.folders]
        if "" not in folders:
            ors = [{"folders": {"$contains": f}} for f in folders]
            clauses.append(ors[0] if len(ors) == 1 else {"$or": ors})
    for f in scope.exclude_folders:
        clauses.append({"folders": {"$not_contains": name_key(f.strip("/"))}})
    if scope.tags:
        ors = [{"tags": {"$contains": name_key(tag.lstrip("#"))}} for tag in scope.tags]
        clauses.append(ors[0] if len(ors) == 1 else {"$or": ors})
    for tag in scope.exclude_tags:
        clauses.append({"tags": {"$not_contains": name_key(tag.lstrip("#"))}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class ChromaVectorStore:
    """engine.stores.VectorStore over a Chroma collection (the default `VAULTBOT_INDEX=chroma`)."""

    def __init__(self, model: str, *, path: Path | None = None, url: str = "",
                 registry: Registry | None = None) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        if url:
            u = urlparse(url)
            self.client = chromadb.HttpClient(
                host=u.hostname or "127.0.0.1",
                port=u.port or (443 if u.scheme == "https" else 8000),
                ssl=u.scheme == "https",
                settings=chroma_settings,
            )
        elif path is not None:
            path.mkdir(parents=True, exist_ok=True)
            self.client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
        else:
            self.client = chromadb.EphemeralClient(settings=chroma_settings)
        self.model = model
        # Where given (Index.open always does), scopes are judged by the registry (the truth,
        # cached per generation) on unfiltered neighbours; without it (a store on its own),
        # by Chroma's own `where` filter.
        self.registry = registry
        self.collection = self.client.get_or_create_collection(
            collection_name(model),
            embedding_function=None,
            metadata={"hnsw:space": "cosine", "embed_model": model},
        )

    def count(self) -> int:
        return self.collection.count()

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metas: Sequence[VectorMeta]) -> None:
        for i in range(0, len(ids), _BATCH):
            self.collection.upsert(
                ids=list(ids[i : i + _BATCH]),
                embeddings=np.asarray(vectors[i : i + _BATCH], dtype=np.float32),
                metadatas=[m.to_chroma() for m in metas[i : i + _BATCH]],
            )

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        for i in range(0, len(ids), _BATCH):
            self.collection.delete(ids=ids[i : i + _BATCH])

    def all_ids(self) -> set[str]:
        out: set[str] = set()
        offset = 0
        while True:
            got = self.collection.get(include=[], limit=5000, offset=offset)
            out.update(got["ids"])
            if len(got["ids"]) < 5000:
                return out
            offset += 5000

    def query(self, vector: np.ndarray, k: int, scope: Scope | None = None) -> list[tuple[str, float]]:
        """Nearest chunk ids with cosine similarity (1 - distance), best first."""
        # No count() first: Chroma >= 1 returns what it has when asked for more, and counting
        # cost ~2 ms per query at 100k chunks.
        if k <= 0:
            return []
        where = scope_where(scope)
        vec = [np.asarray(vector, dtype=np.float32)]
        if where is not None and self.registry is not None:
            # Chroma evaluates a `where` over the whole collection before searching (~300 ms at
            # 100k chunks for `private` alone, 80-190 ms for a folder or tag). Instead: a
            # margin more nearest, unfiltered and without Chroma's metadata (~4 ms more to
            # return at 100k), judged by the registry (cached per generation) with the rule
            # that decides what may be shown anyway. Private notes are rare, so their margin
            # is small and never worth the full filter; a folder or tag scope that leaves too
            # few falls back to Chroma's filter.
            private_only = where == {"private": False}
            n = 2 * k + 10 if private_only else 4 * k + 20
            res = self.collection.query(query_embeddings=vec, n_results=n, include=["distances"])
            ids = res["ids"][0]
            allowed = self._allowed(ids, scope or Scope())
            pairs = [(i, 1.0 - float(d)) for i, d in zip(ids, res["distances"][0], strict=True)
                     if i in allowed]
            if private_only or len(pairs) >= k or len(ids) < n:
                return pairs[:k]
        res = self.collection.query(query_embeddings=vec, n_results=k, where=where,
                                    include=["distances"])
        return [(i, 1.0 - float(d)) for i, d in zip(res["ids"][0], res["distances"][0], strict=True)]

    def _allowed(self, ids: list[str], scope: Scope) -> set[str]:
        """The ids whose chunk the registry holds and whose note `scope` may show (the note
        rule of engine/provenance.py): a chunk the registry does not know (deleted, or not
        committed yet) is left out."""
        from engine.provenance import note_visible

        assert self.registry is not None
        chunks = self.registry.chunks_by_id(ids, text=False)
        notes = self.registry.note_info({c.note_path for c in chunks.values()})
        return {i for i, c in chunks.items() if note_visible(scope, notes.get(c.note_path))}

    def settle(self, generation: int) -> None:
        """Nothing to do: every process reads the same Chroma collection, never a copy."""

    def close(self) -> None:
        # Chroma's client holds its SQLite files and a thread pool until closed.
        self.client.close()

    def drop(self) -> None:
        self.client.delete_collection(self.collection.name)


# The name this class had before engine.stores.VectorStore (the protocol) existed; the sync
# script tests/test_crash.py runs still imports it.
VectorStore = ChromaVectorStore
