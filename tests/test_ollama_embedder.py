"""OllamaEmbedder against the fake Ollama server, through the official client over HTTP."""

from __future__ import annotations

import math

import numpy as np
import pytest
from fakes.ollama_server import FakeModel, FakeOllama, fake_embedding, fake_ollama, unused_url

from engine.embedders.base import Embedder, EmbedderError
from engine.embedders.ollama import MXBAI_QUERY, OllamaEmbedder, prefixes_for

__all__ = ["fake_ollama"]  # the fixture, imported for pytest


def embed_inputs(fake: FakeOllama) -> list[list[str]]:
    out = []
    for record in fake.requests_to("/api/embed"):
        value = record.json["input"]
        out.append([value] if isinstance(value, str) else value)
    return out


def test_is_an_embedder_and_learns_dim_once(fake_ollama: FakeOllama) -> None:
    emb = OllamaEmbedder("nomic-embed-text", host=fake_ollama.url)
    assert emb.name == "ollama:nomic-embed-text"
    assert fake_ollama.requests_to("/api/embed") == []  # lazy
    assert emb.dim == 768 and emb.dim == 768
    # (On Python 3.11 isinstance() against the runtime-checkable protocol reads `dim`, so it
    # would itself probe; checked after `dim` is known.)
    assert isinstance(emb, Embedder)
    assert len(fake_ollama.requests_to("/api/embed")) == 1  # one probe, then cached

    other = OllamaEmbedder("mxbai-embed-large:latest", host=fake_ollama.url)
    other.embed_passages(["x"])
    assert other.dim == 1024
    assert len(fake_ollama.requests_to("/api/embed")) == 2  # learnt from the answer, no probe


@pytest.mark.parametrize("count", [1, 2, 5, 7])
def test_batches(fake_ollama: FakeOllama, count: int) -> None:
    emb = OllamaEmbedder("bge-m3", host=fake_ollama.url, batch_size=2)
    texts = [f"note number {i} about topic {i * 7}" for i in range(count)]
    vectors = emb.embed_passages(texts)
    assert vectors.shape == (count, 1024) and vectors.dtype == np.float32
    batches = embed_inputs(fake_ollama)
    assert len(batches) == math.ceil(count / 2)
    assert [t for batch in batches for t in batch] == texts  # order kept, no prefix for bge-m3
    assert all(len(b) <= 2 for b in batches)
    for text, vec in zip(texts, vectors, strict=True):
        assert np.allclose(vec, fake_embedding(text, 1024, seed="bge-m3"), atol=1e-6)


def test_vectors_are_normalised_even_if_the_server_does_not(fake_ollama: FakeOllama) -> None:
    emb = OllamaEmbedder("nomic-embed-text", host=fake_ollama.url)
    passages = emb.embed_passages(["alpha beta", "gamma delta", "epsilon"])
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-6)
    query = emb.embed_query("alpha")
    assert query.shape == (768,) and query.dtype == np.float32
    assert abs(float(np.linalg.norm(query)) - 1.0) < 1e-6
    assert emb.embed_passages([]).shape == (0, 768)


@pytest.mark.parametrize(
    ("model", "query_prefix", "passage_prefix"),
    [
        ("nomic-embed-text", "search_query: ", "search_document: "),
        ("nomic-embed-text:v1.5", "search_query: ", "search_document: "),
        ("mxbai-embed-large", MXBAI_QUERY, ""),
        ("snowflake-arctic-embed:335m", MXBAI_QUERY, ""),
        ("snowflake-arctic-embed2:568m", "query: ", ""),
        ("jeffh/intfloat-multilingual-e5-large:f16", "query: ", "passage: "),
        ("e5-large-v2", "query: ", "passage: "),
        ("bge-m3", "", ""),
        ("all-minilm:l6-v2", "", ""),
    ],
)
def test_prefixes_are_sent(
    fake_ollama: FakeOllama, model: str, query_prefix: str, passage_prefix: str
) -> None:
    assert prefixes_for(model) == (query_prefix, passage_prefix)
    fake_ollama.add_model(FakeModel(model, kind="embed", dim=16))
    emb = OllamaEmbedder(model, host=fake_ollama.url)
    emb.embed_passages(["a passage"])
    emb.embed_query("a question")
    assert embed_inputs(fake_ollama) == [
        [passage_prefix + "a passage"],
        [query_prefix + "a question"],
    ]
    assert all(r.json["model"] == model for r in fake_ollama.requests_to("/api/embed"))


def test_query_finds_the_related_passage(fake_ollama: FakeOllama) -> None:
    emb = OllamaEmbedder("mxbai-embed-large", host=fake_ollama.url)
    passages = emb.embed_passages(
        [
            "sourdough bread needs a starter",
            "the mortgage rate went up",
            "bread flour and a starter",
        ]
    )
    scores = passages @ emb.embed_query("how do I keep a sourdough starter for bread")
    assert scores[0] > scores[1] and scores[2] > scores[1]


def test_server_down_names_ollama_serve() -> None:
    url = unused_url()
    emb = OllamaEmbedder("nomic-embed-text", host=url)
    with pytest.raises(EmbedderError) as info:
        emb.embed_query("x")
    message = str(info.value)
    assert "ollama serve" in message and url in message
    assert "Traceback" not in message


def test_missing_model_names_ollama_pull(fake_ollama: FakeOllama) -> None:
    emb = OllamaEmbedder("nomic-embed-text:v9", host=fake_ollama.url)
    with pytest.raises(EmbedderError, match=r"`ollama pull nomic-embed-text:v9`"):
        emb.embed_passages(["x"])
    with pytest.raises(EmbedderError, match="ollama pull"):
        _ = emb.dim


def test_timeout(fake_ollama: FakeOllama) -> None:
    fake_ollama.header_delay = 2.0
    emb = OllamaEmbedder("nomic-embed-text", host=fake_ollama.url, timeout=0.3)
    with pytest.raises(EmbedderError, match=r"did not answer within 0\.3 s"):
        emb.embed_query("x")


def test_server_error_is_reported(fake_ollama: FakeOllama) -> None:
    fake_ollama.http_error = (500, "llama runner process has terminated: signal: killed")
    emb = OllamaEmbedder("nomic-embed-text", host=fake_ollama.url)
    with pytest.raises(EmbedderError, match=r"HTTP 500.*signal: killed"):
        emb.embed_query("x")


def test_chat_model_dimension_change_is_caught(fake_ollama: FakeOllama) -> None:
    emb = OllamaEmbedder("nomic-embed-text", host=fake_ollama.url)
    assert emb.dim == 768
    fake_ollama.add_model(FakeModel("nomic-embed-text", kind="embed", dim=512))
    with pytest.raises(EmbedderError, match="re-index"):
        emb.embed_query("x")
