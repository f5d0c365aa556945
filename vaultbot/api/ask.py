"""`POST /ask`: an answer as Server-Sent Events (`sources`, `quick`, `queued`, `token`, `error`,
`done`) or as one JSON object."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from engine.answer import Answer, AskOptions, Done, Failed, Queued, Quick, Sources, Token
from engine.models import Scope
from engine.prompt import Turn
from vaultbot.api.security import auth, is_owner
from vaultbot.api.sse import keep_alive, sse
from vaultbot.api.state import ApiState, state
from vaultbot.scopes import terminal_scope

log = logging.getLogger("vaultbot.api")

router = APIRouter(dependencies=[Depends(auth)])


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
    private: bool = Field(False, description="owner only (the CLI through serve)")
    mask: bool | None = Field(None, description="owner only (the CLI through serve)")


def owner_view(request: Request, s: ApiState, folders: list[str], tags: list[str],
               where: dict[str, str], private: bool, mask: bool | None
               ) -> tuple[Scope, bool, str]:
    """(scope, mask, channel) for this request: the CLI's own view for the owner (the same
    scope and masking as its local path), the API's for everyone else."""
    if is_owner(request):
        # --private needs no rules, as on the CLI's own path: a broken file does not stop it.
        base = None if private else s.base_now(owner=True)
        scope = terminal_scope(base, folders, tags, tuple(where.items()), private)
        return scope, s.mask if mask is None else mask, "cli"
    if private or mask is not None:
        raise HTTPException(403, "private and mask are for the vault's owner only")
    return s.scope_for(folders, tags, where), s.mask, "api"


def _terminal(citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Citations as the CLI's own path makes them: the terminal links to notes as it always
    does (obsidian://, or VAULTBOT_NOTE_URL), not to serve's note pages."""
    return [c | {"page_url": None} for c in citations]


@router.post("/ask")
async def ask(body: AskIn, request: Request, s: ApiState = Depends(state)) -> Any:
    scope, mask, channel = owner_view(request, s, body.folders, body.tags, body.where,
                                      body.private, body.mask)
    terminal = channel == "cli"

    def answer_json(answer: Answer) -> dict[str, Any]:
        data = answer.to_json()
        return data | {"citations": _terminal(data["citations"])} if terminal else data
    opts = AskOptions(
        scope=scope, deep=body.deep, use_cache=body.use_cache,
        history=[Turn(t.question, t.answer) for t in body.history], channel=channel, mask=mask,
        user="cli" if channel == "cli" else None,  # the owner's CLI through serve; else unknown
    )
    if not body.stream:
        answer = await s.asker.ask(body.question, opts)
        s.metrics.observe(answer, channel)
        return JSONResponse(answer_json(answer))

    async def events() -> AsyncIterator[bytes]:
        try:
            async for event in s.asker.stream(body.question, opts):
                if isinstance(event, Sources):
                    sources = [c.to_json() for c in event.citations]
                    yield sse("sources", _terminal(sources) if terminal else sources)
                elif isinstance(event, Quick):  # shown until the first token replaces it
                    yield sse("quick", {"text": event.text,
                                        "citations": [c.n for c in event.citations]})
                elif isinstance(event, Token):
                    yield sse("token", {"text": event.text})
                elif isinstance(event, Failed):
                    yield sse("error", {"message": event.message})
                elif isinstance(event, Queued):
                    yield sse("queued", {"position": event.position})
                elif isinstance(event, Done):
                    s.metrics.observe(event.answer, channel)
                    yield sse("done", answer_json(event.answer))
        except Exception as exc:  # the client gets a message, the log the traceback
            log.exception("ask failed")
            yield sse("error", {"message": f"internal error: {type(exc).__name__}"})

    return StreamingResponse(keep_alive(events(), s.keepalive), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
