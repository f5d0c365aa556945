"""`GET /search`: the nearest chunks, as the retriever ranks them."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from engine.mask import default_masker
from vaultbot.api.ask import owner_view
from vaultbot.api.security import auth
from vaultbot.api.state import ApiState, state

router = APIRouter(dependencies=[Depends(auth)])


@router.get("/search")
async def search(
    request: Request,
    q: str = Query(min_length=1, max_length=2000),
    k: int = Query(8, ge=1, le=50),
    mode: Literal["dense", "lexical", "hybrid"] = "hybrid",
    folder: list[str] = Query(default_factory=list),
    tag: list[str] = Query(default_factory=list),
    where: list[str] = Query(default_factory=list, description="KEY=VALUE, frontmatter"),
    private: bool = Query(False, description="owner only (the CLI through serve)"),
    mask: bool | None = Query(None, description="owner only (the CLI through serve)"),
    s: ApiState = Depends(state),
) -> Any:
    t0 = time.perf_counter()
    pairs = dict(w.split("=", 1) for w in where if "=" in w)
    scope, masked, _ = owner_view(request, s, folder, tag, pairs, private, mask)
    hits = await asyncio.to_thread(s.retriever.search, q, k, scope=scope, mode=mode)
    if masked:
        hits = default_masker().mask_hits(hits)
    return {
        "results": [
            {"path": h.note_path, "title": h.title, "heading": " > ".join(h.heading_path),
             "page": h.page, "score": h.score, "sources": list(h.sources), "text": h.text}
            for h in hits
        ],
        "ms": round((time.perf_counter() - t0) * 1000, 2),
    }
