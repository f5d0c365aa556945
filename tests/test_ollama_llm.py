"""OllamaGenerator and model routing, against the fake Ollama server over real HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest
from fakes.ollama_server import FakeOllama, fake_ollama, unused_url

from engine.llm import (
    Generator,
    LLMError,
    LLMTimeout,
    LLMUnavailable,
    Message,
    ModelMissing,
    OllamaGenerator,
    choose_model,
    routing_reason,
)

__all__ = ["fake_ollama"]  # the fixture, imported for pytest

FAST = "qwen2.5:7b-instruct"
DEEP = "qwen2.5:32b-instruct"
ASK = [Message("system", "Answer from the notes."), Message("user", "What is in my notes?")]


async def collect(
    gen: OllamaGenerator, messages: list[Message] = ASK, **kwargs: object
) -> list[str]:
    return [piece async for piece in gen.stream(messages, **kwargs)]  # type: ignore[arg-type]


async def test_pieces_concatenate_to_the_scripted_answer(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = lambda model, messages, options: [
        "Your ",
        "notes ",
        "say ",
        "hi",
        " [1].",
    ]
    gen = OllamaGenerator(fake_ollama.url)
    assert isinstance(gen, Generator)
    pieces = await collect(gen)
    assert pieces == ["Your ", "notes ", "say ", "hi", " [1]."]

    stats = gen.last_stats
    assert stats is not None and stats.model == FAST and stats.done_reason == "stop"
    assert stats.eval_count == 5 and stats.prompt_eval_count
    assert stats.total_duration and stats.eval_duration and stats.load_duration is not None
    assert stats.first_token_seconds is not None and stats.wall_seconds >= stats.first_token_seconds
    assert stats.as_dict()["tokens_per_second"] > 0


async def test_request_carries_options_and_keep_alive(fake_ollama: FakeOllama) -> None:
    gen = OllamaGenerator(fake_ollama.url)
    await gen.complete(ASK)
    body = fake_ollama.last("/api/chat").json
    assert body["model"] == FAST and body["stream"] is True
    assert body["messages"] == [
        {"role": "system", "content": "Answer from the notes."},
        {"role": "user", "content": "What is in my notes?"},
    ]
    assert body["options"] == {
        "num_ctx": 16384,
        "num_thread": 8,
        "use_mlock": True,
        "num_gpu": 999,
        "temperature": 0.2,
    }
    assert body["keep_alive"] == "30m"

    custom = OllamaGenerator(
        fake_ollama.url, num_ctx=8192, num_thread=4, use_mlock=False, keep_alive=-1
    )
    await custom.complete(ASK)
    body = fake_ollama.last("/api/chat").json
    assert body["options"]["num_ctx"] == 8192 and body["options"]["num_thread"] == 4
    assert body["options"]["use_mlock"] is False and body["keep_alive"] == -1


async def test_deep_routing_reaches_the_deep_model(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = lambda model, messages, options: f"from {model}"
    gen = OllamaGenerator(fake_ollama.url)
    assert gen.choose_model("what is my wifi password", deep=False) == FAST
    model = gen.choose_model("what is my wifi password", deep=True)
    assert model == DEEP
    assert await gen.complete(ASK, model=model) == f"from {DEEP}"
    assert fake_ollama.last("/api/chat").json["model"] == DEEP
    assert gen.last_stats is not None and gen.last_stats.model == DEEP


async def test_missing_model(fake_ollama: FakeOllama) -> None:
    gen = OllamaGenerator(fake_ollama.url, fast_model="llama9:70b")
    with pytest.raises(ModelMissing) as info:
        await collect(gen)
    assert "`ollama pull llama9:70b`" in info.value.user_message
    assert info.value.model == "llama9:70b"


async def test_server_down() -> None:
    url = unused_url()
    gen = OllamaGenerator(url)
    with pytest.raises(LLMUnavailable) as info:
        await collect(gen)
    assert (
        info.value.user_message == f"Ollama is not reachable at {url}: start it with `ollama serve`"
    )
    with pytest.raises(LLMUnavailable):
        await gen.list_models()
    health = await gen.health()
    assert health["reachable"] is False and "ollama serve" in health["error"]


async def test_stall_hits_the_idle_timeout(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = lambda model, messages, options: ["one", " two", " three"]
    fake_ollama.stall_after = 2
    gen = OllamaGenerator(fake_ollama.url, idle_timeout=0.3)
    got: list[str] = []
    started = time.monotonic()

    async def consume() -> None:
        async for piece in gen.stream(ASK):
            got.append(piece)

    with pytest.raises(LLMTimeout) as info:
        await asyncio.wait_for(consume(), 5)  # a guard: without the idle timeout this would hang
    assert got == ["one", " two"]
    assert 0.3 <= time.monotonic() - started < 2.0
    assert info.value.stalled and "stopped answering for 0.3 s" in info.value.user_message
    record = fake_ollama.last("/api/chat")
    assert await asyncio.to_thread(record.finished.wait, 2.0)
    assert record.client_disconnected  # the generator hung up instead of leaking the stream


async def test_slow_first_token_hits_the_first_token_timeout(fake_ollama: FakeOllama) -> None:
    fake_ollama.header_delay = 3.0
    gen = OllamaGenerator(fake_ollama.url, first_token_timeout=0.3, idle_timeout=10)
    started = time.monotonic()
    with pytest.raises(LLMTimeout) as info:
        await asyncio.wait_for(collect(gen), 5)
    assert time.monotonic() - started < 2.0
    assert not info.value.stalled
    assert info.value.user_message.startswith(f"{FAST} did not answer within 0.3 s")


async def test_first_token_timeout_allows_a_slow_load(fake_ollama: FakeOllama) -> None:
    fake_ollama.header_delay = 0.4
    fake_ollama.responder = lambda model, messages, options: ["ok"]
    gen = OllamaGenerator(fake_ollama.url, first_token_timeout=2.0, idle_timeout=0.2)
    assert await gen.complete(ASK) == "ok"  # the idle timeout does not apply before the first token


async def test_mid_stream_error(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = lambda model, messages, options: ["a", "b", "c"]
    fake_ollama.error_after = 1
    fake_ollama.error_message = "llama runner process has terminated"
    gen = OllamaGenerator(fake_ollama.url)
    got: list[str] = []
    with pytest.raises(LLMError) as info:
        async for piece in gen.stream(ASK):
            got.append(piece)
    assert got == ["a"]
    assert type(info.value) is LLMError
    assert "llama runner process has terminated" in info.value.user_message


async def test_http_error_before_the_stream(fake_ollama: FakeOllama) -> None:
    fake_ollama.http_error = (500, "out of memory")
    with pytest.raises(LLMError, match=r"HTTP 500.*out of memory") as info:
        await collect(OllamaGenerator(fake_ollama.url))
    assert type(info.value) is LLMError


async def test_list_models_and_health(fake_ollama: FakeOllama) -> None:
    gen = OllamaGenerator(fake_ollama.url, deep_model="qwen2.5:72b-instruct")
    models = await gen.list_models()
    assert FAST in models and "nomic-embed-text:latest" in models
    health = await gen.health()
    assert health["reachable"] is True and health["models"] == models
    assert health["missing"] == ["qwen2.5:72b-instruct"]
    assert "ollama pull qwen2.5:72b-instruct" in health["error"]

    fake_ollama.add_model("qwen2.5:72b-instruct")
    health = await gen.health()
    assert health["missing"] == [] and health["error"] is None


# ---- routing


def route(question: str, **kwargs: object) -> str:
    return choose_model(question, fast_model=FAST, deep_model=DEEP, **{"deep": False, **kwargs})  # type: ignore[arg-type]


def test_routing_fast_for_simple_questions() -> None:
    assert route("what is my wifi password") == FAST
    assert route("회의 일정이 언제야?") == FAST
    assert route("list the tags on my recipe notes") == FAST


def test_routing_deep_when_asked() -> None:
    assert route("what is my wifi password", deep=True) == DEEP
    assert routing_reason("anything", deep=True) == "asked for the deep model"


def test_routing_deep_for_long_questions() -> None:
    assert route(" ".join(["word"] * 61)) == DEEP
    assert route(" ".join(["word"] * 60)) == FAST
    assert route("가" * 200) == DEEP  # long without spaces: by token estimate


@pytest.mark.parametrize(
    "question",
    [
        "compare the two onboarding plans",
        "Summarize my notes from the offsite",
        "why did the migration fail",
        "what are the pros and cons of option B",
        "두 계획을 비교해줘",
        "지난주 회의록을 요약해줘",
        "배포가 왜 실패했어?",
        "A와 B의 차이가 뭐야",
        "what changed in March? and who approved it?",
    ],
)
def test_routing_deep_for_synthesis_cues(question: str) -> None:
    assert route(question) == DEEP


def test_routing_deep_for_large_context() -> None:
    assert route("what is in the budget note", context_tokens=8000) == DEEP
    assert route("what is in the budget note", context_tokens=2000) == FAST
