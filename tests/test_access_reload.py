"""One access file for every front end, followed without a restart, and refusing everything
while it does not load (bot/access_file.py). Each front end is built from a real `App` whose
VAULTBOT_ACCESS_FILE is a temp file (so these fail if `App.access` stops following the file):
Discord (the real client on the fake Discord), MCP (VaultTools from `tools_from_app`), /v1,
the HTTP API and the note pages (serve's `build_api`, in process). The index is the example
vault's, with the hashing embedder and a fake Ollama."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from corpus import copy_vault
from fakes.discord_api import EPHEMERAL, FakeDiscord
from fakes.ollama_server import FakeOllama
from fastapi.testclient import TestClient
from helpers import permissions_enforced
from test_discord import CALLBACK, ORIGINAL, has_embeds, running

import vaultbot.app
from bot.access_file import BROKEN, AccessBroken, AccessFile
from engine.embedders.hashing import HashingEmbedder
from engine.models import Scope
from vaultbot.api import OWNER_HEADER
from vaultbot.app import App
from vaultbot.mcp_server import Refused, tools_from_app
from vaultbot.serve import build_api
from vaultbot.settings import Settings

TOKEN = "reload-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LAUNCH = "Projects/Vaultbot launch.md"
Q = "When is the vaultbot launch?"
BAD = "slack: [unclosed\n"  # does not parse


def answer_text(model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> str:
    return "The launch is on December 4 [1]."


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    tmp = tmp_path_factory.mktemp("reload")
    vault = copy_vault("example", tmp)
    access = tmp / "access.yaml"
    access.write_text("{}\n")
    with FakeOllama(responder=answer_text) as ollama, pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("VAULTBOT_")]:
            mp.delenv(name)
        mp.setattr(vaultbot.app, "make_embedder", lambda spec, **kw: HashingEmbedder(dim=64))
        built = App(Settings(vault=vault, data_dir=tmp / "data", llm="ollama",
                             ollama_url=ollama.url, access_file=access, _env_file=None))
        built.indexer.sync()
        try:
            yield built
        finally:
            built.close()


def write(app: App, text: str) -> None:
    """Rewrite the access file, as an editor would, with a visibly newer mtime."""
    path = app.settings.access_file
    assert path is not None
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


@pytest.fixture
def api(app: App) -> Iterator[TestClient]:
    write(app, "{}\n")
    with TestClient(build_api(app, host="127.0.0.1", token=TOKEN)) as client:
        yield client


def test_app_access_is_one_access_file_and_a_bad_one_stops_start_up(app: App,
                                                                       tmp_path: Path) -> None:
    assert isinstance(app.access, AccessFile) and app.access is app.access
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    with pytest.raises(ValueError, match="cannot read access file"):
        _ = App(Settings(vault=app.settings.vault, data_dir=tmp_path / "d", llm="none",
                         access_file=bad, _env_file=None)).access


# ------------------------------------------------------------------------------------ MCP


def test_mcp_follows_edits_refuses_while_broken_and_answers_once_fixed(app: App, caplog) -> None:
    tools = tools_from_app(app)

    def found() -> set[str]:
        return {r["path"] for r in tools.search("vaultbot launch", 8, None, None)}

    write(app, "mcp: {folders: [Recipes]}\n")
    assert found() and LAUNCH not in found()
    write(app, "mcp: {folders: [Projects]}\n")  # no restart: the next call follows
    assert LAUNCH in found()
    caplog.set_level(logging.WARNING, logger="bot.access_file")
    write(app, BAD)
    for call in (lambda: tools.search("launch", 8, None, None), lambda: tools.note_text(LAUNCH),
                 lambda: tools.recent(None)):
        with pytest.raises(Refused) as refused:
            call()
        assert str(refused.value) == BROKEN
    # One warning for the bad version, naming the error, however many calls it refused.
    warnings = [r.getMessage() for r in caplog.records if r.name == "bot.access_file"]
    assert len(warnings) == 1 and "cannot read access file" in warnings[0]
    write(app, "mcp: {folders: [Projects]}\n")
    assert LAUNCH in found()


# ------------------------------------------------------------------------- HTTP API, /v1


def search(api: TestClient) -> Any:
    return api.get("/search", params={"q": "vaultbot launch", "k": 8}, headers=AUTH)


def test_http_api_follows_the_private_section_and_refuses_while_broken(app: App,
                                                                      api: TestClient) -> None:
    write(app, "private: {folders: [Projects]}\n")
    r = search(api)
    assert r.status_code == 200 and LAUNCH not in {h["path"] for h in r.json()["results"]}
    write(app, "private: {folders: [Recipes]}\n")  # Projects no longer private: shown
    r = search(api)
    assert r.status_code == 200 and LAUNCH in {h["path"] for h in r.json()["results"]}
    write(app, "private: {folders: [Recipes]}\ndefault: {colour: blue}\n")  # an unknown key
    for r in (search(api), api.post("/ask", json={"question": Q, "stream": False},
                                    headers=AUTH)):
        assert r.status_code == 403 and r.json()["detail"] == BROKEN
    app.settings.access_file.unlink()  # deleted: refused too (doubt hides)
    assert search(api).status_code == 403
    write(app, "{}\n")
    r = api.post("/ask", json={"question": Q, "stream": False}, headers=AUTH)
    assert r.status_code == 200 and r.json()["citations"]


def test_an_emptied_file_refuses_and_a_misspelt_section_is_an_error(app: App,
                                                                   api: TestClient) -> None:
    write(app, "private: {folders: [Projects]}\n")
    assert LAUNCH not in {h["path"] for h in search(api).json()["results"]}
    # Truncated by an editor, not yet written: refused, never "no rules" (which shows Projects).
    for empty in ("", "\n  \n"):
        write(app, empty)
        r = search(api)
        assert r.status_code == 403 and r.json()["detail"] == BROKEN
    # `privat:` would have hidden nothing: an error, so refused too.
    write(app, "privat: {folders: [Projects]}\n")
    assert search(api).status_code == 403
    write(app, "{}\n")  # "no rules", on purpose
    r = search(api)
    assert r.status_code == 200 and LAUNCH in {h["path"] for h in r.json()["results"]}


def test_the_owner_through_serve_is_told_the_error_and_keeps_private(app: App) -> None:
    owner = {**AUTH, OWNER_HEADER: "owner-key"}
    write(app, "{}\n")
    with TestClient(build_api(app, host="127.0.0.1", token=TOKEN, owner_key="owner-key")) as api:
        write(app, BAD)
        r = api.get("/search", params={"q": "launch"}, headers=owner)
        assert r.status_code == 403 and "cannot read access file" in r.json()["detail"]
        r = api.get("/search", params={"q": "launch"}, headers=AUTH)  # not the owner: no detail
        assert r.status_code == 403 and r.json()["detail"] == BROKEN
        # `--private` needs no rules (as on the CLI's own path): a broken file does not stop it.
        r = api.get("/search", params={"q": "vaultbot launch", "private": True}, headers=owner)
        assert r.status_code == 200 and r.json()["results"]
    write(app, "{}\n")


def chat(api: TestClient) -> Any:
    return api.post("/v1/chat/completions", headers=AUTH, json={
        "model": "vaultbot", "messages": [{"role": "user", "content": Q}]})


def test_openai_v1_follows_edits_and_refuses_while_broken(app: App, api: TestClient) -> None:
    write(app, "openai: {folders: [Recipes]}\n")
    r = chat(api)
    assert r.status_code == 200 and "Vaultbot launch" not in json.dumps(r.json())
    write(app, "openai: {folders: [Projects]}\n")
    r = chat(api)
    assert r.status_code == 200 and "Vaultbot%20launch" in r.json()["choices"][0]["message"][
        "content"]
    write(app, "openai: {allow: false}\n")
    r = chat(api)
    assert r.status_code == 403 and "does not let openai" in r.json()["error"]["message"]
    write(app, "openai: [Projects\n")
    r = chat(api)
    assert r.status_code == 403 and r.json()["error"]["message"] == BROKEN
    assert str(app.settings.access_file) not in r.text
    write(app, "openai: {folders: [Projects]}\n")
    assert chat(api).status_code == 200


def test_note_pages_follow_the_file_and_refuse_while_broken(app: App, api: TestClient) -> None:
    page = "/n/" + app.link_signer.sign(LAUNCH, None, None, Scope())
    assert api.get(page).status_code == 200
    write(app, "private: {folders: [Projects]}\n")  # made private after the link was sent
    assert api.get(page).status_code == 404
    write(app, "{}\n")
    assert api.get(page).status_code == 200
    write(app, BAD)
    assert api.get(page).status_code == 404
    write(app, "{}\n")
    assert api.get(page).status_code == 200


def test_an_unreadable_file_refuses_until_it_is_readable_again(app: App) -> None:
    path = app.settings.access_file
    write(app, "{}\n")
    # The client's thread starts inside: root's read-anything capability is dropped there too.
    with permissions_enforced(), TestClient(build_api(app, host="127.0.0.1", token=TOKEN)) as api:
        assert search(api).status_code == 200
        path.chmod(0)  # a chmod changes the ctime only: still seen
        try:
            r = search(api)
            assert r.status_code == 403 and r.json()["detail"] == BROKEN
        finally:
            path.chmod(0o600)
        assert search(api).status_code == 200


# -------------------------------------------------------------------------------- Discord


async def test_discord_follows_edits_refuses_while_broken_and_answers_once_fixed(
        app: App, fake_discord: FakeDiscord) -> None:
    fake = fake_discord
    async def ask() -> str:
        """The answer's embeds as text, or the refusal."""
        def done(c: Any) -> bool:
            answered = c.method == "PATCH" and re.fullmatch(ORIGINAL, c.path) and has_embeds(c)
            refused = (c.method == "POST" and re.fullmatch(CALLBACK, c.path)
                       and (c.json or {}).get("type") == 4)
            return bool(c.status and (answered or refused))

        start = len(fake.calls)
        await fake.ask(Q, private=True)
        deadline = time.monotonic() + 15
        while not (found := [c for c in fake.calls[start:] if done(c)]):
            assert time.monotonic() < deadline, [(c.method, c.path) for c in fake.calls[start:]]
            await asyncio.sleep(0.01)
        call = found[0]
        if call.method == "POST":  # refused: an ephemeral message, no answer
            assert call.json["data"]["flags"] == EPHEMERAL
            return "refused: " + call.json["data"]["content"]
        return json.dumps(call.json["embeds"])

    channel = fake.channel_id
    write(app, f'discord:\n  channels:\n    "{channel}": {{folders: [Recipes]}}\n')
    async with running(fake, app.asker, app.access):
        first = await ask()
        assert not first.startswith("refused") and "Vaultbot launch" not in first
        write(app, f'discord:\n  channels:\n    "{channel}": {{folders: [Projects]}}\n')
        assert "Vaultbot launch" in await ask()
        write(app, f'discord:\n  channels:\n    "{channel}": {{allow: false}}\n')
        assert await ask() == "refused: vaultbot does not answer here."
        write(app, f'discord:\n  channels:\n    "{channel}": {{folders: [Projects], x: 1}}\n')
        assert await ask() == "refused: " + BROKEN
        write(app, f'discord:\n  channels:\n    "{channel}": {{folders: [Projects]}}\n')
        assert "Vaultbot launch" in await ask()
    assert fake.errors() == []


def test_access_broken_is_an_access_denied_that_names_no_path() -> None:
    exc = AccessBroken("cannot read access file /secret/place.yaml: bad")
    assert str(exc) == BROKEN and "/secret" not in str(exc) and "place.yaml" in exc.error
