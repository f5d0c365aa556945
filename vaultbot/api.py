"""The HTTP API (FastAPI): `POST /ask` (SSE or JSON), `GET /search`, `GET /health`,
`GET /metrics` (Prometheus), `POST /feedback`."""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, Field

from engine.answer import Answer, Asker, AskOptions, Done, Failed, Sources, Token
from engine.index import Index
from engine.models import Scope
from engine.prompt import Turn
from engine.querylog import QueryLog
from engine.retrieve import Retriever

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.questions = Counter("vaultbot_questions_total", "Questions answered",
                                 ["mode", "cached", "channel"], registry=self.registry)
        self.errors = Counter("vaultbot_answer_errors_total", "Answers that ended in an error",
                              registry=self.registry)
        self.latency = Histogram("vaultbot_answer_seconds", "Time to a complete answer",
                                 ["mode"], registry=self.registry,
                                 buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120))
        self.first_token = Histogram("vaultbot_first_token_seconds", "Time to the first token",
                                     registry=self.registry,
                                     buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
        self.invalid_citations = Counter("vaultbot_invalid_citations_total",
                                         "Citation markers removed because they matched no source",
                                         registry=self.registry)
        self.notes = Gauge("vaultbot_index_notes", "Notes in the registry", registry=self.registry)
        self.chunks = Gauge("vaultbot_index_chunks", "Chunks in the registry", registry=self.registry)
        self.vectors = Gauge("vaultbot_index_vectors", "Vectors in the store", registry=self.registry)

    def observe(self, answer: Answer, channel: str) -> None:
        self.questions.labels(answer.mode, str(answer.cached or "none"), channel).inc()
        self.latency.labels(answer.mode).observe(answer.timings.get("total", 0) / 1000)
        if "first_token" in answer.timings:
            self.first_token.observe(answer.timings["first_token"] / 1000)
        if answer.invalid_citations:
            self.invalid_citations.inc(answer.invalid_citations)
        if answer.error:
            self.errors.inc()


def sse(event: str, data: Any) -> bytes:
    payload = json.dumps(data, ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()


def create_app(
    *,
    asker: Asker,
    retriever: Retriever,
    index: Index,
    querylog: QueryLog,
    token: str = "",
    llm_health: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    base_scope: Scope | None = None,
) -> FastAPI:
    """`token`: when set, every route but /health needs `Authorization: Bearer <token>`.
    `base_scope`: what API callers may see at most (private notes are always excluded)."""
    app = FastAPI(title="vaultbot", version="0.1.0")
    metrics = Metrics()
    app.state.metrics = metrics
    base = base_scope or Scope()

    async def auth(request: Request) -> None:
        if not token:
            return
        header = request.headers.get("authorization", "")
        given = header[7:] if header.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

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
            history=[Turn(t.question, t.answer) for t in body.history], channel="api",
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
                    elif isinstance(event, Done):
                        metrics.observe(event.answer, "api")
                        yield sse("done", event.answer.to_json())
            except Exception as exc:  # the client gets a message, the log the traceback
                log.exception("ask failed")
                yield sse("error", {"message": f"internal error: {type(exc).__name__}"})

        return StreamingResponse(events(), media_type="text/event-stream",
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
        return {
            "results": [
                {"path": h.note_path, "title": h.title, "heading": " > ".join(h.heading_path),
                 "page": h.page, "score": h.score, "sources": list(h.sources), "text": h.text}
                for h in hits
            ],
            "ms": round((time.perf_counter() - t0) * 1000, 2),
        }

    @app.get("/health")
    async def health() -> Any:
        import asyncio

        status = await asyncio.to_thread(index.status)
        llm = await llm_health() if llm_health is not None else {"reachable": False, "disabled": True}
        ok = status["vectors"] == status["chunks"]
        return JSONResponse({"ok": ok, "index": status, "ollama": llm}, status_code=200 if ok else 503)

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
