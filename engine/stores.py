"""What `Index` and `Retriever` need from the derived stores, as protocols.

Two vector stores implement `VectorStore` (engine/vectors.py's Chroma store, engine/binary.py's
binary store) and one keyword index implements `KeywordIndex` (engine/lexical.py), structurally:
none of them inherits from these. They are `runtime_checkable`, so tests/test_stores.py can check
that each real store has every member (names only: signatures are mypy's part)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: importing the stores here would load Chroma and numpy
    import numpy as np

    from engine.models import ChunkRecord, Scope
    from engine.registry import NoteInfo
    from engine.vectors import VectorMeta


@runtime_checkable
class VectorStore(Protocol):
    """Chunk vectors with the metadata scopes filter on; ids are the registry's chunk ids."""

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metas: Sequence[VectorMeta]) -> None:
        """Add or replace (idempotent: a repeated sync batch writes the same rows again)."""

    def delete(self, ids: Iterable[str]) -> None:
        """Remove these ids; unknown ones are ignored."""

    def count(self) -> int: ...

    def all_ids(self) -> set[str]: ...

    def query(self, vector: np.ndarray, k: int, scope: Scope | None = None) -> list[tuple[str, float]]:
        """The k nearest chunk ids the scope allows, with cosine similarity, best first."""

    def settle(self, generation: int) -> None:
        """A sync of this process finished at registry `generation`: a store that follows the
        registry for other processes' writes need not diff for these (a no-op for the rest)."""

    def close(self) -> None:
        """Let go of files and connections (a test or a CLI run builds many)."""


@runtime_checkable
class KeywordIndex(Protocol):
    """BM25 over chunk text, scoped like the vector store."""

    @property
    def generation(self) -> int:
        """Changes on every write, in any process (retrieval's result cache keys on it)."""

    def upsert_chunks(self, chunks: Sequence[ChunkRecord], notes: Mapping[str, NoteInfo]) -> None:
        """Add or replace these chunks, each indexed with its note's title, tags and privacy."""

    def delete(self, chunk_ids: Iterable[str]) -> int:
        """Remove these chunks; unknown ids are ignored. Returns how many were removed."""

    def ids(self) -> set[str]: ...

    def __len__(self) -> int: ...

    def search(self, query: str, k: int = 20, scope: Scope | None = None) -> list[tuple[str, float]]:
        """Chunk ids and BM25 scores, best first; only chunks `scope` allows are considered."""

    def close(self) -> None:
        """Release the file (the eval harness builds and drops many indexes in one process)."""
