"""The fake Ollama server speaks Ollama's wire format, checked with the official client and raw
httpx over real sockets."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import ollama
import pytest
from fakes.ollama_server import FakeModel, FakeOllama, fake_embedding, fake_ollama, unused_url

__all__ = ["fake_ollama"]  # the fixture, imported for pytest

CHAT = "qwen2.5:7b-instruct"
DONE_FIELDS = {
    "done_reason",
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
}


def client_for(fake: FakeOllama) -> ollama.Client:
    # verify=False only skips loading a certificate store (~30 ms): these URLs are plain http.
    return ollama.Client(host=fake.url, verify=False)


HTTP = httpx.Client(verify=False)


def test_simple_endpoints(fake_ollama: FakeOllama) -> None:
    root = HTTP.get(fake_ollama.url + "/")
    assert root.status_code == 200 and root.text == "Ollama is running"
    assert HTTP.get(fake_ollama.url + "/api/version").json()["version"]
    assert HTTP.get(fake_ollama.url + "/api/nope").status_code == 404

    client = client_for(fake_ollama)
    listed = client.list()
    names = [m.model for m in listed.models]
    assert CHAT in names and "nomic-embed-text:latest" in names
    raw = HTTP.get(fake_ollama.url + "/api/tags").json()["models"][0]
    assert {"name", "model", "modified_at", "size", "digest", "details"} <= raw.keys()
    assert {"family", "parameter_size", "quantization_level"} <= raw["details"].keys()

    shown = client.show("nomic-embed-text")
    assert shown.capabilities == ["embedding"]
    assert shown.modelinfo is not None and shown.modelinfo["nomic-bert.embedding_length"] == 768

    assert client.ps().models == []
    client.chat(model=CHAT, messages=[{"role": "user", "content": "hi"}], keep_alive="30m")
    loaded = client.ps().models
    assert [m.model for m in loaded] == [CHAT]
    assert loaded[0].expires_at is not None


def test_streaming_chat_arrives_line_by_line() -> None:
    pieces = ["The", " answer", " is", " forty", " two."]
    with FakeOllama(responder=lambda model, messages, options: pieces, token_delay=0.1) as fake:
        client = client_for(fake)
        stream = client.chat(
            model=CHAT,
            messages=[{"role": "user", "content": "?"}],
            stream=True,
            options={"num_ctx": 4096},
        )
        first = next(stream)
        first_seen = time.monotonic()
        lines_sent_by_then = len(fake.last("/api/chat").sent)
        rest = list(stream)

    assert first.message.content == "The" and first.done is False
    assert lines_sent_by_then < len(pieces)  # the client had it before the server finished
    last_piece_sent_at = fake.last("/api/chat").sent[len(pieces) - 1][0]
    assert first_seen < last_piece_sent_at
    assert "".join(c.message.content or "" for c in [first, *rest]) == "".join(pieces)
    final = rest[-1]
    assert final.done is True and final.done_reason == "stop" and final.message.content == ""
    assert final.eval_count == len(pieces)
    assert final.total_duration and final.eval_duration and final.prompt_eval_count
    assert fake.last("/api/chat").json["options"] == {"num_ctx": 4096}


def test_a_piece_arrives_while_the_server_holds_back_the_rest(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = lambda model, messages, options: ["first", " second", " third"]
    fake_ollama.pause_after = 1
    stream = client_for(fake_ollama).chat(
        model=CHAT, messages=[{"role": "user", "content": "?"}], stream=True
    )
    first = next(stream)  # a buffering server would never deliver this: it is paused
    assert first.message.content == "first"
    assert len(fake_ollama.last("/api/chat").sent) == 1
    fake_ollama.resume()
    rest = [chunk.message.content for chunk in stream]
    assert rest == [" second", " third", ""]


def test_stream_wire_format_is_ndjson(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = lambda model, messages, options: "one two"
    body = {
        "model": CHAT,
        "messages": [{"role": "user", "content": "x"}],
    }  # stream defaults to true
    with HTTP.stream("POST", fake_ollama.url + "/api/chat", json=body) as response:
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers["transfer-encoding"] == "chunked"
        lines = [json.loads(line) for line in response.iter_lines() if line]
    assert [line["message"] for line in lines[:-1]] == [
        {"role": "assistant", "content": "one"},
        {"role": "assistant", "content": " two"},
    ]
    assert all(line["done"] is False and line["model"] == CHAT for line in lines[:-1])
    assert lines[-1]["done"] is True and lines[-1].keys() >= DONE_FIELDS
    assert lines[-1]["message"] == {"role": "assistant", "content": ""}
    assert lines[0]["created_at"].endswith("Z")


def test_stream_with_descriptors_past_1024(fake_ollama: FakeOllama) -> None:
    """A long test session holds many descriptors; the fake's client-gone check must still see
    a present client (select() could not watch a descriptor numbered 1024 or more)."""
    import os
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("cannot open 1,100 descriptors here")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200) if hard == resource.RLIM_INFINITY
                                               else min(max(soft, 1200), hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        fake_ollama.responder = lambda *a: "one two three"
        fake_ollama.token_delay = 0.01
        body = {"model": CHAT, "messages": [{"role": "user", "content": "x"}]}
        with httpx.Client(timeout=10) as client, client.stream(
                "POST", fake_ollama.url + "/api/chat", json=body) as response:
            lines = [json.loads(line) for line in response.iter_lines() if line]
        assert "".join(ln["message"]["content"] for ln in lines) == "one two three"
        assert lines[-1]["done"] is True
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_non_streaming_chat_and_generate(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = lambda model, messages, options: f"{len(messages)} messages to {model}"
    client = client_for(fake_ollama)
    reply = client.chat(
        model=CHAT, messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    )
    assert reply.message.content == f"2 messages to {CHAT}" and reply.done
    assert fake_ollama.last("/api/chat").sent[-1][1].keys() >= DONE_FIELDS

    generated = client.generate(model=CHAT, prompt="hello", system="be brief")
    assert generated.response == f"2 messages to {CHAT}" and generated.context
    streamed = list(client.generate(model=CHAT, prompt="hello", stream=True))
    assert "".join(c.response or "" for c in streamed) == f"1 messages to {CHAT}"
    assert streamed[-1].done


def test_unknown_model_errors_use_upstream_wording(fake_ollama: FakeOllama) -> None:
    chat = HTTP.post(
        fake_ollama.url + "/api/chat",
        json={"model": "nope:1b", "messages": [{"role": "user", "content": "x"}]},
    )
    assert chat.status_code == 404 and chat.json() == {"error": "model 'nope:1b' not found"}
    embed = HTTP.post(fake_ollama.url + "/api/embed", json={"model": "nope", "input": "x"})
    assert embed.status_code == 404
    assert embed.json() == {"error": 'model "nope" not found, try pulling it first'}
    show = HTTP.post(fake_ollama.url + "/api/show", json={"model": "nope"})
    assert show.status_code == 404 and show.json() == {"error": "model 'nope' not found"}

    with pytest.raises(ollama.ResponseError) as info:
        list(
            client_for(fake_ollama).chat(
                model="nope", messages=[{"role": "user", "content": "x"}], stream=True
            )
        )
    assert info.value.status_code == 404 and "not found" in info.value.error

    no_chat = HTTP.post(
        fake_ollama.url + "/api/chat", json={"model": "nomic-embed-text", "messages": []}
    )
    assert no_chat.status_code == 400 and no_chat.json() == {
        "error": '"nomic-embed-text" does not support chat'
    }


def test_embed_shapes_and_similarity(fake_ollama: FakeOllama) -> None:
    fake_ollama.add_model(FakeModel("tiny-embed", kind="embed", dim=32))
    client = client_for(fake_ollama)

    one = client.embed(model="nomic-embed-text", input="a single text")
    assert len(one.embeddings) == 1 and len(one.embeddings[0]) == 768
    assert one.model == "nomic-embed-text" and one.prompt_eval_count == 3
    assert one.total_duration is not None and one.load_duration is not None

    texts = ["the cat sat on the mat", "a cat sat on a mat", "quarterly tax filing deadline"]
    many = np.asarray(client.embed(model="mxbai-embed-large", input=texts).embeddings)
    assert many.shape == (3, 1024)
    assert np.allclose(np.linalg.norm(many, axis=1), 1.0)
    assert many[0] @ many[1] > 0.5 > many[0] @ many[2]
    again = np.asarray(client.embed(model="mxbai-embed-large", input=texts[0]).embeddings[0])
    assert np.allclose(again, many[0])
    assert np.allclose(again, fake_embedding(texts[0], 1024, seed="mxbai-embed-large"))

    assert len(client.embed(model="tiny-embed", input=["x", "y"]).embeddings[1]) == 32
    short = client.embed(model="nomic-embed-text", input="x", dimensions=64).embeddings[0]
    assert len(short) == 64 and abs(np.linalg.norm(short) - 1.0) < 1e-6
    assert client.embed(model="nomic-embed-text", input=[]).embeddings == []
    assert fake_ollama.last("/api/embed").json == {"model": "nomic-embed-text", "input": []}


def test_http_error_injection(fake_ollama: FakeOllama) -> None:
    fake_ollama.http_error = (500, "llama runner process has terminated")
    client = client_for(fake_ollama)
    with pytest.raises(ollama.ResponseError) as info:
        client.chat(model=CHAT, messages=[{"role": "user", "content": "x"}])
    assert (
        info.value.status_code == 500 and info.value.error == "llama runner process has terminated"
    )
    assert client.list().models  # management endpoints are unaffected


def test_mid_stream_error_line(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = lambda model, messages, options: ["a", "b", "c"]
    fake_ollama.error_after = 2
    fake_ollama.error_message = "model runner crashed"
    got: list[str] = []
    with pytest.raises(ollama.ResponseError) as info:
        for chunk in client_for(fake_ollama).chat(
            model=CHAT, messages=[{"role": "user", "content": "x"}], stream=True
        ):
            got.append(chunk.message.content or "")
    assert got == ["a", "b"] and info.value.error == "model runner crashed"
    assert fake_ollama.last("/api/chat").sent[-1][1] == {"error": "model runner crashed"}


def test_header_delay_holds_back_the_response() -> None:
    with FakeOllama(header_delay=0.3) as fake:
        started = time.monotonic()
        client_for(fake).chat(model=CHAT, messages=[{"role": "user", "content": "x"}])
        assert time.monotonic() - started >= 0.3


def test_stall_keeps_connection_open_and_client_leaving_is_seen(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = lambda model, messages, options: ["a", "b", "c"]
    fake_ollama.stall_after = 1
    body = {"model": CHAT, "messages": [{"role": "user", "content": "x"}]}
    got = []
    with pytest.raises(httpx.ReadTimeout):  # noqa: SIM117 - the stream must close before the check
        with HTTP.stream(
            "POST", fake_ollama.url + "/api/chat", json=body, timeout=0.25
        ) as response:
            for line in response.iter_lines():
                got.append(json.loads(line)["message"]["content"])
    assert got == ["a"]
    record = fake_ollama.last("/api/chat")
    assert record.finished.wait(2.0)
    assert record.client_disconnected


def test_stop_with_a_stalled_stream_open() -> None:
    fake = FakeOllama(responder=lambda model, messages, options: ["a", "b"]).start()
    fake.stall_after = 1
    outcome: list[object] = []

    def consume() -> None:
        try:
            for chunk in client_for(fake).chat(
                model=CHAT, messages=[{"role": "user", "content": "x"}], stream=True
            ):
                outcome.append(chunk.message.content)
        except Exception as exc:  # the stream is cut when the server stops
            outcome.append(type(exc))

    thread = threading.Thread(target=consume)
    thread.start()
    deadline = time.monotonic() + 2
    while not outcome and time.monotonic() < deadline:
        time.sleep(0.01)
    url = fake.url
    started = time.monotonic()
    fake.stop()
    assert time.monotonic() - started < 1.0
    thread.join(2.0)
    assert not thread.is_alive()
    assert outcome[0] == "a" and outcome[-1] is httpx.RemoteProtocolError
    assert fake.open_connections() == 0
    with pytest.raises(httpx.ConnectError):
        HTTP.get(url)


def test_load_and_unload_requests(fake_ollama: FakeOllama) -> None:
    client = client_for(fake_ollama)
    loaded = client.chat(model=CHAT, messages=[], keep_alive=-1)
    assert loaded.done and loaded.done_reason == "load"
    assert client.ps().models[0].expires_at.year > 2200
    unloaded = client.chat(model=CHAT, messages=[], keep_alive=0)
    assert unloaded.done_reason == "unload" and client.ps().models == []


def test_unused_url_refuses_connections() -> None:
    with pytest.raises(httpx.ConnectError):
        HTTP.get(unused_url())
