"""Watch a vault and hand debounced batches of changed paths to a callback.

`VaultWatcher` turns the raw event stream of watchdog's portable `Observer`
(inotify on Linux, FSEvents on macOS) into batches for `on_batch(paths)`:

- an editor's save burst (temp file, rename over, several writes) and a
  `git checkout` touching a thousand files each become one batch: a batch is
  delivered once no event arrived for `debounce` seconds, and at the latest
  `max_delay` seconds after its first event, so a continuous stream still flushes;
- `on_batch` runs on one dedicated worker thread, never concurrently with itself;
  events arriving while it runs are collected for the next batch;
- an exception from `on_batch` is logged and the batch is retried with backoff
  (`retry_initial` seconds, doubling up to `retry_max`), merged with the events that
  arrive meanwhile: a busy registry or a database that is down must not lose the
  edit until the next reconcile (or forever, with reconcile off). A poison batch
  costs one attempt per `retry_max`; `failure` reports the failing state until a
  batch succeeds.

A batch is a `set[str]` of vault-relative POSIX paths. It says "look at these
again", not what happened: the consumer checks the disk (a path that no longer
exists was deleted or moved away). Entries come in three shapes:

- ``"Notes/Idea.md"``: a candidate file (see `sync.ignore.VaultFilter`) was created,
  modified, deleted, or was the source or destination of a move;
- ``"Notes/Archive/"`` (trailing `DIR_SUFFIX`): a directory was created, deleted or
  moved; reconcile everything at or below that prefix. Platforms differ in whether
  they also report the files inside, so the consumer must not rely on that;
- `RESCAN` (``"/"``): reconcile the whole vault. Sent when `.vaultbotignore`
  changed (the filter is reloaded first) and when the vault root itself is deleted
  or moved. It is the directory marker of the root, so "every entry ending in "/"
  is a prefix to rescan" covers it.

A file's attribute change (chmod, `touch`, xattrs) is reported like a modification:
a note skipped as unreadable must be tried again once a chmod makes it readable
(issue #10). On Linux, watchdog turns inotify's IN_ATTRIB into a `FileAttribEvent`
(its FileModifiedEvent filter already asks the kernel for IN_ATTRIB, then the
observer drops the attrib event unless `FileAttribEvent` is in the filter); on macOS,
FSEvents flags a chmod as inode-metadata-modified, which watchdog also reports as a
`FileAttribEvent` (or as a `FileModifiedEvent` when coalesced with a write). It costs
one read and hash of that file in the batch, no embedding: the consumer sees the same
content hash. A directory's attribute change is not reported (directory "modified"
events are noise; a reconcile covers a directory made readable again).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from sync.ignore import IGNORE_FILE_NAME, VaultFilter

logger = logging.getLogger(__name__)

RESCAN = "/"
"""Batch entry meaning "the whole vault needs reconciling"."""
DIR_SUFFIX = "/"
"""Batch entries ending with this are directories: reconcile everything below them."""

# What changes the set, content or readability of files; directory "modified" and
# "attrib" events (a child was added, a chmod of a folder) and opened/closed events are
# noise here. FileAttribEvent: a chmod can make a skipped note readable.
_EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


def is_dir_entry(entry: str) -> bool:
    """True for `RESCAN` and directory entries ("Notes/Archive/")."""
    return entry.endswith(DIR_SUFFIX)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: VaultWatcher) -> None:
        super().__init__()
        self._watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        # An exception escaping here would kill watchdog's dispatcher thread and
        # silently end all watching, so nothing may escape.
        try:
            self._watcher._on_event(event)
        except Exception:
            logger.exception("vault watcher: failed to handle a filesystem event")


class VaultWatcher:
    """Debounced, coalesced change batches for one vault; see the module docstring.

    Single use: `start` once, `stop` once (a stopped watcher cannot be restarted).
    """

    def __init__(
        self,
        vault: Path,
        on_batch: Callable[[set[str]], None],
        *,
        filter: VaultFilter,
        debounce: float = 0.5,
        max_delay: float = 5.0,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
    ) -> None:
        if debounce < 0 or max_delay < debounce:
            raise ValueError("need 0 <= debounce <= max_delay")
        if retry_initial <= 0 or retry_max < retry_initial:
            raise ValueError("need 0 < retry_initial <= retry_max")
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._filter = filter
        self._on_batch = on_batch
        self._debounce = debounce
        self._max_delay = max_delay
        self._root = Path(vault).resolve()
        # Event paths are under the path we schedule (the resolved one), but some
        # backends report the path as given; accept both so a symlinked vault or
        # macOS's /var -> /private/var does not drop events.
        bases = {str(self._root), os.path.abspath(vault)}
        self._prefixes = tuple(b.rstrip(os.sep) + os.sep for b in bases)
        self._bases = frozenset(bases)

        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._first = 0.0  # monotonic time of the first pending event
        self._last = 0.0  # ... and of the latest one
        self._flush_requested = False
        self._retry_at = 0.0  # monotonic: a failed batch is not retried before this
        self._failures = 0  # consecutive failed batches
        self._error: str | None = None  # the last failure, until a batch succeeds
        self._failing_since = 0.0  # wall clock of the first failure in a row
        self._taken = 0  # batches taken off `_pending`
        self._done = 0  # batches whose on_batch has returned
        self._started = False
        self._closed = False
        self._observer: BaseObserver | None = None
        self._worker: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Start watching; events from now on are batched. Raises if the vault is missing."""
        if self._started or self._closed:
            raise RuntimeError("a VaultWatcher can only be started once")
        if not self._root.is_dir():
            raise FileNotFoundError(f"vault is not a directory: {self._root}")
        self._started = True
        self._worker = threading.Thread(target=self._run, name="vaultbot-watcher", daemon=True)
        self._worker.start()
        observer = Observer()
        observer.schedule(
            _Handler(self), str(self._root), recursive=True, event_filter=_EVENT_TYPES
        )
        try:
            # Watches are in place when this returns (inotify adds them synchronously).
            observer.start()
        except OSError as exc:
            logger.error(
                "cannot watch the vault (%s); on Linux, raising fs.inotify.max_user_watches "
                "may help",
                exc,
            )
            self.stop()
            raise
        self._observer = observer
        logger.debug("watching %s", self._root)

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Stop watching and join the threads; pending events are dropped.

        A batch already running finishes (waited for up to `timeout`). Call
        `flush_now()` first to deliver what is pending. Returns True when all
        threads ended within `timeout`.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._closed = True
            self._pending.clear()
            self._cond.notify_all()
        alive = False
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(_remaining(deadline))
            alive |= self._observer.is_alive()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(_remaining(deadline))
            alive |= worker.is_alive()
        if alive:
            logger.warning("vault watcher: threads still running after stop(timeout=%s)", timeout)
        return not alive

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def filter(self) -> VaultFilter:
        """The filter deciding which events count (reloaded on .vaultbotignore changes)."""
        return self._filter

    @property
    def running(self) -> bool:
        return self._started and not self._closed

    @property
    def pending_count(self) -> int:
        """How many entries wait for the next batch."""
        with self._cond:
            return len(self._pending)

    @property
    def failure(self) -> dict[str, object] | None:
        """None while batches succeed; else the last error, since when (epoch seconds), how
        many attempts failed in a row, and seconds until the next retry."""
        with self._cond:
            if self._error is None:
                return None
            return {
                "error": self._error,
                "since": self._failing_since,
                "failures": self._failures,
                "retry_in": round(max(0.0, self._retry_at - time.monotonic()), 2),
                "pending": len(self._pending),
            }

    def flush_now(self, timeout: float | None = 5.0) -> bool:
        """Deliver pending entries now, skipping the debounce, and wait for that batch.

        Only covers events the watcher has already received; OS events still in
        flight land in a later batch. With nothing pending it waits for a batch
        that is running. Returns True once delivered (False on timeout or stop).
        Called from inside `on_batch` it only requests the flush.
        """
        with self._cond:
            if self._pending:
                self._flush_requested = True
                target = self._taken + 1
                self._cond.notify_all()
            else:
                target = self._taken
            if threading.current_thread() is self._worker:
                return False
            return self._cond.wait_for(lambda: self._done >= target or self._closed, timeout) and (
                self._done >= target
            )

    # -- event intake (watchdog's dispatcher thread) -------------------------

    def _rel(self, path: str) -> str | None:
        if path in self._bases:
            return ""
        for prefix in self._prefixes:
            if path.startswith(prefix):
                rel = path[len(prefix) :]
                return rel if os.sep == "/" else rel.replace(os.sep, "/")
        return None

    def _on_event(self, event: FileSystemEvent) -> None:
        if self._closed:
            return
        paths = [event.src_path]
        if isinstance(event, FileMovedEvent | DirMovedEvent):
            paths.append(event.dest_path)
        entries: set[str] = set()
        for raw in paths:
            if not raw:
                continue
            rel = self._rel(os.fsdecode(raw))
            if rel is None:
                continue
            if rel == "":
                if event.is_directory and event.event_type in ("deleted", "moved"):
                    entries.add(RESCAN)  # the vault itself went away
                continue
            if rel == IGNORE_FILE_NAME:
                # Reload now so the following events are filtered by the new rules.
                self._filter.reload()
                entries.add(RESCAN)
            elif event.is_directory:
                if self._filter.is_candidate_dir(rel):
                    entries.add(rel + DIR_SUFFIX)
            elif self._filter.is_candidate(rel):
                entries.add(rel)
        if entries:
            logger.debug("vault event %s: %s", event.event_type, sorted(entries))
            self._add(entries)

    def _add(self, entries: set[str]) -> None:
        now = time.monotonic()
        with self._cond:
            if self._closed:
                return
            if not self._pending:
                self._first = now
                # Only the first event needs to wake the worker; later ones just
                # move `_last`, which the worker re-reads when its wait ends.
                self._cond.notify_all()
            self._last = now
            self._pending |= entries

    # -- delivery (worker thread) --------------------------------------------

    def _next_batch(self) -> set[str] | None:
        """Block until a batch is due; None once closed."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                if not self._pending:
                    self._flush_requested = False
                    self._cond.wait()
                    continue
                if self._flush_requested:
                    break
                now = time.monotonic()
                due = min(self._last + self._debounce, self._first + self._max_delay)
                due = max(due, self._retry_at)  # backing off after a failure
                if now >= due:
                    break
                self._cond.wait(due - now)
            batch, self._pending = self._pending, set()
            self._flush_requested = False
            self._taken += 1
            return batch

    def _failed(self, batch: set[str], error: str) -> float:
        """Put a failed batch back (merged with newer events) and schedule its retry."""
        now = time.monotonic()
        with self._cond:
            self._failures += 1
            if self._error is None:
                self._failing_since = time.time()
            self._error = error
            delay = _backoff(self._failures, self._retry_initial, self._retry_max)
            self._retry_at = now + delay
            if not self._closed:
                if not self._pending:
                    self._first = self._last = now
                self._pending |= batch
            return delay

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            logger.debug("vault batch of %d entries", len(batch))
            try:
                self._on_batch(batch)
            except Exception as exc:
                delay = self._failed(batch, f"{type(exc).__name__}: {str(exc)[:200]}")
                # One short line at error level (message capped: consumers' errors
                # can quote file content); the full traceback only at debug.
                logger.error(
                    "vault watcher: on_batch failed on %d entries, retrying in %.0fs: %s",
                    len(batch),
                    delay,
                    self._error,
                )
                logger.debug("on_batch traceback", exc_info=True)
            else:
                with self._cond:
                    if self._error is not None:
                        logger.info("vault watcher: batches succeed again")
                    self._failures, self._retry_at, self._error = 0, 0.0, None
            finally:
                with self._cond:
                    self._done += 1
                    self._cond.notify_all()


def _backoff(failures: int, initial: float, maximum: float) -> float:
    return min(maximum, initial * 2 ** min(failures - 1, 30))


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())
