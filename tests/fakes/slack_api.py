"""A fake Slack Web API (and Socket Mode endpoint) over a real socket, recording every call.

An aiohttp server on 127.0.0.1 (random free port) on its own event loop in a background
thread. Point `AsyncWebClient(base_url=fake.api_url)` at it (the URL ends with `/`, as
slack_sdk's joining needs). It reads arguments the ways slack_sdk sends them: the query string
(`params=`, e.g. `auth.test`, `reactions.add`, `conversations.replies`), a form body and a JSON
body (`json=`, e.g. `chat.postMessage`, `chat.startStream`), and answers like Slack: HTTP 200
with `{"ok": false, "error": ...}` for API errors.

Methods: `auth.test`, `chat.postMessage`, `chat.update`, `chat.postEphemeral`,
`chat.startStream`, `chat.appendStream`, `chat.stopStream`, `chat.getPermalink`,
`reactions.add`, `reactions.remove`, `assistant.threads.setStatus`, `conversations.replies`,
`views.open`, `views.publish`, `apps.connections.open`. Anything else: `unknown_method`. Every call needs
`Authorization: Bearer <bot token>` (`apps.connections.open`: the app token), else
`not_authed` / `invalid_auth`.

Messages are checked against Slack's limits, so a renderer that breaks them fails here as it
would in Slack: at most 50 blocks (`invalid_blocks`), section text 1-3,000 characters
(`invalid_blocks`), block text adding up to more than 12,000 characters
(`msg_blocks_too_long`), `text` over 40,000 characters (`msg_too_long`), markdown chunks of a
stream over 12,000 characters (`invalid_arguments`).

Scripting (plain attributes):
* `errors[method] = "not_allowed"`: answer that method with `{"ok": false, "error": ...}`.
* `rate_limits[method] = n`: answer the next n calls of that method with HTTP 429,
  `Retry-After: <retry_after>` (default 0 s) and `{"ok": false, "error": "ratelimited"}`, as
  Slack does; the call is recorded but has no effect.
* `drops[method] = n`: close the connection of the next n calls without answering (the
  client sees a server disconnect); recorded with response `{"dropped": true}`, no effect.
* `add_message(channel, text, user=..., thread_ts=...)`: a message people wrote, served by
  `conversations.replies` (posts by the bot are stored there too, with `user` = the bot user
  and `bot_id`).
* `push_event(body)`: deliver an Events API payload over the Socket Mode websocket;
  `push_envelope("slash_commands" | "interactive", payload)` a slash command's fields or an
  interactive payload, in the envelope Slack's Socket Mode documents.
* `new_trigger()`: a trigger_id as Slack puts in an interaction; `views.open` takes it once,
  within 3 s (`invalid_trigger_id`, `expired_trigger_id`, `exchanged_trigger_id`).
* `new_response_url()`: a response_url; POSTs to it (JSON, as Slack documents: `text`/`blocks`,
  `response_type` ephemeral or in_channel, `replace_original`, `delete_original`) are
  recorded in `responses`, at most 5 per URL within 30 minutes (then 404 `used_url`).

Views (`views.open` modals, `views.publish` App Home) are checked as Slack documents them:
type, title (modal: plain_text, 1-24 characters), at most 100 blocks, `submit` when the
modal has inputs, `private_metadata` up to 3,000 and `callback_id` up to 255 characters,
input blocks with a label and one element (plain_text_input: initial_value within its
max_length, at most 3,000; radio_buttons: 1-10 options, the initial option one of them).

Records: `calls` (method, args, token, time, response), `calls_to(method)`, `wait_for(...)`,
`thread(channel, ts)`, `socket_acks`, `ephemeral`, `responses`, `views` (published, by user).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-1-fake-bot-token"
APP_TOKEN = "xapp-1-fake-app-token"

SECTION_TEXT_LIMIT = 3000
BLOCKS_LIMIT = 50
BLOCKS_TEXT_LIMIT = 12_000
TEXT_LIMIT = 40_000
STREAM_TEXT_LIMIT = 12_000
VIEW_BLOCKS_LIMIT = 100
MODAL_TITLE_LIMIT = 24
PRIVATE_METADATA_LIMIT = 3000
TRIGGER_TTL = 3.0  # seconds a trigger_id can open a view
RESPONSE_URL_USES = 5
INPUT_MAX = 3000  # plain_text_input's max_length ceiling


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)
    response: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.response.get("ok"))


def _blocks_text(value: Any) -> int:
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, v in item.items():
                if key == "text" and isinstance(v, str):
                    total += len(v)
                else:
                    stack.append(v)
        elif isinstance(item, list):
            stack.extend(item)
    return total


def _plain(text: Any, limit: int) -> bool:
    return (isinstance(text, dict) and text.get("type") == "plain_text"
            and 1 <= len(str(text.get("text") or "")) <= limit)


def _check_input(b: dict[str, Any]) -> str | None:
    element = b.get("element")
    if not _plain(b.get("label"), 2000) or not isinstance(element, dict):
        return "invalid_blocks"
    kind = element.get("type")
    if not element.get("action_id") and kind != "radio_buttons":
        return "invalid_blocks"
    if kind == "plain_text_input":
        most = int(element.get("max_length") or INPUT_MAX)
        if most > INPUT_MAX or len(str(element.get("initial_value") or "")) > most:
            return "invalid_blocks"
    elif kind == "radio_buttons":
        options = element.get("options") or []
        if not 1 <= len(options) <= 10 or not element.get("action_id"):
            return "invalid_blocks"
        initial = element.get("initial_option")
        if initial is not None and initial not in options:
            return "invalid_blocks"
    else:
        return "invalid_blocks"
    return None


def check_blocks(blocks: Any, *, limit: int = BLOCKS_LIMIT) -> str | None:
    """The error Slack would give for these blocks, or None."""
    if blocks is None:
        return None
    if not isinstance(blocks, list):
        return "invalid_blocks_format"
    if len(blocks) > limit:
        return "invalid_blocks"
    for b in blocks:
        if not isinstance(b, dict) or "type" not in b:
            return "invalid_blocks"
        if b["type"] == "section":
            text = (b.get("text") or {}).get("text", "")
            if not text or len(text) > SECTION_TEXT_LIMIT:
                return "invalid_blocks"
        if b["type"] == "context" and not 1 <= len(b.get("elements") or []) <= 10:
            return "invalid_blocks"
        if b["type"] == "actions":
            elements = b.get("elements") or []
            if not 1 <= len(elements) <= 25:
                return "invalid_blocks"
            for e in elements:
                if len(str(e.get("value", ""))) > 2000 or len(str(e.get("action_id", ""))) > 255:
                    return "invalid_blocks"
        if b["type"] == "header" and not _plain(b.get("text"), 150):
            return "invalid_blocks"
        if b["type"] == "input" and _check_input(b):
            return "invalid_blocks"
        if len(str(b.get("block_id", ""))) > 255:
            return "invalid_blocks"
    if limit == BLOCKS_LIMIT and _blocks_text(blocks) > BLOCKS_TEXT_LIMIT:
        return "msg_blocks_too_long"
    return None


def check_view(view: Any, kind: str) -> str | None:
    """The error views.open (`kind` "modal") or views.publish ("home") would give, or None."""
    if isinstance(view, str):
        try:
            view = json.loads(view)
        except ValueError:
            return "invalid_arguments"
    if not isinstance(view, dict) or view.get("type") != kind:
        return "invalid_arguments"
    blocks = view.get("blocks")
    if not isinstance(blocks, list) or check_blocks(blocks, limit=VIEW_BLOCKS_LIMIT):
        return "invalid_arguments"
    if len(str(view.get("private_metadata") or "")) > PRIVATE_METADATA_LIMIT:
        return "invalid_arguments"
    if len(str(view.get("callback_id") or "")) > 255:
        return "invalid_arguments"
    if kind == "modal":
        if not _plain(view.get("title"), MODAL_TITLE_LIMIT):
            return "invalid_arguments"
        inputs = any(b.get("type") == "input" for b in blocks)
        if inputs and not _plain(view.get("submit"), MODAL_TITLE_LIMIT):
            return "invalid_arguments"
    return None


def _chunk_text(args: dict[str, Any]) -> tuple[str, str | None]:
    """The markdown a stream call carries (`markdown_text` or `chunks`), or an error."""
    parts = []
    if args.get("markdown_text"):
        parts.append(str(args["markdown_text"]))
    for chunk in args.get("chunks") or []:
        if not isinstance(chunk, dict) or "type" not in chunk:
            return "", "invalid_chunks"
        if chunk["type"] == "markdown_text":
            parts.append(str(chunk.get("text", "")))
    if any(len(p) > STREAM_TEXT_LIMIT for p in parts):
        return "", "invalid_arguments"
    return "".join(parts), None


class FakeSlack:
    """A running fake Slack. Use as a context manager or through the `fake_slack` fixture."""

    def __init__(self, *, bot_token: str = BOT_TOKEN, app_token: str = APP_TOKEN,
                 team_id: str = "T1", bot_user_id: str = "UBOT", bot_id: str = "BBOT") -> None:
        self.bot_token = bot_token
        self.app_token = app_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.errors: dict[str, str] = {}
        self.rate_limits: dict[str, int] = {}
        self.retry_after = 0
        self.drops: dict[str, int] = {}
        self.calls: list[Call] = []
        self.messages: dict[str, list[dict[str, Any]]] = {}  # channel -> messages
        self.ephemeral: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # posts to response_urls: {"url", "body"}
        self.views: dict[str, dict[str, Any]] = {}  # App Home views published, by user
        self.opened: list[dict[str, Any]] = []  # modals opened by views.open
        self._triggers: dict[str, float | None] = {}  # trigger_id -> issued at (None: used)
        self._response_urls: dict[str, int] = {}  # response_url id -> uses
        self.socket_acks: list[dict[str, Any]] = []
        self._clock = itertools.count(1)
        self._base_ts = 1_700_000_000
        self._cond = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._sockets: set[web.WebSocketResponse] = set()
        self.port = 0

    # ---- lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def start(self) -> FakeSlack:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-slack", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake Slack server did not start")
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_get("/link", self._socket)
        app.router.add_post("/respond/{key}", self._respond_url)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop = None
        self._thread = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- scripting

    def new_ts(self) -> str:
        return f"{self._base_ts + next(self._clock)}.000100"

    def add_message(self, channel: str, text: str, *, user: str = "U1", ts: str | None = None,
                    thread_ts: str | None = None, **extra: Any) -> str:
        """A message a person wrote (or any message dict fields in `extra`); returns its ts."""
        ts = ts or self.new_ts()
        msg = {"type": "message", "user": user, "text": text, "ts": ts, **extra}
        if thread_ts:
            msg["thread_ts"] = thread_ts
        with self._cond:
            self.messages.setdefault(channel, []).append(msg)
            self._cond.notify_all()
        return ts

    def push_event(self, body: dict[str, Any], retry_attempt: int = 0) -> str:
        """Send an Events API payload to every connected Socket Mode client; the envelope id."""
        envelope_id = str(uuid.uuid4())
        envelope = {"envelope_id": envelope_id, "type": "events_api", "payload": body,
                    "accepts_response_payload": False, "retry_attempt": retry_attempt,
                    "retry_reason": "timeout" if retry_attempt else ""}
        assert self._loop is not None

        async def send() -> None:
            for ws in list(self._sockets):
                await ws.send_str(json.dumps(envelope))

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(5)
        return envelope_id

    def push_envelope(self, kind: str, payload: dict[str, Any]) -> str:
        """A slash command (`slash_commands`: the command's fields) or an interaction
        (`interactive`: the payload itself, not form-encoded) over Socket Mode."""
        assert kind in ("slash_commands", "interactive")
        envelope_id = str(uuid.uuid4())
        # Slack lets the ack carry a response for slash commands and view submissions.
        accepts = kind == "slash_commands" or payload.get("type") == "view_submission"
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": accepts}
        assert self._loop is not None

        async def send() -> None:
            for ws in list(self._sockets):
                await ws.send_str(json.dumps(envelope))

        asyncio.run_coroutine_threadsafe(send(), self._loop).result(5)
        return envelope_id

    def new_trigger(self) -> str:
        trigger = f"{next(self._clock)}.{self._base_ts}.{uuid.uuid4().hex[:16]}"
        with self._cond:
            self._triggers[trigger] = time.monotonic()
        return trigger

    def new_response_url(self) -> str:
        key = uuid.uuid4().hex
        with self._cond:
            self._response_urls[key] = 0
        return f"{self.url}/respond/{key}"

    def ack_for(self, envelope_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """The Socket Mode ack of an envelope (waits for it)."""
        return self.wait_for(lambda: next((a for a in self.socket_acks
                                           if a.get("envelope_id") == envelope_id), None), timeout)

    @property
    def connected_sockets(self) -> int:
        return len(self._sockets)

    # ---- records

    def calls_to(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def methods(self) -> list[str]:
        with self._cond:
            return [c.method for c in self.calls]

    def wait_for(self, predicate: Callable[[], Any] | str, timeout: float = 10.0) -> Any:
        """Wait until `predicate()` is truthy (or a call to the method named by a string was
        recorded); returns its value, raises AssertionError on timeout."""
        check = (lambda: self.calls_to(predicate)) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = check()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting; calls so far: {self.methods()}")
                self._cond.wait(min(remaining, 0.05))

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The thread's messages, root first, as conversations.replies would give them."""
        with self._cond:
            msgs = [m for m in self.messages.get(channel, [])
                    if m["ts"] == ts or m.get("thread_ts") == ts]
        return sorted(msgs, key=lambda m: float(m["ts"]))

    def bot_messages(self, channel: str, thread_ts: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            msgs = [m for m in self.messages.get(channel, []) if m.get("bot_id") == self.bot_id]
        if thread_ts is not None:
            msgs = [m for m in msgs if m.get("thread_ts") == thread_ts]
        return sorted(msgs, key=lambda m: float(m["ts"]))

    def find(self, channel: str, ts: str) -> dict[str, Any] | None:
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    # ---- HTTP

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "")
        if raw:
            if ctype.startswith("application/json"):
                try:
                    body = json.loads(raw)
                except ValueError:
                    return web.json_response({"ok": False, "error": "invalid_json"})
                if isinstance(body, dict):
                    args.update(body)
            else:
                args.update(dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True)))
        for key in ("blocks", "chunks", "metadata", "view"):  # form-encoded calls send these as JSON text
            if isinstance(args.get(key), str):
                with contextlib.suppress(ValueError):
                    args[key] = json.loads(args[key])
        auth = request.headers.get("Authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else args.pop("token", None)
        call = Call(method, args, token)
        status, fault = 200, None
        with self._cond:
            if self.drops.get(method, 0) > 0:
                self.drops[method] -= 1
                fault, call.response = "drop", {"dropped": True}
            elif self.rate_limits.get(method, 0) > 0:
                self.rate_limits[method] -= 1
                status, call.response = 429, {"ok": False, "error": "ratelimited"}
            else:
                call.response = self._respond(method, args, token)
            self.calls.append(call)
            self._cond.notify_all()
        if fault == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response()  # never reaches the client
        headers = {"Retry-After": str(self.retry_after)} if status == 429 else None
        return web.json_response(call.response, status=status, headers=headers)

    def _respond(self, method: str, args: dict[str, Any], token: str | None) -> dict[str, Any]:
        if not token:
            return {"ok": False, "error": "not_authed"}
        expected = self.app_token if method == "apps.connections.open" else self.bot_token
        if token != expected:
            return {"ok": False, "error": "invalid_auth"}
        if method in self.errors:
            return {"ok": False, "error": self.errors[method]}
        handler = _METHODS.get(method)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(self, args)

    # ---- methods (called with the condition's lock held)

    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://fake.slack.com/", "team": "Fake Team", "user": "vaultbot",
                "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": self.bot_id,
                "is_enterprise_install": False}

    def _bot_message(self, channel: str, args: dict[str, Any], **extra: Any) -> dict[str, Any]:
        msg = {"type": "message", "user": self.bot_user_id, "bot_id": self.bot_id,
               "text": args.get("text") or "", "ts": self.new_ts(), "team": self.team_id, **extra}
        if args.get("blocks") is not None:
            msg["blocks"] = args["blocks"]
        if args.get("thread_ts"):
            msg["thread_ts"] = str(args["thread_ts"])
        self.messages.setdefault(channel, []).append(msg)
        return msg

    def _check_message(self, args: dict[str, Any], *, need_content: bool = True) -> str | None:
        if not args.get("channel"):
            return "channel_not_found"
        if need_content and not args.get("text") and not args.get("blocks"):
            return "no_text"
        if len(str(args.get("text") or "")) > TEXT_LIMIT:
            return "msg_too_long"
        return check_blocks(args.get("blocks"))

    def _post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        error = self._check_message(args)
        if error:
            return {"ok": False, "error": error}
        msg = self._bot_message(args["channel"], args)
        return {"ok": True, "channel": args["channel"], "ts": msg["ts"], "message": msg}

    def _update(self, args: dict[str, Any]) -> dict[str, Any]:
        error = self._check_message(args)
        if error:
            return {"ok": False, "error": error}
        msg = self.find(args["channel"], str(args.get("ts")))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        if msg.get("bot_id") != self.bot_id:
            return {"ok": False, "error": "cant_update_message"}
        msg["text"] = args.get("text") or ""
        if "blocks" in args:
            msg["blocks"] = args["blocks"]
        msg["edited"] = {"user": self.bot_user_id, "ts": self.new_ts()}
        return {"ok": True, "channel": args["channel"], "ts": msg["ts"], "text": msg["text"],
                "message": msg}

    def _post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        error = self._check_message(args)
        if error:
            return {"ok": False, "error": error}
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        self.ephemeral.append(dict(args))
        return {"ok": True, "message_ts": self.new_ts()}

    def _start_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = args.get("channel")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not args.get("thread_ts"):
            return {"ok": False, "error": "invalid_arguments"}
        # Outside DMs Slack needs to know whom the stream is for.
        if not str(channel).startswith("D") and not (
                args.get("recipient_user_id") and args.get("recipient_team_id")):
            return {"ok": False, "error": "invalid_arguments"}
        text, error = _chunk_text(args)
        if error:
            return {"ok": False, "error": error}
        msg = self._bot_message(channel, {"text": text, "thread_ts": args["thread_ts"]},
                                streaming=True)
        return {"ok": True, "channel": channel, "ts": msg["ts"]}

    def _streaming_message(self, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        msg = self.find(str(args.get("channel")), str(args.get("ts")))
        if msg is None:
            return None, "message_not_found"
        if not msg.get("streaming"):
            return None, "message_not_in_streaming_state"
        return msg, None

    def _append_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        msg, error = self._streaming_message(args)
        if error or msg is None:
            return {"ok": False, "error": error}
        text, error = _chunk_text(args)
        if error:
            return {"ok": False, "error": error}
        msg["text"] += text
        return {"ok": True, "channel": args["channel"], "ts": msg["ts"]}

    def _stop_stream(self, args: dict[str, Any]) -> dict[str, Any]:
        msg, error = self._streaming_message(args)
        if error or msg is None:
            return {"ok": False, "error": error}
        text, error = _chunk_text(args)
        error = error or check_blocks(args.get("blocks"))
        if error:
            return {"ok": False, "error": error}
        msg["text"] += text
        msg["streaming"] = False
        if args.get("blocks") is not None:
            msg["blocks"] = args["blocks"]
        return {"ok": True, "channel": args["channel"], "ts": msg["ts"], "message": msg}

    def _reaction(self, args: dict[str, Any], add: bool) -> dict[str, Any]:
        msg = self.find(str(args.get("channel")), str(args.get("timestamp")))
        if msg is None:
            return {"ok": False, "error": "message_not_found"}
        name = str(args.get("name") or "")
        users = msg.setdefault("reactions_by", {}).setdefault(name, [])
        if add:
            if self.bot_user_id in users:
                return {"ok": False, "error": "already_reacted"}
            users.append(self.bot_user_id)
        else:
            if self.bot_user_id not in users:
                return {"ok": False, "error": "no_reaction"}
            users.remove(self.bot_user_id)
        return {"ok": True}

    def _set_status(self, args: dict[str, Any]) -> dict[str, Any]:
        if not args.get("channel_id") or not args.get("thread_ts") or "status" not in args:
            return {"ok": False, "error": "invalid_arguments"}
        return {"ok": True}

    def _replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel")), str(args.get("ts"))
        msgs = self.thread(channel, ts)  # the condition's lock is re-entrant
        if not msgs:
            return {"ok": False, "error": "thread_not_found"}
        limit = max(1, min(int(args.get("limit") or 1000), 1000))
        start = int(args.get("cursor") or 0)
        page = msgs[start:start + limit]
        more = start + limit < len(msgs)
        out = []
        for m in page:
            m = {k: v for k, v in m.items() if k not in ("reactions_by", "streaming")}
            if m["ts"] == ts and any(x.get("thread_ts") == ts and x["ts"] != ts for x in msgs):
                m["thread_ts"] = ts
                m["reply_count"] = len(msgs) - 1
            out.append(m)
        return {"ok": True, "messages": out, "has_more": more,
                "response_metadata": {"next_cursor": str(start + limit) if more else ""}}

    def _permalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = str(args.get("channel")), str(args.get("message_ts"))
        if self.find(channel, ts) is None:
            return {"ok": False, "error": "message_not_found"}
        return {"ok": True, "channel": channel,
                "permalink": f"https://fake.slack.com/archives/{channel}/p{ts.replace('.', '')}"}

    def _take_trigger(self, trigger: Any) -> str | None:
        issued = self._triggers.get(str(trigger or ""), "unknown")
        if issued == "unknown":
            return "invalid_trigger_id"
        if issued is None:
            return "exchanged_trigger_id"
        self._triggers[str(trigger)] = None
        return "expired_trigger_id" if time.monotonic() - float(issued) > TRIGGER_TTL else None

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        error = check_view(args.get("view"), "modal") or self._take_trigger(args.get("trigger_id"))
        if error:
            return {"ok": False, "error": error}
        view = args["view"] if isinstance(args["view"], dict) else json.loads(args["view"])
        view = {**view, "id": f"V{next(self._clock):08d}", "team_id": self.team_id}
        self.opened.append(view)
        return {"ok": True, "view": view}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        error = check_view(args.get("view"), "home")
        if error or not args.get("user_id"):
            return {"ok": False, "error": error or "invalid_arguments"}
        view = args["view"] if isinstance(args["view"], dict) else json.loads(args["view"])
        view = {**view, "id": f"V{next(self._clock):08d}", "team_id": self.team_id}
        self.views[str(args["user_id"])] = view
        return {"ok": True, "view": view}

    async def _respond_url(self, request: web.Request) -> web.Response:
        """A post to a response_url: JSON, no token (the URL is the secret)."""
        key = request.match_info["key"]
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        with self._cond:
            uses = self._response_urls.get(key)
            if uses is None or uses >= RESPONSE_URL_USES:
                return web.Response(status=404, text="used_url")
            self._response_urls[key] = uses + 1
            error = None
            if not isinstance(body, dict):
                error = "invalid_payload"
            elif not body.get("delete_original"):
                if body.get("response_type", "ephemeral") not in ("ephemeral", "in_channel"):
                    error = "invalid_payload"
                elif not body.get("text") and not body.get("blocks"):
                    error = "no_text"
                else:
                    error = check_blocks(body.get("blocks"))
            if error is None:
                self.responses.append({"url": f"{self.url}/respond/{key}", "body": body})
            self._cond.notify_all()
        if error:
            return web.Response(status=400, text=error)
        return web.Response(text="ok")

    def _connections_open(self, args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link"}

    # ---- Socket Mode

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.add(ws)
        await ws.send_str(json.dumps({"type": "hello", "num_connections": len(self._sockets),
                                      "connection_info": {"app_id": "A1"}}))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    with contextlib.suppress(ValueError), self._cond:
                        self.socket_acks.append(json.loads(msg.data))
                        self._cond.notify_all()
        finally:
            self._sockets.discard(ws)
        return ws


_METHODS: dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]] = {
    "auth.test": FakeSlack._auth_test,
    "chat.postMessage": FakeSlack._post_message,
    "chat.update": FakeSlack._update,
    "chat.postEphemeral": FakeSlack._post_ephemeral,
    "chat.startStream": FakeSlack._start_stream,
    "chat.appendStream": FakeSlack._append_stream,
    "chat.stopStream": FakeSlack._stop_stream,
    "reactions.add": lambda fake, args: fake._reaction(args, True),
    "reactions.remove": lambda fake, args: fake._reaction(args, False),
    "assistant.threads.setStatus": FakeSlack._set_status,
    "conversations.replies": FakeSlack._replies,
    "apps.connections.open": FakeSlack._connections_open,
    "chat.getPermalink": FakeSlack._permalink,
    "views.open": FakeSlack._views_open,
    "views.publish": FakeSlack._views_publish,
}


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server
