"""The semantic answer cache on its own: similarity threshold, TTL, size bound, and two
instances (two processes) sharing one registry."""

from __future__ import annotations

import numpy as np
import pytest

from engine.answer_cache import AnswerCache
from engine.models import ChunkRecord, ParsedNote
from engine.registry import Registry


def _unit(seed: int, dim: int = 16) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def registry(registry_url: str) -> Registry:
    """Every test here runs on SQLite and on PostgreSQL."""
    reg = Registry(registry_url)
    note = ParsedNote(path="a.md", kind="md", title="a", body="x")
    chunk = ChunkRecord("c1", "a.md", 0, "x", "h", (), None, (0, 1), 1)
    reg.write_note(note, content_hash="h1", size=1, mtime_ns=1, embed_model="m", chunks=[chunk])
    return reg


def test_threshold_scope_and_stamps(registry: Registry) -> None:
    cache = AnswerCache(registry, threshold=0.9)
    q = _unit(1)
    cache.store("scope1", "q?", q, {"answer": "A"}, ["a.md"])
    assert cache.lookup("scope1", q).answer == {"answer": "A"}
    assert cache.lookup("scope2", q) is None
    assert cache.lookup("scope1", _unit(2)) is None  # a different question
    near = q + 0.05 * _unit(3)
    assert cache.lookup("scope1", near / np.linalg.norm(near)) is not None

    other = AnswerCache(registry, threshold=0.9)  # another process on the same registry
    assert other.lookup("scope1", q) is not None
    note = ParsedNote(path="a.md", kind="md", title="a", body="y")
    registry.write_note(note, content_hash="h2", size=1, mtime_ns=2, embed_model="m", chunks=[])
    assert other.lookup("scope1", q) is None  # the note changed: stale, dropped
    assert cache.lookup("scope1", q) is None  # ... for every process


def test_ttl_and_size_bound(registry: Registry) -> None:
    cache = AnswerCache(registry, threshold=0.9, ttl_seconds=-1)
    cache.store("s", "q?", _unit(1), {"answer": "A"}, ["a.md"])
    assert cache.lookup("s", _unit(1)) is None  # expired at once

    small = AnswerCache(registry, threshold=0.9, max_entries=3)
    small.clear()
    for i in range(5):
        small.store("s", f"q{i}", _unit(10 + i), {"answer": i}, ["a.md"])
    assert small.lookup("s", _unit(10)) is None and small.lookup("s", _unit(11)) is None
    assert small.lookup("s", _unit(14)).answer == {"answer": 4}


def test_source_vanished_while_answering_is_not_cached(registry: Registry) -> None:
    cache = AnswerCache(registry)
    cache.store("s", "q?", _unit(1), {"answer": "A"}, ["a.md", "gone.md"])
    assert cache.lookup("s", _unit(1)) is None


def test_mirror_grows_and_forgets_without_mixing_rows(registry: Registry) -> None:
    """Past the mirror's first capacity and through evictions in the middle, every vector still
    maps to its own answer."""
    cache = AnswerCache(registry, threshold=0.99, max_entries=30)
    for i in range(40):  # 16 -> 32 -> 64 rows of capacity; the first 10 evicted
        cache.store("s", f"q{i}", _unit(100 + i), {"answer": i}, ["a.md"])
        assert cache.lookup("s", _unit(100 + i)).answer == {"answer": i}
    assert all(cache.lookup("s", _unit(100 + i)) is None for i in range(10))
    assert [cache.lookup("s", _unit(100 + i)).answer["answer"] for i in range(10, 40)] == list(range(10, 40))
