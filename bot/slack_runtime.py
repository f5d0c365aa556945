"""Running the Slack app: the Web API client's retries, HTTP mode (mounted on the FastAPI app
at /slack/events, requests verified by the signing secret), the token check at start-up, and
Socket Mode on its own event loop in a thread (`SocketModeThread`, what `vaultbot serve`
starts)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)

from bot.slack_stream import error_code as _error_code

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

log = logging.getLogger("bot.slack")


def retry_handlers() -> list[AsyncRetryHandler]:
    """slack_sdk's retries for every Web API call: a 429 waits its Retry-After (a busy channel
    gets rate limited while answers stream), a dropped connection is tried again."""
    return [AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncConnectionErrorRetryHandler(max_retry_count=2)]


def mount_http(fastapi_app: FastAPI, slack_app: AsyncApp, path: str = "/slack/events") -> None:
    """Serve Slack's Events API and interactivity (both point at `path`) from the FastAPI app.
    Requests are checked against the signing secret (401 if the signature is wrong or the
    timestamp more than 5 minutes off), not against the API's bearer token."""
    from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler

    if not getattr(slack_app, "verifies_requests", False):
        raise ValueError("Slack HTTP mode needs SLACK_SIGNING_SECRET (requests must be verified)")
    handler = AsyncSlackRequestHandler(slack_app)

    # (Request is imported at module level: FastAPI resolves this annotation by name.)
    async def slack_events(req: Request) -> Any:
        return await handler.handle(req)

    fastapi_app.add_api_route(path, slack_events, methods=["POST"], include_in_schema=False)


# --------------------------------------------------------------------------- Socket Mode


class SlackConfigError(RuntimeError):
    """Slack refused a token: the message says which one and why (safe to print)."""


async def check_tokens(slack_app: AsyncApp, app_token: str | None = None) -> dict[str, Any]:
    """Ask Slack whether the bot token (and the app token, if given) work, so a bad token
    fails at startup with a clear message instead of in every answer. Returns `auth.test`."""
    try:
        auth = await slack_app.client.auth_test()
    except SlackApiError as exc:
        raise SlackConfigError(f"Slack refused SLACK_BOT_TOKEN: {_error_code(exc)}") from None
    if app_token is not None:
        if not app_token.startswith("xapp-"):
            raise SlackConfigError("SLACK_APP_TOKEN must be an app-level token (xapp-...)")
        try:
            await slack_app.client.apps_connections_open(app_token=app_token)
        except SlackApiError as exc:
            raise SlackConfigError(f"Slack refused SLACK_APP_TOKEN: {_error_code(exc)}") from None
    return dict(auth.data) if isinstance(auth.data, dict) else {}


async def run_socket_mode(
    slack_app: AsyncApp,
    app_token: str,
    stop: asyncio.Event | None = None,
    on_connected: Callable[[], None] | None = None,
) -> None:
    """Check the tokens, connect over Socket Mode and serve until `stop` is set or the task is
    cancelled; then disconnect and let answers in progress finish (up to 30 s). Raises
    SlackConfigError for a token Slack refuses."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    if not app_token:
        raise SlackConfigError("SLACK_APP_TOKEN (xapp-...) is required for Socket Mode")
    await check_tokens(slack_app, app_token)
    handler: AsyncSocketModeHandler = AsyncSocketModeHandler(slack_app, app_token)
    try:
        await handler.connect_async()
        log.info("slack: connected over Socket Mode")
        if on_connected is not None:
            on_connected()
        await (stop or asyncio.Event()).wait()
    finally:
        with contextlib.suppress(Exception):
            await handler.close_async()
        bot = getattr(slack_app, "bot", None)
        if bot is not None and hasattr(bot, "drain"):
            await bot.drain()
        log.info("slack: Socket Mode stopped")


class SocketModeThread:
    """Socket Mode on its own event loop in a daemon thread, for a synchronous caller:
    `start()` returns once connected (or raises SlackConfigError), `stop()` disconnects,
    waits for answers in progress and joins."""

    def __init__(self, slack_app: AsyncApp, app_token: str) -> None:
        self.slack_app = slack_app
        self.app_token = app_token
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> SocketModeThread:
        self._thread = threading.Thread(target=self._run, name="slack-socket-mode", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop(timeout=5)
            raise TimeoutError("Slack Socket Mode did not connect in time")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await run_socket_mode(self.slack_app, self.app_token, self._stop,
                                  on_connected=self._ready.set)

        try:
            asyncio.run(main())
        except BaseException as exc:  # start() raises it if we never connected
            if not self._ready.is_set():
                self._error = exc
            else:
                log.exception("slack: Socket Mode failed")
        finally:
            self._ready.set()

    def stop(self, timeout: float = 40.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
