"""The answer pipeline against the real index and a fake Ollama over HTTP: streaming, routing,
citation verification, the answer cache and its invalidation, extractive fallback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from corpus import copy_vault
from helpers import build

from engine.answer import Asker, AskOptions, Done, Failed, Sources, Token
from engine.answer_cache import AnswerCache
from engine.llm.ollama import OllamaGenerator
from engine.models import Scope
from engine.prompt import Turn
from engine.querylog import QueryLog
from engine.retrieve import Retriever


@pytest.fixture
def world(tmp_path: Path, usem3):
    vault = copy_vault("example", tmp_path)
    index, indexer = build(vault, tmp_path / "data", usem3)
    cache = AnswerCache(index.registry)
    indexer.on_change.append(cache.invalidate_paths)
    indexer.sync()
    return vault, index, indexer, cache


def _asker(index, generator, cache=None, **kw) -> Asker:
    return Asker(Retriever(index), generator, cache=cache, querylog=QueryLog(index.registry),
                 vault_name="vault", **kw)


def _cite_first(model, messages, options):
    """A model that cites source 1, and invents sources 7 and 9."""
    return f"[{model}] The launch is on December 4 [1]. Budget is tight [7][9]."


async def _collect(asker: Asker, question: str, opts: AskOptions | None = None):
    events = [e async for e in asker.stream(question, opts)]
    return events, events[-1].answer


async def test_streams_tokens_and_drops_invented_citations(world, fake_ollama) -> None:
    _, index, _, _ = world
    fake_ollama.responder = _cite_first
    gen = OllamaGenerator(fake_ollama.url)
    events, answer = await _collect(_asker(index, gen), "When is the vaultbot launch?")
    assert isinstance(events[0], Sources) and len(events[0].citations) >= 3
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert len(tokens) > 3  # streamed in pieces, not one blob
    assert "".join(tokens).strip() == answer.text
    assert "[7]" not in answer.text and "[9]" not in answer.text and "[1]" in answer.text
    assert answer.invalid_citations == 2
    assert [c.n for c in answer.citations] == [1]
    assert answer.citations[0].uri.startswith("obsidian://open?vault=vault&file=")
    assert answer.mode == "llm" and answer.model == "qwen2.5:7b-instruct"
    assert not answer.unsupported
    assert {"embed", "retrieve", "first_token", "total"} <= set(answer.timings)
    # What the model saw: numbered excerpts and the rules.
    chat = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1].json
    assert chat["options"]["num_ctx"] == 16384 and chat["options"]["num_thread"] == 8
    prompt = chat["messages"][-1]["content"]
    assert "[1] " in prompt and "Question: When is the vaultbot launch?" in prompt
    assert "cite" in chat["messages"][0]["content"].lower()


async def test_answer_without_valid_citation_is_unsupported(world, fake_ollama) -> None:
    _, index, _, _ = world
    fake_ollama.responder = lambda *a: "It is probably in December [12]."
    answer = await _asker(index, OllamaGenerator(fake_ollama.url)).ask("When is the launch?")
    assert answer.unsupported and answer.citations == [] and answer.invalid_citations == 1


async def test_deep_routing(world, fake_ollama) -> None:
    _, index, _, _ = world
    fake_ollama.responder = _cite_first
    asker = _asker(index, OllamaGenerator(fake_ollama.url))
    deep = await asker.ask("When is the launch?", AskOptions(deep=True))
    assert deep.model == "qwen2.5:32b-instruct"
    long_q = await asker.ask("Compare the launch timeline with the budget plan and the risks")
    assert long_q.model == "qwen2.5:32b-instruct"
    quick = await asker.ask("When is the launch?")
    assert quick.model == "qwen2.5:7b-instruct"


async def test_cache_hit_then_invalidated_by_note_change(world, fake_ollama) -> None:
    vault, index, indexer, cache = world
    calls = []

    def answer(model, messages, options):
        calls.append(1)
        return "The launch is on December 4 [1]."

    fake_ollama.responder = answer
    asker = _asker(index, OllamaGenerator(fake_ollama.url), cache=cache)
    first = await asker.ask("When is the vaultbot launch?")
    assert first.cached is False and len(calls) == 1
    second = await asker.ask("when is the vaultbot launch")  # same question, other spelling
    assert second.cached == "answer" and len(calls) == 1
    assert second.text == first.text and [c.path for c in second.citations] == [c.path for c in first.citations]
    # A different scope never shares the entry.
    scoped = await asker.ask("When is the vaultbot launch?", AskOptions(scope=Scope(folders=("Meetings",))))
    assert scoped.cached is False
    before = len(calls)

    # Change a note the answer drew on, sync: the next ask is not served from the cache.
    cited = first.citations[0].path
    note = vault / cited
    note.write_text(note.read_text() + "\n\nUpdate: the launch moved to December 11.\n")
    indexer.sync()
    third = await asker.ask("When is the vaultbot launch?")
    assert third.cached is False and len(calls) == before + 1


async def test_cache_checks_stamps_even_without_eager_invalidation(world, fake_ollama, tmp_path) -> None:
    """Another process synced the change (no on_change callback here): still no stale answer."""
    vault, index, _, cache = world
    fake_ollama.responder = lambda *a: "The launch is on December 4 [1]."
    asker = _asker(index, OllamaGenerator(fake_ollama.url), cache=cache)
    first = await asker.ask("When is the vaultbot launch?")
    from sync.indexer import Indexer

    other = Indexer(index, vault)  # no listener: like a `vaultbot sync` in another process
    for c in first.sources:
        p = vault / c.path
        p.write_text(p.read_text() + "\n\nEdited elsewhere.\n")
    other.sync()
    again = await asker.ask("When is the vaultbot launch?")
    assert again.cached is False


async def test_no_llm_gives_labelled_extractive_answer(world) -> None:
    _, index, _, cache = world
    asker = _asker(index, None, cache=cache)
    answer = await asker.ask("When is the launch date?")
    assert answer.mode == "extractive" and answer.model is None
    assert "December 4" in answer.text
    assert answer.citations and re.search(r"\[\d\]", answer.text)
    again = await asker.ask("When is the launch date?")
    assert again.cached == "answer"


async def test_ollama_down_falls_back_with_the_fix(world) -> None:
    _, index, _, _ = world
    from fakes.ollama_server import unused_url

    asker = _asker(index, OllamaGenerator(unused_url(), connect_timeout=1))
    answer = await asker.ask("When is the launch?")
    assert answer.mode == "extractive"
    assert "ollama serve" in answer.notice


async def test_missing_model_names_the_pull(world, fake_ollama) -> None:
    _, index, _, _ = world
    gen = OllamaGenerator(fake_ollama.url, fast_model="llama9:70b")
    answer = await _asker(index, gen, fast_model="llama9:70b").ask("When is the launch?")
    assert "ollama pull llama9:70b" in answer.notice


async def test_stall_mid_answer_reports_error(world, fake_ollama) -> None:
    _, index, _, _ = world
    fake_ollama.responder = lambda *a: "The launch is on December 4 [1] and more words follow here."
    fake_ollama.stall_after = 3
    gen = OllamaGenerator(fake_ollama.url, idle_timeout=0.5)
    events, answer = await _collect(_asker(index, gen), "When is the launch?")
    assert any(isinstance(e, Failed) for e in events)
    assert answer.error and "stopped answering" in answer.error
    assert answer.text  # what arrived before the stall is kept
    assert isinstance(events[-1], Done)


async def test_follow_up_uses_thread_history(world, fake_ollama) -> None:
    _, index, _, _ = world
    fake_ollama.responder = lambda *a: "It moved because of the Discord review [1]."
    asker = _asker(index, OllamaGenerator(fake_ollama.url))
    history = [Turn("When is the vaultbot launch?", "December 4 [1].")]
    answer = await asker.ask("Why did it move?", AskOptions(history=history))
    chat = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1].json
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert chat["messages"][1]["content"] == "When is the vaultbot launch?"
    assert any("Vaultbot launch" in c.path or "회의" in c.path or "Weekly" in c.path for c in answer.sources)


async def test_private_notes_never_reach_the_model(world, fake_ollama) -> None:
    _, index, _, _ = world
    fake_ollama.responder = lambda *a: "No idea [1]."
    answer = await _asker(index, OllamaGenerator(fake_ollama.url)).ask("salary review meeting date")
    assert all("Salary" not in c.path for c in answer.sources)
    chat = [r for r in fake_ollama.requests if r.path == "/api/chat"][-1].json
    assert "December 10" not in chat["messages"][-1]["content"]
