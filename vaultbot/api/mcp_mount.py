"""The MCP server (vaultbot/mcp_server.py) over streamable HTTP at `/mcp`, inside the API: the
bearer token like every other route, the access file's `mcp` place, and the SDK's session
manager run by the app's lifespan (a new one each time the app starts, as the SDK requires)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.requests import Request
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from engine.models import Scope
from vaultbot.api.security import authorized
from vaultbot.api.state import ApiState

# The SDK is imported by mount_mcp (create_app), not by `import vaultbot.api`: importing it
# takes longer than the rest of the API together.
if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

PATH = "/mcp"


class McpEndpoint:
    """ASGI: refuse a request without the API token (401, as `auth` does), else hand it to
    the running session manager."""

    def __init__(self, server: MCPServer) -> None:
        self.server = server
        self.manager: StreamableHTTPSessionManager | None = None

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not authorized(Request(scope, receive)):
            refuse = JSONResponse({"detail": "missing or wrong bearer token"}, status_code=401,
                                  headers={"WWW-Authenticate": "Bearer"})
            await refuse(scope, receive, send)
            return
        if self.manager is None:  # served without the app's lifespan (a bare TestClient)
            await PlainTextResponse("MCP is not running", status_code=503)(scope, receive, send)
            return
        await self.manager.handle_request(scope, receive, send)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        from mcp.server.transport_security import TransportSecuritySettings

        # Host and Origin are checked by the API itself (HostCheck) when there is no token.
        self.server.streamable_http_app(transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=False))
        manager = self.server.session_manager
        async with manager.run():
            self.manager = manager
            try:
                yield
            finally:
                self.manager = None


def mount_mcp(app: FastAPI, place_scope: Callable[[str], Scope] | None) -> None:
    """Serve MCP at /mcp on `app` (created by create_app: `app.state.api` is set)."""
    from vaultbot.mcp_server import PLACE, VaultTools, build_server

    s: ApiState = app.state.api
    tools = VaultTools(
        asker=s.asker, retriever=s.retriever, registry=s.index.registry,
        scope=(lambda: place_scope(PLACE)) if place_scope is not None else (lambda: s.base),
        mask=s.mask, metrics=s.metrics,
    )
    endpoint = McpEndpoint(build_server(tools))
    app.add_route(PATH, endpoint, include_in_schema=False)  # type: ignore[arg-type]
    inner: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with endpoint.running(), inner(a) as state:
            yield state

    app.router.lifespan_context = lifespan
