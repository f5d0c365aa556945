"""An OpenAI-compatible front end: `GET /v1/models` and `POST /v1/chat/completions` (JSON or
Server-Sent Events of `chat.completion.chunk` objects ending with `data: [DONE]`), so chat
clients that speak OpenAI's API (Open WebUI, obsidian-copilot, Continue, the `openai` SDK) ask
the vault. Models: `vaultbot` (the fast model) and `vaultbot-deep`.

The last user message is the question; earlier user/assistant pairs are the thread's history;
system messages are ignored (vaultbot writes its own prompt). The answer ends with its
citations as Markdown links. Scope: the access file's `openai` place. Every error, the bearer
token's included, is OpenAI's `{"error": {"message", "type", "param", "code"}}`; parameters
vaultbot cannot honour in a way a caller relies on (tools, n > 1, logprobs, JSON output, audio)
are refused, sampling knobs (temperature, max_tokens, ...) are ignored."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.answer import Answer, AskOptions, Done, Failed, Sources, Token
from engine.citations import Citation, cited_paths
from engine.models import Scope, Turn
from vaultbot.api.security import authorized
from vaultbot.api.sse import keep_alive
from vaultbot.api.state import ApiState

log = logging.getLogger("vaultbot.api")

router = APIRouter(prefix="/v1", tags=["openai"])

PLACE = "openai"
MODELS = {"vaultbot": False, "vaultbot-deep": True}  # model id -> deep
SOURCES_HEADING = "\n\n**Sources**\n"
MAX_QUESTION = 4000
MAX_TURNS = 10


class OpenAIError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status, message, type_, param, code)

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return JSONResponse({"error": {"message": self.message, "type": self.type,
                                       "param": self.param, "code": self.code}},
                            status_code=self.status, headers=headers)


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):  # content parts: only text is read
            return "\n".join(str(p.get("text", "")) for p in self.content
                             if p.get("type") in ("text", "input_text"))
        return self.content or ""


class ChatRequest(BaseModel):
    # Everything else OpenAI defines (temperature, top_p, max_tokens, stop, seed, user, ...)
    # is accepted and ignored.
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    n: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    modalities: list[str] | None = None
    audio: dict[str, Any] | None = None


def _refuse_unsupported(body: ChatRequest) -> None:
    def no(param: str, why: str, code: str = "unsupported_parameter") -> OpenAIError:
        return OpenAIError(400, f"{param}: {why}", param=param, code=code)

    if body.n not in (None, 1):
        raise no("n", "vaultbot writes one answer per request; use n=1", "unsupported_value")
    if body.tools or body.functions:
        raise no("tools" if body.tools else "functions",
                 "vaultbot does not call tools; it answers from the vault")
    if body.logprobs or body.top_logprobs:
        raise no("logprobs", "vaultbot does not return log probabilities")
    if body.response_format and body.response_format.get("type", "text") != "text":
        raise no("response_format", "vaultbot answers in Markdown text only", "unsupported_value")
    if body.audio or (body.modalities and set(body.modalities) - {"text"}):
        raise no("modalities", "vaultbot answers in text only", "unsupported_value")
    if body.model not in MODELS:
        raise OpenAIError(404, f"The model `{body.model}` does not exist; use "
                          + " or ".join(MODELS), param="model", code="model_not_found")


def conversation(messages: list[Message]) -> tuple[str, list[Turn]]:
    """(question, history): the last user message, and the user/assistant pairs before it.
    An assistant answer's cited notes come from its obsidian:// links, so a turn whose notes
    this place may no longer see is dropped by the engine."""
    talk = [m for m in messages if m.role in ("user", "assistant")]
    if any(m.role in ("tool", "function") for m in messages):
        raise OpenAIError(400, "messages: tool results are not supported", param="messages",
                          code="unsupported_value")
    if not talk or talk[-1].role != "user" or not talk[-1].text().strip():
        raise OpenAIError(400, "messages: the last message must be the user's question",
                          param="messages")
    question = talk[-1].text().strip()
    if len(question) > MAX_QUESTION:
        raise OpenAIError(400, f"messages: the question is longer than {MAX_QUESTION} "
                          "characters", param="messages", code="string_above_max_length")
    turns: list[Turn] = []
    pending: str | None = None
    for m in talk[:-1]:
        if m.role == "user":
            pending = m.text().strip()
        elif pending is not None:
            answer = m.text()
            turns.append(Turn(pending, answer.split(SOURCES_HEADING, 1)[0].strip(),
                              cited_paths(answer) or None))
            pending = None
    return question, turns[-MAX_TURNS:]


def sources_markdown(answer: Answer) -> str:
    """The answer's citations as a Markdown list of links (empty when it cites nothing)."""
    if not answer.citations:
        return ""

    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")

    def line(c: Citation) -> str:
        # The note page (or VAULTBOT_NOTE_URL) first, obsidian:// second, as the bots do; the
        # obsidian link also ties a thread's earlier answer back to its notes (cited_paths).
        first = f"{c.n}. [{esc(c.label)}]({c.link.replace(')', '%29')})"
        return first if c.link == c.uri else f"{first} · [Obsidian]({c.uri})"

    return SOURCES_HEADING + "\n".join(line(c) for c in answer.citations)


def _check_token(request: Request) -> None:
    if not authorized(request):
        raise OpenAIError(401, "Incorrect API key provided: use the vaultbot API token "
                          "(VAULTBOT_API_TOKEN) as the key", code="invalid_api_key")


def _scope(request: Request) -> Scope:
    s: ApiState = request.app.state.api
    place_scope = getattr(request.app.state, "place_scope", None)
    if place_scope is None:
        return s.base
    try:
        return place_scope(PLACE)
    except Exception as exc:  # AccessDenied, or anything else: refuse (fail closed)
        raise OpenAIError(403, str(exc) or "this place may not ask vaultbot",
                          type_="permission_error", code="permission_denied") from exc


def _usage(question: str, answer: Answer, pieces: int) -> dict[str, int]:
    # Rough counts (whitespace words and streamed pieces): vaultbot's prompt is its own.
    prompt = len(question.split())
    return {"prompt_tokens": prompt, "completion_tokens": pieces,
            "total_tokens": prompt + pieces}


@router.get("/models")
async def models(request: Request) -> Response:
    try:
        _check_token(request)
    except OpenAIError as exc:
        return exc.response()
    return JSONResponse({"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "vaultbot"} for name in MODELS
    ]})


@router.get("/models/{model}")
async def model(model: str, request: Request) -> Response:
    try:
        _check_token(request)
        if model not in MODELS:
            raise OpenAIError(404, f"The model `{model}` does not exist", param="model",
                              code="model_not_found")
    except OpenAIError as exc:
        return exc.response()
    return JSONResponse({"id": model, "object": "model", "created": 0, "owned_by": "vaultbot"})


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    s: ApiState = request.app.state.api
    try:
        _check_token(request)
        try:
            raw = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise OpenAIError(400, "the body must be a JSON object") from None
        try:
            body = ChatRequest.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            param = ".".join(str(p) for p in err["loc"]) or None
            raise OpenAIError(400, f"{param}: {err['msg']}", param=param) from None
        _refuse_unsupported(body)
        question, history = conversation(body.messages)
        scope = _scope(request)
    except OpenAIError as exc:
        return exc.response()

    opts = AskOptions(scope=scope, deep=MODELS[body.model], history=history, channel=PLACE,
                      mask=s.mask)
    ident, created = f"chatcmpl-{secrets.token_hex(12)}", int(time.time())

    if not body.stream:
        answer = await s.asker.ask(question, opts)
        s.metrics.observe(answer, PLACE)
        text = answer.text.rstrip() + sources_markdown(answer)
        return JSONResponse({
            "id": ident, "object": "chat.completion", "created": created, "model": body.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text,
                                                 "refusal": None},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": _usage(question, answer, len(answer.text.split())),
            "system_fingerprint": None,
        })

    def chunk(delta: dict[str, Any], finish: Literal["stop"] | None = None) -> bytes:
        obj = {"id": ident, "object": "chat.completion.chunk", "created": created,
               "model": body.model, "system_fingerprint": None,
               "choices": [{"index": 0, "delta": delta, "logprobs": None,
                            "finish_reason": finish}]}
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        try:
            async for event in s.asker.stream(question, opts):
                if isinstance(event, Token):
                    yield chunk({"content": event.text})
                elif isinstance(event, Failed):
                    yield chunk({"content": f"\n\n_{event.message}_"})
                elif isinstance(event, Done):
                    s.metrics.observe(event.answer, PLACE)
                    tail = sources_markdown(event.answer)
                    if tail:
                        yield chunk({"content": tail})
                elif isinstance(event, Sources):
                    continue  # they come at the end, as links
            yield chunk({}, "stop")
        except Exception as exc:  # OpenAI's way: an error object in the stream
            log.exception("chat completion failed")
            err = {"error": {"message": f"internal error: {type(exc).__name__}",
                             "type": "server_error", "param": None, "code": None}}
            yield f"data: {json.dumps(err)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(keep_alive(events(), s.keepalive), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
