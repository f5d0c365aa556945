"""Hybrid retrieval runs the dense search on a worker thread beside the keyword search
(RetrievalConfig.concurrent): same results as one after the other."""

from __future__ import annotations

import threading

from engine.models import Scope
from engine.retrieve import RetrievalConfig, Retriever

QUESTIONS = ["When is the launch?", "출시 일정은 언제인가요?", "meeting notes budget",
             "회의록", "What did we decide about pricing?"]


def test_concurrent_hybrid_equals_sequential(index) -> None:
    together = Retriever(index, RetrievalConfig(concurrent=True))
    apart = Retriever(index, RetrievalConfig(concurrent=False))
    for q in QUESTIONS:
        for scope in (Scope(), Scope(include_private=True)):
            a = together.search(q, 6, scope=scope, use_cache=False)
            b = apart.search(q, 6, scope=scope, use_cache=False)
            assert [(h.chunk_id, round(h.score, 9), h.sources) for h in a] == \
                   [(h.chunk_id, round(h.score, 9), h.sources) for h in b]


def test_dense_half_runs_on_a_worker_thread(index, monkeypatch) -> None:
    threads: list[str] = []
    real = index.vectors.query

    def query(vector, n, scope=None):  # noqa: ANN001, ANN202
        threads.append(threading.current_thread().name)
        return real(vector, n, scope)

    monkeypatch.setattr(index.vectors, "query", query)
    Retriever(index).search("When is the launch?", 4, use_cache=False)
    Retriever(index, RetrievalConfig(concurrent=False)).search("launch", 4, use_cache=False)
    Retriever(index).search("launch", 4, mode="dense", use_cache=False)
    assert threads[0].startswith("dense-search")
    assert threads[1] == threads[2] == threading.current_thread().name
