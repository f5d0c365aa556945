"""The registry's per-generation read cache (engine/readcache.py) and the Chroma store's privacy
check through it: what another process writes is seen on the very next read, a note made
private is hidden at once, on SQLite and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.models import ChunkRecord, ParsedNote, Scope
from engine.readcache import GenerationCache
from engine.registry import NoteWrite, Registry
from engine.vectors import ChromaVectorStore, VectorMeta

DIM = 16


def _write(path: str, texts: list[str], h: str, *, private: bool = False,
           heading: str = "") -> NoteWrite:
    note = ParsedNote(path=path, kind="md", title=path[:-3], body=" ".join(texts),
                      frontmatter={"private": True} if private else {})
    chunks = [ChunkRecord(f"{path}#{i}", path, i, t, f"h-{t}", (heading,) if heading else (),
                          None, (0, len(t)), 1) for i, t in enumerate(texts)]
    return NoteWrite(note, h, 1, 1, chunks)


def test_another_process_write_is_read_at_once(registry_url: str) -> None:
    serve, sync = Registry(registry_url), Registry(registry_url)
    try:
        sync.write_notes([_write("a.md", ["one"], "h1"), _write("b.md", ["two"], "h2")], "m")
        assert not serve.note_info(["a.md"])["a.md"].private
        assert serve.chunks_by_id(["a.md#0"], text=False)["a.md#0"].heading_path == ()
        misses = serve._note_cache.misses
        assert not serve.note_info(["a.md"])["a.md"].private  # the cache answers ...
        assert serve._note_cache.misses == misses  # ... without a read

        # The other process makes a.md private and gives its chunk a heading, deletes b.md.
        sync.write_notes([_write("a.md", ["one"], "h3", private=True, heading="Secret")], "m")
        sync.delete_notes(["b.md"])
        assert serve.note_info(["a.md", "b.md"])["a.md"].private
        assert "b.md" not in serve.note_info(["b.md"])
        assert serve.chunks_by_id(["a.md#0"], text=False)["a.md#0"].heading_path == ("Secret",)
    finally:
        serve.close()
        sync.close()


def test_warm_reads_every_note_once(registry_url: str) -> None:
    reg = Registry(registry_url)
    try:
        reg.write_notes([_write(f"n{i}.md", [f"t{i}"], f"h{i}") for i in range(5)], "m")
        assert reg.warm() == 5
        misses = reg._note_cache.misses
        assert len(reg.note_info([f"n{i}.md" for i in range(5)])) == 5
        assert reg._note_cache.misses == misses
        reg.write_notes([_write("n0.md", ["changed"], "hx", private=True)], "m")
        assert reg.note_info(["n0.md"])["n0.md"].private  # a write empties it
        reg.forget_cached()
        reg._note_cache.limit = 4  # more notes than fit: none are read in
        assert reg.warm() == 0 and reg._note_cache._data == {}
    finally:
        reg.close()


def test_cache_is_bounded_and_keyed_by_generation() -> None:
    cache: GenerationCache[int] = GenerationCache(limit=3)
    reads: list[list[str]] = []

    def load(keys: list[str]) -> dict[str, int]:
        reads.append(keys)
        return {k: len(k) for k in keys if k != "gone"}

    assert cache.get_many(1, ["a", "bb", "gone"], load) == {"a": 1, "bb": 2}
    assert cache.get_many(1, ["a", "bb"], load) == {"a": 1, "bb": 2}
    assert reads == [["a", "bb", "gone"]]
    assert cache.get_many(2, ["a"], load) == {"a": 1}  # a new generation reads again
    assert reads[-1] == ["a"]
    cache.get_many(2, ["ccc", "dddd", "eeeee"], load)  # over the limit: emptied, then filled
    assert len(cache._data) <= 3


def _chroma_with_registry(tmp_path: Path, registry: Registry) -> ChromaVectorStore:
    store = ChromaVectorStore("test-16", path=tmp_path / "chroma", registry=registry)
    rng = np.random.default_rng(1)
    q = rng.standard_normal(DIM).astype(np.float32)
    vecs = np.vstack([q + 0.01 * rng.standard_normal(DIM).astype(np.float32) * i
                      for i in range(1, 5)]).astype(np.float32)
    # Chroma's own metadata calls every chunk public: the registry decides.
    store.upsert(["pub.md#0", "sec.md#0", "ghost#0", "pub2.md#0"], vecs,
                 [VectorMeta(p, (), False) for p in ("pub.md", "sec.md", "ghost.md", "pub2.md")])
    return store


def test_chroma_hides_what_the_registry_calls_private(tmp_path: Path, registry_url: str) -> None:
    sync, serve = Registry(registry_url), Registry(registry_url)
    store = _chroma_with_registry(tmp_path, serve)
    try:
        sync.write_notes([_write("pub.md", ["p"], "h1"), _write("sec.md", ["s"], "h2", private=True),
                          _write("pub2.md", ["q"], "h3")], "m")
        q = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
        # sec.md is private in the registry; ghost#0 is in no note the registry knows.
        assert [i for i, _ in store.query(q, 4, Scope())] == ["pub.md#0", "pub2.md#0"]
        assert [i for i, _ in store.query(q, 4, Scope(include_private=True))] == \
            ["pub.md#0", "sec.md#0", "ghost#0", "pub2.md#0"]
        # Another process makes pub.md private: hidden on the next query.
        sync.write_notes([_write("pub.md", ["p"], "h4", private=True)], "m")
        assert [i for i, _ in store.query(q, 4, Scope())] == ["pub2.md#0"]
    finally:
        store.close()
        sync.close()
        serve.close()


def test_chroma_folder_scope_through_the_registry_and_its_fallback(tmp_path: Path,
                                                                     registry_url: str) -> None:
    """A folder scope is judged by the registry on a margin of unfiltered neighbours; when too
    few of those are in scope, Chroma's own filter finds the rest."""
    reg = Registry(registry_url)
    store = ChromaVectorStore("test-16", path=tmp_path / "chroma", registry=reg)
    try:
        rng = np.random.default_rng(2)
        q = rng.standard_normal(DIM).astype(np.float32)
        q /= np.linalg.norm(q)
        near = [f"Home/n{i}.md" for i in range(40)]
        writes = [_write(p, [f"t{i}"], f"h{i}") for i, p in enumerate(near)]
        writes += [_write("Work/far.md", ["far"], "hf"), _write("Work/secret.md", ["s"], "hs",
                                                                  private=True)]
        reg.write_notes(writes, "m")
        vecs = [q + 0.05 * rng.standard_normal(DIM) for _ in near]  # all near the question
        vecs += [-q, q]  # Work/far.md opposite; Work/secret.md the nearest of all
        paths = [*near, "Work/far.md", "Work/secret.md"]
        store.upsert([f"{p}#0" for p in paths], np.vstack(vecs).astype(np.float32),
                     [VectorMeta(p, (), p.endswith("secret.md")) for p in paths])
        work = Scope(folders=("Work",))
        # k = 1: 24 unfiltered neighbours hold no Work note but the private one: the fallback.
        assert [i for i, _ in store.query(q, 1, work)] == ["Work/far.md#0"]
        # A wide scope is served from the margin, the private note left out by the registry.
        home = [i for i, _ in store.query(q, 5, Scope(folders=("Home",)))]
        assert len(home) == 5 and all(i.startswith("Home/") for i in home)
        assert "Work/secret.md#0" in [i for i, _ in store.query(q, 3, Scope(include_private=True))]
        assert "Work/secret.md#0" not in [i for i, _ in store.query(q, 50, work)]
    finally:
        store.close()
        reg.close()
