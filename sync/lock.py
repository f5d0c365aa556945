"""One indexer at a time per index.

With a local data dir a lock file in it is enough. With a PostgreSQL registry several machines
may share one index, so the lock is a PostgreSQL advisory lock held on its own connection."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from filelock import FileLock, Timeout
from sqlalchemy import Engine, text

_ADVISORY_KEY = 0x7661756C74626F74  # "vaultbot"


class IndexLocked(RuntimeError):
    """Another process is indexing the same data dir or database."""


class IndexLock:
    def __init__(self, data_dir: Path, engine: Engine | None = None) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self._file = FileLock(str(data_dir / "index.lock"))
        self._pid_file = data_dir / "index.lock.pid"
        self._engine = engine if engine is not None and engine.dialect.name == "postgresql" else None
        self._conn = None

    def acquire(self, timeout: float = 0.0) -> None:
        try:
            self._file.acquire(timeout=timeout)
        except Timeout:
            holder = self._pid_file.read_text().strip() if self._pid_file.exists() else "?"
            raise IndexLocked(
                f"another vaultbot process (pid {holder}) is indexing this data dir; "
                "stop it or wait for it to finish"
            ) from None
        if self._engine is not None:
            conn = self._engine.connect()
            got = conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _ADVISORY_KEY}).scalar()
            if not got:
                conn.close()
                self._file.release()
                raise IndexLocked("another vaultbot process is indexing this database")
            self._conn = conn
        # Written only once every lock is held, so a pid file never names a process that lost.
        self._pid_file.write_text(str(os.getpid()))

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _ADVISORY_KEY})
            finally:
                self._conn.close()
                self._conn = None
        if self._file.is_locked:
            self._pid_file.unlink(missing_ok=True)
            self._file.release()

    def __enter__(self) -> IndexLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
