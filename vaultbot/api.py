"""The HTTP API (FastAPI): `POST /ask` (SSE or JSON), `GET /search`, `GET /health`,
`GET /metrics` (Prometheus), `POST /feedback`."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import replace
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from engine.answer import Asker, AskOptions, Done, Failed, Queued, Sources, Token
from engine.index import Index
from engine.mask import default_masker
from engine.models import Scope
from engine.prompt import Turn
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from vaultbot.metrics import Metrics

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def local_hosts(bound: str) -> set[str]:
    """The Host names a loopback-only API answers to: the loopback names and the bound address
    (IPv6 in brackets, as it appears in a Host header)."""
    names = {"localhost", "127.0.0.1", "[::1]", bound.lower()}
    return names | ({f"[{bound.lower()}]"} if ":" in bound else set())


def host_name(header: str) -> str:
    """A Host header without its port, lower case: `[::1]:8765` -> `[::1]`."""
    host = header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    return host.rsplit(":", 1)[0] if ":" in host else host


class HostCheck:
    """Answers only requests addressed to an allowed host, any port. A web page can point its
    own DNS name at 127.0.0.1 (DNS rebinding) and then call the local API from the browser,
    but the browser still sends the page's name as Host: that request is refused here.
    `exempt` paths authenticate each request themselves (Slack's signed events)."""

    def __init__(self, app: ASGIApp, allowed: set[str], exempt: Collection[str] = ()) -> None:
        self.app = app
        self.allowed = {h.lower() for h in allowed}
        self.exempt = set(exempt)

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self.exempt:
            headers = dict(scope["headers"])
            host = host_name(headers.get(b"host", b"").decode("latin-1"))
            if host not in self.allowed:
                refuse = PlainTextResponse(
                    "421 Misdirected Request: this API answers requests for localhost only "
                    "(set VAULTBOT_API_TOKEN to serve other names)\n", status_code=421)
                await refuse(scope, receive, send)
                return
        await self.app(scope, receive, send)


class TurnIn(BaseModel):
    question: str
    answer: str


class AskIn(BaseModel):
    question: str = Field(min_length=1, max_length=4000)
    stream: bool = True
    deep: bool = False
    use_cache: bool = True
    folders: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    where: dict[str, str] = Field(default_factory=dict, description="frontmatter key: value")
    history: list[TurnIn] = Field(default_factory=list, max_length=20)


class FeedbackIn(BaseModel):
    query_id: int
    value: Literal[1, -1]
    note: str | None = Field(None, max_length=2000)


def sse(event: str, data: Any) -> bytes:
    payload = json.dumps(data, ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()


KEEP_ALIVE = b": keep-alive\n\n"
"""An SSE comment: clients ignore it, proxies see traffic."""


async def keep_alive(events: AsyncIterator[bytes], interval: float) -> AsyncIterator[bytes]:
    """`events`, plus `KEEP_ALIVE` whenever none came for `interval` seconds: a proxy with an
    idle timeout (nginx: 60 s) would otherwise cut the stream while a model loads or the
    generation queue waits, before the first token."""
    source = aiter(events)
    pending: asyncio.Future[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            # wait() leaves the event's task running on timeout; wait_for would cancel it.
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield KEEP_ALIVE
                continue
            pending, task = None, pending
            try:
                item = task.result()
            except StopAsyncIteration:
                return
            yield item
    finally:  # the client went away (or we are done): stop the generation too
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


def create_app(
    *,
    asker: Asker,
    retriever: Retriever,
    index: Index,
    querylog: QueryLog,
    token: str = "",
    llm_health: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    base_scope: Scope | None = None,
    allowed_hosts: set[str] | None = None,
    host_check_exempt: Collection[str] = (),
    mask: bool = True,
    keepalive: float = 15.0,
    sync_failure: Callable[[], dict[str, Any] | None] | None = None,
    metrics: Metrics | None = None,
) -> FastAPI:
    """`token`: when set, every route needs `Authorization: Bearer <token>`, except /health,
    which without it says only whether the service is ok.
    `base_scope`: what API callers may see at most (private notes are always excluded).
    `allowed_hosts`: when given, requests whose Host header (port aside) is not in it are
    refused (see HostCheck); `serve` sets it when there is no token.
    `mask`: answers, sources and /search results carry "(masked)" for secrets and personal
    data (VAULTBOT_MASK).
    `keepalive`: seconds without an event after which `/ask`'s SSE stream sends a comment.
    `sync_failure`: the live sync's failing state (SyncService.failure); while it fails,
    /health is not ok.
    `metrics`: the process's counters (App.metrics), shared with the bots; a fresh set if None."""
    # The schema and its viewers are routes below, behind the token like the rest.
    app = FastAPI(title="vaultbot", version="0.1.0", openapi_url=None, docs_url=None,
                  redoc_url=None)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts, exempt=host_check_exempt)
    metrics = metrics if metrics is not None else Metrics()
    app.state.metrics = metrics
    base = base_scope or Scope()

    def authorized(request: Request) -> bool:
        if not token:
            return True
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        return hmac.compare_digest(given.encode(), token.encode())

    async def auth(request: Request) -> None:
        if not authorized(request):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(auth)])
    async def openapi() -> Any:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(auth)])
    async def docs() -> Any:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="vaultbot API")

    @app.get("/redoc", include_in_schema=False, dependencies=[Depends(auth)])
    async def redoc() -> Any:
        return get_redoc_html(openapi_url="/openapi.json", title="vaultbot API")

    def scope_for(folders: list[str], tags: list[str], where: dict[str, str]) -> Scope:
        # Callers can narrow the base scope, never widen it.
        if not (folders or tags or where):
            return base
        scope = base.narrowed(tuple(folders), tuple(tags))
        if scope is None:
            raise HTTPException(403, "those folders or tags are outside what this API may show")
        return replace(scope, include_private=False,
                       frontmatter=tuple(sorted({**dict(base.frontmatter), **where}.items())))

    @app.post("/ask", dependencies=[Depends(auth)])
    async def ask(body: AskIn) -> Any:
        opts = AskOptions(
            scope=scope_for(body.folders, body.tags, body.where), deep=body.deep, use_cache=body.use_cache,
            history=[Turn(t.question, t.answer) for t in body.history], channel="api", mask=mask,
        )
        if not body.stream:
            answer = await asker.ask(body.question, opts)
            metrics.observe(answer, "api")
            return JSONResponse(answer.to_json())

        async def events() -> AsyncIterator[bytes]:
            try:
                async for event in asker.stream(body.question, opts):
                    if isinstance(event, Sources):
                        yield sse("sources", [c.to_json() for c in event.citations])
                    elif isinstance(event, Token):
                        yield sse("token", {"text": event.text})
                    elif isinstance(event, Failed):
                        yield sse("error", {"message": event.message})
                    elif isinstance(event, Queued):
                        yield sse("queued", {"position": event.position})
                    elif isinstance(event, Done):
                        metrics.observe(event.answer, "api")
                        yield sse("done", event.answer.to_json())
            except Exception as exc:  # the client gets a message, the log the traceback
                log.exception("ask failed")
                yield sse("error", {"message": f"internal error: {type(exc).__name__}"})

        return StreamingResponse(keep_alive(events(), keepalive), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/search", dependencies=[Depends(auth)])
    async def search(
        q: str = Query(min_length=1, max_length=2000),
        k: int = Query(8, ge=1, le=50),
        mode: Literal["dense", "lexical", "hybrid"] = "hybrid",
        folder: list[str] = Query(default_factory=list),
        tag: list[str] = Query(default_factory=list),
        where: list[str] = Query(default_factory=list, description="KEY=VALUE, frontmatter"),
    ) -> Any:
        import asyncio

        t0 = time.perf_counter()
        pairs = dict(w.split("=", 1) for w in where if "=" in w)
        scope = scope_for(folder, tag, pairs)
        hits = await asyncio.to_thread(retriever.search, q, k, scope=scope, mode=mode)
        if mask:
            hits = default_masker().mask_hits(hits)
        return {
            "results": [
                {"path": h.note_path, "title": h.title, "heading": " > ".join(h.heading_path),
                 "page": h.page, "score": h.score, "sources": list(h.sources), "text": h.text}
                for h in hits
            ],
            "ms": round((time.perf_counter() - t0) * 1000, 2),
        }

    @app.get("/health")
    async def health(request: Request) -> Any:
        import asyncio

        status = await asyncio.to_thread(index.status)
        failing = sync_failure() if sync_failure is not None else None
        # A failing sync serves a stale index: a probe should see that, not only the counts.
        ok = status["vectors"] == status["chunks"] and failing is None
        body: dict[str, Any] = {"ok": ok}
        # The detail (hosts, models, counts) only for the token's holder: a probe, or any local
        # process when there is no token, learns nothing but ok / not ok.
        if token and authorized(request):
            llm = (await llm_health() if llm_health is not None
                   else {"reachable": False, "disabled": True})
            body |= {"index": status, "ollama": llm, "sync_failure": failing}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", dependencies=[Depends(auth)])
    async def prometheus() -> Any:
        import asyncio

        status = await asyncio.to_thread(index.status)
        metrics.notes.set(status["notes"])
        metrics.chunks.set(status["chunks"])
        metrics.vectors.set(status["vectors"])
        return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.post("/feedback", dependencies=[Depends(auth)])
    async def feedback(body: FeedbackIn) -> Any:
        import asyncio

        if not await asyncio.to_thread(querylog.feedback, body.query_id, body.value, body.note):
            raise HTTPException(404, f"no query {body.query_id}")
        return {"ok": True}

    return app


def check_bind(host: str, token: str) -> None:
    """Refuse to serve beyond localhost without a token."""
    if host not in LOOPBACK and not token:
        raise ValueError(
            f"refusing to listen on {host} without VAULTBOT_API_TOKEN: set a token, "
            "or bind to 127.0.0.1"
        )
