"""Retrieval metrics on hand-made rankings with known values, and the dataset loaders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from engine.embedders.hashing import HashingEmbedder
from engine.models import Hit, Scope
from vaultbot.evaluate import (
    METRICS,
    CachedEmbedder,
    doc_ranking,
    evaluate_run,
    load_beir,
    load_korquad,
    load_parallel_vaults,
    mrr_at,
    ndcg_at,
    paired_bootstrap,
    percentile,
    query_metrics,
    recall_at,
    sample_queries,
    subset_docs,
)

L2 = math.log2


def test_single_gold_at_rank_two() -> None:
    ranked, rel = ["a", "b", "c"], {"b": 1}
    assert recall_at(ranked, rel, 1) == 0.0
    assert recall_at(ranked, rel, 5) == 1.0
    assert mrr_at(ranked, rel) == 0.5
    assert ndcg_at(ranked, rel) == pytest.approx(1 / L2(3))  # 0.6309


def test_perfect_and_empty_rankings() -> None:
    m = query_metrics(["g", "x", "y"], {"g": 1})
    assert all(v == 1.0 for v in m.values())
    m = query_metrics([], {"g": 1})
    assert all(v == 0.0 for v in m.values())


def test_multiple_gold_documents() -> None:
    ranked, rel = ["x", "a", "y", "b"], {"a": 1, "b": 1}
    assert recall_at(ranked, rel, 1) == 0.0
    assert recall_at(ranked, rel, 2) == 0.5
    assert recall_at(ranked, rel, 5) == 1.0
    assert mrr_at(ranked, rel) == 0.5  # first relevant only
    dcg = 1 / L2(3) + 1 / L2(5)
    idcg = 1 + 1 / L2(3)
    assert ndcg_at(ranked, rel) == pytest.approx(dcg / idcg)  # 0.6509


def test_graded_relevance_uses_linear_gain() -> None:
    # The better document (grade 2) second: DCG = 1/1 + 2/log2(3); ideal = 2/1 + 1/log2(3).
    assert ndcg_at(["b", "a"], {"a": 2, "b": 1}) == pytest.approx(
        (1 + 2 / L2(3)) / (2 + 1 / L2(3)))  # 0.8597
    assert ndcg_at(["a", "b"], {"a": 2, "b": 1}) == pytest.approx(1.0)


def test_cutoffs() -> None:
    ranked = [f"d{i}" for i in range(20)]
    rel = {"d10": 1}  # rank 11: outside every cut-off
    assert recall_at(ranked, rel, 10) == 0.0
    assert mrr_at(ranked, rel, 10) == 0.0
    assert ndcg_at(ranked, rel, 10) == 0.0
    assert mrr_at(ranked, {"d9": 1}, 10) == pytest.approx(0.1)


def test_zero_grades_are_not_relevant() -> None:
    assert recall_at(["a"], {"a": 0, "b": 1}, 5) == 0.0
    assert ndcg_at(["a", "b"], {"a": 0, "b": 1}) == pytest.approx(1 / L2(3))


def test_a_document_counts_once_at_its_best_rank() -> None:
    # Two chunks of "a" at ranks 1 and 2 must not push "b" to rank 3.
    m = query_metrics(["a", "a", "b"], {"b": 1})
    assert m["mrr@10"] == 0.5


def test_chunks_map_to_documents_best_rank_kept() -> None:
    def hit(path: str) -> Hit:
        return Hit(path + "#", path, "", (), None, "", 0.0)

    hits = [hit("n/1.md"), hit("n/2.md"), hit("n/1.md"), hit("other.md"), hit("n/3.md")]
    mapping = {"n/1.md": "d1", "n/2.md": "d2", "n/3.md": "d3"}
    assert doc_ranking(hits, mapping) == ["d1", "d2", "d3"]


def test_evaluate_run_missing_and_unjudged_queries() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}  # q3 has no relevant document
    run = {"q1": ["a"], "q4": ["z"]}  # q2 never answered: 0; q4 is not judged: ignored
    res = evaluate_run(run, qrels)
    assert set(res) == set(METRICS)
    assert res["recall@1"] == 0.5
    assert res["mrr@10"] == 0.5
    assert res["ndcg@10"] == 0.5
    assert evaluate_run({}, {}) == dict.fromkeys(METRICS, 0.0)


def test_percentile_and_bootstrap() -> None:
    assert percentile([1, 2, 3, 4, 5], 50) == 3
    assert percentile([], 95) == 0.0
    assert percentile(list(range(101)), 95) == 95
    mean, lo, hi = paired_bootstrap([0.5] * 50, [0.5] * 50)
    assert mean == lo == hi == 0.0
    rng = np.random.default_rng(1)
    b = rng.uniform(0, 0.5, 200)
    mean, lo, hi = paired_bootstrap(b + 0.1, b)
    assert mean == pytest.approx(0.1) and lo == pytest.approx(0.1) and hi == pytest.approx(0.1)
    a = b + rng.normal(0.05, 0.1, 200)
    mean, lo, hi = paired_bootstrap(a, b)
    assert lo < mean < hi and lo > 0


# ------------------------------------------------------------------------- loaders


def write_beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    docs = [("d1", "Coffee", "Pour-over coffee wants water at 93 degrees."),
            ("d2", "Bread", "Feed the sourdough starter every day."),
            ("d3", "", "No title here.")]
    (root / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, t, x in docs) + "\n")
    (root / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "coffee temperature"}) + "\n"
        + json.dumps({"_id": "q2", "text": "sourdough"}) + "\n"
        + json.dumps({"_id": "q9", "text": "not judged"}) + "\n")
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td3\t0\nq2\td2\t1\n")
    return root


def test_load_beir(tmp_path: Path) -> None:
    ds = load_beir(write_beir(tmp_path / "beir"))
    assert [d.id for d in ds.docs] == ["d1", "d2", "d3"]
    assert ds.docs[0].title == "Coffee" and ds.docs[2].title == ""
    assert [q.id for q in ds.queries] == ["q1", "q2"]  # q9 has no judgments
    assert ds.qrels == {"q1": {"d1": 2, "d3": 0}, "q2": {"d2": 1}}


def write_korquad(path: Path) -> Path:
    """A tiny file in the KorQuAD 1.0 layout (made-up text)."""
    data = {"version": "test", "data": [
        {"title": "A", "paragraphs": [
            {"context": "서울은 대한민국의 수도이다.", "qas": [
                {"id": "1", "question": "대한민국의 수도는?", "answers": [{"text": "서울", "answer_start": 0}]},
                {"id": "2", "question": "서울은 어느 나라의 수도인가?", "answers": [{"text": "대한민국", "answer_start": 4}]}]},
            {"context": "한강은 서울을 가로지른다.", "qas": [
                {"id": "3", "question": "서울을 가로지르는 강은?", "answers": [{"text": "한강", "answer_start": 0}, {"text": "한강", "answer_start": 0}]}]}]},
        {"title": "B", "paragraphs": [
            {"context": "Kimchi is fermented cabbage.", "qas": [
                {"id": "4", "question": "What is kimchi?", "answers": [{"text": "fermented cabbage", "answer_start": 9}]}]}]},
    ]}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_load_korquad(tmp_path: Path) -> None:
    ds = load_korquad(write_korquad(tmp_path / "kq.json"))
    assert [d.id for d in ds.docs] == ["p0000", "p0001", "p0002"]
    assert [q.id for q in ds.queries] == ["1", "2", "3", "4"]
    assert ds.qrels["3"] == {"p0001": 1} and ds.qrels["4"] == {"p0002": 1}
    assert ds.queries[2].answers == ("한강",)  # duplicates dropped


def test_sampling_is_seeded_and_consistent(tmp_path: Path) -> None:
    ds = load_korquad(write_korquad(tmp_path / "kq.json"))
    a, b = sample_queries(ds, 2, seed=5), sample_queries(ds, 2, seed=5)
    assert [q.id for q in a.queries] == [q.id for q in b.queries] and len(a.queries) == 2
    assert set(a.qrels) == {q.id for q in a.queries}
    assert sample_queries(ds, None) is ds and sample_queries(ds, 99) is ds
    sub = subset_docs(ds, 1, seed=3)
    kept = {d.id for d in sub.docs}
    assert len(kept) == 1
    assert all(set(sub.qrels[q.id]) <= kept for q in sub.queries)


def _note(path: Path, permalink: str | None, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fm = f"---\npermalink: {permalink}\n---\n" if permalink else ""
    path.write_text(fm + body, encoding="utf-8")


def test_parallel_vaults(tmp_path: Path) -> None:
    ko, en = tmp_path / "ko", tmp_path / "en"
    _note(ko / "폴더" / "동기화.md", "sync", "## 설정\n\n본문\n\n```\n# 코드 속 제목은 아님\n```\n## 개요\n")
    _note(ko / "링크.md", "links", "## 개요\n\n[[내부 링크|링크]]는 ...\n### [[별칭]] 만들기\n")
    _note(ko / "외톨이.md", "alone", "## 짝 없음\n")
    _note(en / "Folder" / "Sync.md", "sync", "## Settings\n\ntext\n")
    _note(en / "Links.md", "links", "# Links\n## Overview\n")
    _note(en / "NoLink.md", None, "## Orphan\n")
    ko_en, en_ko = load_parallel_vaults(ko, en)
    assert ko_en.name == "ko->en" and en_ko.name == "en->ko"
    by_text = {q.text: ko_en.qrels[q.id] for q in ko_en.queries}
    assert by_text["동기화"] == {"en/Folder/Sync.md": 1}  # the title (file name)
    assert by_text["설정"] == {"en/Folder/Sync.md": 1}
    assert by_text["개요"] == {"en/Folder/Sync.md": 1, "en/Links.md": 1}  # shared heading
    assert by_text["별칭 만들기"] == {"en/Links.md": 1}  # link markup cleaned
    assert "코드 속 제목은 아님" not in by_text and "짝 없음" not in by_text
    assert all(q.scope == Scope(folders=("en",)) for q in ko_en.queries)
    en_texts = {q.text for q in en_ko.queries}
    assert en_texts == {"Sync", "Settings", "Links", "Overview"}
    assert ko_en.corpus_key() == en_ko.corpus_key()
    sets = load_parallel_vaults(ko, en, mixed=True)
    assert [d.name for d in sets] == ["ko->en", "ko->en, mixed vault", "ko->ko, mixed vault (own note)",
                                      "en->ko", "en->ko, mixed vault", "en->en, mixed vault (own note)"]
    mixed, own = sets[1], sets[2]
    assert all(q.scope == Scope() for q in mixed.queries + own.queries) and mixed.qrels == ko_en.qrels
    assert [q.text for q in own.queries] == [q.text for q in ko_en.queries]
    by_text = {q.text: own.qrels[q.id] for q in own.queries}
    assert by_text["설정"] == {"ko/폴더/동기화.md": 1}
    assert by_text["개요"] == {"ko/폴더/동기화.md": 1, "ko/링크.md": 1}



def test_cached_embedder_stores_vectors_not_text(tmp_path: Path) -> None:
    inner = HashingEmbedder(16)
    path = tmp_path / "cache.sqlite3"
    cached = CachedEmbedder(inner, path)
    first = cached.embed_passages(["alpha", "beta", "alpha"])
    assert inner.embedded == 2 and first.shape == (3, 16)
    q = cached.embed_query("what")
    cached.close()
    again = CachedEmbedder(inner, path)
    assert np.array_equal(again.embed_passages(["beta", "alpha"]), first[[1, 0]])
    assert np.array_equal(again.embed_query("what"), q)
    assert inner.embedded == 3  # nothing embedded the second time
    again.close()
    raw = path.read_bytes()
    assert b"alpha" not in raw and b"what" not in raw
