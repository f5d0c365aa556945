"""Small real helpers for tests (no mocks): an embedder wrapper that counts what it embeds,
and a builder for an index + indexer on a temp data dir."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import uvicorn

from engine.embedders.base import Embedder
from engine.index import Index
from engine.lexical import LexicalIndex
from sync.indexer import Indexer


class CountingEmbedder:
    """Wraps a real embedder and counts the passages it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.passages = 0
        self.texts: list[str] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.passages += len(texts)
        self.texts.extend(texts)
        return self.inner.embed_passages(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def reset(self) -> None:
        self.passages = 0
        self.texts = []


def build(
    vault: Path,
    data_dir: Path,
    embedder: Embedder,
    registry_url: str | None = None,
    keywords: bool = True,
) -> tuple[Index, Indexer]:
    url = registry_url or f"sqlite:///{data_dir / 'registry.sqlite3'}"
    data_dir.mkdir(parents=True, exist_ok=True)
    lex = LexicalIndex(data_dir / "keywords.sqlite3") if keywords else None
    index = Index.open(data_dir=data_dir, registry_url=url, embedder=embedder, keywords=lex)
    return index, Indexer(index, vault)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real uvicorn serving `app` on a free port in a thread, for tests that need HTTP."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
