"""vaultbot as an MCP server, driven by the official `mcp` SDK's client: over stdio (a real
`vaultbot mcp` process) and over streamable HTTP (`/mcp` of serve's app under a real uvicorn),
on the privacy canary vault (tests/canary_vault.py) with a fake Ollama that echoes its prompt,
so a private text anywhere in a prompt, an answer, a search result or a note would show."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from canary_vault import CanaryVault, build_canary_vault
from corpus import ROOT
from fakes.ollama_server import FakeOllama
from helpers import Server
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

import vaultbot.app
from bot.access import AccessDenied
from engine.embedders.hashing import HashingEmbedder
from engine.models import Scope
from vaultbot.api import create_app
from vaultbot.app import App
from vaultbot.cli import main as cli_main
from vaultbot.mcp_server import VaultTools, build_server, parse_since
from vaultbot.settings import Settings

TOKEN = "mcp-test-token"
TOOLS = {"search_notes", "ask", "get_note", "recent_changes"}
# `vaultbot mcp` with the hashing embedder swapped in (in the child only).
CHILD = """
import sys
import vaultbot.app as app
from engine.embedders.hashing import HashingEmbedder
app.make_embedder = lambda spec, **kw: HashingEmbedder(dim=64)
from vaultbot.cli import main
sys.exit(main(sys.argv[1:]))
"""


def echo_prompt(model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> str:
    """Every message the model was given, so the prompt shows in the answer; cites [1]."""
    return "\n\n".join(str(m.get("content", "")) for m in messages) + " [1]"


@dataclass
class World:
    vault: CanaryVault
    data: Path
    ollama: FakeOllama
    env: dict[str, str]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("mcp")
    with FakeOllama(responder=echo_prompt) as ollama, pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("VAULTBOT_")]:
            mp.delenv(name)
        mp.chdir(tmp)  # no stray .env
        vault = build_canary_vault(tmp / "vault")
        vault.apply_changes()  # every canary private from the start
        data = tmp / "data"
        env = {"VAULTBOT_LLM": "ollama", "VAULTBOT_OLLAMA_URL": ollama.url,
               "VAULTBOT_ACCESS_FILE": str(vault.access_file)}
        for k, v in env.items():
            mp.setenv(k, v)
        mp.setattr(vaultbot.app, "make_embedder", lambda spec, **kw: HashingEmbedder(dim=64))
        assert cli_main(["sync", "--vault", str(vault.root), "--data-dir", str(data)]) == 0
        yield World(vault, data, ollama, env)


def leaks(text: str, vault: CanaryVault) -> list[str]:
    flat = " ".join(text.split())
    return [f"{c.case}: {needle[:40]}" for c in vault.canaries.values()
            for needle in (c.token, c.sentence) if needle in flat]


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def exercise(client: Client, w: World) -> str:
    """List and call every tool, read a resource, ask every canary question; returns all the
    text that came back. Asserts the contract on the way."""
    out: list[str] = []
    assert {t.name for t in (await client.list_tools()).tools} == TOOLS
    templates = (await client.list_resource_templates()).resource_templates
    assert [t.uri_template for t in templates] == ["note://{+path}"]

    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    public = w.vault.public
    answer = await client.call_tool("ask", {"question": public.question},
                                    progress_callback=on_progress)
    assert not answer.is_error, text_of(answer)
    assert public.token in text_of(answer)  # the positive control
    assert "**Sources**" in text_of(answer) and "obsidian://open?" in text_of(answer)
    assert [m for _, m in progress][:2] == [progress[0][1], "writing the answer"]
    assert progress[0][1] and progress[0][1].startswith("found")
    assert [v for v, _ in progress] == sorted(v for v, _ in progress)  # increasing

    found = await client.call_tool("search_notes", {"query": public.question, "k": 3})
    assert not found.is_error
    assert found.structured_content and found.structured_content["results"][0]["path"] == \
        "Garden log.md"
    note = await client.call_tool("get_note", {"path": "Garden log.md"})
    assert public.token in text_of(note)
    read = await client.read_resource("note://Garden log.md")
    assert public.token in read.contents[0].text  # type: ignore[union-attr]
    recent = await client.call_tool("recent_changes", {"since": "1h"})
    assert not recent.is_error
    paths = {n["path"] for n in recent.structured_content["added"]}  # type: ignore[index]
    assert "Garden log.md" in paths
    out += [text_of(x) for x in (answer, found, note, recent)] + [read.contents[0].text]  # type: ignore[union-attr]

    # Bad arguments are MCP errors with a clear message.
    bad = await client.call_tool("search_notes", {"query": "x", "k": "many"})
    assert bad.is_error and "k" in text_of(bad) and "integer" in text_of(bad)
    bad = await client.call_tool("ask", {})
    assert bad.is_error and "question" in text_of(bad)
    bad = await client.call_tool("recent_changes", {"since": "last tuesday"})
    assert bad.is_error and "ISO 8601" in text_of(bad)

    # Private notes: hidden, and indistinguishable from notes that do not exist.
    for path in ("Board minutes.md", "Salary review.md", "Nope.md"):
        refused = await client.call_tool("get_note", {"path": path})
        assert refused.is_error and "that this place may see" in text_of(refused), path
        out.append(text_of(refused))
        with pytest.raises(MCPError, match="that this place may see"):
            await client.read_resource(f"note://{path}")
    # Public notes that embed private ones (by frontmatter, or by the access file's folder,
    # which sync cannot know): their own text, the embedded parts left out.
    for path in ("Team handbook.md", "Welcome.md", "Roadmap.md", "Hiring overview.md",
                 "Project A.md"):
        embedding = await client.call_tool("get_note", {"path": path})
        assert not embedding.is_error, path
        assert not leaks(text_of(embedding), w.vault), text_of(embedding)
        out.append(text_of(embedding))
        if path == "Welcome.md":  # its one chunk holds the private folder's note
            assert "1 part(s) left out" in text_of(embedding)

    for c in w.vault.canaries.values():
        for tool, args in (("ask", {"question": c.question}),
                           ("search_notes", {"query": c.question}),
                           ("search_notes", {"query": c.key, "k": 50})):
            result = await client.call_tool(tool, args)
            assert not result.is_error, text_of(result)
            out.append(text_of(result))
    out.append(text_of(await client.call_tool("recent_changes", {"since": "2000-01-01"})))
    return "\n".join(out)


async def test_stdio_vaultbot_mcp_process(world: World) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAULTBOT_")}
    env.update(world.env, PYTHONPATH=str(ROOT))
    params = StdioServerParameters(
        command=sys.executable,
        args=["-c", CHILD, "mcp", "--vault", str(world.vault.root), "--data-dir",
              str(world.data)],
        env=env, cwd=str(world.data.parent))
    async with Client(params, read_timeout_seconds=60) as client:
        transcript = await exercise(client, world)
    assert not leaks(transcript, world.vault), leaks(transcript, world.vault)


@pytest.fixture
def served(world: World) -> Iterator[str]:
    app = App(Settings(vault=world.vault.root, data_dir=world.data, llm="ollama",
                       ollama_url=world.ollama.url, access_file=world.vault.access_file))
    try:
        api = create_app(asker=app.asker, retriever=app.retriever, index=app.index,
                         querylog=app.querylog, token=TOKEN,
                         base_scope=app.access.base_scope(),
                         place_scope=app.access.place_scope)
        with Server(api) as srv:
            yield srv.url
    finally:
        app.close()


async def test_streamable_http_under_the_api(world: World, served: str) -> None:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"},
                                  timeout=60) as http, \
            Client(streamable_http_client(f"{served}/mcp", http_client=http)) as client:
        transcript = await exercise(client, world)
    assert not leaks(transcript, world.vault), leaks(transcript, world.vault)

    # The token guards /mcp like every other route.
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(f"{served}/mcp", json=init, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def _tools(world_index: Any, scope: Any) -> VaultTools:
    from engine.answer import Asker
    from engine.retrieve import Retriever

    retriever = Retriever(world_index)
    return VaultTools(asker=Asker(retriever, None), retriever=retriever,
                      registry=world_index.registry, scope=scope)


async def test_the_mcp_place_narrows_or_refuses(world: World) -> None:
    app = App(Settings(vault=world.vault.root, data_dir=world.data, llm="none",
                       access_file=world.vault.access_file))
    try:
        narrow = _tools(app.index, lambda: Scope(folders=("Recipes",)))
        async with Client(build_server(narrow)) as client:
            hidden = await client.call_tool("get_note", {"path": "Garden log.md"})
            assert hidden.is_error
            shown = await client.call_tool("get_note", {"path": "Recipes/Pancakes.md"})
            assert "flour" in text_of(shown)
            outside = await client.call_tool("search_notes", {"query": "x", "folder": "Travel"})
            assert outside.is_error and "outside" in text_of(outside)

        def refused() -> Scope:
            raise AccessDenied("the access file does not let mcp clients ask vaultbot.")

        async with Client(build_server(_tools(app.index, refused))) as client:
            for tool, args in (("ask", {"question": "hi"}), ("search_notes", {"query": "hi"}),
                               ("get_note", {"path": "Garden log.md"}),
                               ("recent_changes", {})):
                result = await client.call_tool(tool, args)
                assert result.is_error and "does not let mcp" in text_of(result), tool
    finally:
        app.close()


def test_since_takes_dates_times_and_spans() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert parse_since("24h", now) == now - timedelta(hours=24)
    assert parse_since("2w", now) == now - timedelta(weeks=2)
    assert parse_since(None, now) == now - timedelta(days=7)
    assert parse_since("2026-11-30", now) == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_since("2026-11-30T08:00:00+09:00", now).hour == 8
