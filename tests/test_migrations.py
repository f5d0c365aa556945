"""Registry migrations (engine/migrations), on SQLite and PostgreSQL.

The fixtures are registries made by the code from just before migrations existed (commit
2dd3a1f, tests/fixtures/make_legacy_registry.py) from tests/fixtures/legacy-vault: upgrading one
keeps every row, and the next sync of the same vault embeds nothing, re-adds and deletes
nothing. A SQLite registry is backed up (WAL included) before it is upgraded; a registry from a
newer vaultbot is refused with one line; a read-only one is read without being migrated; and a
registry made by the migrations is exactly `schema.metadata`, so the two cannot drift apart."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from corpus import ROOT
from helpers import CountingEmbedder, build, close_index, read_only_mount
from sqlalchemy import create_engine, inspect, text

from engine import migrations
from engine.embedders.hashing import HashingEmbedder
from engine.migrations import RegistryOutdated, RegistryTooNew
from engine.registry import Registry, make_engine
from engine.schema import metadata
from engine.versions import REGISTRY_SCHEMA

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LEGACY_SQLITE = FIXTURES / "registry-2dd3a1f.sqlite3"
LEGACY_PG = FIXTURES / "registry-2dd3a1f.pg.sql"
LEGACY_VAULT = FIXTURES / "legacy-vault"
TABLES = sorted(metadata.tables)
LEGACY_TABLES = {"notes", "chunks", "embeddings", "sync_runs", "skipped", "meta", "answer_cache",
                 "query_log"}  # what the fixtures hold


def _load_pg_dump(url: str, dump: Path) -> None:
    """A plain `pg_dump` into an empty database, without psql: its backslash meta-commands
    (\\restrict) are psql's, the rest is SQL."""
    import psycopg

    sql = "\n".join(line for line in dump.read_text().splitlines() if not line.startswith("\\"))
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(params=["sqlite", "postgres"])
def legacy_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The pre-migrations registry, as a user's data dir holds it."""
    if request.param == "sqlite":
        data = tmp_path / "data"
        data.mkdir()
        shutil.copyfile(LEGACY_SQLITE, data / "registry.sqlite3")
        return f"sqlite:///{data / 'registry.sqlite3'}"
    url = request.getfixturevalue("pg_url")
    _load_pg_dump(url, LEGACY_PG)
    return url


def _columns(url: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    try:
        insp = inspect(engine)
        return {t: [c["name"] for c in insp.get_columns(t)]
                for t in insp.get_table_names() if t in metadata.tables}
    finally:
        engine.dispose()


def _rows(url: str, columns: dict[str, list[str]] | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every registry table (of these columns only, when given: later revisions
    may add some), read without the Registry, so without migrating."""
    columns = columns or _columns(url)
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {t: sorted(tuple(str(v) for v in r) for r in conn.execute(text(
                        f'SELECT {", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)} FROM "{t}"')))
                    for t, cols in columns.items()}
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return migrations.stored_revision(conn)
    finally:
        engine.dispose()


def _drift(engine: Any) -> list[Any]:
    """What Alembic's autogenerate would change to make the database `schema.metadata`."""
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), metadata)


def _shape(engine: Any) -> dict[str, Any]:
    """Tables, columns (name, nullable, type class), keys and indexes, as the database has them."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(set(insp.get_table_names()) - {"alembic_version"}):
        out[table] = {
            "columns": sorted((c["name"], c["nullable"], type(c["type"]).__name__)
                              for c in insp.get_columns(table)),
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted((tuple(f["constrained_columns"]), f["referred_table"],
                           (f.get("options") or {}).get("ondelete"))
                          for f in insp.get_foreign_keys(table)),
            "indexes": sorted((i["name"], tuple(i["column_names"]))
                              for i in insp.get_indexes(table)),
        }
    return out


# ------------------------------------------------------------------------ upgrading a fixture
def test_fixture_upgrades_to_head_keeping_every_row(legacy_url: str, tmp_path: Path) -> None:
    assert _revision(legacy_url) == migrations.LEGACY
    old_columns = _columns(legacy_url)
    before = _rows(legacy_url, old_columns)
    assert set(before) == LEGACY_TABLES
    assert len(before["notes"]) == 5 and len(before["chunks"]) == 5 and len(before["embeddings"]) == 5
    assert before["skipped"] and any(r[-4] != "None" for r in before["notes"])  # frontmatter_error

    Registry(legacy_url).close()
    assert _revision(legacy_url) == REGISTRY_SCHEMA == migrations.head()
    assert _rows(legacy_url, old_columns) == before

    # The same vault again: nothing embedded, added, moved or deleted; the same chunk ids.
    vault = tmp_path / "vault"
    shutil.copytree(LEGACY_VAULT, vault)
    emb = CountingEmbedder(HashingEmbedder(64))
    index, indexer = build(vault, tmp_path / "sync-data", emb, registry_url=legacy_url)
    try:
        chunk_ids = index.registry.chunk_ids()
        stats = indexer.sync()
        assert (stats.chunks_embedded, emb.passages) == (0, 0)
        assert (stats.notes_added, stats.notes_updated, stats.notes_moved,
                stats.notes_deleted, stats.chunks_deleted) == (0, 0, 0, 0, 0)
        assert index.registry.chunk_ids() == chunk_ids
        assert index.registry.counts() == {"notes": 5, "chunks": 5, "embeddings": 5}
    finally:
        close_index(index)
    after = _rows(legacy_url, old_columns)
    assert after["chunks"] == before["chunks"] and after["embeddings"] == before["embeddings"]


def test_upgraded_fixture_is_exactly_the_schema(legacy_url: str) -> None:
    Registry(legacy_url).close()
    engine = create_engine(legacy_url)
    try:
        assert _drift(engine) == []
    finally:
        engine.dispose()


def test_legacy_registry_from_an_older_release_gets_its_missing_columns(tmp_path: Path) -> None:
    """What `_add_missing_columns` did at every start-up, done once by the first revision."""
    db = tmp_path / "registry.sqlite3"
    shutil.copyfile(LEGACY_SQLITE, db)
    con = sqlite3.connect(db)
    for table, column in (("notes", "frontmatter_error"), ("chunks", "sources"),
                          ("skipped", "mode"), ("skipped", "ctime_ns")):
        con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("DROP INDEX ix_answer_cache_scope")
    con.execute("DROP TABLE query_log")
    con.commit()
    con.close()
    reg = Registry(f"sqlite:///{db}")
    try:
        assert _drift(reg.engine) == []
        assert reg.counts() == {"notes": 5, "chunks": 5, "embeddings": 5}
        assert reg.chunks_by_id(reg.chunk_ids()) and all(
            c.sources is None for c in reg.chunks_by_id(reg.chunk_ids()).values())
    finally:
        reg.close()


def test_skips_of_an_older_registry_are_not_trusted(legacy_url: str) -> None:
    """A registry from before mode and ctime were recorded gains the columns; its skips, with
    no stamp, never match, so the files are tried again. (From tests/test_bad_vault.py: the
    older registry is now the pre-migrations fixture, less the two columns.)"""
    engine = create_engine(legacy_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE skipped DROP COLUMN mode"))
        conn.execute(text("ALTER TABLE skipped DROP COLUMN ctime_ns"))
        conn.execute(text("INSERT INTO skipped (path, reason, size, mtime_ns, at) "
                          "VALUES ('a.md', 'cannot read: Permission denied', 3, 4, 0)"))
    engine.dispose()
    reg = Registry(legacy_url)
    assert reg.skipped()["a.md"].mode is None and reg.skipped()["a.md"].ctime_ns is None
    reg.record_skip("b.md", "binary file", 1, 2, 0o100644, 5)
    assert reg.skipped()["b.md"].mode == 0o100644 and reg.skipped()["b.md"].ctime_ns == 5
    reg.close()


# ------------------------------------------------------------------------ a fresh registry
def test_fresh_registry_is_exactly_the_schema(registry_url: str, tmp_path: Path) -> None:
    """Migrated from nothing: what `create_all` makes from schema.py, no more, no less."""
    reg = Registry(registry_url)
    try:
        assert _revision(registry_url) == REGISTRY_SCHEMA
        assert _drift(reg.engine) == []
        assert set(_shape(reg.engine)) == set(TABLES)
        if registry_url.startswith("sqlite"):
            other = make_engine(f"sqlite:///{tmp_path / 'create_all.sqlite3'}")
            metadata.create_all(other)
            try:
                assert _shape(reg.engine) == _shape(other)
            finally:
                other.dispose()
    finally:
        reg.close()


def _ddl(db: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(f"{db.resolve().as_uri()}?immutable=1", uri=True)  # the fixture stays as it is
    try:
        return sorted(con.execute("SELECT name, sql FROM sqlite_master WHERE name NOT IN "
                                  "('alembic_version', 'sqlite_autoindex_alembic_version_1')"))
    finally:
        con.close()


def test_first_revision_is_the_old_create_all_statement_for_statement(tmp_path: Path) -> None:
    """Revision 0001 alone makes the DDL `create_all` made before migrations (the fixture)."""
    from alembic import command
    from alembic.config import Config

    db = tmp_path / "registry.sqlite3"
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.begin() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(migrations.SCRIPTS))
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0001")
    finally:
        engine.dispose()
    assert _revision(f"sqlite:///{db}") == "0001"
    assert _ddl(db) == _ddl(LEGACY_SQLITE)


def test_head_is_the_registry_schema_marker() -> None:
    assert migrations.head() == REGISTRY_SCHEMA
    assert migrations.known_revisions() >= {REGISTRY_SCHEMA}


def test_migrations_ship_with_the_package() -> None:
    """setuptools packages engine.migrations(.versions) and the template for new revisions."""
    import tomllib

    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "migrations/script.py.mako" in conf["tool"]["setuptools"]["package-data"]["engine"]
    assert (ROOT / "engine/migrations/__init__.py").is_file()
    assert (ROOT / "engine/migrations/versions/__init__.py").is_file()
    assert any(d.startswith("alembic") for d in conf["project"]["dependencies"])


# ------------------------------------------------------------------------ newer: refused
def test_registry_from_a_newer_vaultbot_is_refused(registry_url: str) -> None:
    Registry(registry_url).close()
    engine = create_engine(registry_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    engine.dispose()
    before = _rows(registry_url)
    with pytest.raises(RegistryTooNew) as err:
        Registry(registry_url)
    message = str(err.value)
    assert "9999_from_the_future" in message and "upgrade vaultbot" in message
    assert "\n" not in message
    assert _revision(registry_url) == "9999_from_the_future" and _rows(registry_url) == before


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_"))}
    env.update({"PYTHONPATH": str(ROOT), "VAULTBOT_LLM": "none", **extra})
    return env


def test_cli_says_upgrade_vaultbot_in_one_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    url = f"sqlite:///{data / 'registry.sqlite3'}"
    Registry(url).close()
    con = sqlite3.connect(data / "registry.sqlite3")
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    vault = tmp_path / "vault"
    shutil.copytree(LEGACY_VAULT, vault)
    r = subprocess.run([sys.executable, "-m", "vaultbot.cli", "status", "--vault", str(vault),
                        "--data-dir", str(data)], cwd=tmp_path, env=_env(),
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaultbot: "), r.stderr
    assert "upgrade vaultbot" in lines[0] and "Traceback" not in r.stderr


# ------------------------------------------------------------------------ SQLite backup
def _dump(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def test_sqlite_is_backed_up_before_upgrading_wal_included(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "registry.sqlite3"
    shutil.copyfile(LEGACY_SQLITE, db)
    # A write still in the WAL (no checkpoint yet, as with a process that keeps it open): a
    # copy of the main file alone would lose it.
    holder = sqlite3.connect(db)
    holder.execute("PRAGMA wal_autocheckpoint=0")
    with holder:
        holder.execute("INSERT INTO meta(key, value) VALUES ('only-in-the-wal', 'x')")
    assert (tmp_path / "registry.sqlite3-wal").stat().st_size > 0
    before = _dump(db)
    assert any("only-in-the-wal" in line for line in before)
    try:
        with caplog.at_level(logging.INFO, logger="engine.migrations"):
            Registry(f"sqlite:///{db}").close()
    finally:
        holder.close()

    backup = tmp_path / "registry.sqlite3.bak-legacy"
    assert backup.is_file() and not (tmp_path / "registry.sqlite3.bak-legacy.part").exists()
    assert _dump(backup) == before  # the old registry, as it was, WAL included
    assert oct(backup.stat().st_mode & 0o777) == oct(db.stat().st_mode & 0o777)
    said = [r.getMessage() for r in caplog.records if r.name == "engine.migrations"]
    assert len(said) == 1 and str(backup) in said[0] and "legacy" in said[0], said
    assert _revision(f"sqlite:///{db}") == REGISTRY_SCHEMA

    # At the head already: nothing more is backed up or said.
    caplog.clear()
    backup.unlink()
    with caplog.at_level(logging.INFO, logger="engine.migrations"):
        Registry(f"sqlite:///{db}").close()
    assert not backup.exists() and not [r for r in caplog.records if r.name == "engine.migrations"]


def test_fresh_registry_needs_no_backup(tmp_path: Path) -> None:
    Registry(f"sqlite:///{tmp_path / 'registry.sqlite3'}").close()
    assert sorted(p.name for p in tmp_path.iterdir() if ".bak" in p.name) == []


def test_processes_starting_at_once_upgrade_once(legacy_url: str) -> None:
    """Two registries opening the old registry together (serve and a sync): one upgrades under
    the lock, the other finds it done."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def open_it() -> None:
        try:
            barrier.wait()
            Registry(legacy_url).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    assert _revision(legacy_url) == REGISTRY_SCHEMA
    engine = create_engine(legacy_url)
    try:
        assert _drift(engine) == []
    finally:
        engine.dispose()


# ------------------------------------------------------------------------ read-only
@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(src, ro): ro is src mounted read-only, as a read-only data dir."""
    src = tmp_path / "src"
    src.mkdir()
    with read_only_mount(src, tmp_path / "ro") as ro:
        yield src, ro


def test_read_only_legacy_registry_is_read_not_migrated(
        read_only_dir: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    """Older than the head but with every table and column this code reads (as a registry
    from just before a release that only added things): read as it is. Made from the fixture
    brought to the head and then unstamped, so it stays true as revisions are added."""
    src, ro = read_only_dir
    shutil.copyfile(LEGACY_SQLITE, src / "registry.sqlite3")
    Registry(f"sqlite:///{src / 'registry.sqlite3'}").close()
    con = sqlite3.connect(src / "registry.sqlite3")
    con.execute("DROP TABLE alembic_version")
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    for leftover in src.glob("registry.sqlite3.bak-*"):
        leftover.unlink()
    before = sorted(p.name for p in src.iterdir())
    with caplog.at_level(logging.WARNING, logger="engine.migrations"):
        reg = Registry(f"sqlite:///{ro / 'registry.sqlite3'}")
    try:
        assert reg.read_only
        assert reg.counts() == {"notes": 5, "chunks": 5, "embeddings": 5}
        assert len(reg.chunks_by_id(reg.chunk_ids())) == 5
        assert sorted(reg.note_info(["Broken.md"])["Broken.md"].suspect)  # frontmatter_error read
    finally:
        reg.close()
    assert sorted(p.name for p in src.iterdir()) == before  # no backup, no WAL files
    assert _revision(f"sqlite:///{src / 'registry.sqlite3'}") == migrations.LEGACY
    assert any("reading it without upgrading" in r.getMessage() for r in caplog.records)


def test_read_only_registry_at_0003_is_read_without_the_optional_parts(
        read_only_dir: tuple[Path, Path]) -> None:
    """A read-only registry from before 0004/0005 lacks query_log.answer/user/link and
    note_events, which only writes fill: it is read, the query log shows no answers or
    questions per user, and no note events."""
    from alembic import command
    from alembic.config import Config

    from engine.querylog import QueryLog

    src, ro = read_only_dir
    shutil.copyfile(LEGACY_SQLITE, src / "registry.sqlite3")
    engine = create_engine(f"sqlite:///{src / 'registry.sqlite3'}")
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(migrations.SCRIPTS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0003")
        conn.execute(text("INSERT INTO query_log (at, channel, question, scope, mode, timings, "
                          "sources, citations_valid, citations_invalid, unsupported, feedback) "
                          "VALUES (1, 'slack:C1', 'q?', '', 'llm', '{}', '[]', 0, 0, 0, -1)"))
    engine.dispose()
    con = sqlite3.connect(src / "registry.sqlite3")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    reg = Registry(f"sqlite:///{ro / 'registry.sqlite3'}")
    try:
        assert reg.read_only and {"note_events", "query_log.answer"} <= reg.absent_tables
        [row] = QueryLog(reg).disliked()
        assert row["question"] == "q?" and row["answer"] is None
        assert QueryLog(reg).recent_for("U1", "slack") == []
        assert reg.note_events(0) == []
    finally:
        reg.close()


def test_read_only_registry_lacking_columns_fails_clearly(read_only_dir: tuple[Path, Path]) -> None:
    src, ro = read_only_dir
    shutil.copyfile(LEGACY_SQLITE, src / "registry.sqlite3")
    con = sqlite3.connect(src / "registry.sqlite3")
    con.execute("ALTER TABLE chunks DROP COLUMN sources")
    con.commit()
    con.close()
    with pytest.raises(RegistryOutdated) as err:
        Registry(f"sqlite:///{ro / 'registry.sqlite3'}")
    assert "chunks.sources" in str(err.value) and "write access" in str(err.value)


def test_read_only_registry_from_a_newer_vaultbot_is_refused(
        read_only_dir: tuple[Path, Path]) -> None:
    src, ro = read_only_dir
    Registry(f"sqlite:///{src / 'registry.sqlite3'}").close()
    con = sqlite3.connect(src / "registry.sqlite3")
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    with pytest.raises(RegistryTooNew, match="upgrade vaultbot"):
        Registry(f"sqlite:///{ro / 'registry.sqlite3'}")


# ------------------------------------------------------------------------ the eval cache
def test_eval_cache_keeps_unversioned_vectors_and_drops_another_versions(tmp_path: Path) -> None:
    from engine.versions import EVAL_CACHE_VERSION
    from vaultbot.evaluate import CachedEmbedder

    path = tmp_path / "eval-embeddings.sqlite3"
    first = CachedEmbedder(CountingEmbedder(HashingEmbedder(16)), path)
    first.embed_passages(["a", "b"])
    first._db.execute("PRAGMA user_version = 0")  # as written before the version was stored
    first._db.close()
    again = CachedEmbedder(CountingEmbedder(HashingEmbedder(16)), path)
    again.embed_passages(["a", "b"])
    assert again.embedded == 0  # kept: the same layout
    assert again._db.execute("PRAGMA user_version").fetchone()[0] == EVAL_CACHE_VERSION
    again._db.execute(f"PRAGMA user_version = {EVAL_CACHE_VERSION + 1}")
    again._db.close()
    other = CachedEmbedder(CountingEmbedder(HashingEmbedder(16)), path)
    other.embed_passages(["a", "b"])
    assert other.embedded == 2  # another version's vectors are not trusted
    other._db.close()
