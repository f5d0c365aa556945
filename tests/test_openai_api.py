"""`/v1` (OpenAI-compatible) driven by the official `openai` client against a real uvicorn on
loopback, with a fake Ollama that echoes what it was given (so the prompt is visible)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest
from corpus import copy_vault
from fakes.ollama_server import FakeOllama
from helpers import Server, build, close_index

from bot.access import Access
from engine.answer import Asker
from engine.embedders.hashing import HashingEmbedder
from engine.llm.ollama import OllamaGenerator
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from vaultbot.api import create_app

TOKEN = "openai-test-token"
SECRET = "zanzibarquokka"
FAST, DEEP = "qwen2.5:7b-instruct", "qwen2.5:32b-instruct"


def echo(model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> str:
    """The prompt back, with one citation: whatever reached the model shows in the answer."""
    return "The launch is on December 4 [1]. PROMPT: " + " | ".join(
        str(m.get("content", "")) for m in messages)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    tmp = tmp_path_factory.mktemp("openai")
    vault = copy_vault("example", tmp)
    (vault / "Diary.md").write_text(
        f"---\nprivate: true\n---\n# Diary\n\nThe launch worries me; {SECRET} knows why.\n")
    index, indexer = build(vault, tmp / "data", HashingEmbedder(dim=64))
    indexer.sync()
    with FakeOllama(responder=echo) as ollama:
        retriever = Retriever(index)
        asker = Asker(retriever, OllamaGenerator(ollama.url), querylog=QueryLog(index.registry),
                      vault_name="vault", fast_model=FAST, deep_model=DEEP)

        def make(access: dict[str, Any] | None = None) -> Server:
            rules = Access.from_dict(access or {})
            return Server(create_app(asker=asker, retriever=retriever, index=index,
                                     querylog=asker.querylog, token=TOKEN,  # type: ignore[arg-type]
                                     base_scope=rules.base_scope(),
                                     place_scope=rules.place_scope))

        make.ollama = ollama  # type: ignore[attr-defined]
        try:
            yield make
        finally:
            close_index(index)


def client(srv: Server, key: str = TOKEN) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{srv.url}/v1", api_key=key, max_retries=0, timeout=30)


def test_models_and_answers_streamed_or_not(served: Callable[..., Any]) -> None:
    with served() as srv:
        c = client(srv)
        assert {m.id for m in c.models.list()} == {"vaultbot", "vaultbot-deep"}

        done = c.chat.completions.create(
            model="vaultbot", temperature=0.2, max_tokens=300,  # sampling knobs: ignored
            messages=[{"role": "system", "content": "You are helpful."},
                      {"role": "user", "content": "When is the launch?"}])
        assert done.object == "chat.completion" and done.model == "vaultbot"
        text = done.choices[0].message.content or ""
        assert done.choices[0].finish_reason == "stop"
        assert text.startswith("The launch is on December 4 [1].")
        # Citations as Markdown links at the end.
        assert "\n\n**Sources**\n1. [" in text and "](obsidian://open?vault=vault&file=" in text
        assert "You are helpful." not in text  # system messages do not reach the prompt
        assert SECRET not in text

        pieces, finish = [], []
        for chunk in c.chat.completions.create(
                model="vaultbot", stream=True,
                messages=[{"role": "user", "content": "When is the launch?"}]):
            assert chunk.object == "chat.completion.chunk"
            pieces.append(chunk.choices[0].delta.content or "")
            finish.append(chunk.choices[0].finish_reason)
        streamed = "".join(pieces)
        assert len(pieces) > 5 and finish[-1] == "stop" and set(finish[:-1]) == {None}
        assert streamed.startswith("The launch is on December 4 [1].")
        assert "**Sources**" in streamed and SECRET not in streamed


def test_history_reaches_the_model_and_deep_picks_the_deep_model(
        served: Callable[..., Any]) -> None:
    with served() as srv:
        ollama = served.ollama  # type: ignore[attr-defined]
        first = len(ollama.requests)
        c = client(srv)
        reply = c.chat.completions.create(model="vaultbot-deep", messages=[
            {"role": "user", "content": "What is the sourdough hydration?"},
            {"role": "assistant", "content": "It is 75 percent [1].\n\n**Sources**\n1. "
                                             "[Sourdough bread](obsidian://open?vault=vault"
                                             "&file=Recipes%2FSourdough%20bread)"},
            {"role": "user", "content": [{"type": "text", "text": "And the salt?"}]},
        ])
        chats = [r for r in ollama.requests[first:] if r.path == "/api/chat"]
        assert chats and chats[-1].json["model"] == DEEP
        prompt = "\n".join(str(m["content"]) for m in chats[-1].json["messages"])
        assert "What is the sourdough hydration?" in prompt and "It is 75 percent" in prompt
        assert "obsidian://" not in prompt  # the sources list is not history
        assert "And the salt?" in (reply.choices[0].message.content or "")


def test_wrong_token_and_unsupported_parameters_are_openai_errors(
        served: Callable[..., Any]) -> None:
    ask = [{"role": "user", "content": "When is the launch?"}]
    with served() as srv:
        with pytest.raises(openai.AuthenticationError) as err:
            client(srv, "wrong").chat.completions.create(model="vaultbot", messages=ask)
        assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            client(srv, "wrong").models.list()

        c = client(srv)
        for extra, param in (({"n": 2}, "n"),
                             ({"logprobs": True}, "logprobs"),
                             ({"response_format": {"type": "json_object"}}, "response_format"),
                             ({"tools": [{"type": "function", "function": {"name": "f"}}]},
                              "tools")):
            with pytest.raises(openai.BadRequestError) as bad:
                c.chat.completions.create(model="vaultbot", messages=ask, **extra)
            assert bad.value.param == param and bad.value.status_code == 400, extra
        with pytest.raises(openai.NotFoundError) as missing:
            c.chat.completions.create(model="gpt-4o", messages=ask)
        assert missing.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError, match="last message"):
            c.chat.completions.create(model="vaultbot", messages=[
                {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])

        # Not the SDK: a body it would never send is still OpenAI's error shape, no crash.
        for body in ({"model": "vaultbot"}, {"model": "vaultbot", "messages": "hi"}, [1, 2]):
            r = httpx.post(f"{srv.url}/v1/chat/completions", json=body,
                           headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 400, r.text
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        r = httpx.post(f"{srv.url}/v1/chat/completions", content=b"{not json",
                       headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


def test_the_openai_place_of_the_access_file(served: Callable[..., Any]) -> None:
    ask = [{"role": "user", "content": "When is the launch?"}]
    with served({"openai": {"allow": False}}) as srv, \
            pytest.raises(openai.PermissionDeniedError, match="does not let openai"):
        client(srv).chat.completions.create(model="vaultbot", messages=ask)
    with served({"openai": {"folders": ["Recipes"]}}) as srv:
        text = client(srv).chat.completions.create(
            model="vaultbot", messages=ask).choices[0].message.content or ""
        sources = text.split("**Sources**", 1)[1]
        assert "Recipes%2F" in sources and "Projects%2F" not in sources

