"""`vaultbot serve`: the HTTP API, the watcher with its scheduled reconcile, and each bot whose
tokens are set, in one process. SIGTERM and Ctrl-C stop it cleanly: uvicorn drains, the bots
finish the answers they are writing, then a sync in progress finishes before the process
exits, so the index is never left half-written."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)


def _slack(app: Any, api: Any) -> Callable[[], None] | None:
    """Start the Slack bot if configured; returns its stop function."""
    s = app.settings
    token = s.slack_bot_token.get_secret_value()
    if not token:
        return None
    from bot.slack import SocketModeThread, build_slack_app, mount_http

    slack_app = build_slack_app(
        app.asker, app.querylog, app.access, bot_token=token,
        signing_secret=s.slack_signing_secret.get_secret_value(), api_url=s.slack_api_url,
        on_answer=lambda answer, channel: api.state.metrics.observe(answer, channel),
    )
    if s.slack_mode == "http":
        mount_http(api, slack_app)
        print("slack: HTTP mode, events at POST /slack/events", flush=True)
        return None
    handle = SocketModeThread(slack_app, s.slack_app_token.get_secret_value()).start()
    print("slack: connected in Socket Mode", flush=True)
    return handle.stop


class _LoopThread:
    """Runs one coroutine on its own event loop in a thread; stop() cancels it and waits (the
    coroutine's cancellation handling lets answers in progress finish)."""

    def __init__(self, name: str, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._make = make
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._task = self._loop.create_task(self._make())
        try:
            self._loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("%s stopped with an error", self._thread.name)
        finally:
            self._loop.close()

    def start(self) -> _LoopThread:
        self._thread.start()
        return self

    def stop(self, timeout: float = 40.0) -> None:
        if self._thread.is_alive() and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)
        self._thread.join(timeout)


def _discord(app: Any, api: Any) -> Callable[[], None] | None:
    s = app.settings
    token = s.discord_bot_token.get_secret_value()
    if not token:
        return None
    from bot.discord_bot import build_discord_client, run_discord

    client = build_discord_client(
        app.asker, app.access, guild_id=s.discord_guild or None,
        api_url=s.discord_api_url, gateway_url=s.discord_gateway_url,
    )
    handle = _LoopThread("discord", lambda: run_discord(client, token)).start()
    print("discord: starting", flush=True)
    return handle.stop


def serve(app: Any, *, host: str, port: int, watch: bool = True) -> int:
    import uvicorn

    from sync.service import SyncService
    from vaultbot.api import check_bind, create_app

    token = app.settings.api_token.get_secret_value()
    check_bind(host, token)
    service = None
    stops: list[Callable[[], None]] = []
    lock = app.lock() if watch else None
    if lock is not None:
        lock.acquire()
    try:
        if watch:
            service = SyncService(app.indexer, debounce=app.settings.debounce_seconds,
                                  reconcile_minutes=app.settings.reconcile_minutes,
                                  watch=app.settings.watch_events)
            service.start()
            # The first sync runs beside the server so the API answers from the old index
            # while a large vault catches up.
            threading.Thread(target=service.reconcile, name="initial-sync", daemon=True).start()
        generator = app.generator
        api = create_app(
            asker=app.asker, retriever=app.retriever, index=app.index, querylog=app.querylog,
            token=token, llm_health=generator.health if generator is not None else None,
            base_scope=app.access.base_scope(),
        )
        for start in (_slack, _discord):
            stop = start(app, api)
            if stop is not None:
                stops.append(stop)
        server = uvicorn.Server(uvicorn.Config(api, host=host, port=port, log_level="warning"))
        # uvicorn handles SIGINT/SIGTERM while it runs, then re-raises the signal with the
        # handlers it found installed: these keep that from killing us before the cleanup below.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
        print(f"vaultbot serving on http://{host}:{port}", flush=True)
        server.run()
    finally:
        for stop in reversed(stops):
            try:
                stop()
            except Exception:
                log.exception("stopping a bot failed")
        if service is not None:
            service.stop()
        if lock is not None:
            lock.release()
    print("stopped", flush=True)
    return 0
