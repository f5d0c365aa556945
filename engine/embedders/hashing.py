"""A deterministic stand-in embedder: each text maps to a fixed random unit vector.

It has no notion of meaning (only identical texts are close), so it is never a settings choice.
Benchmarks use it to time sync and retrieval without the model's cost, and tests use it where a
real model would only slow them down."""

from __future__ import annotations

import hashlib

import numpy as np

from engine.embedders.base import normalize


class HashingEmbedder:
    def __init__(self, dim: int = 64, name: str | None = None, query_prefix: str = "query: ") -> None:
        self.name = name or f"hashing-{dim}"
        self._dim = dim
        self.query_prefix = query_prefix  # queries and passages of the same text differ, as with e5
        self.embedded = 0  # texts turned into vectors, passages and queries alike

    @property
    def dim(self) -> int:
        return self._dim

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            out[i] = np.random.default_rng(seed).standard_normal(self._dim)
        return normalize(out)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_passages([self.query_prefix + text])[0]
