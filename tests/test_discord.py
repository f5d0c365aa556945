"""The Discord bot end to end: the real discord.py client, logged in and connected to a fake
Discord (REST + gateway, tests/fakes/discord_api.py), answering `/ask` from the real index of
the sample vault with a fake Ollama behind it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
import pytest
import yarl
from fakes.discord_api import EPHEMERAL, Call, FakeDiscord, message_problems

from bot.access import Access
from bot.discord_bot import (
    SORRY,
    VaultbotDiscord,
    apply_overrides,
    invite_url,
    restore_overrides,
    run_discord,
    thread_name,
)
from bot.render_discord import EXTRACTIVE, SOURCES_TITLE
from engine.answer import Asker, AskOptions, Token
from engine.llm.ollama import OllamaGenerator
from engine.querylog import QueryLog
from engine.retrieve import Retriever

INTERVAL = 0.4  # the bot's edit throttle in these tests (1 s in production)
ORIGINAL = r"/webhooks/\d+/[^/]+/messages/@original"
CALLBACK = r"/interactions/\d+/[^/]+/callback"
THREAD = r"/channels/\d+/messages/\d+/threads"
Q1 = "When is the vaultbot launch?"
A1 = ("The vaultbot launch is planned for December 4 [1]. The team first finishes the Discord "
      "review, then the Slack app, and the documentation comes last [2]. Nothing else blocks "
      "the date according to the weekly sync notes [1].")


@pytest.fixture
def fake(fake_discord: FakeDiscord) -> FakeDiscord:
    return fake_discord  # the conftest fixture, by the short name these tests use


def make_asker(index, fake_ollama, **kw: Any) -> Asker:
    return Asker(Retriever(index), OllamaGenerator(fake_ollama.url, idle_timeout=5),
                 querylog=QueryLog(index.registry), vault_name="vault", **kw)


async def until(check: Callable[[], bool], task: asyncio.Task | None = None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if task is not None and task.done():
            task.result()  # the bot died: show why
            raise AssertionError("the bot stopped")
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(fake: FakeDiscord, asker: Asker, access: Access | None = None,
                  **kw: Any) -> AsyncIterator[VaultbotDiscord]:
    kw.setdefault("edit_interval", INTERVAL)
    client = VaultbotDiscord(asker, access, guild_ready_timeout=0.05, **kw)
    task = asyncio.create_task(run_discord(client, fake.token))
    try:
        await until(client.is_ready, task)
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(task, 5)


def chats(fake_ollama) -> list[dict[str, Any]]:
    return [r.json for r in fake_ollama.requests if r.path == "/api/chat"]


def has_embeds(c: Call) -> bool:
    return bool((c.json or {}).get("embeds"))


def descriptions(embeds: list[dict[str, Any]]) -> str:
    return " ".join(e["description"] for e in embeds
                    if "description" in e and e.get("title") != SOURCES_TITLE)


# ---------------------------------------------------------------------------- /ask


async def test_ask_defers_streams_edits_and_opens_a_thread(fake, index, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: A1
    fake_ollama.token_delay = 0.05  # ~40 pieces: about 2 s of streaming
    async with running(fake, make_asker(index, fake_ollama)):
        # Commands were synced globally (no guild set) with the intents follow-ups need.
        put = fake.calls_matching("PUT", r"/applications/\d+/commands")
        assert [c["name"] for c in put[0].json] == ["ask"]
        intents = fake.identify["intents"]
        wanted = discord.Intents(message_content=True, guilds=True, guild_messages=True).value
        assert intents & wanted == wanted
        start = len(fake.calls)
        sent = time.monotonic()
        await fake.ask(Q1)
        thread = await fake.wait_call("POST", THREAD, after=start)
    calls = fake.calls[start:]

    # Acknowledged first, at once: a deferred "thinking" response (type 5), public.
    callback = calls[0]
    assert callback.method == "POST" and callback.path.startswith("/interactions/")
    assert callback.json == {"type": 5} and callback.query["with_response"] in ("1", "true")
    assert callback.time - sent < 1.0

    edits = [c for c in calls if c.method == "PATCH" and c.path.endswith("/@original")]
    streamed, final = edits[:-1], edits[-1]
    assert len(streamed) >= 2 and not any(has_embeds(c) for c in streamed)
    texts = [c.json["content"] for c in streamed]
    assert all(t.endswith(" …") for t in texts)
    bodies = [t.removesuffix(" …") for t in texts]
    for before, after in zip(bodies, bodies[1:], strict=False):
        assert after.startswith(before) and len(after) > len(before)  # growing, never rewritten
    gaps = [b.time - a.time for a, b in zip(streamed, streamed[1:], strict=False)]
    assert min(gaps) >= INTERVAL - 0.02, gaps  # throttled

    # Then the final embeds replace the streamed text.
    assert final.json["content"] is None and message_problems(final.json) == []
    # Notes may contain @everyone or <@id>: answers never ping anyone.
    assert all(c.json["allowed_mentions"]["parse"] == [] for c in edits)
    answer_embed, sources = final.json["embeds"]
    assert answer_embed["title"] == Q1 and answer_embed["description"] == A1
    assert sources["title"] == SOURCES_TITLE
    assert [f["name"][:3] for f in sources["fields"]] == ["[1]", "[2]"]
    assert "obsidian://open?vault=vault" in sources["fields"][0]["value"]
    assert sources["footer"]["text"] == "qwen2.5:7b-instruct"

    # A thread opens on the answer, named after the question.
    message_id = callback.response["interaction"]["response_message_id"]
    assert thread.path == f"/channels/{fake.channel_id}/messages/{message_id}/threads"
    assert thread.json["name"] == Q1 == thread_name(Q1)
    assert fake.errors() == []


async def test_long_answer_continues_in_follow_ups(fake, index, fake_ollama) -> None:
    paragraph = ("The launch checklist covers the Discord review, the Slack app, the docs and the "
                 "release notes, each with an owner and a date [1]. ") * 6
    long_answer = "\n\n".join(paragraph.strip() for _ in range(16))  # ~15,000 characters
    fake_ollama.responder = lambda *a: long_answer
    asker = make_asker(index, fake_ollama, note_url="https://notes.example/{path}")
    async with running(fake, asker):
        start = len(fake.calls)
        await fake.ask("Summarise the launch checklist")
        await fake.wait_call("POST", THREAD, after=start)
    calls = fake.calls[start:]
    assert fake.errors() == []  # every preview, edit and follow-up within Discord's limits
    streamed = [c for c in calls if c.method == "PATCH" and not has_embeds(c)]
    assert streamed and all(len(c.json["content"]) <= 2000 for c in streamed)
    final = [c for c in calls if c.method == "PATCH" and has_embeds(c)]
    follow_ups = [c for c in calls if c.method == "POST" and c.path.startswith("/webhooks/")]
    assert len(final) == 1 and len(follow_ups) >= 2
    messages = [final[0].json["embeds"]] + [c.json["embeds"] for c in follow_ups]
    for c in [final[0], *follow_ups]:
        assert message_problems(c.json) == []
        assert not (c.json.get("flags") or 0) & EPHEMERAL
    shown = " ".join(descriptions(m) for m in messages)
    assert shown.split() == long_answer.split()  # nothing lost or repeated
    last = messages[-1][-1]
    assert last["title"] == SOURCES_TITLE and "qwen2.5" in last["footer"]["text"]
    # With VAULTBOT_NOTE_URL set, sources are clickable masked links.
    assert last["fields"][0]["value"].startswith("[") and "](https://notes.example/" in last["fields"][0]["value"]


async def test_private_ask_is_ephemeral_and_opens_no_thread(fake, index, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: "Launch: December 4 [1]. " * 400  # needs follow-ups too
    async with running(fake, make_asker(index, fake_ollama)):
        start = len(fake.calls)
        await fake.ask(Q1, private=True)
        await fake.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds)
        await fake.wait_call("POST", r"/webhooks/\d+/[^/]+", after=start)
        await asyncio.sleep(0.3)  # a thread would be opened right after the last follow-up
    calls = fake.calls[start:]
    assert calls[0].json == {"type": 5, "data": {"flags": EPHEMERAL}}
    follow_ups = [c for c in calls if c.method == "POST" and c.path.startswith("/webhooks/")]
    assert follow_ups and all(c.json["flags"] & EPHEMERAL for c in follow_ups)
    assert not [c for c in calls if c.path.endswith("/threads")]
    assert fake.errors() == []


async def test_ask_in_a_direct_message(fake, index, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: "December 4 [1]."
    async with running(fake, make_asker(index, fake_ollama)):
        start = len(fake.calls)
        await fake.ask(Q1, dm=True)
        final = await fake.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds)
        await asyncio.sleep(0.2)
    assert final.json["embeds"][0]["description"] == "December 4 [1]."
    assert not [c for c in fake.calls[start:] if c.path.endswith("/threads")]
    assert fake.errors() == []


# ---------------------------------------------------------------------------- threads


async def _first_turn(fake: FakeDiscord) -> str:
    start = len(fake.calls)
    await fake.ask(Q1)
    thread = await fake.wait_call("POST", THREAD, after=start)
    return thread.response["id"]


async def _follow_up(fake: FakeDiscord, thread_id: str, text: str, **kw: Any) -> tuple[dict, Call]:
    start = len(fake.calls)
    msg = await fake.post(thread_id, text, **kw)
    final = await fake.wait_call("PATCH", rf"/channels/{thread_id}/messages/\d+", after=start,
                                 where=has_embeds)
    return msg, final


def _assert_history(chat: dict[str, Any], turns: list[tuple[str, str]], question: str) -> None:
    messages = chat["messages"]
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * len(turns) + ["user"]
    for i, (q, a) in enumerate(turns):
        assert messages[1 + 2 * i]["content"] == q
        assert messages[2 + 2 * i]["content"] == a
    assert question in messages[-1]["content"]


async def test_messages_in_the_thread_continue_the_conversation(fake, index, fake_ollama) -> None:
    replies = iter(["The launch is on December 4 [1].", "It moved because of the Discord review [1].",
                    "The docs come last [2]."])
    fake_ollama.responder = lambda *a: next(replies)
    async with running(fake, make_asker(index, fake_ollama)):
        thread_id = await _first_turn(fake)
        start = len(fake.calls)
        question, final = await _follow_up(fake, thread_id, "Why did it move?")
        # A reply to the question: a placeholder first, then the answer.
        placeholder = await fake.wait_call("POST", rf"/channels/{thread_id}/messages", after=start)
        assert placeholder.json["content"] == "…"
        assert placeholder.json["allowed_mentions"] == {"parse": [], "replied_user": False}
        assert str(placeholder.json["message_reference"]["message_id"]) == question["id"]
        assert final.json["embeds"][0]["description"] == "It moved because of the Discord review [1]."
        assert "title" not in final.json["embeds"][0]
        _assert_history(chats(fake_ollama)[1], [(Q1, "The launch is on December 4 [1].")],
                        "Why did it move?")

        # /ask inside the thread answers there, with both turns, and opens no new thread.
        start = len(fake.calls)
        await fake.ask("What comes last?", channel_id=thread_id)
        await fake.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds)
        await asyncio.sleep(0.2)
        assert not [c for c in fake.calls[start:] if c.path.endswith("/threads")]
    _assert_history(chats(fake_ollama)[2], [(Q1, "The launch is on December 4 [1]."),
                                            ("Why did it move?", "It moved because of the Discord review [1].")],
                    "What comes last?")
    # The bot's own messages (MESSAGE_CREATE echoes of its replies) were not taken as questions.
    assert len(chats(fake_ollama)) == 3
    assert fake.errors() == []


@pytest.mark.parametrize("cached", [True, False], ids=["thread-in-cache", "thread-not-in-cache"])
async def test_thread_history_is_read_back_after_a_restart(fake, index, fake_ollama, cached) -> None:
    replies = iter(["The launch is on December 4 [1].", "Because of the Discord review [1]."])
    fake_ollama.responder = lambda *a: next(replies)
    asker = make_asker(index, fake_ollama)
    async with running(fake, asker):
        thread_id = await _first_turn(fake)
    fake.threads_in_guild_create = cached  # not cached: as if archived while the bot was away
    async with running(fake, asker):  # a new process: nothing in memory
        start = len(fake.calls)
        _, final = await _follow_up(fake, thread_id, "Why did it move?")
    paths = [(c.method, c.path) for c in fake.calls[start:]]
    assert ("GET", f"/channels/{thread_id}/messages") in paths
    assert ("GET", f"/channels/{fake.channel_id}/messages/{thread_id}") in paths  # the starter
    assert (("GET", f"/channels/{thread_id}") in paths) is not cached
    _assert_history(chats(fake_ollama)[1], [(Q1, "The launch is on December 4 [1].")],
                    "Why did it move?")
    assert final.json["embeds"][0]["description"] == "Because of the Discord review [1]."
    assert fake.errors() == []


async def test_plain_channel_messages_are_ignored(fake, index, fake_ollama) -> None:
    async with running(fake, make_asker(index, fake_ollama)):
        start = len(fake.calls)
        await fake.post(fake.channel_id, "When is the launch?")
        await asyncio.sleep(0.3)
    assert fake.calls[start:] == [] and chats(fake_ollama) == []


# ---------------------------------------------------------------------------- access and errors


async def test_access_denied(fake, index, fake_ollama) -> None:
    mallory, eve = fake.make_user("mallory"), fake.make_user("eve")
    access = Access.from_dict({"discord": {
        "users": {mallory["id"]: {"allow": False}},
        "channels": {fake.channel_id: {"users": [fake.owner["id"], mallory["id"]]}},
    }})
    fake_ollama.responder = lambda *a: "December 4 [1]."
    async with running(fake, make_asker(index, fake_ollama), access):
        start = len(fake.calls)
        refused_tokens = [(await fake.ask(Q1, user=mallory)).token]
        refused = await fake.wait_call("POST", CALLBACK, after=start)
        assert refused.json["type"] == 4
        assert refused.json["data"]["flags"] == EPHEMERAL
        assert refused.json["data"]["content"] == "You are not allowed to ask vaultbot questions."

        # A thread counts as its channel: eve may not ask there, in the thread either.
        thread_id = await _first_turn(fake)
        start = len(fake.calls)
        await fake.post(thread_id, "Why did it move?", user=eve)
        reply = await fake.wait_call("POST", rf"/channels/{thread_id}/messages", after=start)
        assert reply.json["content"] == "You are not allowed to ask vaultbot questions here."
        refused_tokens.append((await fake.ask(Q1, user=eve)).token)
        refused = await fake.wait_call("POST", CALLBACK, after=start)
        assert refused.json["data"]["flags"] == EPHEMERAL

        start = len(fake.calls)
        refused_tokens.append((await fake.ask("   ")).token)
        empty = await fake.wait_call("POST", CALLBACK, after=start)
        assert empty.json["type"] == 4 and empty.json["data"]["flags"] == EPHEMERAL
    assert len(chats(fake_ollama)) == 1  # only the owner's question reached the model
    # Nothing but the refusal for the refused: no edits, no follow-ups.
    assert all(c.path.endswith("/callback") for c in fake.calls
               if any(t in c.path for t in refused_tokens))
    assert fake.errors() == []


async def test_folder_scoped_channel_and_narrowing_user(fake, index, fake_ollama) -> None:
    """A channel limited to Meetings/ cites Meetings/ only; a user whose own rule allows only
    Projects/ finds nothing in common with it and is refused."""
    narrow = fake.make_user("narrow")
    access = Access.from_dict({"discord": {
        "channels": {fake.channel_id: {"folders": ["Meetings"]}},
        "users": {narrow["id"]: {"folders": ["Projects"]}},
    }})
    fake_ollama.responder = lambda *a: "It is in the notes [1][2]."
    async with running(fake, make_asker(index, fake_ollama), access):
        start = len(fake.calls)
        await fake.ask(Q1)
        await until(lambda: any(c.method == "PATCH" and has_embeds(c) for c in fake.calls[start:]))
        final = [c for c in fake.calls[start:] if c.method == "PATCH" and has_embeds(c)][-1]
        sources = next(e for e in final.json["embeds"] if e.get("title") == SOURCES_TITLE)
        links = [f["value"] for f in sources["fields"]]
        assert links and all("file=Meetings%2F" in v for v in links), links
        prompt = chats(fake_ollama)[-1]["messages"][-1]["content"]
        assert "Weekly sync" in prompt and "Vaultbot launch ›" not in prompt

        start = len(fake.calls)
        await fake.ask(Q1, user=narrow)
        refused = await fake.wait_call("POST", CALLBACK, after=start)
        assert refused.json["data"]["flags"] == EPHEMERAL
        assert refused.json["data"]["content"] == "None of the notes you may see are shown here."
    assert len(chats(fake_ollama)) == 1
    assert fake.errors() == []


async def test_ollama_failures_are_reported(fake, index, fake_ollama) -> None:
    async with running(fake, make_asker(index, fake_ollama)):
        # Down before the first token: the notes are quoted instead, and the reason shown.
        fake_ollama.http_error = (500, "model runner has unexpectedly stopped")
        start = len(fake.calls)
        await fake.ask(Q1)
        final = await fake.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds)
        first = final.json["embeds"][0]
        assert first["description"].startswith("> ℹ️ Ollama refused the request for qwen2.5:7b-instruct")
        assert "model runner has unexpectedly stopped" in first["description"]
        assert re.search(r"\n\n.+\[\d\]", first["description"])  # quoted from the notes, cited
        assert final.json["embeds"][-1]["footer"]["text"].startswith(EXTRACTIVE)

        # Broken mid-answer: what arrived stays, and the error is said.
        fake_ollama.http_error = None
        fake_ollama.responder = lambda *a: "The launch is on December 4 [1] and then more follows."
        fake_ollama.error_after = 5
        start = len(fake.calls)
        await fake.ask(Q1)
        final = await fake.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds)
        text = final.json["embeds"][0]["description"]
        assert text.startswith("The launch is on December")
        assert "\n\n> ⚠️ Ollama failed while qwen2.5:7b-instruct was answering" in text
    assert fake.errors() == []


class BrokenAsker(Asker):
    """An engine that breaks after the first token (say, the index went away)."""

    def __init__(self) -> None:
        pass

    async def stream(self, question: str, options: AskOptions | None = None) -> AsyncIterator[Any]:
        yield Token("The launch ")
        await asyncio.sleep(0.05)
        raise RuntimeError("the index is gone")


async def test_unexpected_error_gives_a_short_message_and_a_log(fake, caplog) -> None:
    question = "What is in my secret diary?"
    with caplog.at_level(logging.ERROR, logger="bot.discord_bot"):
        async with running(fake, BrokenAsker()):
            start = len(fake.calls)
            await fake.ask(question)
            failed = await fake.wait_call("PATCH", ORIGINAL, after=start,
                                          where=lambda c: c.json.get("content") == SORRY)
            await asyncio.sleep(0.2)
    assert failed.json["embeds"] == []
    assert not [c for c in fake.calls[start:] if c.path.endswith("/threads")]
    records = [r for r in caplog.records if r.name == "bot.discord_bot" and r.levelno == logging.ERROR]
    assert records and records[0].exc_info is not None
    assert question not in caplog.text and "The launch" not in caplog.text


async def test_shutdown_lets_the_answer_being_written_finish(fake, index, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: A1
    fake_ollama.token_delay = 0.03
    client = VaultbotDiscord(make_asker(index, fake_ollama), edit_interval=INTERVAL,
                             guild_ready_timeout=0.05)
    task = asyncio.create_task(run_discord(client, fake.token, drain_timeout=10))
    await until(client.is_ready, task)
    start = len(fake.calls)
    await fake.ask(Q1)
    await fake.wait_call("PATCH", ORIGINAL, after=start)  # the answer is streaming
    task.cancel()  # what `vaultbot serve` does on SIGTERM
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 15)
    assert client.is_closed()
    final = [c for c in fake.calls[start:] if c.method == "PATCH" and has_embeds(c)]
    assert len(final) == 1 and final[0].json["embeds"][0]["description"] == A1
    assert [c for c in fake.calls[start:] if c.path.endswith("/threads")]
    assert fake.errors() == []


# ---------------------------------------------------------------------------- setup


async def test_guild_sync_for_development(fake, index, fake_ollama) -> None:
    async with running(fake, make_asker(index, fake_ollama), guild_id=int(fake.guild_id)):
        pass
    puts = [c for c in fake.calls if c.method == "PUT"]
    assert [c.path for c in puts] == [f"/applications/{fake.app_id}/guilds/{fake.guild_id}/commands"]
    (ask,) = puts[0].json
    assert ask["name"] == "ask"
    assert [(o["name"], o["type"], o.get("required", False)) for o in ask["options"]] == [
        ("question", 3, True), ("private", 5, False)]


async def test_without_follow_ups_no_privileged_intent(fake, index, fake_ollama) -> None:
    async with running(fake, make_asker(index, fake_ollama), follow_ups=False):
        pass
    assert not fake.identify["intents"] & discord.Intents(message_content=True).value


def test_overrides_are_set_and_restored() -> None:
    before = (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)
    previous = apply_overrides("http://127.0.0.1:9/api/v10/", "ws://127.0.0.1:9/gateway")
    try:
        assert discord.http.Route.BASE == "http://127.0.0.1:9/api/v10"
        assert discord.http.Route("GET", "/users/@me").url == "http://127.0.0.1:9/api/v10/users/@me"
        assert yarl.URL("ws://127.0.0.1:9/gateway") == discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    finally:
        restore_overrides(previous)
    assert before == (discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY)


def test_thread_names() -> None:
    assert thread_name("  When is\nthe launch? ") == "When is the launch?"
    assert len(thread_name("x" * 500)) == 90
    assert thread_name("   ") == "vaultbot"


def test_invite_url_has_the_scopes_and_permissions() -> None:
    url = yarl.URL(invite_url(1234))
    assert url.query["client_id"] == "1234"
    assert url.query["scope"] == "bot applications.commands"
    perms = discord.Permissions(int(url.query["permissions"]))
    assert perms.create_public_threads and perms.send_messages_in_threads and perms.embed_links
    assert perms.read_message_history and not perms.administrator


async def test_a_queued_question_shows_its_place_in_line(fake, index, fake_ollama) -> None:
    from engine.llm.queue import GenerationQueue

    fake_ollama.responder = lambda *a: A1
    fake_ollama.pause_after = 1  # the first generation holds the only slot
    asker = make_asker(index, fake_ollama, queue=GenerationQueue({"qwen2.5:7b-instruct": 1}))
    async with running(fake, asker):
        busy = asyncio.create_task(asker.ask("How long does the bread bake?"))
        await until(lambda: bool(chats(fake_ollama)))
        start = len(fake.calls)
        await fake.ask(Q1)
        waiting = await fake.wait_call("PATCH", ORIGINAL, after=start)
        assert waiting.json["content"] == "waiting: 1 question ahead …"
        fake_ollama.resume()
        await busy
        await fake.wait_call("POST", THREAD, after=start)
    final = [c for c in fake.calls[start:] if c.method == "PATCH" and has_embeds(c)][-1]
    assert final.json["embeds"][0]["description"] == A1


async def test_sources_link_the_note_page_when_serve_makes_one(fake, index, fake_ollama) -> None:
    """With note pages, the final embed Discord receives links each source to its page (a
    masked link Discord makes clickable) and keeps the obsidian:// address beside it."""
    fake_ollama.responder = lambda *a: "The launch is on December 4 [1]."
    asker = make_asker(index, fake_ollama,
                       page_link=lambda c, scope: f"https://vault.example.ts.net/n/t{c.n}#cited")
    async with running(fake, asker):
        start = len(fake.calls)
        await fake.ask(Q1)
        await until(lambda: any(c.method == "PATCH" and has_embeds(c) for c in fake.calls[start:]))
        final = [c for c in fake.calls[start:] if c.method == "PATCH" and has_embeds(c)][-1]
        sources = next(e for e in final.json["embeds"] if e.get("title") == SOURCES_TITLE)
        values = [f["value"] for f in sources["fields"]]
        assert values and all("](https://vault.example.ts.net/n/t" in v for v in values), values
        assert all("obsidian://open?" in v for v in values), values
    assert fake.errors() == []
