"""Who may call the API: the Host check against DNS rebinding, the bearer token, and the rule
that nothing is served beyond loopback without a token."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

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


def _matches(given: str, secret: str) -> bool:
    return hmac.compare_digest(given.encode(), secret.encode())


def authorized(request: Request) -> bool:
    """The request carries the bearer token, or none is needed."""
    token = request.app.state.api.token
    if not token:
        return True
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else ""
    if given:
        return _matches(given, token)
    # The web ask page: its session cookie instead, only from a page of this origin (CSRF).
    return session_valid(request, token) and same_origin(request)


# The web ask page's session (vaultbot/web/routes_ask.py): a signed random id in an HttpOnly,
# SameSite=Strict cookie, never the token itself; its key derives from the token, so a new
# token ends every session.
SESSION_COOKIE = "vaultbot_session"
SESSION_DAYS = 7


def _session_signer(token: str):  # noqa: ANN202 (an itsdangerous TimestampSigner)
    from itsdangerous import TimestampSigner

    key = hmac.new(token.encode(), b"vaultbot.web-session", hashlib.sha256).digest()
    return TimestampSigner(key, salt=b"vaultbot.session", digest_method=hashlib.sha256)


def new_session(token: str) -> str:
    return _session_signer(token).sign(secrets.token_urlsafe(18)).decode()


def session_valid(request: Request, token: str) -> bool:
    from itsdangerous import BadSignature

    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not (token and cookie):
        return False
    try:
        _session_signer(token).unsign(cookie, max_age=SESSION_DAYS * 86400)
    except BadSignature:
        return False
    return True


def same_origin(request: Request) -> bool:
    """The request comes from a page of this very origin: the browser says so in
    Sec-Fetch-Site, or (an older browser) its Origin names this Host. A form or fetch from
    another site carries neither, so a cookie alone never authorises it."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if not origin:
        return False
    return urlsplit(origin).netloc.lower() == request.headers.get("host", "").lower()


async def auth(request: Request) -> None:
    """The dependency of every route but /health."""
    if not authorized(request):
        raise HTTPException(401, "missing or wrong bearer token",
                            headers={"WWW-Authenticate": "Bearer"})


OWNER_HEADER = "X-Vaultbot-Owner"


def is_owner(request: Request) -> bool:
    """The request comes from the vault's owner at this machine's terminal: it carries the key
    `serve` wrote into its address file in the data dir (owner-only). Whoever can read that
    file can read the index itself, so the key grants nothing more: the CLI's view (its own
    masking, `--private`) through the running server."""
    key = request.app.state.api.owner_key
    given = request.headers.get(OWNER_HEADER, "")
    return bool(key) and bool(given) and _matches(given, key)


def check_bind(host: str, token: str) -> None:
    """Refuse to serve beyond localhost without a token."""
    if host not in LOOPBACK and not token:
        raise ValueError(
            f"refusing to listen on {host} without VAULTBOT_API_TOKEN: set a token, "
            "or bind to 127.0.0.1"
        )
