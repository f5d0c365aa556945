"""What the dense embedder is given (issue #15): chunk text less link targets and HTML comments,
each distinct text embedded once, every vector back on its own chunk; the keyword index and the
chunk ids still see the full text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from helpers import CountingEmbedder, build

from engine.embedders.base import normalize
from engine.embedders.hashing import HashingEmbedder
from engine.models import ChunkDraft, without_markup_noise
from engine.retrieve import Retriever

FOOTER = (
    "# This note in GitHub\n\n"
    '<span class="git-footer">[Edit In GitHub](https://github.dev/hub/blob/main/{name}.md '
    '"git-hub-edit-note") | [Copy this note](https://raw.githubusercontent.com/hub/main/{name}.md)'
    "</span>\n"
)


def test_link_targets_and_comments_go_text_stays() -> None:
    text = (
        "See [the docs](https://example.com/zqxdocs \"Docs\") and ![logo](img/logo.png).\n"
        "[![badge](https://img.shields.io/x.svg)](https://ci.example.com/run)\n"
        "<!-- - Discord: `@` ^discord-->\nKept: <https://bare.example.com/> and %% a comment %%\n"
        "[[Wiki link|alias]] stays."
    )
    out = without_markup_noise(text)
    assert out == (
        "See the docs and logo.\nbadge\n\nKept: <https://bare.example.com/> and %% a comment %%\n"
        "[[Wiki link|alias]] stays."
    )
    # A comment the chunker cut in two keeps its halves: only whole comments are known hidden.
    assert without_markup_noise("<!--\n### Others\n") == "<!--\n### Others\n"
    assert without_markup_noise("a --> b") == "a --> b"  # mermaid arrows are not comments


def test_vector_text_keeps_heading_path_and_never_empties() -> None:
    d = ChunkDraft(0, "[Edit](https://x.example/a) here", ("Note", "Part"))
    assert d.vector_text == "Note > Part\n\nEdit here"
    assert d.embed_text == "Note > Part\n\n[Edit](https://x.example/a) here"  # ids, keywords
    only_noise = ChunkDraft(0, "<!-- nothing shown -->", ("Note",))
    assert only_noise.vector_text == only_noise.embed_text


def test_sync_embeds_each_vector_text_once_and_maps_vectors_back(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    for name, body in [("alpha", "Alpha note about zqxharbor tides and boats."),
                       ("beta", "Beta note about orchards, [pears](https://fruit.example/zqxpear)."),
                       ("gamma", "Gamma note on mountains and snow.")]:
        # Long enough that the footer is a chunk of its own (small sections merge).
        filler = " ".join(f"{name}{i} word{i}" for i in range(200))
        (vault / f"{name}.md").write_text(f"# {name}\n\n{body} {filler}\n\n{FOOTER.format(name=name)}")
    hashing = HashingEmbedder(64)
    emb = CountingEmbedder(hashing)
    index, indexer = build(vault, tmp_path / "data", emb)

    stats = indexer.sync()
    chunks = [c for recs in index.registry.chunks_of_notes(["alpha.md", "beta.md", "gamma.md"]).values()
              for c in recs]
    footers = [c for c in chunks if c.heading_path == ("This note in GitHub",)]
    assert len(footers) == 3 and len({c.text_hash for c in footers}) == 3  # three chunks, own ids
    assert len({c.vector_text for c in footers}) == 1
    # The three footers are one text to embed: embedded once; nothing embedded twice.
    assert len(emb.texts) == len(set(emb.texts)) == len({c.vector_text for c in chunks})
    assert stats.chunks_embedded == len(emb.texts) == len(chunks) - 2
    assert not any("https://fruit" in t for t in emb.texts)
    # Every chunk's stored vector is the embedding of its own vector text.
    cached = index.registry.cached_vectors(index.model, {c.text_hash for c in chunks})
    for c in chunks:
        want = normalize(hashing.embed_passages([c.vector_text]))[0]
        assert np.allclose(cached[c.text_hash], want, atol=1e-6), c.text
    assert index.vectors.count() == len(chunks)

    # The keyword index still has the URL's words; dense search finds the note by its text.
    retriever = Retriever(index)
    hits = retriever.search("zqxpear", k=3, mode="lexical", use_cache=False)
    assert hits and hits[0].note_path == "beta.md"

    # A re-sync embeds nothing.
    emb.reset()
    assert indexer.sync().chunks_embedded == 0 and emb.passages == 0
    index.close()


def test_repair_embeds_vector_text(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "n.md").write_text("# N\n\nSee [zqxsite](https://zqx.example/long/path) now.\n")
    emb = CountingEmbedder(HashingEmbedder(64))
    index, indexer = build(vault, tmp_path / "data", emb)
    indexer.sync()
    # Lose the vectors and the cache: repair must embed the vector text, not the full text.
    index.vectors.delete(index.vectors.all_ids())
    with index.registry.engine.begin() as conn:
        from engine import schema

        conn.execute(schema.embeddings.delete())
    emb.reset()
    report = index.repair()
    assert report.vectors_added == 1 and report.embedded == 1
    assert emb.texts == ["N\n\nSee zqxsite now."]
    index.close()
