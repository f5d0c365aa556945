"""Retention: the query log and the answer cache are purged by age (fake clocks, no sleeping),
on demand through `vaultbot purge [--all]`, and on a schedule in `serve` and `watch`; on
SQLite a purged question is gone from the files too, not just from the tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest
from corpus import ROOT, copy_vault
from helpers import close_index, free_port
from sqlalchemy import func, select, update

from engine import schema as t
from engine.answer_cache import AnswerCache
from engine.querylog import QueryLog
from engine.registry import Registry
from vaultbot.app import App
from vaultbot.cli import main
from vaultbot.serve import PURGE_HOURS, start_purge_schedule
from vaultbot.settings import Settings

DAY = 86400.0
NOW = 1_800_000_000.0  # the fake clock's "now"
SECRET = "ZEBRA-7F3A what did my therapist say about the divorce"


def _unit(seed: int, dim: int = 16) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


def _log(querylog: QueryLog, question: str, at: float) -> int | None:
    return querylog.record(at=at, channel="cli", question=question, mode="extractive")


def _questions(registry: Registry) -> set[str]:
    with registry.engine.connect() as conn:
        return set(conn.execute(select(t.query_log.c.question)).scalars())


def _cached(registry: Registry) -> set[str]:
    with registry.engine.connect() as conn:
        return set(conn.execute(select(t.answer_cache.c.question)).scalars())


def _cache(cache: AnswerCache, question: str, seed: int, created_at: float) -> None:
    """A cached answer created at `created_at` (store() stamps the real time; age it here)."""
    cache.store("scope", question, _unit(seed), {"answer": question}, [])
    with cache.registry.engine.begin() as conn:
        conn.execute(update(t.answer_cache).where(t.answer_cache.c.question == question)
                     .values(created_at=created_at))


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [k for k in os.environ if k.startswith("VAULTBOT_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("VAULTBOT_LLM", "none")
    monkeypatch.chdir(tmp_path)  # no stray .env


# ------------------------------------------------------------------ engine, fake clock


def test_querylog_purge_by_age(registry_url: str) -> None:
    registry = Registry(registry_url)
    log = QueryLog(registry)
    _log(log, "two months ago", NOW - 60 * DAY)
    _log(log, "31 days ago", NOW - 31 * DAY)
    _log(log, "exactly 30 days ago", NOW - 30 * DAY)
    _log(log, "yesterday", NOW - DAY)
    assert log.purge(30 * DAY, now=NOW) == 2
    assert _questions(registry) == {"exactly 30 days ago", "yesterday"}
    assert log.purge(30 * DAY, now=NOW) == 0  # idempotent
    assert log.purge(30 * DAY, now=NOW + DAY) == 1  # a day later the boundary row goes
    assert log.purge(0, now=NOW) == 1  # retention 0 keeps nothing logged before now
    _log(log, "a", NOW)
    _log(log, "b", NOW)
    assert log.clear() == 2 and _questions(registry) == set()
    registry.close()


def test_querylog_disabled_writes_nothing(registry_url: str) -> None:
    """VAULTBOT_QUERYLOG_DAYS=0: a question is not even written, so none waits for a purge."""
    registry = Registry(registry_url)
    assert _log(QueryLog(registry, enabled=False), SECRET, NOW) is None
    assert _questions(registry) == set()
    registry.close()


def test_answer_cache_purge_expired(registry_url: str) -> None:
    registry = Registry(registry_url)
    cache = AnswerCache(registry, threshold=0.9, ttl_seconds=3600)
    now = time.time()
    _cache(cache, "old", 1, now - 2 * 3600)
    _cache(cache, "fresh", 2, now - 1800)
    other = AnswerCache(registry, threshold=0.9, ttl_seconds=3600)  # another process
    for c in (cache, other):
        assert c.lookup("scope", _unit(2)) is not None  # mirrors both rows
    assert len(cache._scopes["scope"].ids) == 2
    assert cache.purge_expired(now=now) == 1
    assert _cached(registry) == {"fresh"}
    # Nor does its vector (derived from the question) stay in this process's mirror, where a
    # long-running serve would otherwise pile up every expired entry no lookup ever met.
    assert len(cache._scopes["scope"].ids) == 1
    assert cache.lookup("scope", _unit(2)).answer == {"answer": "fresh"}
    assert cache.lookup("scope", _unit(1)) is None
    assert other.lookup("scope", _unit(1)) is None and other.lookup("scope", _unit(2)) is not None
    assert cache.purge_expired(now=now + 3600) == 1  # an hour on, "fresh" has expired too
    assert _cached(registry) == set() and cache.lookup("scope", _unit(2)) is None
    _cache(cache, "x", 3, now)
    assert cache.clear() == 1 and _cached(registry) == set()
    registry.close()


# ------------------------------------------------------------------ the scheduled job


def test_schedule_purges_at_start_and_every_hour(registry_url: str, tmp_path: Path,
                                                 clean_env: None) -> None:
    app = App(Settings(data_dir=tmp_path / "data", database_url=registry_url,
                       querylog_days=30, cache_ttl_hours=1))
    registry = app.index.registry
    clock = [NOW]
    _log(app.querylog, "old", NOW - 31 * DAY)
    _log(app.querylog, "recent", NOW - 29 * DAY)
    _cache(app.answer_cache, "stale answer", 1, NOW - 2 * 3600)
    _cache(app.answer_cache, "fresh answer", 2, NOW - 600)
    scheduler = start_purge_schedule(app, clock=lambda: clock[0])
    try:
        job = scheduler.get_job("purge")
        assert job.trigger.interval == timedelta(hours=PURGE_HOURS) == timedelta(hours=1)
        _until(lambda: (_questions(registry), _cached(registry))  # it ran at start
               == ({"recent"}, {"fresh answer"}))
        clock[0] += 2 * DAY
        job.func()  # the next scheduled run
        assert _questions(registry) == set() and _cached(registry) == set()
    finally:
        scheduler.shutdown(wait=True)
        app.close()
        close_index(app.index)  # App.close() leaves the keyword index and Chroma open


def _until(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.parametrize("command", ["watch", "serve"])
def test_serve_and_watch_run_the_purge(tmp_path: Path, command: str) -> None:
    """Real processes: a question logged 40 days ago is gone soon after start, yesterday's
    stays. `serve --no-watch` too: the API fills the log whether or not it syncs."""
    vault = copy_vault("example", tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    registry = Registry(f"sqlite:///{data / 'registry.sqlite3'}")
    _log(QueryLog(registry), "forty days ago", time.time() - 40 * DAY)
    _log(QueryLog(registry), "yesterday", time.time() - DAY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_"))}
    env.update(PYTHONPATH=str(ROOT), VAULTBOT_LLM="none", VAULTBOT_RECONCILE_MINUTES="0")
    port = free_port()
    args = ["watch"] if command == "watch" else ["serve", "--no-watch", "--port", str(port)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaultbot.cli", *args, "--vault", str(vault), "--data-dir", str(data)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Up, and so handling SIGTERM: watch prints after its first sync; serve's uvicorn
        # takes the signal only once it answers.
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert ("indexed:" if command == "watch" else "serving on") in line, proc.communicate()
        if command == "serve":
            _until(lambda: _answers(f"http://127.0.0.1:{port}/health") or proc.poll() is not None)
        _until(lambda: _questions(registry) == {"yesterday"} or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in out
    finally:
        if proc.poll() is None:
            proc.kill()
        registry.close()


def _holds(path: Path, text: str) -> bool:
    return text.encode() in path.read_bytes()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# ------------------------------------------------------------------ `vaultbot purge`


def test_purge_command(registry_url: str, tmp_path: Path, clean_env: None,
                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("VAULTBOT_DATABASE_URL", registry_url)
    monkeypatch.setenv("VAULTBOT_QUERYLOG_DAYS", "7")
    monkeypatch.setenv("VAULTBOT_CACHE_TTL_HOURS", "24")
    data = tmp_path / "data"
    registry = Registry(registry_url)  # stays open, as a running `serve` would keep it
    log = QueryLog(registry)
    cache = AnswerCache(registry, threshold=0.9)
    now = time.time()
    _log(log, SECRET, now - 8 * DAY)
    _log(log, "last week", now - 6 * DAY)
    _log(log, "today", now)
    _cache(cache, SECRET, 1, now - 25 * 3600)
    _cache(cache, "this morning", 2, now - 3600)
    registry.store_vectors("m", {"h1": _unit(9)})

    def purge(*args: str) -> dict[str, int]:
        assert main(["purge", *args, "--data-dir", str(data)]) == 0
        out = capsys.readouterr().out
        return json.loads(out) if "--json" in args else out

    assert purge("--json") == {"query_log": 1, "answer_cache": 1}
    assert _questions(registry) == {"last week", "today"}
    assert _cached(registry) == {"this morning"}
    assert purge() == "deleted 0 query-log rows and 0 cached answers\n"
    if registry_url.startswith("sqlite"):
        # secure_delete plus the truncating checkpoint: the text is gone from the files too.
        db = Path(registry_url.removeprefix("sqlite:///"))
        assert not _holds(db, SECRET)
        assert not _holds(db.with_name(db.name + "-wal"), SECRET)  # there: we keep it open

    assert purge("--all", "--json") == {"query_log": 2, "answer_cache": 1}
    assert _questions(registry) == set() and _cached(registry) == set()
    with registry.engine.connect() as conn:  # the embedding cache is not about questions: kept
        assert conn.execute(select(func.count()).select_from(t.embeddings)).scalar_one() == 1
    assert purge("--all") == "deleted 0 query-log rows and 0 cached answers\n"
    registry.close()


def test_purge_help_says_what_all_keeps(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["purge", "--help"])
    assert exc.value.code == 0
    assert "embedding cache stays" in " ".join(capsys.readouterr().out.split())


def test_querylog_days_zero_logs_nothing(tmp_path: Path, clean_env: None,
                                         monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture) -> None:
    """Through the real CLI: with 0 an answered question leaves no row and no query id."""
    vault = copy_vault("example", tmp_path)
    data = tmp_path / "data"
    base = ["--vault", str(vault), "--data-dir", str(data)]
    assert main(["sync", *base]) == 0
    capsys.readouterr()
    monkeypatch.setenv("VAULTBOT_QUERYLOG_DAYS", "0")
    assert main(["ask", "When is the launch?", "--json", *base]) == 0
    assert json.loads(capsys.readouterr().out)["query_id"] is None
    registry = Registry(f"sqlite:///{data / 'registry.sqlite3'}")
    assert _questions(registry) == set()
    monkeypatch.setenv("VAULTBOT_QUERYLOG_DAYS", "30")
    assert main(["ask", "When is the launch?", "--json", *base]) == 0
    assert json.loads(capsys.readouterr().out)["query_id"] is not None
    assert _questions(registry) == {"When is the launch?"}
    registry.close()

    monkeypatch.setenv("VAULTBOT_QUERYLOG_DAYS", "-1")
    assert main(["purge", *base]) == 2
    assert "VAULTBOT_QUERYLOG_DAYS" in capsys.readouterr().err
