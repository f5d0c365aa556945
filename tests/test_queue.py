"""The generation queue against the real pipeline and the fake Ollama over HTTP: a cap per
model, identical questions merged into one generation, queue positions told to the waiting."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path

import pytest
from corpus import copy_vault
from helpers import build

from engine.answer import Asker, AskOptions, Done, Failed, Queued, Token
from engine.llm.ollama import OllamaGenerator
from engine.llm.queue import GenerationQueue, parse_limits
from engine.querylog import QueryLog
from engine.retrieve import Retriever

FAST, DEEP = "qwen2.5:7b-instruct", "qwen2.5:32b-instruct"
QUESTIONS = ["When is the vaultbot launch?", "How long does the bread bake?",
             "What did the meeting decide?"]


def _respond(model, messages, options) -> str:
    question = re.search(r"Question: (.*)", messages[-1]["content"]).group(1)
    return f"About {question} the notes say a great deal, see [1]."


@pytest.fixture
def index(tmp_path: Path, usem3):
    index, indexer = build(copy_vault("example", tmp_path), tmp_path / "data", usem3)
    indexer.sync()
    return index


def _asker(index, fake, queue: GenerationQueue | None) -> Asker:
    fake.responder = _respond
    return Asker(Retriever(index), OllamaGenerator(fake.url), querylog=QueryLog(index.registry),
                 queue=queue)


async def _until(check, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.01)


async def _events(asker: Asker, question: str, opts: AskOptions | None = None) -> list:
    return [e async for e in asker.stream(question, opts or AskOptions(use_cache=False))]


def _peak_overlap(fake) -> int:
    spans = [(r.started, r.sent[-1][0]) for r in fake.requests_to("/api/chat")]
    return max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)


def test_limits_setting() -> None:
    assert parse_limits("", fast_model=FAST, deep_model=DEEP) == {FAST: 2, DEEP: 1}
    assert parse_limits("deep=3", fast_model=FAST, deep_model=DEEP) == {FAST: 2, DEEP: 3}
    assert parse_limits("4", fast_model=FAST, deep_model=DEEP) == {FAST: 4, DEEP: 4}
    assert parse_limits("fast=3,deep=1", fast_model=FAST, deep_model=FAST) == {FAST: 1}
    for bad in ("fast", "fast=0", "slow=2", "fast=two"):
        with pytest.raises(ValueError):
            parse_limits(bad, fast_model=FAST, deep_model=DEEP)


async def test_ten_asks_three_questions_share_and_respect_the_cap(index, fake_ollama) -> None:
    fake_ollama.token_delay = 0.02
    queue = GenerationQueue({FAST: 2, DEEP: 1})
    asker = _asker(index, fake_ollama, queue)
    asked = [QUESTIONS[i % 3] for i in range(10)]
    # Held until all ten are in line: retrieval on a busy machine can otherwise spread the
    # arrivals beyond a generation's length, and only questions in flight are merged.
    fake_ollama.pause_after = 1
    tasks = [asyncio.create_task(_events(asker, q)) for q in asked]
    await _until(lambda: sum(len(g.listeners) for g in queue._shared.values()) >= 10)
    fake_ollama.resume()
    results = await asyncio.gather(*tasks)

    chats = fake_ollama.requests_to("/api/chat")
    assert len(chats) == 3 == queue.started  # one generation per distinct question
    assert {r.json["model"] for r in chats} == {FAST}
    assert _peak_overlap(fake_ollama) == 2 == queue.peak[FAST]  # capped, and the cap used
    answers: dict[str, set[str]] = {}
    for question, events in zip(asked, results, strict=True):
        done = events[-1]
        assert isinstance(done, Done) and done.answer.mode == "llm" and not done.answer.error
        assert done.answer.text == f"About {question} the notes say a great deal, see [1]."
        assert "".join(e.text for e in events if isinstance(e, Token)).strip() == done.answer.text
        answers.setdefault(question, set()).add(done.answer.text)
    assert all(len(texts) == 1 for texts in answers.values())
    # The third distinct question waited behind the two running ones, and was told so.
    positions = [[e.position for e in ev if isinstance(e, Queued)] for ev in results]
    waited = {q for q, p in zip(asked, positions, strict=True) if p}
    assert len(waited) == 1  # every asker of that question, the one that started it too
    assert [p[0] for q, p in zip(asked, positions, strict=True) if q in waited] == [2] * asked.count(
        *waited)
    assert queue.running(FAST) == 0 and not queue._waiting[FAST] and not queue._shared


async def test_a_late_identical_question_gets_the_pieces_already_streamed(
    index, fake_ollama,
) -> None:
    queue = GenerationQueue({FAST: 2})
    asker = _asker(index, fake_ollama, queue)
    fake_ollama.pause_after = 3
    first = asyncio.create_task(_events(asker, QUESTIONS[0]))
    while not (fake_ollama.requests_to("/api/chat")
               and len(fake_ollama.requests_to("/api/chat")[0].sent) >= 3):
        await asyncio.sleep(0.01)
    second = asyncio.create_task(_events(asker, QUESTIONS[0]))
    await _until(lambda: any(len(g.listeners) == 2 for g in queue._shared.values()))
    fake_ollama.resume()
    a, b = await asyncio.gather(first, second)
    assert len(fake_ollama.requests_to("/api/chat")) == 1
    assert a[-1].answer.text == b[-1].answer.text != ""
    assert [e.text for e in a if isinstance(e, Token)] == [e.text for e in b if isinstance(e, Token)]


async def test_a_shared_failure_reaches_every_waiter(index, fake_ollama) -> None:
    queue = GenerationQueue({FAST: 1})
    asker = _asker(index, fake_ollama, queue)
    fake_ollama.error_after, fake_ollama.pause_after = 2, 1
    tasks = [asyncio.create_task(_events(asker, QUESTIONS[0])) for _ in range(3)]
    await _until(lambda: any(len(g.listeners) == 3 for g in queue._shared.values()))
    fake_ollama.resume()
    results = await asyncio.gather(*tasks)
    assert len(fake_ollama.requests_to("/api/chat")) == 1
    for events in results:
        assert isinstance(events[-2], Failed) and events[-1].answer.text == "About When"
    assert queue.running(FAST) == 0


async def test_a_cancelled_waiter_gives_back_its_place(index, fake_ollama) -> None:
    queue = GenerationQueue({FAST: 1})
    asker = _asker(index, fake_ollama, queue)
    fake_ollama.pause_after = 1
    running = asyncio.create_task(_events(asker, QUESTIONS[0]))
    while not fake_ollama.requests_to("/api/chat"):
        await asyncio.sleep(0.01)
    waiting = asyncio.create_task(_events(asker, QUESTIONS[1]))
    while not queue._waiting.get(FAST):
        await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    fake_ollama.resume()
    await running
    late = await asyncio.wait_for(_events(asker, QUESTIONS[2]), 30)
    assert late[-1].answer.text.startswith("About What")
    assert [r.json["messages"][-1]["content"].count(QUESTIONS[1])
            for r in fake_ollama.requests_to("/api/chat")] == [0, 0]  # never sent to Ollama
    assert queue.running(FAST) == 0 and not queue._waiting[FAST]


def test_the_cap_holds_across_event_loops(index, fake_ollama) -> None:
    """`serve` runs the API, Slack and Discord on loops of their own: one cap for all."""
    fake_ollama.token_delay = 0.02
    queue = GenerationQueue({FAST: 1})
    asker = _asker(index, fake_ollama, queue)
    results: list[list] = []

    def ask(question: str) -> None:
        results.append(asyncio.run(_events(asker, question)))

    threads = [threading.Thread(target=ask, args=(q,)) for q in [*QUESTIONS, QUESTIONS[0]]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 4 and all(r[-1].answer.text.startswith("About") for r in results)
    assert _peak_overlap(fake_ollama) == 1 == queue.peak[FAST]
    assert 3 <= len(fake_ollama.requests_to("/api/chat")) <= 4  # merged when still in flight


def test_api_tells_a_waiting_caller_its_place(index, fake_ollama) -> None:
    import json
    import time

    import httpx
    from helpers import Server

    from vaultbot.api import create_app

    queue = GenerationQueue({FAST: 1})
    asker = _asker(index, fake_ollama, queue)
    app = create_app(asker=asker, retriever=asker.retriever, index=index, querylog=asker.querylog)
    fake_ollama.pause_after = 1
    got: dict[str, list] = {}

    def ask(question: str) -> None:
        events, name = [], None
        with httpx.Client(base_url=srv.url, timeout=30) as client, client.stream(
                "POST", "/ask", json={"question": question, "use_cache": False}) as r:
            for line in r.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))
        got[question] = events

    with Server(app) as srv:
        first = threading.Thread(target=ask, args=(QUESTIONS[0],))
        first.start()
        while not fake_ollama.requests_to("/api/chat"):
            time.sleep(0.01)
        second = threading.Thread(target=ask, args=(QUESTIONS[1],))
        second.start()
        while not queue._waiting.get(FAST):
            time.sleep(0.01)
        time.sleep(0.1)  # the queued event is on its way to the client
        fake_ollama.resume()
        first.join(30)
        second.join(30)
    names = [n for n, _ in got[QUESTIONS[1]]]
    assert names[:2] == ["sources", "queued"] and names[-1] == "done" and "token" in names
    assert got[QUESTIONS[1]][1][1] == {"position": 1}
    assert "queued" not in [n for n, _ in got[QUESTIONS[0]]]
    assert got[QUESTIONS[1]][-1][1]["answer"].startswith("About How long")


async def test_follow_ups_in_a_thread_never_share(index, fake_ollama) -> None:
    from engine.prompt import Turn

    queue = GenerationQueue({FAST: 2})
    asker = _asker(index, fake_ollama, queue)
    fake_ollama.pause_after = 1
    opts = AskOptions(use_cache=False, history=[Turn("When is the launch?", "December 4 [1].")])
    tasks = [asyncio.create_task(_events(asker, "And who leads it?", opts)) for _ in range(2)]
    await _until(lambda: len(fake_ollama.requests_to("/api/chat")) == 2)
    fake_ollama.resume()
    for events in await asyncio.gather(*tasks):
        assert isinstance(events[-1], Done) and events[-1].answer.text.startswith("About")
