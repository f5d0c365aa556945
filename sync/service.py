"""Keeps the index live: the watcher's batches and a periodic reconcile, never two at once."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from sync.indexer import Indexer, SyncStats
from sync.watcher import VaultWatcher

log = logging.getLogger(__name__)

STATE_FILE = "sync-state.json"
"""In the data dir: a failing sync of a running `serve`/`watch`, for `vaultbot status`."""


class SyncService:
    def __init__(
        self,
        indexer: Indexer,
        *,
        debounce: float = 0.5,
        reconcile_minutes: float = 15.0,
        watch: bool = True,
        on_stats: Callable[[SyncStats], None] | None = None,
        state_file: Path | None = None,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
    ) -> None:
        """`state_file`: where a failing sync is recorded (and cleared once a sync succeeds), so
        `vaultbot status` in another process can show it; see `read_state`."""
        self.indexer = indexer
        self.on_stats = on_stats
        self.state_file = state_file
        self._lock = threading.Lock()  # the watcher and the scheduler share one indexer
        self._state_lock = threading.Lock()
        self._failure: dict[str, Any] | None = None
        self._watcher = VaultWatcher(
            indexer.vault, self._on_batch, filter=indexer.filter, debounce=debounce,
            retry_initial=retry_initial, retry_max=retry_max,
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
        except Exception as exc:
            log.exception("scheduled reconcile failed")
            self._record(exc)
        else:
            self._record(None)

    def _on_batch(self, paths: set[str]) -> None:
        try:
            self.sync(paths)
        except Exception as exc:
            self._record(exc)
            raise  # the watcher keeps the batch and retries it with backoff
        self._record(None)

    def failure(self) -> dict[str, Any] | None:
        """None while syncs succeed; else the last error, since when, how many failed in a row,
        and (from the watcher) when its batch is retried and how many paths wait."""
        with self._state_lock:
            failure = dict(self._failure) if self._failure else None
        watching = self._watcher.failure if self._watcher is not None else None
        if failure is not None and watching is not None:
            failure |= {"retry_in": watching["retry_in"], "pending": watching["pending"]}
        return failure

    def _record(self, exc: BaseException | None) -> None:
        with self._state_lock:
            if exc is None:
                if self._failure is None:
                    return
                log.info("sync succeeds again after %d failures", self._failure["failures"])
                self._failure = None
            else:
                prev = self._failure
                self._failure = {
                    "error": f"{type(exc).__name__}: {str(exc)[:200]}",
                    "since": prev["since"] if prev else time.time(),
                    "failures": (prev["failures"] if prev else 0) + 1,
                }
            self._write_state(self._failure)

    def _write_state(self, failure: dict[str, Any] | None) -> None:
        if self.state_file is None:
            return
        try:  # best effort: a read-only or full data dir must not stop the sync itself
            if failure is None:
                self.state_file.unlink(missing_ok=True)
                return
            tmp = self.state_file.with_name(self.state_file.name + ".tmp")
            tmp.write_text(json.dumps({**failure, "pid": os.getpid(), "updated": time.time()}))
            os.replace(tmp, self.state_file)
        except OSError as exc:
            log.warning("cannot record the sync state in %s: %s", self.state_file, exc)

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
        self._write_state(None)  # nobody retries any more: a stale failure would mislead


def read_state(state_file: Path) -> dict[str, Any] | None:
    """The failure a running `serve`/`watch` recorded in `state_file`, or None (no file, or its
    process is gone)."""
    try:
        state = json.loads(state_file.read_text())
        os.kill(int(state["pid"]), 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return None
    except PermissionError:  # exists, owned by another user
        return state if isinstance(state, dict) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if isinstance(state, dict) else None
