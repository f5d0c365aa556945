"""Keeps the index live: the watcher's batches and a periodic reconcile, never two at once."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from apscheduler.schedulers.background import BackgroundScheduler

from sync.indexer import Indexer, SyncStats
from sync.watcher import VaultWatcher

log = logging.getLogger(__name__)


class SyncService:
    def __init__(
        self,
        indexer: Indexer,
        *,
        debounce: float = 0.5,
        reconcile_minutes: float = 15.0,
        watch: bool = True,
        on_stats: Callable[[SyncStats], None] | None = None,
    ) -> None:
        self.indexer = indexer
        self.on_stats = on_stats
        self._lock = threading.Lock()  # the watcher and the scheduler share one indexer
        self._watcher = VaultWatcher(
            indexer.vault, self._on_batch, filter=indexer.filter, debounce=debounce
        ) if watch else None
        self._scheduler: BackgroundScheduler | None = None
        if reconcile_minutes > 0:
            self._scheduler = BackgroundScheduler(daemon=True)
            self._scheduler.add_job(
                self.reconcile, "interval", minutes=reconcile_minutes, id="reconcile",
                max_instances=1, coalesce=True,
            )

    def sync(self, hint: set[str] | None = None) -> SyncStats:
        with self._lock:
            stats = self.indexer.sync(hint or ())
        if stats.changed_paths_count or stats.repaired:
            log.info(
                "synced: +%d ~%d >%d -%d notes, %d chunks embedded, %.2fs",
                stats.notes_added, stats.notes_updated, stats.notes_moved, stats.notes_deleted,
                stats.chunks_embedded, stats.seconds,
            )
        if self.on_stats:
            self.on_stats(stats)
        return stats

    def reconcile(self) -> None:
        """Catches what the watcher missed (sleep, a full event queue, network drives)."""
        try:
            self.sync()
        except Exception:
            log.exception("scheduled reconcile failed")

    def _on_batch(self, paths: set[str]) -> None:
        self.sync(paths)

    def start(self) -> None:
        if self._watcher is not None:
            self._watcher.start()
        if self._scheduler is not None:
            self._scheduler.start()

    def wait_idle(self) -> None:
        """Block until a sync in progress (if any) has finished writing every store."""
        with self._lock:
            pass

    def stop(self) -> None:
        """Stop taking new work, then wait for a sync in progress to finish (no half index)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        if self._watcher is not None:
            self._watcher.stop()
        self.wait_idle()
