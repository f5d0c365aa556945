"""The keyword index in PostgreSQL (engine/pg_keywords.py, VAULTBOT_KEYWORDS=postgres): the
same hits and BM25 scores as the local index on the same chunks, with and without scopes; a
KeywordIndex; idempotent writes; and shared: what one process syncs, another's search sees."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from corpus import ROOT
from helpers import close_index

from engine.embedders.hashing import HashingEmbedder
from engine.index import Index
from engine.lexical import LexDoc, LexicalIndex
from engine.models import Scope
from engine.pg_keywords import PgKeywordIndex
from engine.registry import Registry
from engine.stores import KeywordIndex
from sync.indexer import Indexer

NOTES = {
    "work/Weekly review.md": "---\ntags: [project, review]\n---\n# Weekly review\n\nEvery Friday "
    "I go through the inbox, close finished projects and plan the next week.\n\n## Priorities\n\n"
    "Short list of priorities for the week, with the project owner next to each.\n",
    "work/Budget.md": "---\ntags: [finance]\n---\n# Budget\n\nThe project budget is reviewed "
    "every quarter; travel and software are the largest lines.\n",
    "home/Garden.md": "# Garden\n\nTomatoes and basil by the window; water the garden every "
    "morning in summer.\n",
    "home/Secret.md": "---\nprivate: true\n---\n# Secret plan\n\nThe weekly review of the secret "
    "garden project.\n",
    "일/회의록.md": "---\ntags: [project]\n---\n# 주간 회의록\n\n매주 금요일 회의에서 프로젝트 진행 "
    "상황을 검토하고 다음 주 우선순위를 정합니다.\n\n## 결정 사항\n\n예산 검토는 분기마다 합니다.\n",
    "일/정원.md": "# 정원 가꾸기\n\n토마토와 바질을 창가에서 키우고 여름에는 매일 아침 물을 줍니다.\n",
    "mixed/Canvas.md": "# 캔버스\n\n캔버스는 카드를 무한한 평면에 배치합니다. The canvas file format "
    "is JSON with nodes and edges.\n",
}

QUERIES = ["weekly review priorities", "project budget", "garden tomatoes", "주간 회의 우선순위",
           "예산 검토", "토마토 정원", "canvas nodes 캔버스", "review", "프로젝트"]
SCOPES = [None, Scope(), Scope(include_private=True), Scope(folders=("work",)),
          Scope(folders=("일",), include_private=True), Scope(tags=("project",)),
          Scope(exclude_tags=("finance",)), Scope(notes=("home/Garden.md", "일/정원.md")),
          Scope(exclude_folders=("home",))]


def _vault(root: Path) -> Path:
    vault = root / "vault"
    for path, body in NOTES.items():
        (vault / path).parent.mkdir(parents=True, exist_ok=True)
        (vault / path).write_text(body)
    return vault


@pytest.fixture
def synced(tmp_path: Path, pg_url: str) -> Any:
    """A small vault synced with the keyword index in PostgreSQL, and a local index holding the
    same chunks (fed from the registry as repair would)."""
    vault = _vault(tmp_path)
    pg = PgKeywordIndex(pg_url)
    index = Index.open(data_dir=tmp_path / "data", registry_url=pg_url,
                       embedder=HashingEmbedder(64), keywords=pg)
    Indexer(index, vault).sync()
    local = LexicalIndex(None)
    for chunks in index.registry.iter_chunks():
        local.upsert_chunks(chunks, index.registry.note_info({c.note_path for c in chunks}))
    yield index, pg, local, vault
    close_index(index)
    pg.close()


def _same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> None:
    """Same ids in the same order and scores within 1e-6 (relative: the local index sums in
    float32, PostgreSQL in float8); equal scores may come in either order."""
    assert len(a) == len(b), (a, b)
    for (_, sa), (_, sb) in zip(a, b, strict=True):
        assert sa == pytest.approx(sb, rel=1e-6)

    def canonical(hits: list[tuple[str, float]]) -> list[tuple[float, str]]:
        return sorted((-round(s, 4), cid) for cid, s in hits)

    assert canonical(a) == canonical(b)
    assert [c for c, _ in a] == [c for c, _ in b] or len({round(s, 4) for _, s in a}) < len(a)


def test_same_results_as_the_local_index(synced: Any) -> None:
    index, pg, local, _ = synced
    assert pg.ids() == local.ids() == index.registry.chunk_ids()
    assert len(pg) == len(local)
    checked = 0
    for query in QUERIES:
        for scope in SCOPES:
            want = local.search(query, 50, scope)
            got = pg.search(query, 50, scope)
            _same(got, want)
            checked += bool(want)
            top = local.search(query, 2, scope)
            if len(want) > 2 and round(want[1][1], 4) != round(want[2][1], 4):
                _same(pg.search(query, 2, scope), top)
    assert checked >= len(QUERIES) * len(SCOPES) // 2  # most combinations found something
    # The private note only where the scope includes private notes.
    secret = {c.id for c in index.registry.chunks_of_notes(["home/Secret.md"])["home/Secret.md"]}
    assert secret <= {c for c, _ in pg.search("secret garden", 50, Scope(include_private=True))}
    assert not secret & {c for c, _ in pg.search("secret garden", 50, Scope())}


def test_is_a_keyword_index(pg_url: str) -> None:
    Registry(pg_url).close()  # migrated: on Python 3.11 isinstance reads `generation`
    pg = PgKeywordIndex(pg_url)
    try:
        assert isinstance(pg, KeywordIndex)
    finally:
        pg.close()


def test_upsert_and_delete_are_idempotent(synced: Any) -> None:
    index, pg, _, _ = synced
    chunks = [c for cs in index.registry.iter_chunks() for c in cs]
    notes = index.registry.note_info({c.note_path for c in chunks})
    before = (pg.search("weekly review", 50, Scope()), len(pg), pg.ids())
    gen = pg.generation
    pg.upsert_chunks(chunks, notes)  # again: the same rows, statistics unchanged
    pg.upsert_chunks(chunks[:3], notes)
    assert (pg.search("weekly review", 50, Scope()), len(pg), pg.ids()) == before
    assert pg.generation > gen  # every write is a new generation
    gone = chunks[0].id
    assert pg.delete([gone, gone, "no-such-chunk"]) == 1
    gen = pg.generation
    assert pg.delete([gone]) == 0 and pg.generation == gen  # nothing removed: no new generation
    assert gone not in pg.ids() and len(pg) == before[1] - 1
    pg.upsert_chunks([chunks[0]], notes)
    assert (pg.search("weekly review", 50, Scope()), len(pg), pg.ids()) == before


# A second process: a searcher that answers one query per line on stdin with its hits and the
# index generation, as JSON, holding one PgKeywordIndex open all along (as a serve replica).
SEARCHER = """
import json, sys
from engine.models import Scope
from engine.pg_keywords import PgKeywordIndex
from engine.registry import Registry
pg = PgKeywordIndex(sys.argv[1])
print(json.dumps({"ready": pg.generation}), flush=True)
for line in sys.stdin:
    print(json.dumps({"hits": pg.search(line.strip(), 10, Scope()), "generation": pg.generation}),
          flush=True)
"""


def test_two_processes_share_it(tmp_path: Path, pg_url: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    """This process syncs (`vaultbot sync`'s own main, with the hashing embedder), another one
    searches."""
    import vaultbot.app as app
    from vaultbot.cli import main

    vault = _vault(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTBOT_")}
    env.update({"PYTHONPATH": str(ROOT), "VAULTBOT_DATABASE_URL": pg_url,
                "VAULTBOT_KEYWORDS": "postgres", "VAULTBOT_LLM": "none"})
    for key in list(os.environ):
        if key.startswith("VAULTBOT_"):
            monkeypatch.delenv(key)
    for key in ("VAULTBOT_DATABASE_URL", "VAULTBOT_KEYWORDS", "VAULTBOT_LLM"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(app, "make_embedder", lambda spec, **kw: HashingEmbedder(dim=64))

    def sync() -> None:
        assert main(["sync", "--vault", str(vault), "--data-dir", str(tmp_path / "data")]) == 0

    sync()  # migrates the registry and fills the shared index
    searcher = subprocess.Popen([sys.executable, "-c", SEARCHER, pg_url], env=env, cwd=tmp_path,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert searcher.stdin is not None and searcher.stdout is not None

    def ask(query: str) -> dict[str, Any]:
        searcher.stdin.write(query + "\n")  # type: ignore[union-attr]
        searcher.stdin.flush()  # type: ignore[union-attr]
        return json.loads(searcher.stdout.readline())  # type: ignore[union-attr]

    try:
        json.loads(searcher.stdout.readline())
        first = ask("zeppelin hangar")
        assert first["hits"] == []
        (vault / "work" / "Airships.md").write_text(
            "# Airships\n\nThe zeppelin hangar at the edge of town is open on Sundays.\n")
        sync()
        after = ask("zeppelin hangar")
        assert after["hits"] and after["generation"] > first["generation"]
        (vault / "work" / "Airships.md").unlink()
        sync()
        assert ask("zeppelin hangar")["hits"] == []
    finally:
        searcher.stdin.close()
        searcher.wait(30)


def test_switching_an_existing_deployment_fills_it_without_embedding(tmp_path: Path,
                                                                      pg_url: str) -> None:
    """docs/deploy.md: set VAULTBOT_KEYWORDS=postgres and sync once; repair fills the index."""
    from helpers import CountingEmbedder, build

    vault = _vault(tmp_path)
    index, indexer = build(vault, tmp_path / "data", HashingEmbedder(64), registry_url=pg_url)
    indexer.sync()  # the local keyword index
    close_index(index)
    emb = CountingEmbedder(HashingEmbedder(64))
    pg = PgKeywordIndex(pg_url)
    index = Index.open(data_dir=tmp_path / "data", registry_url=pg_url, embedder=emb, keywords=pg)
    try:
        stats = Indexer(index, vault).sync()
        assert stats.chunks_embedded == 0 and emb.passages == 0
        assert pg.ids() == index.registry.chunk_ids() and stats.repaired["keywords_added"] > 0
    finally:
        close_index(index)
        pg.close()


def test_private_notes_never_come_out_of_a_scope(pg_url: str) -> None:
    """The scope goes into the SQL as one bit per note state (keyword_metas): a private note's
    chunks come out only where the scope includes private notes, also when the note was written
    by another process after this one judged the scope, and a note state this process has not
    judged yet (a stale mask, as in a race with a writer) is left out, never let through."""
    import secrets

    from engine.lexical import LexDoc

    Registry(pg_url).close()
    writer, reader = PgKeywordIndex(pg_url), PgKeywordIndex(pg_url)
    ask = f"ask{secrets.token_hex(4)}"
    canary = f"kanaria-pg-{secrets.token_hex(4)}"

    def doc(cid: str, path: str, private: bool, tags: tuple[str, ...] = ("hr",)) -> LexDoc:
        return LexDoc(cid, f"{canary if private else 'public'} {ask} salary review", path, tags,
                      private)

    try:
        writer.upsert([doc("pub1", "hr/Public.md", False), doc("priv1", "hr/Secret.md", True),
                       doc("pub2", "work/Plan.md", False, ())])
        hidden = [Scope(), Scope(folders=("hr",)), Scope(tags=("hr",)),
                  Scope(notes=("hr/Secret.md",)), Scope(exclude_folders=("work",))]

        def found(scope: Scope) -> set[str]:
            return {c for c, _ in reader.search(f"{ask} salary", 20, scope)}

        for scope in hidden:
            assert "priv1" not in found(scope), scope
        assert found(Scope()) == {"pub1", "pub2"}
        assert "priv1" in found(Scope(include_private=True))
        with reader.engine.connect() as conn:
            stale = {s.key(): reader._scope_mask(conn, s)
                     for s in (Scope(), Scope(include_private=True))}
        # Written by another process after this one judged these scopes: judged now.
        writer.upsert([doc("priv2", "hr/Later secret.md", True),
                       doc("pub3", "hr/Later.md", False, ("hr", "new"))])
        for scope in hidden:
            assert not {"priv1", "priv2"} & found(scope), scope
        assert found(Scope()) == {"pub1", "pub2", "pub3"}
        assert {"priv1", "priv2"} <= found(Scope(include_private=True))
        # A mask from before those notes existed knows nothing of them: neither comes out.
        reader._scope_mask = lambda conn, scope: stale[scope.key()]  # type: ignore[method-assign]
        assert found(Scope()) == {"pub1", "pub2"}
        assert found(Scope(include_private=True)) == {"pub1", "pub2", "priv1"}
    finally:
        writer.close()
        reader.close()


def test_a_new_keyword_schema_clears_the_old_terms(pg_url: str, monkeypatch) -> None:
    """Terms written under another keyword schema (engine/versions.py: a tokenizer change) are
    not searched with this one's: the index is emptied for the next sync's repair to refill."""
    import engine.pg_keywords as pg_keywords

    Registry(pg_url).close()
    old = PgKeywordIndex(pg_url)
    try:
        old.upsert([LexDoc("c1", "weekly review of projects", "a.md")])
        assert len(old) == 1
    finally:
        old.close()
    monkeypatch.setattr(pg_keywords, "KEYWORD_SCHEMA", "next")
    new = PgKeywordIndex(pg_url)
    try:
        assert len(new) == 0 and new.search("weekly review", 5, Scope()) == []
    finally:
        new.close()
