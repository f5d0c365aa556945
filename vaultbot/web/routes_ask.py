"""The web ask page: `GET /` (the page, or the login form), `POST /login`, `POST /logout` and
the page's script.

Behind the API token: `POST /login` with the token sets a session cookie (HttpOnly,
SameSite=Strict, Secure over https) holding a signed random id, never the token; the API then
accepts that cookie instead of the bearer header for same-origin requests only
(vaultbot/api/security.py `authorized`). Without a token (loopback only) there is no login.
The answer streams from the API's own `POST /ask` (SSE); sources link to the note pages."""

from __future__ import annotations

import asyncio
import hmac
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse

from vaultbot.api.security import (
    SESSION_COOKIE,
    SESSION_DAYS,
    new_session,
    same_origin,
    session_valid,
)
from vaultbot.api.state import ApiState
from vaultbot.web.ask_page import ASK_CSP, SCRIPT, SCRIPT_PATH, ask_document, login_document
from vaultbot.web.style import SECURITY_HEADERS

router = APIRouter()

HEADERS = {**SECURITY_HEADERS, "Content-Security-Policy": ASK_CSP, "Cache-Control": "no-store",
           "X-Robots-Tag": "noindex"}
FAILED_LOGIN_DELAY = 0.5  # s: a wrong token costs the guesser time


def _page(body: str, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type="text/html; charset=utf-8",
                    headers=HEADERS)


def _home() -> RedirectResponse:
    return RedirectResponse("./", status_code=303, headers={"Cache-Control": "no-store"})


@router.get("/")
async def home(request: Request) -> Response:
    s: ApiState = request.app.state.api
    if s.token and not session_valid(request, s.token):
        return _page(login_document())
    return _page(ask_document(s.asker.vault_name, logout=bool(s.token)))


@router.get("/" + SCRIPT_PATH)
async def script() -> Response:
    # Named for its hash: cached for good, a new version is a new URL.
    return Response(SCRIPT, media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=31536000, immutable",
                             "X-Content-Type-Options": "nosniff"})


@router.post("/login")
async def login(request: Request) -> Response:
    s: ApiState = request.app.state.api
    if not same_origin(request):  # another site may not log a browser in (login CSRF)
        return _page(login_document("Log in from this page."), 403)
    if not s.token:
        return _home()
    form = parse_qs((await request.body())[:8192].decode("utf-8", "replace"))
    given = (form.get("token") or [""])[0].strip()
    if not given or not hmac.compare_digest(given.encode(), s.token.encode()):
        await asyncio.sleep(FAILED_LOGIN_DELAY)
        return _page(login_document("That is not the API token."), 401)
    response = _home()
    response.set_cookie(
        SESSION_COOKIE, new_session(s.token), max_age=SESSION_DAYS * 86400, path="/",
        httponly=True, samesite="strict", secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    if not same_origin(request):
        return _page(login_document("Log out from this page."), 403)
    response = _home()
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
