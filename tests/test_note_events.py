"""note_events: a sync records the notes it deletes and moves (with what the visibility rule
reads of them, in the registry transaction that deletes or moves them), and MCP
`recent_changes` names them only as far as the place may see them: a private note's path never,
a move's side outside the scope as null. Driven through VaultTools over a real index of a tmp
vault (hashing embedder), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers import build, close_index
from sqlalchemy import select, update

from engine import schema as t
from engine.answer import Asker
from engine.answer_cache import AnswerCache
from engine.embedders.hashing import HashingEmbedder
from engine.index import Index
from engine.models import Scope
from engine.querylog import QueryLog
from engine.registry import NOTE_EVENTS_DAYS
from engine.retrieve import Retriever
from sync.indexer import Indexer
from vaultbot.mcp_server import VaultTools
from vaultbot.serve import purge_expired

NOTES = {
    "Work/Plan.md": "# Plan\n\nThe plan for the launch.\n",
    "Work/Old.md": "# Old\n\nAn old note about nothing.\n",
    "Work/Tagged.md": "# Tagged\n\n#secret a tagged note.\n",
    "Work/Broken.md": "---\ntags: [secret\ntitle: broken: yes: no\n---\n\nBroken frontmatter.\n",
    "Diary/Dear diary.md": "---\nprivate: true\n---\n\nDear diary, the private one.\n",
    "Diary/Moving secret.md": "---\nprivate: true\n---\n\nA private note that moves.\n",
}


@pytest.fixture
def vault(tmp_path: Path, registry_url: str) -> Iterator[tuple[Path, Index, Indexer]]:
    root = tmp_path / "vault"
    for rel, text in NOTES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    index, indexer = build(root, tmp_path / "data", HashingEmbedder(dim=64), registry_url)
    indexer.sync()
    try:
        yield root, index, indexer
    finally:
        close_index(index)


def _tools(index: Index, scope: Scope) -> VaultTools:
    retriever = Retriever(index)
    return VaultTools(asker=Asker(retriever, None), retriever=retriever,
                      registry=index.registry, scope=lambda: scope)


def _move(root: Path, old: str, new: str) -> None:
    (root / new).parent.mkdir(parents=True, exist_ok=True)
    (root / old).rename(root / new)


def _changes(root: Path, indexer: Indexer) -> None:
    _move(root, "Work/Plan.md", "Archive/Plan.md")
    _move(root, "Diary/Moving secret.md", "Work/Moving secret.md")  # private wherever it is
    for rel in ("Work/Old.md", "Work/Tagged.md", "Work/Broken.md", "Diary/Dear diary.md"):
        (root / rel).unlink()
    stats = indexer.sync()
    assert (stats.notes_moved, stats.notes_deleted) == (2, 4)


def _names(recent: dict[str, Any]) -> str:
    return repr({k: recent[k] for k in ("moved", "deleted")})


def test_recent_changes_names_what_the_place_may_see(vault: tuple[Path, Index, Indexer]) -> None:
    root, index, indexer = vault
    _changes(root, indexer)

    everything = _tools(index, Scope()).recent("1h")  # what the access file's default shows
    [moved] = everything["moved"]
    assert (moved["from"], moved["to"]) == ("Work/Plan.md", "Archive/Plan.md")
    assert moved["link"] and "Archive" in moved["link"] and moved["at"]
    assert sorted(d["path"] for d in everything["deleted"]) == [
        "Work/Broken.md", "Work/Old.md", "Work/Tagged.md"]
    # The private notes, deleted or moved, are never named; the counts are of what is shown.
    assert "diary" not in _names(everything).lower() and "secret" not in _names(everything).lower()
    assert (everything["moved_count"], everything["deleted_count"]) == (1, 3)

    # Only Work/ and no #secret (the broken frontmatter's words count as tags: fail closed):
    # the move out of Work/ shows where it came from, not where it went.
    work = _tools(index, Scope(folders=("Work",), exclude_tags=("secret",))).recent("1h")
    assert work["moved"] == [{"from": "Work/Plan.md", "to": None, "at": moved["at"],
                              "link": None}]
    assert [d["path"] for d in work["deleted"]] == ["Work/Old.md"]
    assert (work["moved_count"], work["deleted_count"]) == (1, 1)

    # A place that sees only Archive/: the move's old path is not named.
    archive = _tools(index, Scope(folders=("Archive",))).recent("1h")
    assert [(m["from"], m["to"]) for m in archive["moved"]] == [(None, "Archive/Plan.md")]
    assert archive["deleted"] == []

    # The owner's private view names them all.
    owner = _tools(index, Scope(include_private=True)).recent("1h")
    assert {(m["from"], m["to"]) for m in owner["moved"]} == {
        ("Work/Plan.md", "Archive/Plan.md"), ("Diary/Moving secret.md", "Work/Moving secret.md")}
    assert len(owner["deleted"]) == 4

    # Older than `since`: not listed.
    assert _tools(index, Scope()).recent("2099-01-01")["moved"] == []


def test_a_moved_note_made_private_since_is_not_named_at_its_new_path(
        vault: tuple[Path, Index, Indexer]) -> None:
    root, index, indexer = vault
    _changes(root, indexer)
    (root / "Archive/Plan.md").write_text("---\nprivate: true\n---\n\nThe plan, private now.\n")
    indexer.sync()
    [moved] = _tools(index, Scope()).recent("1h")["moved"]
    assert (moved["from"], moved["to"], moved["link"]) == ("Work/Plan.md", None, None)


def test_an_event_that_cannot_be_judged_is_hidden(vault: tuple[Path, Index, Indexer]) -> None:
    root, index, indexer = vault
    _changes(root, indexer)
    ne = t.note_events
    with index.registry.engine.begin() as conn:  # as a damaged or hand-edited row would be
        conn.execute(update(ne).where(ne.c.path == "Work/Plan.md").values(new_private=None))
        conn.execute(update(ne).where(ne.c.path == "Work/Old.md").values(kind="renamed"))
    recent = _tools(index, Scope()).recent("1h")
    assert [(m["from"], m["to"]) for m in recent["moved"]] == [("Work/Plan.md", None)]
    assert "Work/Old.md" not in _names(recent)


def test_only_deletions_from_the_vault_and_moves_are_recorded(
        vault: tuple[Path, Index, Indexer]) -> None:
    """An edit, or a note dropped because it can no longer be indexed, is no event."""
    root, index, indexer = vault
    (root / "Work/Old.md").write_text("# Old\n\nEdited.\n")
    indexer.sync()
    assert index.registry.note_events(0) == []
    _changes(root, indexer)
    events = index.registry.note_events(0)
    assert sorted((e.kind, e.path) for e in events) == [
        ("deleted", "Diary/Dear diary.md"), ("deleted", "Work/Broken.md"),
        ("deleted", "Work/Old.md"), ("deleted", "Work/Tagged.md"),
        ("moved", "Diary/Moving secret.md"), ("moved", "Work/Plan.md")]


def test_events_are_purged_after_their_retention(vault: tuple[Path, Index, Indexer]) -> None:
    root, index, indexer = vault
    _changes(root, indexer)
    reg = index.registry
    with reg.engine.connect() as conn:
        newest = max(conn.execute(select(t.note_events.c.at)).scalars())
    assert reg.purge_note_events(NOTE_EVENTS_DAYS * 86400, now=newest + 86400) == 0
    # The hourly purge of serve and watch (the one that forgets superseded chunk text).
    app = SimpleNamespace(querylog=QueryLog(reg), answer_cache=AnswerCache(reg), index=index,
                          settings=SimpleNamespace(querylog_days=30, keep_versions_days=14))
    counts = purge_expired(app, now=newest + (NOTE_EVENTS_DAYS + 1) * 86400)  # type: ignore[arg-type]
    assert counts["note_events"] == 6
    assert reg.note_events(0) == []
