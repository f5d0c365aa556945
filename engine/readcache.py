"""Registry rows as of one generation, for the reads every question makes.

Each retrieval reads its ~80 candidate chunks (without text) and their ~60 notes; at 100k
chunks decoding those rows was a third of a question's time (docs/benchmarks.md, "Speed at
scale"). Every write to notes or chunks bumps the registry's generation in the same transaction,
so rows read after the generation was read are at least that new, and a cache emptied whenever
the generation moves serves nothing older than what a fresh read would. Other processes' writes
bump the same counter, so they are seen on the next read too.

Bounded: past `limit` entries a map is emptied and refills (a question's rows are re-read at
most once per generation, and memory stays a few MB at any vault size)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")


class GenerationCache(Generic[V]):
    """key -> value, valid for one generation; `get_many` reads the missing keys through `load`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._generation: int | None = None
        self._data: dict[str, V] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_many(self, generation: int, keys: Iterable[str],
                 load: Callable[[list[str]], dict[str, V]]) -> dict[str, V]:
        """The values of `keys` that exist, as of `generation` or later. `generation` must have
        been read before this call: what `load` reads afterwards is then at least as new."""
        out: dict[str, V] = {}
        missing: list[str] = []
        with self._lock:
            if generation != self._generation:
                self._data.clear()
                self._generation = generation
            data = self._data
            for key in dict.fromkeys(keys):
                value = data.get(key)
                if value is None:
                    missing.append(key)
                else:
                    out[key] = value
            self.hits += len(out)
            self.misses += len(missing)
        if missing:
            loaded = load(missing)
            out.update(loaded)
            with self._lock:
                if generation == self._generation:  # not if a newer one arrived meanwhile
                    if len(self._data) + len(loaded) > self.limit:
                        self._data.clear()
                    self._data.update(loaded)
        return out

    def fill(self, generation: int, values: dict[str, V]) -> None:
        """Hold `values`, read after `generation` was (a warm-up's whole table), if they fit."""
        with self._lock:
            if generation != self._generation:
                self._data.clear()
                self._generation = generation
            if len(self._data) + len(values) <= self.limit:
                self._data.update(values)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._generation = None
