"""A note's language is judged at sync and stored (notes.language), so adaptive fusion reads no
chunk text per query: kept in step with edits, moves and deletes; filled in from the stored
chunks (no embedding) for a registry upgraded from before the column; and retrieval ranks alike
with the stored language and with the one it computed per query before."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from corpus import VAULTS, need_corpus
from helpers import CountingEmbedder, build, close_index
from sqlalchemy import text
from test_migrations import legacy_url  # noqa: F401 - a fixture (the committed old registry)

from engine.embedders.hashing import HashingEmbedder
from engine.index import Index
from engine.registry import Registry
from engine.retrieve import Retriever, language_of_chunks

FIXTURES = Path(__file__).resolve().parent / "fixtures"

EN = ("# Weekly review\n\nEvery Friday I go through the inbox, close finished projects and plan "
      "the next week with a short list of priorities.\n")
KO = ("# 주간 회고\n\n매주 금요일마다 받은 편지함을 정리하고 끝난 프로젝트를 닫은 뒤 다음 주의 "
      "우선순위를 짧게 적어 둡니다.\n")
# Korean prose around English code: Korean by the note rule (Hangul weighs 2.5 letters).
MIXED = ("# 설정 파일\n\n이 파일은 앱의 설정을 담고 있으며 아래 예시처럼 값을 바꾸면 됩니다.\n\n"
         "```json\n{\"theme\": \"dark\", \"fontSize\": 14, \"plugins\": [\"graph\", \"canvas\"]}\n```\n")


def _languages(index: Index) -> dict[str, str | None]:
    reg = index.registry
    with reg.engine.connect() as conn:
        return dict(conn.execute(text("SELECT path, language FROM notes")).all())  # type: ignore[arg-type]


def _computed(index: Index) -> dict[str, str]:
    """What retrieval judged per query before the column: the note's chunks from the registry."""
    reg = index.registry
    paths = list(_languages(index))
    return {p: language_of_chunks(cs) for p, cs in reg.chunks_of_notes(paths).items()}


def test_language_stored_at_sync_and_kept_in_step(tmp_path: Path, registry_url: str) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "en.md").write_text(EN)
    (vault / "ko.md").write_text(KO)
    (vault / "mixed.md").write_text(MIXED)
    index, indexer = build(vault, tmp_path / "data", HashingEmbedder(64), registry_url=registry_url)
    reads = _ChunkReads(index)

    def sync() -> Any:
        reads.calls.clear()
        stats = indexer.sync()
        assert reads.calls == []  # judged on the chunks being written, not read back afterwards
        return stats

    try:
        sync()
        assert _languages(index) == {"en.md": "en", "ko.md": "ko", "mixed.md": "ko"}
        assert _languages(index) == _computed(index)
        assert index.registry.note_info(["ko.md"])["ko.md"].language == "ko"

        (vault / "en.md").write_text(KO.replace("주간", "월간"))  # an edit that changes it
        sync()
        assert _languages(index)["en.md"] == "ko"

        (vault / "sub").mkdir()
        (vault / "ko.md").rename(vault / "sub" / "moved.md")  # the row moves, language with it
        stats = sync()
        assert stats.notes_moved == 1
        assert _languages(index) == {"en.md": "ko", "sub/moved.md": "ko", "mixed.md": "ko"}

        (vault / "mixed.md").unlink()
        sync()
        assert _languages(index) == {"en.md": "ko", "sub/moved.md": "ko"}
        assert _languages(index) == _computed(index)
    finally:
        close_index(index)


def test_upgraded_registry_gets_languages_without_embedding(legacy_url: str,  # noqa: F811
                                                              tmp_path: Path) -> None:
    reg = Registry(legacy_url)  # upgraded: the column is there, empty
    try:
        assert len(reg.notes_without_language()) == 5
    finally:
        reg.close()
    vault = tmp_path / "vault"
    shutil.copytree(FIXTURES / "legacy-vault", vault)
    emb = CountingEmbedder(HashingEmbedder(64))
    index, indexer = build(vault, tmp_path / "data", emb, registry_url=legacy_url)
    try:
        chunk_ids = index.registry.chunk_ids()
        stats = indexer.sync()
        assert (stats.chunks_embedded, emb.passages) == (0, 0)
        assert (stats.notes_added, stats.notes_updated, stats.notes_moved) == (0, 0, 0)
        assert index.registry.chunk_ids() == chunk_ids
        assert index.registry.notes_without_language() == []
        assert _languages(index) == _computed(index)
    finally:
        close_index(index)


class _ChunkReads:
    """Counts what the registry reads of chunk text per note, the per-query cost that storing
    the language removed."""

    def __init__(self, index: Index) -> None:
        self.calls: list[list[str]] = []
        inner = index.registry.chunks_of_notes

        def counted(paths: Any) -> Any:
            paths = list(paths)
            self.calls.append(paths)
            return inner(paths)

        index.registry.chunks_of_notes = counted  # type: ignore[method-assign]


def _forget_languages(index: Index) -> None:
    """As a registry upgraded from before the column holds it, until its next sync."""
    with index.registry.engine.begin() as conn:
        conn.execute(text("UPDATE notes SET language = NULL"))
    # A process opening such a registry starts with nothing cached; this one read the notes.
    index.registry.forget_cached()


@pytest.fixture(scope="module")
def bilingual(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two parallel folders of the English and Korean help vaults (tests/test_bilingual.py),
    with the meaning-free hashing embedder: this is about ranking alike, not ranking well."""
    need_corpus()
    root = tmp_path_factory.mktemp("bilingual-lang")
    vault = root / "vault"
    for name, folder in (("obsidian-help-en", "Linking notes and files"),
                         ("obsidian-help-ko", "노트 및 파일 링크")):
        shutil.copytree(VAULTS / name / folder, vault / name / folder)
    index, indexer = build(vault, root / "data", HashingEmbedder(256))
    indexer.sync()
    yield index
    close_index(index)


QUESTIONS = [
    "How do I embed a note inside another note?", "How do I create an alias for a note?",
    "internal links and backlinks", "노트 안에 다른 노트를 임베드하려면 어떻게 하나요?",
    "노트에 별칭을 추가하는 방법", "내부 링크", "heading 링크", "Markdown 링크 형식", "block reference",
]


def test_hybrid_query_on_a_cold_retriever_reads_no_chunk_text_for_language(bilingual: Index) -> None:
    reads = _ChunkReads(bilingual)
    reg = bilingual.registry
    texts_read: list[str] = []
    with_text: list[str] = []
    chunk_texts, chunks_by_id = reg.chunk_texts, reg.chunks_by_id

    def counted_texts(ids: Any) -> Any:
        texts_read.extend(ids)
        return chunk_texts(ids)

    def counted_by_id(ids: Any, *, text: bool = True) -> Any:
        ids = list(ids)
        if text:
            with_text.extend(ids)
        return chunks_by_id(ids, text=text)

    reg.chunk_texts, reg.chunks_by_id = counted_texts, counted_by_id  # type: ignore[method-assign]
    try:
        for q in QUESTIONS:
            texts_read.clear()
            hits = Retriever(bilingual).search(q, k=5, mode="hybrid", use_cache=False)
            assert hits and all(h.text for h in hits)
            # The text of what it returns, and of nothing else (40 candidates per list).
            assert sorted(texts_read) == sorted(h.chunk_id for h in hits)
        assert reads.calls == [] and with_text == []
    finally:
        del reg.chunks_of_notes, reg.chunk_texts, reg.chunks_by_id  # the class's methods again


def test_stored_and_computed_languages_rank_alike(bilingual: Index) -> None:
    assert {v for v in _languages(bilingual).values()} == {"en", "ko"}
    assert _languages(bilingual) == _computed(bilingual)
    stored = {q: Retriever(bilingual).search(q, k=8, mode="hybrid", use_cache=False)
              for q in QUESTIONS}
    _forget_languages(bilingual)
    try:
        reads = _ChunkReads(bilingual)
        computed = {q: Retriever(bilingual).search(q, k=8, mode="hybrid", use_cache=False)
                    for q in QUESTIONS}
        assert reads.calls  # the fallback did judge them per query
        del bilingual.registry.chunks_of_notes
        for q in QUESTIONS:
            assert [(h.chunk_id, h.score) for h in stored[q]] == \
                [(h.chunk_id, h.score) for h in computed[q]], q
    finally:
        bilingual.registry.set_languages(_computed(bilingual))
