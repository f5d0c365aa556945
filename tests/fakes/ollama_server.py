"""A fake Ollama server that speaks Ollama's HTTP API over a real socket.

It is a `ThreadingHTTPServer` on 127.0.0.1 (random free port) in a background thread, so the
official `ollama` client, httpx or curl can talk to it exactly as to `ollama serve`. Streaming
endpoints answer with `Transfer-Encoding: chunked` NDJSON, one line per chunk, flushed as it is
produced, so a client sees each piece as soon as it is sent.

The wire format follows Ollama's `server/routes.go` and `docs/api.md`:

* `GET /` and `HEAD /` -> `Ollama is running` (text/plain)
* `GET /api/version` -> `{"version": ...}`
* `GET /api/tags` -> `{"models": [{"name", "model", "modified_at", "size", "digest", "details"}]}`
* `GET /api/ps` -> the models "loaded" by earlier requests, with `expires_at` from `keep_alive`
* `POST /api/show` -> model details; 404 `model 'x' not found` for an unknown model
* `POST /api/chat` / `POST /api/generate` -> NDJSON stream (default) or one JSON object when
  `"stream": false`; the last object has `done: true`, `done_reason` and the timing counters
* `POST /api/embed` -> `{"model", "embeddings", "total_duration", "load_duration",
  "prompt_eval_count"}`

Upstream error wording (status 404) differs by endpoint and the fake mirrors it: chat, generate
and show answer `model 'x' not found`; embed (and older releases' chat) answer
`model "x" not found, try pulling it first`. Clients should key on the status code.

Scripting (plain attributes, may be changed while the server runs):

* `responder(model, messages, options) -> str | list[str]`: the answer; a list is streamed piece
  by piece, a string is split into word pieces that concatenate back to it exactly.
* `token_delay`: seconds before each streamed piece.
* `header_delay`: seconds before the status line and headers (a model load).
* `first_token_delay`: seconds between the headers and the first streamed piece of a chat or
  generate stream (prompt processing: 10-30 s for a 32B model on a Mac); embeddings not.
* `stall_after`: send this many pieces, then hang with the connection open until the client
  goes away or the server stops (`/api/embed` hangs before answering whatever the number).
* `pause_after`: send this many pieces, then wait (connection open) until `resume()` is
  called; lets a test see a piece arrive while the server provably holds back the rest.
* `http_error = (status, message)`: answer inference requests (`http_error_paths`) with that
  status and `{"error": message}`.
* `error_after` / `error_message`: after that many pieces, emit a `{"error": ...}` line and end
  the stream (Ollama's way to report a failure once the 200 is already sent).
* `cut_mid_line_after`: send this many pieces, then the first half of the next JSON line, and end
  the chunked stream cleanly (a proxy or runner that cut the answer mid-line).
* `garbage_body`: answer `/api/chat` and `/api/generate` with a 200 whose body is this text
  (`text/html`, not NDJSON), e.g. a captive portal or another service on Ollama's port.

Every request is recorded in `requests` (method, path, parsed JSON body, the objects sent back
with their send times, whether the client disconnected).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import select
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

FAKE_VERSION = "0.12.6"

Responder = Callable[[str, list[dict[str, Any]], dict[str, Any]], "str | list[str]"]

INFERENCE_PATHS = frozenset({"/api/chat", "/api/generate", "/api/embed"})

_FOREVER = datetime(2318, 1, 1, tzinfo=UTC)
_DEFAULT_KEEP_ALIVE = timedelta(minutes=5)


# --------------------------------------------------------------------------- models


@dataclass
class FakeModel:
    """A model the fake server "has pulled". Chat models can embed too, as in Ollama."""

    name: str
    kind: str = "chat"  # "chat" (completion) or "embed" (embedding only)
    dim: int = 768  # embedding length
    family: str | None = None
    parameter_size: str | None = None
    quantization_level: str = "Q4_K_M"
    context_length: int = 32768
    size: int = 4_683_087_332

    @property
    def full_name(self) -> str:
        return _with_tag(self.name)

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.full_name.encode()).hexdigest()

    @property
    def capabilities(self) -> list[str]:
        return ["embedding"] if self.kind == "embed" else ["completion"]

    def details(self) -> dict[str, Any]:
        family = self.family or _base_name(self.name).split("-")[0].split(".")[0] or "llama"
        return {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": self.parameter_size or ("137M" if self.kind == "embed" else "7.6B"),
            "quantization_level": "F16" if self.kind == "embed" else self.quantization_level,
        }


def _with_tag(name: str) -> str:
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def _canonical(name: str) -> str:
    return _with_tag(name.strip()).lower()


def _base_name(name: str) -> str:
    return name.rsplit("/", 1)[-1].split(":", 1)[0]


DEFAULT_MODELS: tuple[FakeModel, ...] = (
    FakeModel("qwen2.5:7b-instruct", family="qwen2", parameter_size="7.6B"),
    FakeModel("qwen2.5:32b-instruct", family="qwen2", parameter_size="32.8B", size=19_851_349_856),
    FakeModel("nomic-embed-text", kind="embed", dim=768, family="nomic-bert", size=274_302_450),
    FakeModel("mxbai-embed-large", kind="embed", dim=1024, family="bert", size=669_615_493),
    FakeModel("bge-m3", kind="embed", dim=1024, family="bert", size=1_157_672_605),
)


# --------------------------------------------------------------------------- embeddings


def fake_embedding(text: str, dim: int, *, seed: str = "") -> np.ndarray:
    """A deterministic, L2-normalised vector for `text`: a signed hashed bag of character
    3-grams and words projected to `dim` slots. Texts sharing words get similar vectors."""
    vec = np.zeros(dim, dtype=np.float64)
    clean = " ".join(text.lower().split())
    padded = f" {clean} "
    features = [padded[i : i + 3] for i in range(len(padded) - 2)]
    features += [f"w:{w}" for w in clean.split()] * 2
    if not features:
        features = ["<empty>"]
    for feature in features:
        digest = hashlib.blake2b(f"{seed}\x00{feature}".encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dim
        vec[index] += 1.0 if digest[4] & 1 else -1.0
    norm = float(np.linalg.norm(vec))
    if norm == 0.0:
        vec[0] = 1.0
        norm = 1.0
    return vec / norm


def _estimate_tokens(text: str) -> int:
    return max(1, len(re.findall(r"\w+|[^\w\s]", text)))


def split_pieces(text: str) -> list[str]:
    """Word-sized pieces (leading whitespace kept) that concatenate back to `text`."""
    return re.findall(r"\s*\S+|\s+", text)


def default_responder(model: str, messages: list[dict[str, Any]], options: dict[str, Any]) -> str:
    last_user = next(
        (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""
    )
    return f"Echo from {model}: {last_user}"


# --------------------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    method: str
    path: str
    body: Any
    headers: dict[str, str]
    started: float = field(default_factory=time.monotonic)
    status: int | None = None
    sent: list[tuple[float, Any]] = field(default_factory=list)  # (monotonic time, object)
    client_disconnected: bool = False
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def json(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}


class _ClientGone(Exception):
    """The client closed the connection."""


class _ServerStopping(Exception):
    """The fake is shutting down."""


# --------------------------------------------------------------------------- HTTP


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeOllama) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:  # skip HTTPServer's getfqdn(), which can be slow
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    # ---- plumbing

    def setup(self) -> None:
        # Go (so Ollama) sets TCP_NODELAY on every connection; without it Nagle's algorithm and
        # delayed ACKs add ~40 ms to each response on a kept-alive connection.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()
        self.fake = self.server.fake
        self.fake._track(self.connection, threading.current_thread(), add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.fake._track(self.connection, threading.current_thread(), add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def handle_one_request(self) -> None:
        self.record: RecordedRequest | None = None
        try:
            super().handle_one_request()
        except (_ClientGone, ConnectionError):
            if self.record is not None:
                self.record.client_disconnected = True
            self.close_connection = True
        except (_ServerStopping, OSError):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        raw = b""
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            raw = self.rfile.read(length)
        body: Any = None
        bad_json: str | None = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                bad_json = str(exc)
        record = RecordedRequest(
            method, path, body, {k.lower(): v for k, v in self.headers.items()}
        )
        self.record = record
        self.fake.requests.append(record)
        try:
            self._route(method, path, raw, body, bad_json)
        finally:
            record.finished.set()

    def _route(self, method: str, path: str, raw: bytes, body: Any, bad_json: str | None) -> None:
        gets = {
            "/": self._root,
            "/api/version": self._version,
            "/api/tags": self._tags,
            "/api/ps": self._ps,
        }
        posts = {
            "/api/chat": self._chat,
            "/api/generate": self._generate,
            "/api/embed": self._embed,
            "/api/show": self._show,
        }
        if method in ("GET", "HEAD") and path in gets:
            gets[path]()
            return
        if method == "POST" and path in posts:
            if not raw:
                self._send_json(400, {"error": "missing request body"})
                return
            if bad_json is not None or not isinstance(body, dict):
                self._send_json(400, {"error": f"invalid character in request body: {bad_json}"})
                return
            if path in INFERENCE_PATHS:
                injected = self.fake.http_error
                if injected is not None and path in self.fake.http_error_paths:
                    self._send_json(injected[0], {"error": injected[1]})
                    return
            posts[path](body)
            return
        if path in gets or path in posts:
            self._send_text(405, "405 method not allowed")
            return
        self._send_text(404, "404 page not found")

    # ---- low-level writers

    def _send_head(self, status: int, headers: dict[str, str]) -> None:
        self.record.status = status
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.flush()

    def _send_bytes(self, status: int, content_type: str, data: bytes) -> None:
        self._send_head(status, {"Content-Type": content_type, "Content-Length": str(len(data))})
        if self.command != "HEAD":
            self.wfile.write(data)
            self.wfile.flush()

    def _send_json(self, status: int, obj: Any) -> None:
        self.record.sent.append((time.monotonic(), obj))
        self._send_bytes(status, "application/json; charset=utf-8", json.dumps(obj).encode())

    def _send_text(self, status: int, text: str) -> None:
        self.record.sent.append((time.monotonic(), text))
        self._send_bytes(status, "text/plain; charset=utf-8", text.encode())

    def _start_stream(self) -> None:
        self._send_head(
            200, {"Content-Type": "application/x-ndjson", "Transfer-Encoding": "chunked"}
        )

    def _stream_line(self, obj: Any) -> None:
        data = json.dumps(obj).encode() + b"\n"
        # Recorded before writing: a client that already holds the line must find it recorded.
        self.record.sent.append((time.monotonic(), obj))
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _client_gone(self) -> bool:
        # poll, not select: select() cannot watch a descriptor numbered 1024 or more, and a long
        # test session reaches that (it then took every client for gone).
        poller = select.poll()
        try:
            poller.register(self.connection, select.POLLIN)
            if not poller.poll(0):
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _wait(self, seconds: float) -> None:
        """Sleep, but give up as soon as the client leaves or the server stops."""
        deadline = time.monotonic() + seconds
        while True:
            if self.fake._stopping.is_set():
                raise _ServerStopping
            if self._client_gone():
                self.record.client_disconnected = True
                raise _ClientGone
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self.fake._stopping.wait(min(remaining, 0.02))

    def _wait_until(self, event: threading.Event) -> None:
        """Wait for `event`, giving up if the client leaves or the server stops."""
        while not event.is_set():
            self._wait(0.01)

    def _hang(self) -> None:
        """Keep the connection open, sending nothing, until the client leaves or we stop."""
        self._wait(float("inf"))

    # ---- simple endpoints

    def _root(self) -> None:
        self._send_text(200, "Ollama is running")

    def _version(self) -> None:
        self._send_json(200, {"version": FAKE_VERSION})

    def _tags(self) -> None:
        models = []
        for m in self.fake.models.values():
            models.append(
                {
                    "name": m.full_name,
                    "model": m.full_name,
                    "modified_at": "2025-01-15T10:20:30.123456789Z",
                    "size": m.size,
                    "digest": m.digest,
                    "details": m.details(),
                }
            )
        self._send_json(200, {"models": models})

    def _ps(self) -> None:
        now = datetime.now(UTC)
        models = []
        for key, expires in list(self.fake.loaded.items()):
            m = self.fake.models.get(key)
            if m is None or expires <= now:
                self.fake.loaded.pop(key, None)
                continue
            models.append(
                {
                    "name": m.full_name,
                    "model": m.full_name,
                    "size": m.size,
                    "digest": m.digest,
                    "details": m.details(),
                    "expires_at": _timestamp(expires),
                    "size_vram": m.size,
                    "context_length": m.context_length,
                }
            )
        self._send_json(200, {"models": models})

    def _show(self, body: dict[str, Any]) -> None:
        name = body.get("model") or body.get("name") or ""
        if not name:
            self._send_json(400, {"error": "model is required"})
            return
        m = self.fake.find(name)
        if m is None:
            self._send_json(404, {"error": f"model '{name}' not found"})
            return
        family = m.details()["family"]
        info: dict[str, Any] = {
            "general.architecture": family,
            "general.parameter_count": 7_615_616_512 if m.kind == "chat" else 136_727_040,
            f"{family}.context_length": m.context_length,
            f"{family}.embedding_length": m.dim,
        }
        self._send_json(
            200,
            {
                "modelfile": f'# Modelfile generated by "ollama show"\nFROM {m.full_name}\n',
                "parameters": 'stop                           "<|im_end|>"',
                "template": "{{ .Prompt }}",
                "details": m.details(),
                "model_info": info,
                "capabilities": m.capabilities,
                "modified_at": "2025-01-15T10:20:30.123456789Z",
            },
        )

    # ---- inference

    def _lookup_for_inference(self, name: str, endpoint: str) -> FakeModel | None:
        """The model, or None after sending the upstream error for a missing/unsuitable one."""
        if not name:
            if endpoint == "generate":
                self._send_json(404, {"error": "model '' not found"})
            else:
                self._send_json(400, {"error": "model is required"})
            return None
        m = self.fake.find(name)
        if m is None:
            if endpoint == "embed":
                self._send_json(
                    404, {"error": f"model {json.dumps(name)} not found, try pulling it first"}
                )
            else:
                self._send_json(404, {"error": f"model '{name}' not found"})
            return None
        if endpoint in ("chat", "generate") and m.kind == "embed":
            self._send_json(400, {"error": f'"{name}" does not support {endpoint}'})
            return None
        return m

    def _mark_loaded(self, m: FakeModel, keep_alive: Any) -> None:
        duration = _parse_keep_alive(keep_alive)
        key = _canonical(m.name)
        if duration is None:
            self.fake.loaded[key] = _FOREVER
        elif duration <= timedelta(0):
            self.fake.loaded.pop(key, None)
        else:
            self.fake.loaded[key] = datetime.now(UTC) + duration

    def _chat(self, body: dict[str, Any]) -> None:
        name = str(body.get("model") or "")
        m = self._lookup_for_inference(name, "chat")
        if m is None:
            return
        messages = body.get("messages") or []
        self._complete(name, m, messages, body, kind="chat")

    def _generate(self, body: dict[str, Any]) -> None:
        name = str(body.get("model") or "")
        m = self._lookup_for_inference(name, "generate")
        if m is None:
            return
        messages: list[dict[str, Any]] = []
        if body.get("system"):
            messages.append({"role": "system", "content": body["system"]})
        if body.get("prompt"):
            messages.append({"role": "user", "content": body["prompt"]})
        self._complete(name, m, messages, body, kind="generate")

    def _chunk(self, name: str, kind: str, content: str, **extra: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {"model": name, "created_at": _timestamp(datetime.now(UTC))}
        if kind == "chat":
            obj["message"] = {"role": "assistant", "content": content}
        else:
            obj["response"] = content
        obj.update(extra)
        return obj

    def _complete(
        self,
        name: str,
        m: FakeModel,
        messages: list[dict[str, Any]],
        body: dict[str, Any],
        *,
        kind: str,
    ) -> None:
        fake = self.fake
        start = time.monotonic()
        stream = body.get("stream", True) is not False
        keep_alive = body.get("keep_alive")

        self._wait(fake.header_delay)
        loaded_at = time.monotonic()

        if not messages:  # Ollama's "load" / "unload" request
            self._mark_loaded(m, keep_alive)
            reason = "unload" if _parse_keep_alive(keep_alive) == timedelta(0) else "load"
            self._send_json(200, self._chunk(name, kind, "", done=True, done_reason=reason))
            return

        if fake.garbage_body is not None:
            self._send_bytes(200, "text/html; charset=utf-8", fake.garbage_body.encode())
            return

        options = body.get("options") or {}
        try:
            answer = fake.responder(name, messages, options)
        except Exception as exc:  # a scripted failure
            self._send_json(500, {"error": str(exc)})
            return
        pieces = list(answer) if isinstance(answer, list) else split_pieces(str(answer))
        self._mark_loaded(m, keep_alive)
        prompt_tokens = sum(_estimate_tokens(str(msg.get("content", ""))) for msg in messages)

        def final(content: str) -> dict[str, Any]:
            now = time.monotonic()
            extra: dict[str, Any] = {
                "done": True,
                "done_reason": "stop",
                "total_duration": int((now - start) * 1e9),
                "load_duration": int((loaded_at - start) * 1e9),
                "prompt_eval_count": prompt_tokens,
                "prompt_eval_duration": 12_345_678,
                "eval_count": len(pieces),
                "eval_duration": max(1, int((now - loaded_at) * 1e9)),
            }
            if kind == "generate":
                extra["context"] = list(range(1, prompt_tokens + len(pieces) + 1))
            return self._chunk(name, kind, content, **extra)

        if not stream:
            for i in range(len(pieces)):
                if fake.stall_after is not None and i == fake.stall_after:
                    self._hang()
                if fake.error_after is not None and i == fake.error_after:
                    self._send_json(500, {"error": fake.error_message})
                    return
                self._wait(fake.token_delay)
            self._send_json(200, final("".join(pieces)))
            return

        self._start_stream()
        self._wait(fake.first_token_delay)
        for i, piece in enumerate(pieces):
            if fake.pause_after is not None and i == fake.pause_after:
                self._wait_until(fake._resume)
            if fake.cut_mid_line_after is not None and i == fake.cut_mid_line_after:
                line = json.dumps(self._chunk(name, kind, piece, done=False)).encode()
                half = line[: len(line) // 2]
                self.record.sent.append((time.monotonic(), half.decode()))
                self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
                self._end_stream()
                return
            if fake.stall_after is not None and i == fake.stall_after:
                self.close_connection = True
                self._hang()
            if fake.error_after is not None and i == fake.error_after:
                self._stream_line({"error": fake.error_message})
                self._end_stream()
                return
            self._wait(fake.token_delay)
            self._stream_line(self._chunk(name, kind, piece, done=False))
        if fake.stall_after is not None and fake.stall_after >= len(pieces):
            self.close_connection = True
            self._hang()
        self._stream_line(final(""))
        self._end_stream()

    def _embed(self, body: dict[str, Any]) -> None:
        fake = self.fake
        start = time.monotonic()
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            texts = [raw_input] if raw_input else []
        elif isinstance(raw_input, list) and all(isinstance(t, str) for t in raw_input):
            texts = list(raw_input)
        elif raw_input is None:
            texts = []
        else:
            self._send_json(400, {"error": "invalid input type"})
            return
        name = str(body.get("model") or "")
        m = self._lookup_for_inference(name, "embed")
        if m is None:
            return
        self._wait(fake.header_delay)
        loaded_at = time.monotonic()
        self._mark_loaded(m, body.get("keep_alive"))
        if not texts:
            self._send_json(200, {"model": name, "embeddings": []})
            return
        if body.get("truncate") is False and any(
            _estimate_tokens(t) > m.context_length for t in texts
        ):
            self._send_json(400, {"error": "input exceeds maximum context length"})
            return
        if fake.stall_after is not None:
            self._hang()
        self._wait(fake.token_delay * len(texts))
        dims = body.get("dimensions")
        seed = _base_name(m.name).lower()
        vectors = []
        for text in texts:
            vec = fake_embedding(text, m.dim, seed=seed)
            if isinstance(dims, int) and 0 < dims < m.dim:
                vec = vec[:dims] / (np.linalg.norm(vec[:dims]) or 1.0)
            vectors.append([float(x) for x in vec])
        now = time.monotonic()
        self._send_json(
            200,
            {
                "model": name,
                "embeddings": vectors,
                "total_duration": int((now - start) * 1e9),
                "load_duration": int((loaded_at - start) * 1e9),
                "prompt_eval_count": sum(_estimate_tokens(t) for t in texts),
            },
        )


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_DURATION_PART = re.compile(r"(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _parse_keep_alive(value: Any) -> timedelta | None:
    """Ollama's keep_alive: a number of seconds or a Go duration string; negative = forever
    (returned as None); missing = 5 minutes."""
    if value is None:
        return _DEFAULT_KEEP_ALIVE
    seconds: float
    if isinstance(value, bool):
        return _DEFAULT_KEEP_ALIVE
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text.lstrip("+"):
                return _DEFAULT_KEEP_ALIVE
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds < 0:
        return None
    return timedelta(seconds=seconds)


# --------------------------------------------------------------------------- the fake


class FakeOllama:
    """A running fake Ollama. Use as a context manager or through the `fake_ollama` fixture."""

    def __init__(
        self,
        models: Iterable[FakeModel | str] | None = None,
        *,
        responder: Responder | None = None,
        token_delay: float = 0.0,
        header_delay: float = 0.0,
    ) -> None:
        self.models: dict[str, FakeModel] = {}
        for m in DEFAULT_MODELS if models is None else models:
            self.add_model(m)
        self.responder: Responder = responder or default_responder
        self.token_delay = token_delay
        self.header_delay = header_delay
        self.first_token_delay = 0.0
        self.stall_after: int | None = None
        self.pause_after: int | None = None
        self._resume = threading.Event()
        self.http_error: tuple[int, str] | None = None
        self.http_error_paths: set[str] = set(INFERENCE_PATHS)
        self.error_after: int | None = None
        self.error_message = "an error was encountered while running the model"
        self.cut_mid_line_after: int | None = None
        self.garbage_body: str | None = None
        self.requests: list[RecordedRequest] = []
        self.loaded: dict[str, datetime] = {}

        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- models

    def add_model(self, model: FakeModel | str, **kwargs: Any) -> FakeModel:
        m = model if isinstance(model, FakeModel) else FakeModel(model, **kwargs)
        self.models[_canonical(m.name)] = m
        return m

    def remove_model(self, name: str) -> None:
        self.models.pop(_canonical(name), None)

    def find(self, name: str) -> FakeModel | None:
        return self.models.get(_canonical(name))

    def resume(self) -> None:
        """Let streams held by `pause_after` continue (and not pause again)."""
        self._resume.set()

    # ---- records

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def last(self, path: str) -> RecordedRequest:
        found = self.requests_to(path)
        if not found:
            raise AssertionError(f"no request to {path}; got {[r.path for r in self.requests]}")
        return found[-1]

    # ---- lifecycle

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake Ollama server is not running")
        return self._httpd.server_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeOllama:
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="fake-ollama",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving, wake any stalled or delayed handler and drop every open connection."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = dict(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for handler_thread in connections.values():
            handler_thread.join(max(0.0, deadline - time.monotonic()))
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._httpd = None
        self._thread = None

    def _track(self, sock: socket.socket, thread: threading.Thread, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections[sock] = thread
            else:
                self._connections.pop(sock, None)

    def open_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_refusing: socket.socket | None = None


def unused_url() -> str:
    """The URL of a local port where connections are refused. The port stays bound (never
    listening) by this process, so no other server can take it while tests run."""
    global _refusing
    if _refusing is None:
        _refusing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        _refusing.bind(("127.0.0.1", 0))
    return f"http://127.0.0.1:{_refusing.getsockname()[1]}"


@pytest.fixture
def fake_ollama() -> Iterator[FakeOllama]:
    """A fresh fake Ollama with the default models (qwen2.5 7b/32b, nomic, mxbai, bge-m3)."""
    with FakeOllama() as server:
        yield server
