"""The one visibility rule at the engine's level: a chunk is shown only where every note its text
came from may be shown (embeds at any depth), fail-closed frontmatter, and names in NFC.
The front-end canary suite (tests/test_privacy_canary.py) asks the same through every door."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from helpers import build

from bot.access import Access
from engine.embedders.hashing import HashingEmbedder
from engine.models import ChunkRecord, Scope
from engine.provenance import visible
from engine.retrieve import RetrievalConfig, Retriever
from sync.chunk import chunk_note
from sync.indexer import chunk_sources
from sync.parse import parse_markdown

SECRET = "kanaria-salary-7f3a"
NESTED = "kanaria-nested-19c2"
FOLDER = "kanaria-folder-55d1"


def _reader(files: dict[str, str]):
    return lambda path: files.get(path)


def _parse(path: str, files: dict[str, str]):
    from sync.links import LinkResolver

    return parse_markdown(path, files[path], LinkResolver(files), _reader(files))


# ------------------------------------------------------------------------------- parsing


def test_private_embed_is_left_out_of_a_public_note_and_reported() -> None:
    files = {
        "Daily.md": "# Day\n\nMorning notes.\n\n![[Salary review]]\n\nEvening notes.\n",
        "Salary review.md": f"---\nprivate: true\n---\nThe review is on December 10, {SECRET}.\n",
    }
    note = _parse("Daily.md", files)
    assert SECRET not in note.body and "Evening notes." in note.body
    assert note.private_embeds == ["Salary review.md"]
    assert "Salary review.md" in note.embedded  # re-chunked when it changes (e.g. made public)
    assert any("embed of a private note left out" in w for w in note.warnings)


def test_private_note_may_embed_private_text() -> None:
    files = {
        "Diary.md": "---\nprivate: true\n---\n![[Salary review]]\n",
        "Salary review.md": f"---\nprivate: true\n---\n{SECRET}\n",
    }
    note = _parse("Diary.md", files)
    assert SECRET in note.body and note.private_embeds == []


def test_bad_yaml_naming_private_key_embeds_as_private() -> None:
    files = {
        "Daily.md": "![[Payroll]]\n",
        "Payroll.md": f"---\ntitle: Payroll: 2026\nprivate: true\n---\n{SECRET}\n",
    }
    assert SECRET not in _parse("Daily.md", files).body


def test_embed_regions_carry_every_note_their_text_came_from() -> None:
    files = {
        "A.md": "Own text of A.\n\n![[B]]\n\nMore of A.\n",
        "B.md": "B says hello.\n\n![[C]]\n",
        "C.md": f"C holds {NESTED}.\n",
    }
    note = _parse("A.md", files)
    assert NESTED in note.body
    ((start, end, paths),) = note.embed_regions
    assert note.body[start:end].startswith("B says hello.") and NESTED in note.body[start:end]
    assert paths == ("B.md", "C.md")
    assert note.body[:start].strip() == "Own text of A."


def test_an_embed_in_a_heading_line_is_not_expanded() -> None:
    files = {"A.md": "# Plans ![[C]]\n\ntext\n", "C.md": f"{NESTED}\n"}
    note = _parse("A.md", files)
    assert NESTED not in note.body and note.embed_regions == []


def test_only_the_chunks_holding_embedded_text_carry_its_source() -> None:
    para = "Filler sentence about the garden and the weather today. " * 12
    files = {
        "Long.md": f"# One\n\n{para}\n\n# Two\n\n![[C]]\n\n# Three\n\n{para}\n",
        "C.md": f"C holds {NESTED}. " + "More words here. " * 5 + "\n",
    }
    note = _parse("Long.md", files)
    drafts = chunk_note(note, max_tokens=120, min_tokens=0)
    carrying = [d for d in drafts if chunk_sources(note, d)]
    assert carrying and all(NESTED in d.text for d in carrying)
    assert all(chunk_sources(note, d) == () for d in drafts if NESTED not in d.text)


@pytest.mark.parametrize("frontmatter, private", [
    ("title: Payroll: 2026\nprivate: true", True),  # the colon breaks the whole block
    ("title: Payroll: 2026\nPrivate: yes", True),
    ("title: Payroll: 2026\ntags: [work]", False),
    ("- just\n- a list\nprivate", True),  # valid YAML, not a mapping: judged on the text
    ("private: true", True),
    ("private: false", False),
])
def test_unparseable_frontmatter_fails_closed(frontmatter: str, private: bool) -> None:
    note = parse_markdown("N.md", f"---\n{frontmatter}\n---\nbody\n")
    assert note.private is private


def test_a_private_tag_anywhere_in_unparseable_frontmatter_hides_the_note() -> None:
    # the tags entry itself is broken too: only the raw text says `secret`
    note = parse_markdown("N.md", "---\ntitle: HR: notes\ntags: [secret, work\n---\nbody\n")
    assert not note.private and "secret" not in note.tags
    access = Access.from_dict({"private": {"tags": ["secret"]}})
    assert not access.base_scope().allows(note.path, note.tags, note.private, note.suspect_tags)
    # ...while an ordinary valid note with the same tags list is judged on its tags as usual
    ok = parse_markdown("M.md", "---\ntags: [work]\n---\nbody\n")
    assert access.base_scope().allows(ok.path, ok.tags, ok.private, ok.suspect_tags)


# ------------------------------------------------------------------------------- names


def test_scope_names_compare_in_nfc_and_without_case() -> None:
    nfd_folder = unicodedata.normalize("NFD", "인사")
    scope = Access.from_dict({"private": {"folders": ["인사"], "tags": ["Secret"]}}).base_scope()
    assert not scope.allows(f"{nfd_folder}/Pay.md", [], False)
    assert not scope.allows("인사/Pay.md", [], False)
    assert not scope.allows("Work/x.md", ["secret/inner"], False)
    only = Scope(folders=(unicodedata.normalize("NFD", "회의록"),))
    assert only.allows("회의록/a.md", [], False) and only.folders == ("회의록",)


# ------------------------------------------------------------------------------- index


def _vault(root: Path) -> Path:
    vault = root / "vault"
    hr = vault / unicodedata.normalize("NFD", "인사")
    hr.mkdir(parents=True)
    (hr / "Pay.md").write_text(f"Bonus pool decided: {FOLDER}.\n", encoding="utf-8")
    (vault / "Salary review.md").write_text(
        f"---\nprivate: true\n---\nThe review meeting is on December 10, {SECRET}.\n",
        encoding="utf-8")
    filler = "An ordinary public paragraph about gardening and tomatoes. " * 10
    (vault / "Daily.md").write_text(
        f"# Morning\n\n{filler}\n\n# Pay\n\n![[Pay]]\n\n# Review\n\n![[Salary review]]\n\n"
        f"# Evening\n\n{filler}\n", encoding="utf-8")
    (vault / unicodedata.normalize("NFD", "회의록")).mkdir()
    (vault / unicodedata.normalize("NFD", "회의록") / "주간.md").write_text(
        "주간 회의: 출시일은 12월 4일입니다.\n", encoding="utf-8")
    return vault


@pytest.fixture
def indexed(tmp_path: Path):
    vault = _vault(tmp_path)
    index, indexer = build(vault, tmp_path / "data", HashingEmbedder())
    indexer.chunk_tokens = 60
    indexer.sync()
    return index, indexer, vault


def test_synced_paths_are_nfc_and_twins_are_skipped(indexed) -> None:
    index, indexer, vault = indexed
    paths = set(index.registry.note_states())
    assert "인사/Pay.md" in paths and "회의록/주간.md" in paths
    assert all(p == unicodedata.normalize("NFC", p) for p in paths)
    (vault / "인사").mkdir()  # the NFC twin of the NFD folder on disk (Linux allows both)
    (vault / "인사" / "Pay.md").write_text("other text\n", encoding="utf-8")
    stats = indexer.sync()
    assert [s["reason"] for s in stats.skipped if "Unicode" in s["reason"]]
    assert set(index.registry.note_states()) == paths


def test_a_chunk_embedding_an_access_private_note_is_hidden(indexed) -> None:
    index, _, _ = indexed
    scope = Access.from_dict({"private": {"folders": ["인사"]}}).base_scope()
    retriever = Retriever(index)
    for query in (FOLDER, "Bonus pool decided", "gardening tomatoes"):
        hits = retriever.search(query, 10, scope=scope, use_cache=False)
        assert not any(FOLDER in h.text for h in hits), query
        assert not any(SECRET in h.text for h in hits), query
    public = retriever.search("gardening tomatoes", 10, scope=scope, use_cache=False)
    assert any(h.note_path == "Daily.md" for h in public)  # the rest of the note stays
    # the owner's scope sees the embedded text through the public note
    owner = retriever.search(FOLDER, 10, scope=Scope(include_private=True), use_cache=False)
    assert any(FOLDER in h.text and h.note_path == "Daily.md" for h in owner)
    assert any(h.provenance == ("인사/Pay.md",) for h in owner)


def test_neighbours_never_bring_in_hidden_text(indexed) -> None:
    index, _, _ = indexed
    scope = Access.from_dict({"private": {"folders": ["인사"]}}).base_scope()
    retriever = Retriever(index, RetrievalConfig(neighbours=3))
    for query in ("gardening tomatoes", "Morning", "Evening"):
        for h in retriever.search(query, 10, scope=scope, use_cache=False):
            assert FOLDER not in h.text and SECRET not in h.text


def test_folder_filter_typed_in_nfc_finds_an_nfd_folder(indexed) -> None:
    index, _, _ = indexed
    hits = Retriever(index).search("출시일", 5, scope=Scope(folders=("회의록",)), use_cache=False)
    assert [h.note_path for h in hits] == ["회의록/주간.md"]


def test_rows_without_recorded_provenance_count_every_embedded_note(indexed) -> None:
    index, _, _ = indexed
    reg = index.registry
    daily = reg.chunks_of_notes(["Daily.md"])["Daily.md"]
    legacy = [ChunkRecord(c.id, c.note_path, c.ordinal, c.text, c.text_hash, c.heading_path,
                          c.page, c.span, c.tokens, sources=None) for c in daily]
    scope = Access.from_dict({"private": {"folders": ["인사"]}}).base_scope()
    assert visible(scope, legacy, reg) == set()  # Daily embeds 인사/Pay.md: unknown means all
    assert visible(scope, daily, reg) == {c.id for c in daily if not c.sources}
    assert visible(Scope(include_private=True), legacy, reg) == {c.id for c in daily}
    # a source the registry does not know (deleted, skipped) is never vouched for
    orphan = [ChunkRecord(c.id, c.note_path, c.ordinal, c.text, c.text_hash, c.heading_path,
                          c.page, c.span, c.tokens, sources=("Gone.md",)) for c in daily[:1]]
    assert visible(Scope(include_private=True), orphan, reg) == set()


def test_a_note_moved_into_a_private_folder_takes_its_embedders_chunks_along(indexed) -> None:
    index, indexer, vault = indexed
    (vault / "Notes").mkdir()
    (vault / "Notes" / "Plan.md").write_text(f"The plan: {NESTED}.\n", encoding="utf-8")
    (vault / "Public.md").write_text("Public intro.\n\n![[Plan]]\n", encoding="utf-8")
    indexer.sync()
    scope = Access.from_dict({"private": {"folders": ["인사"]}}).base_scope()
    retriever = Retriever(index)
    assert any(NESTED in h.text for h in retriever.search(NESTED, 10, scope=scope))
    nfd = unicodedata.normalize("NFD", "인사")
    (vault / "Notes" / "Plan.md").rename(vault / nfd / "Plan.md")
    indexer.sync()
    assert not any(NESTED in h.text for h in retriever.search(NESTED, 10, scope=scope))


# ------------------------------------------------------------------------------- answers


async def test_cached_answer_is_never_served_where_a_source_is_hidden(indexed) -> None:
    from engine.answer import Answer, Asker, AskOptions
    from engine.answer_cache import AnswerCache
    from engine.citations import make_citations

    index, _, _ = indexed
    cache = AnswerCache(index.registry)
    asker = Asker(Retriever(index), None, cache=cache)
    owner = Scope(include_private=True)
    hits = asker.retriever.search(FOLDER, 3, scope=owner, use_cache=False)
    assert any(FOLDER in h.text for h in hits)
    # An entry under the team's scope that cites the chunk holding 인사/Pay.md's text, as a
    # version before provenance could have written it: it must not be served.
    scope = Access.from_dict({"private": {"folders": ["인사"]}}).base_scope()
    key = AnswerCache.scope_key(scope.key(), f"extractive|None|{asker.k}")
    cites = make_citations(hits, "vault")
    leaked = Answer(FOLDER, f"Bonus pool decided: {FOLDER}.", cites, cites, "extractive", None)
    cache.store(key, FOLDER, asker.retriever.embed_query(FOLDER), leaked.to_cache(),
                sorted({h.note_path for h in hits}))
    answer = await asker.ask(FOLDER, AskOptions(scope=scope))
    assert answer.cached != "answer" and FOLDER not in answer.text


async def test_thread_turns_citing_a_hidden_note_leave_the_history(indexed, fake_ollama) -> None:
    from engine.answer import Asker, AskOptions
    from engine.llm.ollama import OllamaGenerator
    from engine.prompt import Turn

    index, _, _ = indexed
    asker = Asker(Retriever(index), OllamaGenerator(fake_ollama.url))
    scope = Access.from_dict({"private": {"folders": ["인사"]}}).base_scope()
    history = [Turn("What was decided?", f"The bonus pool: {FOLDER} [1].", ("인사/Pay.md",)),
               Turn("And the garden?", "Tomatoes [1].", ("Daily.md",))]
    await asker.ask("Anything else?", AskOptions(scope=scope, history=history))
    (chat,) = fake_ollama.requests_to("/api/chat")
    sent = str(chat.body)
    assert FOLDER not in sent and "Tomatoes [1]." in sent
