"""The cited version (issue 12): a sync that replaces or deletes a chunk keeps its text in
`chunk_versions` in the same transaction, the note page of an older answer shows it beside the
note as it is now (only while the provenance rule allows every note that text came from), the
hourly purge forgets it after VAULTBOT_KEEP_VERSIONS_DAYS (fake clocks), and migration 0003
adds the table keeping every row, on SQLite and PostgreSQL. A read-only registry without the
table is still read: nothing is kept there."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import build, close_index, make_pdf
from sqlalchemy import create_engine, func, select, update

# The migration helpers (and the read-only mount fixture) are test_migrations.py's.
from test_migrations import (  # noqa: F401  (legacy_url, read_only_dir: fixtures)
    LEGACY_SQLITE,
    _columns,
    _revision,
    _rows,
    legacy_url,
    read_only_dir,
)

from engine import migrations
from engine import schema as t
from engine.answer import Asker
from engine.embedders.hashing import HashingEmbedder
from engine.index import Index
from engine.models import Scope
from engine.querylog import QueryLog
from engine.registry import Registry
from engine.retrieve import Retriever
from engine.versions import REGISTRY_SCHEMA
from sync.indexer import Indexer
from vaultbot.api import create_app
from vaultbot.app import App
from vaultbot.serve import purge_all, purge_expired, start_purge_schedule
from vaultbot.settings import Settings
from vaultbot.web.links import LinkSigner, note_url_for

DAY = 86400.0
NOTICE = "The cited passage changed since the answer."
NOT_KEPT = "(the text as cited is no longer kept)"
OLD = "The launch is planned for the ninth of March in the old plan."
NEW = "The launch moved to the second of April after the review."


FILLER = " ".join(f"word{i}" for i in range(60))  # sections above MIN_TOKENS: chunks of their own


def _plan(launch: str, team: str = "Ada and Grace.") -> str:
    return f"# Plan\n\n## Launch\n\n{launch} {FILLER}\n\n## Team\n\n{team} {FILLER}\n"


def _write(vault: Path, path: str, text: str) -> None:
    (vault / path).parent.mkdir(parents=True, exist_ok=True)
    (vault / path).write_text(text, encoding="utf-8")


def _chunk(index: Index, path: str, contains: str) -> Any:
    return next(c for c in index.registry.chunks_of_notes([path])[path] if contains in c.text)


def _versions(registry: Registry) -> dict[str, float]:
    with registry.engine.connect() as conn:
        return dict(conn.execute(select(t.chunk_versions.c.chunk_id,
                                        t.chunk_versions.c.dropped_at)).all())


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [k for k in os.environ if k.startswith("VAULTBOT_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)  # no stray .env


@pytest.fixture
def synced(registry_url: str, tmp_path: Path) -> Iterator[tuple[Path, Index, Indexer]]:
    vault = tmp_path / "vault"
    _write(vault, "plan.md", _plan(OLD))
    _write(vault, "other.md", "# Other\n\nNothing changes here.\n")
    index, indexer = build(vault, tmp_path / "data", HashingEmbedder(), registry_url)
    indexer.sync()
    yield vault, index, indexer
    close_index(index)


# ------------------------------------------------------------------------ the write path
def test_an_edit_keeps_the_cited_passage_as_it_was(synced: tuple[Path, Index, Indexer]) -> None:
    vault, index, indexer = synced
    registry = index.registry
    cited = _chunk(index, "plan.md", "ninth of March")
    unchanged = _chunk(index, "plan.md", "Ada and Grace")
    assert registry.chunk_version(cited.id) is None  # nothing dropped yet
    before = time.time()
    _write(vault, "plan.md", _plan(NEW))
    indexer.sync()
    assert cited.id not in registry.chunk_ids()
    kept = registry.chunk_version(cited.id)
    assert kept is not None
    assert (kept.text, kept.text_hash, kept.note_path, kept.heading_path, kept.sources) == (
        cited.text, cited.text_hash, "plan.md", cited.heading_path, cited.sources)
    assert set(_versions(registry)) == {cited.id}  # the chunk that stayed is not a version
    assert registry.chunk_version(unchanged.id) is None
    assert before <= _versions(registry)[cited.id] <= time.time()

    # Reverted, then edited again: the same chunk id dropped twice is one row, the newest.
    _write(vault, "plan.md", _plan(OLD))
    indexer.sync()
    first = _versions(registry)[cited.id]
    _write(vault, "plan.md", _plan(NEW))
    indexer.sync()
    assert list(_versions(registry)).count(cited.id) == 1
    assert _versions(registry)[cited.id] >= first

    # A deleted note's chunks are kept too.
    other = _chunk(index, "other.md", "Nothing changes")
    (vault / "other.md").unlink()
    indexer.sync()
    assert registry.chunk_version(other.id).text == other.text  # type: ignore[union-attr]


def test_versions_are_written_in_the_syncs_transaction(
        synced: tuple[Path, Index, Indexer], monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry's write fails at its last statement: neither the new chunks nor a version
    of the old ones are left (one transaction); the next sync writes both."""
    import engine.registry

    vault, index, indexer = synced
    registry = index.registry
    cited = _chunk(index, "plan.md", "ninth of March")

    def crash(conn: Any) -> None:
        raise RuntimeError("crash at the end of the write")

    monkeypatch.setattr(engine.registry, "_bump_generation", crash)
    _write(vault, "plan.md", _plan(NEW))
    with pytest.raises(RuntimeError, match="crash at the end"):
        indexer.sync()
    assert _versions(registry) == {} and cited.id in registry.chunk_ids()
    monkeypatch.undo()
    indexer.sync()
    assert registry.chunk_version(cited.id) is not None and cited.id not in registry.chunk_ids()


# ------------------------------------------------------------------------ the note page
def _client(vault: Path, index: Index, signer: LinkSigner) -> httpx.AsyncClient:
    retriever = Retriever(index)
    app = create_app(asker=Asker(retriever, None), retriever=retriever, index=index,
                     querylog=QueryLog(index.registry), vault=vault, signer=signer,
                     rules=lambda: Scope())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def _link(signer: LinkSigner, chunk: Any, scope: Scope | None = None) -> str:
    token = signer.sign(chunk.note_path, chunk.id, chunk.text_hash, scope or Scope())
    return note_url_for("http://testserver", token, cited=True).split("#")[0]


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
async def test_note_page_shows_the_passage_as_cited_beside_the_note_now(
        synced: tuple[Path, Index, Indexer]) -> None:
    vault, index, indexer = synced
    signer = LinkSigner(b"v" * 32)
    url = _link(signer, _chunk(index, "plan.md", "ninth of March"))
    async with _client(vault, index, signer) as client:
        page = (await client.get(url)).text
        assert NOTICE not in page and OLD in page  # unchanged: the passage itself, highlighted
        _write(vault, "plan.md", _plan(NEW))
        indexer.sync()
        response = await client.get(url)
        page = response.text
        assert response.status_code == 200
        assert NOTICE in page and NOT_KEPT not in page
        notice, now = page.split('<aside class="notice"', 1)[1].split("</aside>", 1)
        assert OLD in notice and NEW not in notice  # the passage as cited, in the notice
        assert NEW in now and OLD not in now  # beside the note as it is now

        index.registry.purge_versions(0, now=time.time() + 1)  # no longer kept
        page = (await client.get(url)).text
        assert NOTICE in page and NOT_KEPT in page and OLD not in page


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
async def test_a_version_whose_embedded_source_became_private_is_not_shown(
        synced: tuple[Path, Index, Indexer]) -> None:
    """The kept text holds another note's text (an embed): shown while that note may be
    shown, not once it is private, although the note that embeds it is not."""
    vault, index, indexer = synced
    _write(vault, "Host.md", "# Host\n\nThe host introduces the embedded part.\n\n![[Source]]\n")
    _write(vault, "Source.md", "# Source\n\nThe quarterly figure was forty-two units.\n")
    indexer.sync()
    signer = LinkSigner(b"v" * 32)
    cited = _chunk(index, "Host.md", "forty-two")
    assert cited.sources == ("Source.md",)
    url = _link(signer, cited)
    async with _client(vault, index, signer) as client:
        _write(vault, "Source.md", "# Source\n\nThe quarterly figure was revised to fifty.\n")
        indexer.sync()
        page = (await client.get(url)).text
        assert NOTICE in page and "forty-two" in page and "revised to fifty" in page

        _write(vault, "Source.md", "---\nprivate: true\n---\n# Source\n\nRevised to fifty.\n")
        indexer.sync()
        assert index.registry.chunk_version(cited.id) is not None  # still kept...
        response = await client.get(url)
        page = response.text
        assert response.status_code == 200 and "introduces the embedded part" in page
        assert NOTICE in page and NOT_KEPT in page  # ...but not shown
        assert "forty-two" not in page and "fifty" not in page


# ------------------------------------------------------------------------ the purge
def test_purge_forgets_versions_older_than_the_limit(synced: tuple[Path, Index, Indexer]) -> None:
    vault, index, indexer = synced
    registry = index.registry
    old, team = _chunk(index, "plan.md", "ninth of March"), _chunk(index, "plan.md", "Ada")
    _write(vault, "plan.md", _plan(NEW))
    indexer.sync()
    _write(vault, "plan.md", _plan(NEW, "Ada alone."))
    indexer.sync()
    now = time.time()
    with registry.engine.begin() as conn:  # the first version was dropped 15 days ago
        conn.execute(update(t.chunk_versions).where(t.chunk_versions.c.chunk_id == old.id)
                     .values(dropped_at=now - 15 * DAY))
    assert registry.purge_versions(14 * DAY, now=now) == 1
    assert set(_versions(registry)) == {team.id}
    assert registry.purge_versions(14 * DAY, now=now) == 0
    assert registry.purge_versions(14 * DAY, now=now + 13 * DAY) == 0
    assert registry.purge_versions(14 * DAY, now=now + 15 * DAY) == 1
    assert _versions(registry) == {}


def test_the_scheduled_purge_applies_keep_versions_days(registry_url: str, tmp_path: Path,
                                                        clean_env: None) -> None:
    vault = tmp_path / "vault"
    _write(vault, "plan.md", f"# Plan\n\n{OLD}\n")
    app = App(Settings(vault=vault, data_dir=tmp_path / "data", database_url=registry_url,
                       llm="none", keep_versions_days=14, _env_file=None))
    registry = app.index.registry
    try:
        app.indexer.sync()
        _write(vault, "plan.md", f"# Plan\n\n{NEW}\n")
        app.indexer.sync()
        assert len(_versions(registry)) == 1
        assert purge_all(app) == {"query_log": 0, "answer_cache": 0}  # --all keeps them
        assert len(_versions(registry)) == 1
        clock = [time.time() + 13 * DAY]
        scheduler = start_purge_schedule(app, clock=lambda: clock[0])
        try:
            job = scheduler.get_job("purge")
            job.func()  # 13 days on: kept
            assert len(_versions(registry)) == 1
            clock[0] += 2 * DAY
            job.func()  # 15 days on: gone
            assert _versions(registry) == {}
        finally:
            scheduler.shutdown(wait=True)
        _write(vault, "plan.md", f"# Plan\n\n{OLD}\n")
        app.indexer.sync()
        assert purge_expired(app, now=time.time() + DAY) == {  # a day later
            "query_log": 0, "answer_cache": 0}
        app.settings = app.settings.model_copy(update={"keep_versions_days": 0})
        assert purge_expired(app) == {"query_log": 0, "answer_cache": 0, "chunk_versions": 1}
    finally:
        app.close()
        close_index(app.index)


def test_keep_versions_days_setting(clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).keep_versions_days == 14
    monkeypatch.setenv("VAULTBOT_KEEP_VERSIONS_DAYS", "0")
    assert Settings(_env_file=None).keep_versions_days == 0
    monkeypatch.setenv("VAULTBOT_KEEP_VERSIONS_DAYS", "-1")
    with pytest.raises(ValueError):
        Settings(_env_file=None)


# ------------------------------------------------------------------------ migration 0003
def test_0002_registry_upgrades_to_0003_keeping_every_row(legacy_url: str) -> None:  # noqa: F811
    engine = create_engine(legacy_url)
    sqlite_file = (Path(legacy_url.removeprefix("sqlite:///"))
                   if legacy_url.startswith("sqlite") else None)
    try:
        with migrations._locked(engine, sqlite_file) as conn:
            migrations._run(conn, "0002")
    finally:
        engine.dispose()
    assert _revision(legacy_url) == "0002"
    # The keyword tables are derived data that 0006 lays out anew (the next sync refills them).
    old_columns = {t: c for t, c in _columns(legacy_url).items() if not t.startswith("keyword_")}
    assert "chunk_versions" not in old_columns
    before = _rows(legacy_url, old_columns)
    assert sum(map(len, before.values())) > 0

    registry = Registry(legacy_url)
    try:
        assert _revision(legacy_url) == REGISTRY_SCHEMA  # 0003 and every later one
        assert _rows(legacy_url, old_columns) == before  # every row kept
        if sqlite_file is not None:
            assert sqlite_file.with_name(f"{sqlite_file.name}.bak-0002").exists()
        # The new table works: a deleted note's chunks are kept.
        path = sorted(registry.note_states())[0]
        ids = registry.delete_notes([path])
        assert ids and all(registry.chunk_version(i) is not None for i in ids)
        with registry.engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(t.chunk_versions)).scalar_one()
        assert n == len(ids)
    finally:
        registry.close()


def test_read_only_registry_without_the_table_is_read(
        read_only_dir: tuple[Path, Path]) -> None:  # noqa: F811
    """A read-only registry from before 0003 lacks chunk_versions, which reading does not need:
    read (migrations.OPTIONAL_TABLES), with nothing kept; another table missing is refused."""
    src, ro = read_only_dir
    shutil.copyfile(LEGACY_SQLITE, src / "registry.sqlite3")
    Registry(f"sqlite:///{src / 'registry.sqlite3'}").close()  # at the head
    con = sqlite3.connect(src / "registry.sqlite3")
    con.execute("DROP TABLE chunk_versions")
    con.execute("UPDATE alembic_version SET version_num = '0002'")
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    reg = Registry(f"sqlite:///{ro / 'registry.sqlite3'}")
    try:
        assert reg.read_only and reg.absent_tables == {"chunk_versions"}
        ids = sorted(reg.chunk_ids())
        assert len(ids) == 5
        assert reg.chunk_version(ids[0]) is None
        assert reg.purge_versions(0) == 0
    finally:
        reg.close()


@pytest.mark.parametrize("registry_url", ["sqlite"], indirect=True)
async def test_pdf_page_shows_the_passage_as_cited(synced: tuple[Path, Index, Indexer]) -> None:
    """A PDF's page, too, says the cited text changed and shows it as it was cited."""
    vault, index, indexer = synced
    old, new = "The budget was approved on the ninth of March.", "The budget is on hold."
    make_pdf(vault / "report.pdf", [old])
    indexer.sync()
    signer = LinkSigner(b"p" * 32)
    url = _link(signer, _chunk(index, "report.pdf", "ninth of March"))
    make_pdf(vault / "report.pdf", [new])
    indexer.sync()
    async with _client(vault, index, signer) as client:
        page = (await client.get(url)).text
    assert NOTICE in page and NOT_KEPT not in page
    notice = page.split('<aside class="notice"', 1)[1].split("</aside>", 1)[0]
    assert "ninth of March" in notice
