"""The privacy canary suite: private note text must never come out of any front end.

A generated vault (tests/canary_vault.py) holds private texts, each with a unique canary token
and a distinctive sentence: `private: true`, frontmatter YAML that does not parse, the access
file's private folder (its name in NFD on disk) and private tag, private notes embedded into
public ones (whole, heading, block, nested, from the private folder), a note moved into the
private folder after a first sync, and a public note made private after answers to it were
cached. Every front end is asked about every canary, with the real wiring (`vaultbot.app.App`,
as `vaultbot serve` builds it, and the CLI's `main()`):

- CLI: `vaultbot ask --json` and `vaultbot search` (the access file through
  VAULTBOT_ACCESS_FILE);
- HTTP API: `POST /ask` as SSE and as JSON, `GET /search`, with the access file's base scope;
- Slack: an @mention in a channel and a follow-up in its thread (real Bolt app, fake Slack);
- Discord: `/ask` and a follow-up in the thread it opens (real discord.py, fake Discord);

each in two answer modes: an LLM (the fake Ollama, answering with the whole prompt it got, so
whatever reached the model shows up in the output) and extractive (VAULTBOT_LLM=none). All of
a front end's output is collected (stdout/stderr, response bodies, every Slack API call and
message, every Discord REST call and message, and every prompt sent to the model) and must hold
no canary token and no canary sentence. Afterwards the answer cache table and the log records
(product loggers at DEBUG, everything else at WARNING) must hold none either.

Positive controls keep the suite from passing vacuously: a public mark must come out of every
front end, the notes that turn private later must come out (and be in the answer cache) while
they are public, and an NFC folder filter must find a note in the NFD-named folder.

Embeddings come from the fake Ollama (`ollama:bge-m3`: a deterministic bag of words), so the
CLI, which builds its embedder from settings, shares the index without loading a model.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import io
import itertools
import json
import logging
import os
import sqlite3
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from canary_vault import TWIN_FOLDER, Canary, CanaryVault, build_canary_vault, nfc, nfd
from fakes.discord_api import FakeDiscord
from fakes.ollama_server import FakeOllama
from fakes.slack_api import BOT_TOKEN, FakeSlack
from fastapi import FastAPI
from helpers import Server

from bot.discord_bot import VaultbotDiscord, apply_overrides, restore_overrides, run_discord
from bot.slack import build_slack_app, mount_http
from vaultbot.api import create_app
from vaultbot.app import App
from vaultbot.cli import main as cli_main
from vaultbot.settings import Settings

EMBEDDER = "ollama:bge-m3"
MODES = ("llm", "extractive")
FRONT_ENDS = ("cli", "api", "slack", "discord")
FOLLOW_UP = "Tell me more about that."
SLACK_SECRET = "canary-signing-secret"
PRODUCT_LOGGERS = ("engine", "sync", "bot", "vaultbot")
DISCORD_THREAD = r"/channels/\d+/messages/\d+/threads"


def echo_prompt(model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> str:
    """The fake model's answer: every message it was given, so the prompt shows in the output."""
    return "\n\n".join(str(m.get("content", "")) for m in messages)


# --------------------------------------------------------------------------- collecting output


def strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value (keys included), unescaped."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", errors="replace")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list | tuple | set):
        for v in value:
            yield from strings(v)
    elif value is not None:
        yield str(value)


def json_strings(text: str) -> list[str]:
    """`text` itself, plus the strings inside it if it is JSON (escapes undone)."""
    out = [text]
    with contextlib.suppress(ValueError):
        out.extend(strings(json.loads(text)))
    return out


def sse_strings(body: str) -> list[str]:
    """A raw SSE body, the strings of its events, and the streamed tokens joined."""
    out, tokens, event = [body], [], None
    for line in body.splitlines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            with contextlib.suppress(ValueError):
                data = json.loads(line[6:])
                out.extend(strings(data))
                if event == "token" and isinstance(data, dict):
                    tokens.append(str(data.get("text", "")))
    out.append("".join(tokens))
    return out


def found(text: str, canary: Canary) -> list[str]:
    """What of the canary is in `text` (token, sentence), each with where it was."""
    hits = []
    flat = " ".join(text.split())
    for what, needle, hay in (("token", canary.token, text), ("sentence", canary.sentence, flat)):
        at = hay.find(needle)
        if at >= 0:
            context = hay[max(0, at - 120): at + len(needle) + 60].replace("\n", " ")
            hits.append(f"{what} {needle!r} in: ...{context}...")
    return hits


# --------------------------------------------------------------------------- logs


class LogCollector(logging.Handler):
    """Every record reaching the root logger, formatted with its traceback, and the phase
    ("before" / "after" the vault change) it was written in."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[str, str]] = []
        self.phase = "before"

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not hide the arguments
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        elif record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + record.stack_info
        self.records.append((self.phase, f"{record.name} {record.levelname} {text}"))

    def text(self, phases: tuple[str, ...] = ("before", "after")) -> str:
        return "\n".join(t for p, t in self.records if p in phases)


@contextlib.contextmanager
def collecting_logs() -> Iterator[LogCollector]:
    collector = LogCollector()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in PRODUCT_LOGGERS}
    root.addHandler(collector)
    for name in PRODUCT_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    try:
        yield collector
    finally:
        root.removeHandler(collector)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    vault: CanaryVault
    data: Path
    ollama: FakeOllama
    mp: pytest.MonkeyPatch
    apps: dict[str, App]  # mode -> App, as `vaultbot serve` would build it
    logs: LogCollector
    before: dict[tuple[str, str], str] = field(default_factory=dict)  # while still public
    cache_before: str = ""
    resync: dict[str, Any] = field(default_factory=dict)
    transcripts: dict[tuple[str, str], str] = field(default_factory=dict)

    def cli(self, mode: str, *args: str) -> tuple[int, str, str]:
        """`vaultbot <args>` through the CLI's main(), in this process."""
        self.mp.setenv("VAULTBOT_LLM", "ollama" if mode == "llm" else "none")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main([*args, "--vault", str(self.vault.root), "--data-dir", str(self.data)])
        return code, out.getvalue(), err.getvalue()

    def run(self, front_end: str, mode: str, questions: list[str]) -> str:
        """Everything `front_end` outputs when asked `questions`, plus every prompt sent to
        the model meanwhile."""
        first = len(self.ollama.requests)
        texts = DRIVERS[front_end](self, mode, questions)
        for r in self.ollama.requests[first:]:
            if r.path in ("/api/chat", "/api/generate"):
                texts.extend(strings(r.json.get("messages") or r.json.get("prompt")))
        return "\n".join(texts)

    def transcript(self, front_end: str, mode: str) -> str:
        """All of `front_end`'s output for every question, after the vault change (once)."""
        key = (front_end, mode)
        if key not in self.transcripts:
            self.transcripts[key] = self.run(front_end, mode, self.vault.questions())
        return self.transcripts[key]


def answer_cache_text(data: Path) -> str:
    """Every column of every row of the registry's answer_cache table, as text."""
    with contextlib.closing(sqlite3.connect(data / "registry.sqlite3")) as db:
        rows = db.execute("SELECT * FROM answer_cache").fetchall()
    return "\n".join("\n".join(strings(list(row))) for row in rows)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("canary")
    with contextlib.ExitStack() as stack:
        logs = stack.enter_context(collecting_logs())
        ollama = stack.enter_context(FakeOllama(responder=echo_prompt))
        mp = stack.enter_context(pytest.MonkeyPatch.context())
        for name in list(os.environ):
            if name.startswith(("VAULTBOT_", "SLACK_", "DISCORD_")):
                mp.delenv(name)
        mp.chdir(tmp)  # no stray .env
        vault = build_canary_vault(tmp / "vault")
        data = tmp / "data"
        mp.setenv("VAULTBOT_EMBEDDER", EMBEDDER)
        mp.setenv("VAULTBOT_OLLAMA_URL", ollama.url)
        mp.setenv("VAULTBOT_ACCESS_FILE", str(vault.access_file))
        apps = {
            mode: App(Settings(vault=vault.root, data_dir=data, embedder=EMBEDDER,
                               ollama_url=ollama.url, llm="ollama" if mode == "llm" else "none",
                               access_file=vault.access_file))
            for mode in MODES
        }
        for app in apps.values():
            stack.callback(app.close)
        w = World(vault, data, ollama, mp, apps, logs)

        code, out, err = w.cli("extractive", "sync", "--json")
        assert code == 0, err

        # Phase one: the notes that turn private later are public; ask about them everywhere,
        # so the answer cache (and any other cache) holds their text.
        for front_end in FRONT_ENDS:
            for mode in MODES:
                w.before[front_end, mode] = w.run(front_end, mode, vault.before_questions())
        w.cache_before = answer_cache_text(data)

        # Phase two: move a note into the private folder (and one out), make one private, and
        # sync as the running service's watcher would.
        vault.apply_changes()
        logs.phase = "after"
        w.resync = apps["llm"].indexer.sync().to_json()
        changes = ("notes_added", "notes_updated", "notes_moved", "notes_deleted")
        assert sum(w.resync[k] for k in changes) >= 3, w.resync
        yield w


# --------------------------------------------------------------------------- drivers


def drive_cli(w: World, mode: str, questions: list[str]) -> list[str]:
    texts: list[str] = []
    for q in questions:
        for args in (("ask", q, "--json"), ("search", q)):
            code, out, err = w.cli(mode, *args)
            assert code == 0, f"vaultbot {args[0]} failed: {err}"
            texts += json_strings(out) + [err]
    return texts


def drive_api(w: World, mode: str, questions: list[str]) -> list[str]:
    app = w.apps[mode]
    generator = app.generator
    api = create_app(asker=app.asker, retriever=app.retriever, index=app.index,
                     querylog=app.querylog,
                     llm_health=generator.health if generator is not None else None,
                     base_scope=app.access.base_scope())
    texts: list[str] = []
    with Server(api) as srv, httpx.Client(base_url=srv.url, timeout=60) as client:
        for q in questions:
            with client.stream("POST", "/ask", json={"question": q}) as r:
                body = r.read().decode("utf-8")
            assert r.status_code == 200, body
            assert "event: done" in body, body[-500:]
            texts += sse_strings(body)
            r = client.post("/ask", json={"question": q, "stream": False})
            assert r.status_code == 200, r.text
            texts += json_strings(r.text)
            r = client.get("/search", params={"q": q})
            assert r.status_code == 200, r.text
            texts += json_strings(r.text)
    return texts


def _slack_sign(body: bytes, ts: int) -> str:
    base = b"v0:" + str(ts).encode() + b":" + body
    return "v0=" + hmac.new(SLACK_SECRET.encode(), base, hashlib.sha256).hexdigest()


def drive_slack(w: World, mode: str, questions: list[str]) -> list[str]:
    app = w.apps[mode]
    with FakeSlack() as slack:
        bolt = build_slack_app(app.asker, app.querylog, app.access, bot_token=BOT_TOKEN,
                               signing_secret=SLACK_SECRET, api_url=slack.api_url,
                               update_interval=0.05)
        api = FastAPI()
        mount_http(api, bolt)
        ids = itertools.count(1)
        with Server(api) as srv, httpx.Client(base_url=srv.url, timeout=30) as http:

            def deliver(event: dict[str, Any]) -> None:
                envelope = {
                    "token": "legacy", "team_id": "T1", "api_app_id": "A1", "event": event,
                    "type": "event_callback", "event_id": f"Ev{next(ids):06d}",
                    "event_time": int(time.time()),
                    "authorizations": [{"enterprise_id": None, "team_id": "T1", "user_id": "UBOT",
                                        "is_bot": True, "is_enterprise_install": False}],
                }
                body = json.dumps(envelope).encode()
                ts = int(time.time())
                r = http.post("/slack/events", content=body, headers={
                    "Content-Type": "application/json", "X-Slack-Request-Timestamp": str(ts),
                    "X-Slack-Signature": _slack_sign(body, ts)})
                assert r.status_code == 200, r.text

            def settle(received: int, timeout: float = 60.0) -> None:
                deadline = time.monotonic() + timeout
                while bolt.bot.received < received or bolt.bot.active:
                    assert time.monotonic() < deadline, ("slack: no answer", slack.methods()[-5:])
                    time.sleep(0.02)

            events = 0
            for q in questions:
                text = f"<@UBOT> {q}"
                root = slack.add_message("C1", text, user="U1")
                deliver({"type": "app_mention", "user": "U1", "text": text, "ts": root,
                         "channel": "C1", "event_ts": root, "team": "T1"})
                settle(events := events + 1)
                ts = slack.add_message("C1", FOLLOW_UP, user="U1", thread_ts=root)
                deliver({"type": "message", "user": "U1", "text": FOLLOW_UP, "ts": ts,
                         "channel": "C1", "event_ts": ts, "thread_ts": root,
                         "channel_type": "channel", "team": "T1"})
                settle(events := events + 1)
                answers = [m for m in slack.bot_messages("C1", root) if m.get("blocks")]
                assert len(answers) >= 2, ("slack: the question and its follow-up were not "
                                           f"both answered: {q!r}", answers)
        texts = [s for c in slack.calls for s in strings(c.args)]
        texts += list(strings(slack.messages)) + list(strings(slack.ephemeral))
    return texts


async def _until(check: Callable[[], bool], task: asyncio.Task[Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if task.done():
            task.result()
            raise AssertionError("discord: the bot stopped")
        assert time.monotonic() < deadline, "discord: timed out"
        await asyncio.sleep(0.01)


async def _drive_discord(w: World, mode: str, questions: list[str]) -> list[str]:
    app = w.apps[mode]
    async with FakeDiscord() as fake:
        previous = apply_overrides(fake.api_url, fake.gateway_url)
        try:
            client = VaultbotDiscord(app.asker, app.access, edit_interval=0.05,
                                     guild_ready_timeout=0.05)
            task = asyncio.create_task(run_discord(client, fake.token))
            try:
                await _until(client.is_ready, task)
                for q in questions:
                    start = len(fake.calls)
                    await fake.ask(q)
                    thread = await fake.wait_call("POST", DISCORD_THREAD, after=start, timeout=60)
                    thread_id = thread.response["id"]
                    start = len(fake.calls)
                    await fake.post(thread_id, FOLLOW_UP)
                    await fake.wait_call(
                        "PATCH", rf"/channels/{thread_id}/messages/\d+", after=start, timeout=60,
                        where=lambda c: bool((c.json or {}).get("embeds")))
            finally:
                await client.close()
                await asyncio.wait_for(task, 10)
        finally:
            restore_overrides(previous)
        texts = [s for c in fake.calls for s in (*strings(c.json), *strings(c.response))]
        texts += list(strings(fake.messages))
        for state in fake.interactions.values():
            texts += list(strings([state.original, *state.followups]))
    return texts


def drive_discord(w: World, mode: str, questions: list[str]) -> list[str]:
    return asyncio.run(_drive_discord(w, mode, questions))


DRIVERS: dict[str, Callable[[World, str, list[str]], list[str]]] = {
    "cli": drive_cli, "api": drive_api, "slack": drive_slack, "discord": drive_discord,
}

RUNS = [pytest.param(fe, mode, id=f"{fe}-{mode}") for fe in FRONT_ENDS for mode in MODES]
CASES = (
    "private_frontmatter", "badyaml_private", "badyaml_tag", "folder_nfd", "tag_body",
    "tag_frontmatter", "embed_whole", "embed_heading", "embed_block", "embed_nested",
    "embed_private_folder", "moved_into_private_folder", "made_private_after_caching",
)


# --------------------------------------------------------------------------- positive controls


@pytest.mark.parametrize(("front_end", "mode"), RUNS)
def test_public_mark_comes_out_of_every_front_end(world: World, front_end: str, mode: str) -> None:
    """Without this a front end that shows nothing would pass every canary test."""
    text = world.transcript(front_end, mode)
    assert world.vault.public.token in text
    if mode == "llm":  # the model really saw the note (the prompt is echoed)
        assert world.vault.public.sentence in " ".join(text.split())


@pytest.mark.parametrize(("front_end", "mode"), RUNS)
def test_notes_that_turn_private_came_out_while_public(world: World, front_end: str,
                                                       mode: str) -> None:
    text = world.before[front_end, mode]
    for canary in world.vault.canaries.values():
        if canary.after_change:
            assert canary.token in text, (canary.case, "not shown while it was public")


def test_answer_cache_held_the_public_text_before_the_change(world: World) -> None:
    """So the after-change asks really meet a cached answer holding the text."""
    forecast = world.vault.canaries["made_private_after_caching"]
    assert forecast.token in world.cache_before


@pytest.mark.parametrize("front_end", ["cli", "api"])
def test_nfc_folder_filter_finds_the_nfd_folder(world: World, front_end: str) -> None:
    twin = world.vault.twin
    folder = nfc(TWIN_FOLDER)
    if front_end == "cli":
        code, out, err = world.cli("extractive", "search", twin.question, "--folder", folder)
        assert code == 0, err
    else:
        app = world.apps["extractive"]
        api = create_app(asker=app.asker, retriever=app.retriever, index=app.index,
                         querylog=app.querylog, base_scope=app.access.base_scope())
        with Server(api) as srv:
            r = httpx.get(f"{srv.url}/search", params={"q": twin.question, "folder": folder},
                          timeout=30)
        assert r.status_code == 200, r.text
        out = r.text
    assert twin.token in "\n".join(json_strings(out)), out


# --------------------------------------------------------------------------- the canaries


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize(("front_end", "mode"), RUNS)
def test_no_canary_comes_out(world: World, front_end: str, mode: str, case: str) -> None:
    canary = world.vault.canaries[case]
    leaks = found(world.transcript(front_end, mode), canary)
    assert not leaks, f"{case} leaked through {front_end} ({mode}):\n" + "\n".join(leaks)


def _all_transcripts(world: World) -> None:
    for front_end in FRONT_ENDS:
        for mode in MODES:
            world.transcript(front_end, mode)


@pytest.mark.parametrize("case", CASES)
def test_no_canary_in_the_answer_cache(world: World, case: str) -> None:
    _all_transcripts(world)
    leaks = found(answer_cache_text(world.data), world.vault.canaries[case])
    assert not leaks, f"{case} is in the answer cache:\n" + "\n".join(leaks)


@pytest.mark.parametrize("case", CASES)
def test_no_canary_in_the_logs(world: World, case: str) -> None:
    _all_transcripts(world)
    canary = world.vault.canaries[case]
    text = world.logs.text(("after",) if canary.after_change else ("before", "after"))
    leaks = found(text, canary)
    assert not leaks, f"{case} is in the log:\n" + "\n".join(leaks)


# --------------------------------------------------------------------------- the answer cache


def test_answer_cache_never_serves_a_row_of_another_scope(tmp_path: Path) -> None:
    """Two processes share the registry: `serve` mirrored a cached answer for its scope, then
    another process deleted the cache (a purge, or a note change) and cached an answer for a
    wider scope (the CLI, say) under the same question. SQLite hands the new row the freed
    id; `serve` must not take it for the row it mirrored and show the wider scope's answer.
    (Found by the canary suite: case 7 leaked this way through every extractive front end.)"""
    import numpy as np

    from engine.answer_cache import AnswerCache
    from engine.registry import Registry

    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    serve, other = Registry(url), Registry(url)
    try:
        serving, elsewhere = AnswerCache(serve), AnswerCache(other)
        vec = np.ones(8, dtype=np.float32) / np.sqrt(8)
        narrow, wide = AnswerCache.scope_key("narrow", "v"), AnswerCache.scope_key("wide", "v")
        serving.store(narrow, "When is it?", vec, {"answer": "public answer"}, [])
        hit = serving.lookup(narrow, vec)
        assert hit is not None and hit.answer["answer"] == "public answer"

        elsewhere.clear()
        elsewhere.store(wide, "When is it?", vec, {"answer": "kanaria-widescope private"}, [])
        hit = serving.lookup(narrow, vec)
        assert hit is None or "kanaria" not in str(hit.answer), hit
    finally:
        serve.close()
        other.close()


# --------------------------------------------------------------------------- generated shapes

# (folder, private by the access file?) in the form written on disk.
SHAPE_FOLDERS = (
    ("", False),
    ("Notes", False),
    (nfc("인사"), True),
    (nfd("인사"), True),
    (nfd("인사") + "/" + nfd("평가"), True),
    ("Public/" + nfd("인사"), False),  # "인사" deeper down is not the private folder
    (nfd(TWIN_FOLDER), False),
)
SHAPE_PRIVACY = ("public", "frontmatter", "badyaml", "badyaml_tag", "tag_body", "tag_frontmatter")
SHAPE_FRONTMATTER = {
    "public": "",
    "frontmatter": "---\nprivate: true\n---\n",
    "badyaml": "---\ntitle: Notes: {i}\nprivate: true\n---\n",
    "badyaml_tag": "---\ntitle: Notes: {i}\ntags: [secret]\n---\n",
    "tag_body": "",
    "tag_frontmatter": "---\ntags: [project, secret]\n---\n",
}
SHAPE_SUFFIX = {"whole": "", "heading": "#Details", "block": "#^b{j}"}


@dataclass(frozen=True)
class ShapeNote:
    folder: int  # index into SHAPE_FOLDERS
    privacy: str
    korean: bool  # named 메모 <i> (written in NFD) instead of Note <i>
    embeds: tuple[tuple[int, str], ...]  # (note index, "whole" / "heading" / "block")


def write_shape(root: Path, shape: list[ShapeNote]) -> dict[int, tuple[str, bool]]:
    """Write the vault; returns note index -> (canary token, private?)."""
    names = [nfc(f"메모 {i}") if n.korean else f"Note {i}" for i, n in enumerate(shape)]
    out = {}
    for i, n in enumerate(shape):
        folder, private_folder = SHAPE_FOLDERS[n.folder]
        token = f"kanaria-shape{i}-{secrets_hex()}"
        links = "\n\n".join(
            f"![[{names[j]}{SHAPE_SUFFIX[kind].format(j=j)}]]" for j, kind in n.embeds)
        text = (SHAPE_FRONTMATTER[n.privacy].format(i=i) + f"# {names[i]}\n\n"
                + ("#secret\n\n" if n.privacy == "tag_body" else "")
                + f"Note {i} is about the project archive.\n\n## Details\n\n"
                + f"{token} Shape note {i} holds fact number {i}. Reference askshape{i}. ^b{i}\n\n"
                + f"## Links\n\n{links}\n")
        rel = f"{folder}/{nfd(names[i])}.md" if folder else f"{nfd(names[i])}.md"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text, encoding="utf-8")
        out[i] = (token, private_folder or n.privacy != "public")
    return out


def secrets_hex() -> str:
    import secrets

    return secrets.token_hex(4)


def tainted(shape: list[ShapeNote], tokens: dict[int, tuple[str, bool]], i: int) -> bool:
    """Does note i embed a private note, directly or through other embeds? (Its own text
    may then be hidden with the private text around it.)"""
    seen, todo = set(), [j for j, _ in shape[i].embeds]
    while todo:
        j = todo.pop()
        if j in seen:
            continue
        seen.add(j)
        if tokens[j][1]:
            return True
        todo.extend(k for k, _ in shape[j].embeds)
    return False


def check_shape(shape: list[ShapeNote]) -> None:
    """Property: for the access file's base scope, no private note's canary comes out of
    `Retriever.search` or an (extractive) `Asker` answer, whatever the question; and every
    public note that embeds no private note (at any depth) is found when asked for, so the
    property is not vacuous. (A public note embedding private text may be hidden whole.)"""
    import tempfile

    from helpers import build, close_index

    from bot.access import Access
    from engine.answer import Asker, AskOptions
    from engine.embedders.hashing import HashingEmbedder
    from engine.retrieve import Retriever

    scope = Access.from_dict({"private": {"folders": ["인사"], "tags": ["secret"]}}).base_scope()
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        vault.mkdir()
        tokens = write_shape(vault, shape)
        index, indexer = build(vault, Path(tmp) / "data", HashingEmbedder(64))
        try:
            indexer.sync()
            retriever = Retriever(index)
            asker = Asker(retriever, None, vault_name="vault")
            for i, (token, private) in tokens.items():
                question = f"What fact does shape note {i} hold? askshape{i}"
                hits = retriever.search(question, 8, scope=scope)
                answer = asyncio.run(asker.ask(question, AskOptions(scope=scope)))
                shown = "\n".join([h.text for h in hits] + [answer.text]
                                  + [str(c.to_json()) for c in answer.sources])
                for j, (other, other_private) in tokens.items():
                    assert not (other_private and other in shown), (
                        f"private note {j} came out when asking about note {i}", shape, shown)
                if not private and not tainted(shape, tokens, i):
                    assert token in "\n".join(h.text for h in hits), (
                        f"public note {i} was not found", shape)
        finally:
            close_index(index)  # hypothesis runs this many times: each Index left open kept ~15 fds


try:
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as hsettings
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    given = None

if given is not None:

    @st.composite
    def vault_shapes(draw: Any) -> list[ShapeNote]:
        n = draw(st.integers(2, 6))
        return [ShapeNote(
            folder=draw(st.integers(0, len(SHAPE_FOLDERS) - 1)),
            privacy=draw(st.sampled_from(SHAPE_PRIVACY)),
            korean=draw(st.booleans()),
            embeds=tuple(draw(st.lists(
                st.tuples(st.integers(0, n - 1), st.sampled_from(tuple(SHAPE_SUFFIX))),
                max_size=3))),
        ) for _ in range(n)]

    # No shrinking: a failing shape is printed as found (shrinking one costs minutes).
    @hsettings(max_examples=12, deadline=None, database=None,
               phases=(Phase.explicit, Phase.generate),
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(vault_shapes())
    def test_generated_vault_shapes_keep_private_text_private(shape: list[ShapeNote]) -> None:
        check_shape(shape)

else:

    def test_generated_vault_shapes_keep_private_text_private() -> None:
        pytest.skip("hypothesis is not installed (pip install hypothesis)")
