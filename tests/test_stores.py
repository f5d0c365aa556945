"""The stores against their protocols (engine/stores.py): each real store has every member the
index and retriever use, and a small upsert/search/delete round trip through the protocol gives
the same answers on each, a private chunk never among them unless the scope allows it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.binary import BinaryVectorStore
from engine.lexical import LexicalIndex
from engine.models import ChunkRecord, Scope
from engine.registry import NoteInfo
from engine.stores import KeywordIndex, VectorStore
from engine.vectors import ChromaVectorStore, VectorMeta

DIM = 64
PUBLIC, PRIVATE = Scope(), Scope(include_private=True)


@pytest.fixture(params=["chroma", "binary"])
def vector_store(request: pytest.FixtureRequest, tmp_path: Path) -> VectorStore:
    if request.param == "chroma":
        return ChromaVectorStore("hashing-64", path=tmp_path / "chroma")
    return BinaryVectorStore("hashing-64", DIM, path=tmp_path / "binary")


def test_each_vector_store_is_a_vector_store(vector_store: VectorStore) -> None:
    assert isinstance(vector_store, VectorStore)


def test_lexical_index_is_a_keyword_index(tmp_path: Path) -> None:
    with LexicalIndex(tmp_path / "keywords.sqlite3") as keywords:
        assert isinstance(keywords, KeywordIndex)
    assert isinstance(LexicalIndex(None), KeywordIndex)


def test_a_store_missing_a_member_is_not_one() -> None:
    """The check has teeth: a Chroma-like store without `settle` (the probe this replaced)."""

    class NoSettle:
        def upsert(self, ids: object, vectors: object, metas: object) -> None: ...
        def delete(self, ids: object) -> None: ...
        def count(self) -> int: return 0
        def all_ids(self) -> set[str]: return set()
        def query(self, vector: object, k: int, scope: object = None) -> list[tuple[str, float]]:
            return []

    assert not isinstance(NoSettle(), VectorStore)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x)).astype(np.float32)


def _vector_round_trip(store: VectorStore) -> Iterator[object]:
    """What a store answers, step by step, used only through the protocol."""
    rng = np.random.default_rng(7)
    q = _unit(rng.standard_normal(DIM))
    noise = _unit(rng.standard_normal(DIM))
    vectors = np.vstack([_unit(q + 0.3 * noise), q, _unit(-q + 0.3 * noise)])
    metas = [VectorMeta("Work/near.md", ("project",), False),
             VectorMeta("Diary/secret.md", (), True),  # the nearest of all: scope must drop it
             VectorMeta("far.md", (), False)]
    store.upsert(["near", "secret", "far"], vectors, metas)
    store.upsert(["near"], vectors[:1], metas[:1])  # idempotent: a repeated batch
    yield store.count(), sorted(store.all_ids())
    yield [cid for cid, _ in store.query(q, 3, PUBLIC)]
    yield [cid for cid, _ in store.query(q, 3, PRIVATE)]
    yield [cid for cid, _ in store.query(q, 3, Scope(folders=("Work",)))]
    yield [cid for cid, _ in store.query(q, 3, Scope(tags=("project",)))]
    store.delete(["near", "unknown"])
    store.settle(1)
    yield store.count(), sorted(store.all_ids())
    yield [cid for cid, _ in store.query(q, 3, PUBLIC)]
    yield [cid for cid, _ in store.query(q, 0, PUBLIC)]


VECTOR_TRACE = [
    (3, ["far", "near", "secret"]),
    ["near", "far"],
    ["secret", "near", "far"],
    ["near"],
    ["near"],
    (2, ["far", "secret"]),
    ["far"],
    [],
]


def test_vector_round_trip_through_the_protocol(vector_store: VectorStore) -> None:
    assert list(_vector_round_trip(vector_store)) == VECTOR_TRACE


def _chunk(cid: str, path: str, text: str) -> ChunkRecord:
    return ChunkRecord(cid, path, 0, text, f"h-{cid}", (), None, (0, len(text)), 1)


def _note(path: str, private: bool = False, tags: tuple[str, ...] = ()) -> NoteInfo:
    return NoteInfo(path, path.rsplit("/", 1)[-1].removesuffix(".md"), tags, (), private, "md",
                    {}, 1)


@pytest.mark.parametrize("persisted", [True, False])
def test_keyword_round_trip_through_the_protocol(tmp_path: Path, persisted: bool) -> None:
    keywords: KeywordIndex = LexicalIndex(tmp_path / "keywords.sqlite3" if persisted else None)
    notes = {n.path: n for n in (_note("Work/bread.md", tags=("project",)),
                                 _note("Diary/secret.md", private=True), _note("other.md"))}
    chunks = [_chunk("bread", "Work/bread.md", "sourdough starter and flour"),
              _chunk("secret", "Diary/secret.md", "sourdough sourdough sourdough confession"),
              _chunk("other", "other.md", "a walk in the park")]
    before = keywords.generation
    keywords.upsert_chunks(chunks, notes)
    keywords.upsert_chunks(chunks[:1], notes)  # idempotent
    assert keywords.generation != before
    assert len(keywords) == 3 and keywords.ids() == {"bread", "secret", "other"}
    assert [cid for cid, _ in keywords.search("sourdough", 10, PUBLIC)] == ["bread"]
    assert [cid for cid, _ in keywords.search("sourdough", 10, PRIVATE)] == ["secret", "bread"]
    assert [cid for cid, _ in keywords.search("sourdough", 10, Scope(tags=("project",)))] == ["bread"]
    assert [cid for cid, _ in keywords.search("park", 10, Scope(folders=("Work",)))] == []
    # The note's title is indexed with each chunk: a search for a note's name finds it.
    assert [cid for cid, _ in keywords.search("bread", 10, PUBLIC)] == ["bread"]
    before = keywords.generation
    assert keywords.delete(["bread", "unknown"]) == 1
    assert keywords.generation != before
    assert keywords.ids() == {"secret", "other"} and len(keywords) == 2
    assert keywords.search("sourdough", 10, PUBLIC) == []
    keywords.close()
