"""What every route shares, built once by `create_app` and kept on `app.state.api`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request

from bot.access import AccessDenied
from engine.answer import Asker
from engine.index import Index
from engine.models import Scope
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from vaultbot.metrics import Metrics


@dataclass
class ApiState:
    asker: Asker
    retriever: Retriever
    index: Index
    querylog: QueryLog
    token: str = ""
    llm_health: Callable[[], Awaitable[dict[str, Any]]] | None = None
    base: Scope = field(default_factory=Scope)
    mask: bool = True
    keepalive: float = 15.0
    sync_failure: Callable[[], dict[str, Any] | None] | None = None
    metrics: Metrics = field(default_factory=Metrics)
    owner_key: str = ""
    # The note pages (vaultbot/web/routes_note.py): the vault the notes are read from, the link
    # signer, and the access file's base scope as it is now (a link is re-checked against it).
    vault: Path | None = None
    signer: Any = None  # vaultbot.web.links.LinkSigner; None: no note pages
    rules: Callable[[], Scope] | None = None
    pages: Any = None  # vaultbot.web.pdf_page.PageCache, made on first use

    def base_now(self, owner: bool = False) -> Scope:
        """The base scope as the access file is now (`rules`, read per request), else `base`.
        403 while the file does not load (fail closed): its error is told to the owner only."""
        if self.rules is None:
            return self.base
        try:
            return self.rules()
        except Exception as exc:  # AccessBroken (bot/access_file.py), or anything: refuse
            detail = str(exc) if isinstance(exc, AccessDenied) else "access rules unreadable"
            if owner:
                detail += f" ({getattr(exc, 'error', type(exc).__name__)})"
            raise HTTPException(403, detail) from exc

    def scope_for(self, folders: list[str], tags: list[str], where: dict[str, str]) -> Scope:
        # Callers can narrow the base scope, never widen it.
        base = self.base_now()
        if not (folders or tags or where):
            return base
        scope = base.narrowed(tuple(folders), tuple(tags))
        if scope is None:
            raise HTTPException(403, "those folders or tags are outside what this API may show")
        return replace(scope, include_private=False,
                       frontmatter=tuple(sorted({**dict(base.frontmatter), **where}.items())))


def state(request: Request) -> ApiState:
    """The dependency that hands a route the shared state."""
    return request.app.state.api
