"""One indexer at a time: a lock file per data dir, and a PostgreSQL advisory lock when several
machines (different data dirs) share one registry database."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine

from sync.lock import IndexLock, IndexLocked


def test_file_lock_refuses_a_second_indexer(tmp_path: Path) -> None:
    first = IndexLock(tmp_path / "data")
    first.acquire()
    try:
        with pytest.raises(IndexLocked, match="pid"):
            IndexLock(tmp_path / "data").acquire()
    finally:
        first.release()
    with IndexLock(tmp_path / "data"):
        pass  # free again


def test_postgres_advisory_lock_spans_data_dirs(tmp_path: Path, pg_url: str) -> None:
    engine_a, engine_b = create_engine(pg_url), create_engine(pg_url)
    try:
        a = IndexLock(tmp_path / "machine-a", engine_a)
        a.acquire()
        b = IndexLock(tmp_path / "machine-b", engine_b)  # its own lock file: only PG can say no
        with pytest.raises(IndexLocked, match="database"):
            b.acquire()
        assert not (tmp_path / "machine-b" / "index.lock.pid").exists()  # gave its file lock back
        a.release()
        b.acquire()
        b.release()
    finally:
        engine_a.dispose()
        engine_b.dispose()
