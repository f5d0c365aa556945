"""The conversation spine (bot/conversation.py) and what it gives both bots: a Discord answer
is counted in /metrics, and VAULTBOT_MAX_TURNS bounds the history the engine sees on Slack
and on Discord alike. Real Bolt and discord.py clients against the fakes in tests/fakes/, the
real engine on the sample vault, and `vaultbot serve`'s own wiring (`_discord`)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

from fakes.discord_api import FakeDiscord
from fakes.slack_api import FakeSlack
from prometheus_client import generate_latest
from test_discord import ORIGINAL, THREAD, has_embeds
from test_slack import Bot

from bot.conversation import LiveEdit, drain, recent
from engine.answer import Asker, AskOptions, Event
from engine.llm.ollama import OllamaGenerator
from engine.models import Turn
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from vaultbot.app import App
from vaultbot.serve import _discord
from vaultbot.settings import Settings

MAX_TURNS = 2


class RecordingAsker(Asker):
    """The real Asker, noting the history each question arrives with."""

    histories: list[list[Turn]]

    async def stream(self, question: str, options: AskOptions | None = None) -> AsyncIterator[Event]:
        self.histories.append(list(options.history if options is not None else []))
        async for event in super().stream(question, options):
            yield event


def recording_asker(index, fake_ollama) -> RecordingAsker:
    asker = RecordingAsker(Retriever(index), OllamaGenerator(fake_ollama.url, idle_timeout=5),
                           querylog=QueryLog(index.registry), vault_name="vault")
    asker.histories = []
    return asker


# ---------------------------------------------------------------------------- Discord via serve


async def test_discord_answers_counted_in_metrics_and_history_capped(
    tmp_path: Path, index, fake_discord: FakeDiscord, fake_ollama,
) -> None:
    """`serve`'s `_discord` wiring: answers reach the app's Metrics (the text /metrics
    serves), and a thread longer than VAULTBOT_MAX_TURNS gives the engine that many turns."""
    fake_ollama.responder = lambda *a: "The launch is on December 4 [1]."
    settings = Settings(vault=tmp_path, data_dir=tmp_path / "d", ollama_url=fake_ollama.url,
                        discord_bot_token=fake_discord.token, discord_api_url=fake_discord.api_url,
                        discord_gateway_url=fake_discord.gateway_url, max_turns=MAX_TURNS,
                        _env_file=None)
    app = App(settings)
    asker = recording_asker(index, fake_ollama)
    app.__dict__["asker"] = asker  # the sample vault's index, already built (cached_property)
    before = generate_latest(app.metrics.registry).decode()
    assert 'channel="discord"' not in before

    stop = _discord(app, None)  # type: ignore[arg-type]  # the API app is not used by Discord
    assert stop is not None
    try:
        await fake_discord.wait_ready(timeout=30)
        start = len(fake_discord.calls)
        await fake_discord.ask("When is the vaultbot launch?")
        thread = await fake_discord.wait_call("POST", THREAD, after=start, timeout=30)
        thread_id = thread.response["id"]
        for n in range(3):  # three follow-ups: 1, 2, then still 2 earlier turns
            start = len(fake_discord.calls)
            await fake_discord.post(thread_id, f"And follow-up number {n}?")
            await fake_discord.wait_call("PATCH", rf"/channels/{thread_id}/messages/\d+",
                                         after=start, where=has_embeds, timeout=30)
    finally:
        await asyncio.to_thread(stop)

    assert [len(h) for h in asker.histories] == [0, 1, 2, MAX_TURNS]
    # The newest turns, in order: the last question saw follow-ups 0 and 1.
    assert [t.question for t in asker.histories[-1]] == ["And follow-up number 0?",
                                                         "And follow-up number 1?"]
    text = generate_latest(app.metrics.registry).decode()
    counted = re.search(r'^vaultbot_questions_total\{[^}]*channel="discord"[^}]*\} (\S+)$', text, re.M)
    assert counted is not None and float(counted.group(1)) == 4.0, text
    assert fake_discord.errors() == []


async def test_discord_client_counts_through_on_answer(index, fake_discord, fake_ollama) -> None:
    """The client on its own (no serve): `on_answer=Metrics.observe` is all it takes."""
    from test_discord import running

    from vaultbot.metrics import Metrics

    metrics = Metrics()
    fake_ollama.responder = lambda *a: "December 4 [1]."
    async with running(fake_discord, recording_asker(index, fake_ollama),
                       on_answer=metrics.observe) as client:
        assert client.conversation.on_answer is not None
        start = len(fake_discord.calls)
        await fake_discord.ask("When is the vaultbot launch?")
        await fake_discord.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds)
    text = generate_latest(metrics.registry).decode()
    assert re.search(r'vaultbot_questions_total\{[^}]*channel="discord"[^}]*\} 1\.0', text), text


# ---------------------------------------------------------------------------- Slack


def test_slack_history_capped_at_max_turns(index, fake_slack: FakeSlack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: "The launch is on December 4 [1]."
    asker = recording_asker(index, fake_ollama)
    with Bot(index, fake_slack, fake_ollama, asker=asker, max_turns=MAX_TURNS) as b:
        root = b.mention("When is the vaultbot launch?")
        b.settle(1)
        for n in range(3):
            b.message(f"And follow-up number {n}?", thread_ts=root)
            b.settle(2 + n)
        assert len(b.answers("C1", root)) == 4
    assert [len(h) for h in asker.histories] == [0, 1, 2, MAX_TURNS]
    assert [t.question for t in asker.histories[-1]] == ["And follow-up number 0?",
                                                         "And follow-up number 1?"]


# ---------------------------------------------------------------------------- the spine's parts


def test_recent_keeps_the_newest_turns() -> None:
    turns = [Turn(f"q{i}", f"a{i}") for i in range(5)]
    assert recent(turns, 2) == turns[-2:]
    assert recent(turns, 10) == turns
    assert recent(turns, 0) == []


async def test_live_edit_throttles_and_shows_the_latest_text() -> None:
    shown: list[tuple[float, str]] = []
    loop = asyncio.get_running_loop()

    async def show(text: str) -> None:
        shown.append((loop.time(), text))

    live = LiveEdit(show, 0.2, first_after=0.1)
    t0 = loop.time()
    text = ""
    for i in range(12):
        text += f"w{i} "
        live.update(text)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the model pauses: the latest text is shown anyway
    await live.close()
    assert shown and shown[0][0] - t0 >= 0.1  # the first one waits
    times = [t for t, _ in shown]
    assert all(b - a >= 0.19 for a, b in zip(times, times[1:], strict=False)), times
    assert shown[-1][1] == text and len(shown) < 12


async def test_drain_waits_then_cancels() -> None:
    quick = asyncio.create_task(asyncio.sleep(0.05))
    stuck = asyncio.create_task(asyncio.sleep(60))
    await drain({quick, stuck}, timeout=0.3)
    assert quick.done() and not quick.cancelled()
    assert stuck.cancelled()
