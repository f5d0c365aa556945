"""The semantic answer cache, in the registry (so `vaultbot ask` in two processes shares it).

An entry is served only if (1) the question's embedding is within the threshold of the cached
question's, (2) the scope is the same, (3) it is younger than the TTL, and (4) every note the
answer drew on still carries the stamp it had, checked against the registry at lookup time.
(4) is what makes a stale answer impossible even when another process synced the change.

The question vectors are mirrored in memory, one growing matrix per scope, topped up from rows
newer than the last one seen: a lookup is a matrix product plus, on a hit, one row read, instead of
reading and decoding every cached answer of the scope."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete, func, insert, select

from engine import schema as t
from engine.registry import Registry


@dataclass(frozen=True)
class CacheHit:
    answer: dict[str, Any]
    similarity: float
    question: str


@dataclass
class _Scope:
    """One scope's mirrored question vectors: rows [0, len(ids)) of `matrix`, which grows by
    doubling, so storing an answer never re-stacks the whole scope before the next lookup."""

    ids: list[int] = field(default_factory=list)
    created: list[float] = field(default_factory=list)
    matrix: np.ndarray | None = None

    def add(self, row_id: int, created: float, vector: np.ndarray) -> None:
        n = len(self.ids)
        if self.matrix is None or n == len(self.matrix):
            grown = np.empty((max(16, 2 * n), vector.shape[0]), dtype=np.float32)
            if self.matrix is not None:
                grown[:n] = self.matrix[:n]
            self.matrix = grown
        self.matrix[n] = vector
        self.ids.append(row_id)
        self.created.append(created)

    def vectors(self) -> np.ndarray:
        return self.matrix[: len(self.ids)] if self.matrix is not None else np.zeros((0, 0), np.float32)

    def forget(self, gone: set[int]) -> None:
        keep = [i for i, row_id in enumerate(self.ids) if row_id not in gone]
        if len(keep) != len(self.ids):
            self.matrix = self.vectors()[keep].copy() if keep else None
            self.ids = [self.ids[i] for i in keep]
            self.created = [self.created[i] for i in keep]


class AnswerCache:
    def __init__(
        self, registry: Registry, *, threshold: float = 0.93, ttl_seconds: float = 7 * 86400,
        max_entries: int = 5000,
    ) -> None:
        self.registry = registry
        self.threshold = threshold
        self.ttl = ttl_seconds
        self.max_entries = max_entries
        self._scopes: dict[str, _Scope] = {}
        self._seen = 0  # largest row id mirrored
        self._lock = threading.Lock()

    @staticmethod
    def scope_key(scope_key: str, variant: str) -> str:
        """Scope plus what changes the answer (model choice, mode) in a fixed-size key."""
        return hashlib.sha256(f"{scope_key}|{variant}".encode()).hexdigest()[:64]

    def _refresh(self) -> None:
        """Mirror rows added since the last look (by any process)."""
        q = (select(t.answer_cache.c.id, t.answer_cache.c.scope_key, t.answer_cache.c.created_at,
                    t.answer_cache.c.vector)
             .where(t.answer_cache.c.id > self._seen).order_by(t.answer_cache.c.id))
        with self.registry.engine.connect() as conn:
            rows = conn.execute(q).all()
        for r in rows:
            self._scopes.setdefault(r.scope_key, _Scope()).add(
                r.id, r.created_at, np.frombuffer(r.vector, dtype="<f4"))
            self._seen = r.id

    def _forget(self, ids: set[int]) -> None:
        for s in self._scopes.values():
            s.forget(ids)

    def lookup(self, key: str, vector: np.ndarray) -> CacheHit | None:
        with self._lock:
            self._refresh()
            s = self._scopes.get(key)
            if s is None or not s.ids:
                return None
            # vecdot, not `@`: a matrix-vector product this size wakes OpenBLAS's threads,
            # whose spinning stalled 1 lookup in 20 by 3-8 ms on 2 cores (0.2 ms for 5,000 rows).
            sims = np.vecdot(s.vectors(), np.asarray(vector, dtype=np.float32))
            close = np.flatnonzero(sims >= self.threshold)  # few: sort only these
            candidates = [(s.ids[i], float(sims[i]), s.created[i])
                          for i in close[np.argsort(-sims[close])]]
        cutoff = time.time() - self.ttl
        gone: set[int] = set()
        stale: set[int] = set()
        hit = None
        for row_id, similarity, created in candidates:
            if created < cutoff:
                gone.add(row_id)
                continue
            with self.registry.engine.connect() as conn:
                row = conn.execute(select(t.answer_cache.c.question, t.answer_cache.c.answer,
                                          t.answer_cache.c.notes)
                                   .where(t.answer_cache.c.id == row_id,
                                          # SQLite may give a deleted row's id to a new row
                                          # (another process's, maybe another scope's): the
                                          # id mirrored here is only trusted with its scope.
                                          t.answer_cache.c.scope_key == key,
                                          t.answer_cache.c.created_at == created)).first()
            if row is None:  # evicted, invalidated, or the id now names another row: forget
                stale.add(row_id)  # it here, and leave whatever row holds the id alone
                continue
            if self.registry.note_stamps(row.notes) != row.notes:
                gone.add(row_id)  # a note it used changed or vanished
                continue
            hit = CacheHit(row.answer, similarity, row.question)
            break
        if stale:
            with self._lock:
                self._forget(stale)
        self._drop(gone)
        return hit

    def store(self, key: str, question: str, vector: np.ndarray, answer: dict[str, Any],
              note_paths: list[str]) -> None:
        stamps = self.registry.note_stamps(note_paths)
        if len(stamps) != len(set(note_paths)):
            return  # a source vanished while we answered: do not cache
        evicted: set[int] = set()
        with self.registry.engine.begin() as conn:
            conn.execute(insert(t.answer_cache).values(
                scope_key=key, question=question,
                vector=np.asarray(vector, dtype="<f4").tobytes(), answer=answer, notes=stamps,
                created_at=time.time()))
            n = conn.execute(select(func.count()).select_from(t.answer_cache)).scalar_one()
            if n > self.max_entries:  # size bound: drop the oldest
                evicted = set(conn.execute(select(t.answer_cache.c.id).order_by(t.answer_cache.c.id)
                                           .limit(n - self.max_entries)).scalars())
                conn.execute(delete(t.answer_cache).where(t.answer_cache.c.id.in_(evicted)))
        if evicted:
            with self._lock:
                self._forget(evicted)

    def invalidate_paths(self, paths: set[str]) -> int:
        """Eagerly drop entries that used any of these notes (sync calls this on change)."""
        if not paths:
            return 0
        with self.registry.engine.connect() as conn:
            rows = conn.execute(select(t.answer_cache.c.id, t.answer_cache.c.notes)).all()
        ids = {r.id for r in rows if paths.intersection(r.notes)}
        self._drop(ids)
        return len(ids)

    def clear(self) -> int:
        """Delete every entry; returns how many there were."""
        with self.registry.engine.begin() as conn:
            n = conn.execute(delete(t.answer_cache)).rowcount
        with self._lock:
            self._scopes.clear()
        return n

    def purge_expired(self, now: float | None = None) -> int:
        """Delete entries older than the TTL; returns how many. Lookups skip them anyway, but
        an entry holds a question and what the notes said, so it must not outlive the TTL on
        disk just because no similar question came along."""
        cutoff = (time.time() if now is None else now) - self.ttl
        with self.registry.engine.begin() as conn:
            n = conn.execute(delete(t.answer_cache)
                             .where(t.answer_cache.c.created_at < cutoff)).rowcount
        if n:
            with self._lock:
                for s in self._scopes.values():
                    s.forget({i for i, c in zip(s.ids, s.created, strict=True) if c < cutoff})
        return n

    def _drop(self, ids: set[int]) -> None:
        if not ids:
            return
        with self.registry.engine.begin() as conn:
            conn.execute(delete(t.answer_cache).where(t.answer_cache.c.id.in_(list(ids))))
        with self._lock:
            self._forget(ids)
