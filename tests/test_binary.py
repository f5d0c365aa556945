"""The binary first stage: recall on clustered vectors, exact rescoring, updates, scopes, memory,
and the VectorStore adapter inside a real Index and Retriever."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import build

from engine import binary
from engine.binary import BinaryIndex, BinaryVectorStore, binarize, hamming
from engine.embedders.hashing import HashingEmbedder
from engine.models import Scope
from engine.retrieve import Retriever
from engine.vectors import VectorMeta

BACKENDS = ["numpy"] + (["faiss"] if binary.faiss is not None else [])


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int, seed: int = 0, per_sub: int = 50) -> np.ndarray:
    """Topics -> subtopics -> points with varying spread, so that neighbours are graded (iid
    Gaussian vectors have no meaningful neighbours)."""
    rng = np.random.default_rng(seed)
    topics = unit(rng.standard_normal((max(1, n // 2000), dim)))
    n_sub = max(1, n // per_sub)
    subs = unit(topics[rng.integers(0, len(topics), n_sub)] + 0.8 * unit(rng.standard_normal((n_sub, dim))))
    spread = rng.uniform(0.3, 1.2, (n, 1)).astype(np.float32)
    return unit(subs[rng.integers(0, n_sub, n)] + spread * unit(rng.standard_normal((n, dim))))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, list[str]]:
    x = clustered(5100, 128)
    return x[:5000], x[5000:], [f"v{i}" for i in range(5000)]


def recall(index: BinaryIndex, x: np.ndarray, queries: np.ndarray, candidates: int) -> float:
    got = []
    for q in queries:
        exact = {f"v{i}" for i in np.argsort(-(x @ q))[:10]}
        found = {i for i, _ in index.search(q, 10, candidates=candidates)}
        got.append(len(exact & found) / 10)
    return float(np.mean(got))


@pytest.mark.parametrize("backend", BACKENDS)
def test_recall_on_clustered_vectors(data, backend: str) -> None:
    x, queries, ids = data
    index = BinaryIndex(128, backend=backend)
    index.add(ids, x)
    assert len(index) == 5000
    # 128 bits is a coarse sketch; rescoring 100 candidates still recovers the top 10.
    assert recall(index, x, queries, 100) >= 0.9
    assert recall(index, x, queries, 10) < recall(index, x, queries, 100)  # the stage matters


def test_backends_agree_on_hamming_candidates(data) -> None:
    if len(BACKENDS) < 2:
        pytest.skip("faiss not installed")
    x, queries, ids = data
    a, b = BinaryIndex(128, backend="numpy"), BinaryIndex(128, backend="faiss")
    a.add(ids, x)
    b.add(ids, x)
    for q in queries[:10]:
        sa, da = a.candidates(q, 50)
        sb, db = b.candidates(q, 50)
        assert np.array_equal(da, db)  # the same distances (ties may order differently)
        codes = binarize(x)
        assert np.array_equal(np.sort(hamming(codes, binarize(q)[0]))[:50], da)


@pytest.mark.parametrize("backend", BACKENDS)
def test_rescoring_is_exact(data, backend: str) -> None:
    x, queries, ids = data
    index = BinaryIndex(128, backend=backend, dtype=np.float32)
    index.add(ids, x)
    for q in queries[:5]:
        got = index.search(q, 10, candidates=len(x))  # every vector rescored: exact search
        scores = x @ q
        exact = np.argsort(-scores)[:10]
        assert [i for i, _ in got] == [f"v{i}" for i in exact]
        assert np.allclose([s for _, s in got], scores[exact], atol=1e-6)
    # float16 rows: the same order up to rounding, scores within 1e-3
    half = BinaryIndex(128, backend=backend)
    half.add(ids, x)
    q = queries[0]
    got = dict(half.search(q, 10, candidates=len(x)))
    for id_, s in got.items():
        assert abs(s - float(x[int(id_[1:])] @ q)) < 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_updates_and_removals(data, backend: str) -> None:
    x, queries, ids = data
    index = BinaryIndex(128, backend=backend, dtype=np.float32)
    index.add(ids[:1000], x[:1000])
    q = x[10]
    assert index.search(q, 1)[0][0] == "v10"
    assert index.remove(["v10", "v11", "nope"]) == 2
    assert "v10" not in index and len(index) == 998
    assert all(i not in ("v10", "v11") for i, _ in index.search(q, 20, candidates=998))
    # Re-adding under another id reuses the freed slots; replacing an id moves it.
    index.add(["new"], x[10:11])
    assert index.search(q, 1)[0] == ("new", pytest.approx(1.0, abs=1e-6))
    index.add(["v20"], x[10:11])  # v20 now holds v10's vector
    top = [i for i, _ in index.search(q, 2)]
    assert set(top) == {"new", "v20"} and len(index) == 999
    assert len(index._id_of_slot) == 1000  # no slot leaked
    exact = {f"v{i}" for i in np.argsort(-(x[:1000] @ queries[0]))[:50]} - {"v10", "v11", "v20"}
    found = {i for i, _ in index.search(queries[0], 40, candidates=999)}
    assert exact - {"new"} <= found | exact and found <= set(index.ids())


@pytest.mark.parametrize("backend", BACKENDS)
def test_allowed_mask(data, backend: str) -> None:
    x, queries, ids = data
    index = BinaryIndex(128, backend=backend)
    index.add(ids, x)
    for share in (0.5, 0.05):  # the over-fetch path and the selective scan
        allowed = np.random.default_rng(2).random(5000) < share
        got = index.search(queries[0], 10, candidates=100, allowed=allowed)
        assert len(got) == 10
        assert all(allowed[int(i[1:])] for i, _ in got)
        assert got == index.search(queries[0], 10, candidates=100, allowed=allowed)
    assert index.search(queries[0], 10, allowed=np.zeros(5000, dtype=bool)) == []


def test_mmap_rescore_and_memory(tmp_path: Path) -> None:
    x = clustered(3000, 512, seed=4)
    ids = [f"v{i}" for i in range(3000)]
    ram = BinaryIndex(512)
    disk = BinaryIndex(512, rescore="mmap", path=tmp_path / "floats.f16")
    ram.add(ids, x)
    disk.add(ids, x)
    q = x[7]
    assert disk.search(q, 10) == ram.search(q, 10)
    mem = disk.memory()
    assert mem.rescore_resident_bytes == 0 and mem.rescore_disk_bytes == 3000 * 512 * 2
    assert (tmp_path / "floats.f16").stat().st_size >= mem.rescore_disk_bytes
    assert mem.code_bytes == 3000 * 64
    assert mem.first_stage_bytes_per_vector == 68  # 64 bytes of bits + a 4-byte slot
    assert mem.reduction >= 16
    assert ram.memory().rescore_resident_bytes >= 3000 * 512 * 2
    hamming_only = BinaryIndex(512, rescore="none")
    hamming_only.add(ids, x)
    assert hamming_only.search(q, 1)[0] == ("v7", 1.0)
    with pytest.raises(ValueError):
        BinaryIndex(512, rescore="mmap")
    with pytest.raises(ValueError):
        ram.add(["a"], x[:2])



def test_vector_store_adapter_in_a_real_index(example_vault: Path, tmp_path: Path) -> None:
    index, indexer = build(example_vault, tmp_path / "data", HashingEmbedder(64))
    indexer.sync()
    store = BinaryVectorStore.from_registry(index.registry, index.model, 64, path=tmp_path / "bin")
    assert store.all_ids() == index.registry.chunk_ids() == index.vectors.all_ids()
    # With every vector rescored it must agree with Chroma's exact answer.
    q = index.embedder.embed_query("launch date")
    chroma = [i for i, _ in index.vectors.query(q, 5)]
    ours = store.query(q, 5, candidates=store.count())
    assert [i for i, _ in ours] == chroma
    # Scopes: a folder, and private notes hidden by the default Scope().
    records = index.registry.chunks_by_id(store.all_ids())
    folder = next(r.note_path.split("/")[0] for r in records.values() if "/" in r.note_path)
    scoped = store.query(q, 50, Scope(folders=(folder,)), candidates=store.count())
    assert scoped and all(records[i].note_path.startswith(folder + "/") for i, _ in scoped)
    # Swapped into the Index, retrieval runs unchanged.
    index.vectors = store  # type: ignore[assignment]
    hits = Retriever(index).search("launch", k=3, mode="dense")
    assert hits and all(h.chunk_id in records for h in hits)
    assert index.in_step()
    gone = next(iter(store.all_ids()))
    store.delete([gone])
    assert not index.in_step()
    report = index.repair()  # the repair path re-adds it from the embedding cache
    assert report.vectors_added == 1 and gone in store.all_ids()
    store.upsert(["x"], q[None, :], [VectorMeta("Secret.md", (), True)])
    assert "x" not in [i for i, _ in store.query(q, 100, Scope())]
    assert "x" in [i for i, _ in store.query(q, 100, Scope(include_private=True))]
    store.drop()
    assert store.count() == 0
    # A second store on the same dir (another process, say) has its own float rows.
    other = BinaryVectorStore("m", 64, path=tmp_path / "bin")
    other.upsert(["y"], -q[None, :], [VectorMeta("Y.md", (), False)])
    store.upsert(["z"], q[None, :], [VectorMeta("Z.md", (), False)])
    assert store.query(q, 1)[0] == ("z", pytest.approx(1.0, abs=1e-3))
    assert other.query(q, 1)[0] == ("y", pytest.approx(-1.0, abs=1e-3))
    assert not list((tmp_path / "bin").iterdir())  # nothing left behind


def _store_paths(store: BinaryVectorStore, registry, query_vec, scope: Scope | None = None) -> set[str]:
    ids = [i for i, _ in store.query(query_vec, 200, scope if scope is not None else Scope(),
                                      candidates=max(store.count(), 1))]
    return {r.note_path for r in registry.chunks_by_id(ids).values()}


def test_binary_store_follows_another_process(example_vault: Path, tmp_path: Path) -> None:
    """The serving process's binary store sees what a separate `vaultbot sync` wrote: new and
    deleted notes, edited chunks, and a note turned private by its frontmatter alone."""
    from engine.registry import Registry

    index, indexer = build(example_vault, tmp_path / "data", HashingEmbedder(64))
    indexer.sync()
    # "Another process": its own registry connection and its own store, built at start-up.
    reader = Registry(index.registry.url)
    store = BinaryVectorStore.from_registry(reader, index.model, 64, path=tmp_path / "bin")
    q = index.embedder.embed_query("anything")
    assert store.catch_up() == 0  # nothing happened since it was built
    assert _store_paths(store, reader, q) == {
        p for p, info in reader.note_info(reader.note_states()).items() if not info.private}

    bread = example_vault / "Recipes" / "Sourdough bread.md"
    (example_vault / "Recipes" / "Focaccia.md").write_text("# Focaccia\n\nDimple the dough.\n")
    (example_vault / "Projects" / "Vaultbot launch.md").unlink()
    bread.write_text(bread.read_text() + "\nA new closing paragraph about walnuts.\n")
    indexer.sync()
    seen = _store_paths(store, reader, q)  # the query catches up first
    assert "Recipes/Focaccia.md" in seen and "Projects/Vaultbot launch.md" not in seen
    assert store.all_ids() == reader.chunk_ids()

    # Privacy set in the frontmatter changes no chunk text, only the note's metadata.
    bread.write_text(bread.read_text().replace("tags: [recipe, baking]\n",
                                               "tags: [recipe, baking]\nprivate: true\n"))
    ids_before = reader.chunk_ids()
    indexer.sync()
    assert reader.chunk_ids() == ids_before
    assert store.catch_up() == 1  # one note relabelled, no chunk added or removed
    assert "Recipes/Sourdough bread.md" not in _store_paths(store, reader, q)
    assert "Recipes/Sourdough bread.md" in _store_paths(store, reader, q, Scope(include_private=True))
    assert store.catch_up() == 0
    reader.close()


def test_own_writes_are_not_diffed_again(example_vault: Path, tmp_path: Path) -> None:
    index, indexer = build(example_vault, tmp_path / "data", HashingEmbedder(64))
    index.vectors = BinaryVectorStore("hashing-64", 64)  # type: ignore[assignment]
    index.vectors.follow(index.registry)  # type: ignore[attr-defined]
    indexer.sync()
    assert index.vectors.catch_up() == 0  # type: ignore[attr-defined]
    assert index.vectors.all_ids() == index.registry.chunk_ids()


def test_binary_store_under_concurrent_writes_catch_up_and_queries(example_vault: Path, tmp_path: Path) -> None:
    """serve's situation: the watcher writes into the store, another process syncs into the
    registry (so queries catch up), and API queries run, all at once. Every query must see a
    consistent store (ids unique, best first, private notes hidden), and at the end the store
    equals the registry plus this process's own live writes."""
    import threading

    from engine.registry import Registry

    index, indexer = build(example_vault, tmp_path / "data", HashingEmbedder(64))
    indexer.sync()
    store = BinaryVectorStore.from_registry(Registry(index.registry.url), index.model, 64,
                                            path=tmp_path / "bin")
    rng = np.random.default_rng(3)
    stop = threading.Event()
    errors: list[BaseException] = []
    queries = [0]

    def guard(fn):
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
                stop.set()
        return run

    @guard
    def own_writes() -> None:  # this process: private vectors come and go
        for i in range(300):
            v = rng.standard_normal((2, 64)).astype(np.float32)
            store.upsert([f"own{i}a", f"own{i}b"], v, [VectorMeta(f"P{i}.md", (), True)] * 2)
            if i >= 5:
                store.delete([f"own{i - 5}a", f"own{i - 5}b"])
            if stop.is_set():
                return

    @guard
    def other_process() -> None:  # another process: notes added and removed in the registry
        for i in range(8):
            note = example_vault / f"Stress {i}.md"
            note.write_text(f"# Stress {i}\n\nConcurrent note number {i} about sourdough.\n")
            indexer.sync()
            if i % 2:
                (example_vault / f"Stress {i - 1}.md").unlink()
                indexer.sync()

    @guard
    def reader() -> None:
        q = index.embedder.embed_query("sourdough")
        while not stop.is_set():
            got = store.query(q, 10, Scope())
            ids = [i for i, _ in got]
            assert len(ids) == len(set(ids)), ids
            assert all(a >= b for (_, a), (_, b) in zip(got, got[1:], strict=False)), got
            assert not any(i.startswith("own") for i in ids), ids  # private: hidden
            queries[0] += 1

    writers = [threading.Thread(target=own_writes), threading.Thread(target=other_process)]
    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join(timeout=120)
    stop.set()
    for t in readers:
        t.join(timeout=30)
    assert not errors, errors
    assert queries[0] > 20
    store.catch_up()
    registry_ids = {r for r in index.registry.chunks_by_id(list(store.all_ids()))}
    own = {f"own{i}{s}" for i in range(295, 300) for s in "ab"}
    with index.registry.engine.connect() as conn:
        all_chunks = {r[0] for r in conn.exec_driver_sql("select id from chunks")}
    assert store.all_ids() == all_chunks | own
    assert registry_ids == all_chunks
