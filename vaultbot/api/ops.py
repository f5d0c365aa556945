"""What operators use: `GET /health`, `GET /metrics` (Prometheus), and the API's own schema
with its two viewers (`/openapi.json`, `/docs`, `/redoc`), all behind the token but /health."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from vaultbot.api.security import auth, authorized
from vaultbot.api.state import ApiState, state

router = APIRouter()

REDOC_JS = "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"


def _script_json(value: Any) -> str:
    """JSON that cannot end the <script> element it is written into."""
    return (json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("&", "\\u0026"))


@router.get("/openapi.json", include_in_schema=False, dependencies=[Depends(auth)])
async def openapi(request: Request) -> Any:
    return JSONResponse(request.app.openapi())


# The viewers carry the schema in the page: a browser that got the page (with the token, from
# a proxy or an extension) fetches /openapi.json without the Authorization header, so a
# viewer pointed at the URL would show a 401 behind a token.
@router.get("/docs", include_in_schema=False, dependencies=[Depends(auth)])
async def docs(request: Request) -> Any:
    return get_swagger_ui_html(openapi_url="", title="vaultbot API",
                               swagger_ui_parameters={"spec": request.app.openapi()})


@router.get("/redoc", include_in_schema=False, dependencies=[Depends(auth)])
async def redoc(request: Request) -> Any:
    spec = _script_json(request.app.openapi())
    return HTMLResponse(
        "<!DOCTYPE html>\n<html><head><title>vaultbot API</title><meta charset=\"utf-8\"/>"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<style>body { margin: 0; padding: 0; }</style></head>\n<body>"
        "<noscript>ReDoc requires Javascript to function.</noscript><div id=\"redoc\"></div>\n"
        f"<script src=\"{REDOC_JS}\"></script>\n"
        f"<script>Redoc.init({spec}, {{}}, document.getElementById(\"redoc\"))</script>\n"
        "</body></html>\n")


@router.get("/health")
async def health(request: Request, s: ApiState = Depends(state)) -> Any:
    status = await asyncio.to_thread(s.index.status)
    failing = s.sync_failure() if s.sync_failure is not None else None
    # A failing sync serves a stale index: a probe should see that, not only the counts.
    ok = status["vectors"] == status["chunks"] and failing is None
    body: dict[str, Any] = {"ok": ok}
    # The detail (hosts, models, counts) only for the token's holder: a probe, or any local
    # process when there is no token, learns nothing but ok / not ok.
    if s.token and authorized(request):
        llm = (await s.llm_health() if s.llm_health is not None
               else {"reachable": False, "disabled": True})
        body |= {"index": status, "ollama": llm, "sync_failure": failing}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/metrics", dependencies=[Depends(auth)])
async def prometheus(s: ApiState = Depends(state)) -> Any:
    status = await asyncio.to_thread(s.index.status)
    s.metrics.notes.set(status["notes"])
    s.metrics.chunks.set(status["chunks"])
    s.metrics.vectors.set(status["vectors"])
    return PlainTextResponse(generate_latest(s.metrics.registry), media_type=CONTENT_TYPE_LATEST)
