"""Discord beyond `/ask`: `/search`, @mentions (a thread in a channel, a reply in a DM) and the
follow-ups in a mention's thread, the "Ask vaultbot" message command, Korean localisations in
the registered commands, and 👍/👎 with a reason. The real discord.py client against the fake
Discord (tests/fakes/discord_api.py), answering from the sample vault's index."""

from __future__ import annotations

import asyncio
from typing import Any

from fakes.discord_api import EPHEMERAL, FakeDiscord
from test_discord import (  # noqa: F401 - fixtures
    CALLBACK,
    ORIGINAL,
    Q1,
    THREAD,
    _assert_history,
    chats,
    fake,
    has_embeds,
    make_asker,
    running,
)

from bot.discord_bot import COMMANDS, EMPTY_MENTION
from bot.discord_feedback import ASK_WHY, REASONS, THANKS
from bot.render_discord import SOURCES_TITLE


def _option(name: str, value: Any, kind: int = 3) -> dict[str, Any]:
    return {"name": name, "type": kind, "value": value}


async def test_commands_are_registered_with_korean_localisations(fake: FakeDiscord, index,  # noqa: F811
                                                                 fake_ollama) -> None:
    async with running(fake, make_asker(index, fake_ollama), commands=COMMANDS):
        pass
    (put,) = fake.calls_matching("PUT", r"/applications/\d+/commands")
    assert put.status == 200  # the fake checks names and localisations as Discord does
    by_name = {c["name"]: c for c in put.json}
    assert set(by_name) == {"ask", "search", "Ask vaultbot"}
    ask, search, menu = by_name["ask"], by_name["search"], by_name["Ask vaultbot"]
    assert ask["name_localizations"] == {"ko": "질문하기"}
    assert ask["description_localizations"] == {"ko": "노트에 대해 질문합니다"}
    options = {o["name"]: o for o in ask["options"]}
    assert options["question"]["name_localizations"] == {"ko": "질문"}
    assert options["private"]["description_localizations"]["ko"].startswith("나만 보는")
    assert search["name_localizations"] == {"ko": "검색"}
    assert {o["name"]: o["name_localizations"]["ko"] for o in search["options"]} == {
        "query": "검색어", "private": "비공개"}
    assert menu["type"] == 3 and menu["name_localizations"] == {"ko": "vaultbot에게 묻기"}
    assert not menu.get("description")


async def test_search_lists_the_top_notes_with_links(fake, index, fake_ollama) -> None:  # noqa: F811
    asker = make_asker(index, fake_ollama, note_url="https://notes.example/{path}")
    async with running(fake, asker, commands=COMMANDS):
        start = len(fake.calls)
        await fake.command("search", [_option("query", "sourdough starter")])
        final = await fake.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds)
        start2 = len(fake.calls)
        await fake.command("search", [_option("query", "launch"), _option("private", True, 5)])
        private = await fake.wait_call("PATCH", ORIGINAL, after=start2, where=has_embeds)
    calls = fake.calls[start:]
    assert calls[0].json == {"type": 5}  # deferred first, public
    (embed,) = final.json["embeds"]
    assert embed["title"] == "Notes for: sourdough starter"
    paths = [f["value"] for f in embed["fields"]]
    assert paths and "Recipes/Sourdough bread.md](https://notes.example/" in paths[0]
    assert len({p.split("](")[0] for p in paths}) == len(paths)  # one field per note
    assert fake.calls[start2].json == {"type": 5, "data": {"flags": EPHEMERAL}}
    assert "Projects/Vaultbot launch.md" in str(private.json["embeds"])
    assert chats(fake_ollama) == []  # no model involved
    assert fake.errors() == []


async def test_mention_in_a_channel_answers_in_a_thread_and_follow_ups_continue(
        fake, index, fake_ollama) -> None:  # noqa: F811
    replies = iter(["The launch is on December 4 [1].", "Because of the Discord review [1]."])
    fake_ollama.responder = lambda *a: next(replies)
    async with running(fake, make_asker(index, fake_ollama)):
        start = len(fake.calls)
        question = await fake.post(fake.channel_id, Q1, mention=True)
        thread = await fake.wait_call("POST", THREAD, after=start)
        assert thread.path == f"/channels/{fake.channel_id}/messages/{question['id']}/threads"
        assert thread.json["name"] == Q1  # the mention is not part of the name
        thread_id = thread.response["id"]
        final = await fake.wait_call("PATCH", rf"/channels/{thread_id}/messages/\d+", after=start,
                                     where=has_embeds)
        placeholder = next(c for c in fake.calls[start:]
                           if c.method == "POST" and c.path == f"/channels/{thread_id}/messages")
        assert placeholder.json["content"] == "…" and "message_reference" not in placeholder.json
        first = final.json["embeds"][0]
        assert first["title"] == Q1 and first["description"] == "The launch is on December 4 [1]."
        assert chats(fake_ollama)[0]["messages"][-1]["content"].count("<@") == 0

        # A follow-up in that thread, without a mention, continues the conversation.
        start = len(fake.calls)
        await fake.post(thread_id, "Why did it move?")
        final = await fake.wait_call("PATCH", rf"/channels/{thread_id}/messages/\d+", after=start,
                                     where=has_embeds)
        assert final.json["embeds"][0]["description"] == "Because of the Discord review [1]."
        _assert_history(chats(fake_ollama)[1], [(Q1, "The launch is on December 4 [1].")],
                        "Why did it move?")

        # A mention with nothing after it gets a hint, not an answer.
        start = len(fake.calls)
        await fake.post(fake.channel_id, "", mention=True)
        hint = await fake.wait_call("POST", rf"/channels/{fake.channel_id}/messages", after=start)
        assert hint.json["content"] == EMPTY_MENTION
    assert len(chats(fake_ollama)) == 2
    assert fake.errors() == []


async def test_mention_thread_is_read_back_after_a_restart(fake, index, fake_ollama) -> None:  # noqa: F811
    replies = iter(["The launch is on December 4 [1].", "Because of the Discord review [1]."])
    fake_ollama.responder = lambda *a: next(replies)
    asker = make_asker(index, fake_ollama)
    async with running(fake, asker):
        start = len(fake.calls)
        await fake.post(fake.channel_id, Q1, mention=True)
        thread_id = (await fake.wait_call("POST", THREAD, after=start)).response["id"]
        await fake.wait_call("PATCH", rf"/channels/{thread_id}/messages/\d+", after=start,
                             where=has_embeds)
    async with running(fake, asker):  # nothing in memory
        start = len(fake.calls)
        await fake.post(thread_id, "Why did it move?")
        await fake.wait_call("PATCH", rf"/channels/{thread_id}/messages/\d+", after=start,
                             where=has_embeds)
    _assert_history(chats(fake_ollama)[1], [(Q1, "The launch is on December 4 [1].")],
                    "Why did it move?")
    assert fake.errors() == []


async def test_direct_messages_are_answered_in_the_dm(fake, index, fake_ollama) -> None:  # noqa: F811
    replies = iter(["The launch is on December 4 [1].", "Because of the Discord review [1]."])
    fake_ollama.responder = lambda *a: next(replies)
    dm = fake.dm_channel()
    async with running(fake, make_asker(index, fake_ollama)):
        start = len(fake.calls)
        question = await fake.post(dm, Q1)  # no mention needed in a DM
        final = await fake.wait_call("PATCH", rf"/channels/{dm}/messages/\d+", after=start,
                                     where=has_embeds)
        reply = next(c for c in fake.calls[start:]
                     if c.method == "POST" and c.path == f"/channels/{dm}/messages")
        assert str(reply.json["message_reference"]["message_id"]) == question["id"]
        assert final.json["embeds"][0]["description"] == "The launch is on December 4 [1]."
        start = len(fake.calls)
        await fake.post(dm, "Why did it move?")
        await fake.wait_call("PATCH", rf"/channels/{dm}/messages/\d+", after=start,
                             where=has_embeds)
    assert not [c for c in fake.calls if c.path.endswith("/threads")]
    _assert_history(chats(fake_ollama)[1], [(Q1, "The launch is on December 4 [1].")],
                    "Why did it move?")
    assert fake.errors() == []


async def test_message_command_asks_about_a_message(fake, index, fake_ollama) -> None:  # noqa: F811
    fake_ollama.responder = lambda *a: "The launch is on December 4 [1]."
    async with running(fake, make_asker(index, fake_ollama), commands=COMMANDS):
        message = await fake.post(fake.channel_id, "When is the vaultbot launch?")  # no mention
        await asyncio.sleep(0.2)
        assert chats(fake_ollama) == []  # a plain message is not a question
        start = len(fake.calls)
        await fake.context_menu("Ask vaultbot", message)
        final = await fake.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds)
        await fake.wait_call("POST", THREAD, after=start)
        assert fake.calls[start].json == {"type": 5}
        first = final.json["embeds"][0]
        assert first["title"] == "When is the vaultbot launch?"
        assert first["description"] == "The launch is on December 4 [1]."

        empty = await fake.post(fake.channel_id, "")
        start = len(fake.calls)
        await fake.context_menu("Ask vaultbot", empty)
        refused = await fake.wait_call("POST", CALLBACK, after=start)
        assert refused.json["type"] == 4 and refused.json["data"]["flags"] == EPHEMERAL
    assert len(chats(fake_ollama)) == 1
    assert fake.errors() == []


def _buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for row in message.get("components") or [] for c in row["components"]]


async def test_feedback_with_a_reason_is_stored(fake, index, fake_ollama) -> None:  # noqa: F811
    fake_ollama.responder = lambda *a: "The launch is on December 4 [1]."
    asker = make_asker(index, fake_ollama)
    async with running(fake, asker):
        start = len(fake.calls)
        asked = await fake.ask(Q1)
        final = await fake.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds)
        assert final.json["embeds"][-1]["title"] == SOURCES_TITLE
        message = asked.original
        assert message is not None
        buttons = _buttons(message)
        assert [b["emoji"]["name"] for b in buttons] == ["👍", "👎"]
        query_id = int(buttons[0]["custom_id"].rsplit(":", 1)[1])
        log = asker.querylog
        assert log is not None and log.get(query_id)["question"] == Q1
        # Who asked and what they were answered, for `vaultbot stats`.
        assert log.get(query_id)["user"] == str(fake.owner["id"])
        assert log.get(query_id)["answer"] == "The launch is on December 4 [1]."

        up = await fake.click(message, buttons[0]["custom_id"])
        said = await fake.wait_call("POST", CALLBACK, after=start,
                                    where=lambda c: up.token in c.path)
        assert said.json["data"] == {"content": THANKS, "flags": EPHEMERAL} or (
            said.json["data"]["content"] == THANKS and said.json["data"]["flags"] == EPHEMERAL)
        assert log.get(query_id)["feedback"] == 1

        down = await fake.click(message, buttons[1]["custom_id"])
        asking = await fake.wait_call("POST", CALLBACK, after=start,
                                      where=lambda c: down.token in c.path)
        assert asking.json["data"]["content"] == ASK_WHY
        assert asking.json["data"]["flags"] == EPHEMERAL
        assert log.get(query_id)["feedback"] == -1  # stored at once; the reason is optional
        assert down.original is not None
        (select,) = _buttons(down.original)
        assert select["type"] == 3 and [o["value"] for o in select["options"]] == list(REASONS)

        why = await fake.click(down.original, select["custom_id"], values=["outdated"])
        done = await fake.wait_call("POST", CALLBACK, after=start,
                                    where=lambda c: why.token in c.path)
        assert done.json["type"] == 7 and done.json["data"]["components"] == []
        row = log.get(query_id)
        assert row["feedback"] == -1 and row["feedback_note"] == REASONS["outdated"]
    assert fake.errors() == []
