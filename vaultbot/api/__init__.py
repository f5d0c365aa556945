"""The HTTP API (FastAPI): `POST /ask` (SSE or JSON), `GET /search`, `GET /health`,
`GET /metrics` (Prometheus), `POST /feedback`. One module per concern: `security` (Host check,
token, bind rule), `sse`, `state` (what the routes share), and a router each for `ask`,
`search`, `feedback` and `ops` (health, metrics, the schema and its viewers)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from engine.answer import Asker
from engine.index import Index
from engine.models import Scope
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from vaultbot.api import ask, feedback, openai, ops, search
from vaultbot.api.ask import AskIn, TurnIn
from vaultbot.api.feedback import FeedbackIn
from vaultbot.api.mcp_mount import mount_mcp
from vaultbot.api.security import (
    LOOPBACK,
    OWNER_HEADER,
    HostCheck,
    auth,
    authorized,
    check_bind,
    host_name,
    local_hosts,
)
from vaultbot.api.sse import KEEP_ALIVE, keep_alive, sse
from vaultbot.api.state import ApiState
from vaultbot.metrics import Metrics

__all__ = [
    "KEEP_ALIVE", "LOOPBACK", "OWNER_HEADER", "ApiState", "AskIn", "FeedbackIn", "HostCheck",
    "TurnIn", "auth", "authorized", "check_bind", "create_app", "host_name", "keep_alive",
    "local_hosts", "sse",
]


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
    owner_key: str = "",
    vault: Path | None = None,
    signer: Any = None,
    rules: Callable[[], Scope] | None = None,
    place_scope: Callable[[str], Scope] | None = None,
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
    `metrics`: the process's counters (App.metrics), shared with the bots; a fresh set if None.
    `owner_key`: requests carrying it (OWNER_HEADER) get the CLI's view: `serve` writes it to
    its address file in the data dir for `vaultbot ask`/`search` (security.is_owner).
    `vault`, `signer` (a web.links.LinkSigner), `rules` (the access file's base scope now):
    the note pages `/n/<token>` (vaultbot/web/routes_note.py); without a signer they refuse."""
    # The schema and its viewers are routes (ops.py), behind the token like the rest.
    app = FastAPI(title="vaultbot", version="0.1.0", openapi_url=None, docs_url=None,
                  redoc_url=None)
    if allowed_hosts is not None:
        app.add_middleware(HostCheck, allowed=allowed_hosts, exempt=host_check_exempt)
    metrics = metrics if metrics is not None else Metrics()
    app.state.metrics = metrics
    app.state.api = ApiState(
        asker=asker, retriever=retriever, index=index, querylog=querylog, token=token,
        llm_health=llm_health, base=base_scope or Scope(), mask=mask, keepalive=keepalive,
        sync_failure=sync_failure, metrics=metrics, owner_key=owner_key,
        vault=vault, signer=signer, rules=rules,
    )
    for module in (ask, search, ops, feedback):  # the schema lists paths in this order
        app.include_router(module.router)
    from vaultbot.web import routes_ask, routes_note  # the web front end: its own auth

    for module in (routes_note, routes_ask):
        app.include_router(module.router, include_in_schema=False)
    # AI clients: `place_scope("openai" | "mcp")` is Access.place_scope; None: the base scope.
    app.state.place_scope = place_scope
    app.include_router(openai.router)
    mount_mcp(app, place_scope)  # /mcp, docs/clients.md
    return app
