"""`vaultbot serve`: the HTTP API, the watcher with its scheduled reconcile, and each bot whose
tokens are set, in one process. SIGTERM and Ctrl-C stop it cleanly: uvicorn drains, the bots
finish the answers they are writing, then a sync in progress finishes before the process
exits, so the index is never left half-written."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from engine.registry import NOTE_EVENTS_DAYS
from vaultbot.app import App  # the CLI imports this module only once it has built an App

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

# Retention is checked hourly: the log's limit is in days and the cache's in hours, so nothing
# outlives either by more than an hour, and a purge is two small deletes.
PURGE_HOURS = 1.0


def _slack(app: App, api: FastAPI) -> Callable[[], None] | None:
    """Start the Slack bot if configured; returns its stop function."""
    s = app.settings
    token = s.slack_bot_token.get_secret_value()
    if not token:
        return None
    from bot.slack import SocketModeThread, build_slack_app, mount_http

    def status() -> dict[str, Any]:  # App Home's index status (run off the bot's event loop)
        registry = app.index.registry
        last = registry.last_run()
        gen = app.generator
        health = asyncio.run(gen.health()) if gen is not None else {"reachable": False}
        return {"notes": app.index.status()["notes"],
                "last_sync": last["finished_at"] if last else None,
                "skipped": len(registry.skipped()), "ollama": bool(health["reachable"])}

    slack_app = build_slack_app(
        app.asker, app.querylog, app.access, bot_token=token,  # follows the access file
        signing_secret=s.slack_signing_secret.get_secret_value(), api_url=s.slack_api_url,
        on_answer=app.metrics.observe,
        mask=s.mask_for("slack"), max_turns=s.max_turns, status=status,
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


def _discord(app: App, api: FastAPI) -> Callable[[], None] | None:
    s = app.settings
    token = s.discord_bot_token.get_secret_value()
    if not token:
        return None
    from bot.discord_bot import COMMANDS, build_discord_client, run_discord

    client = build_discord_client(
        app.asker, app.access, guild_id=s.discord_guild or None,
        api_url=s.discord_api_url, gateway_url=s.discord_gateway_url, mask=s.mask_for("discord"),
        max_turns=s.max_turns, on_answer=app.metrics.observe,  # counted in /metrics too
        commands=COMMANDS,  # /ask, /search and the "Ask vaultbot" message command
    )
    handle = _LoopThread("discord", lambda: run_discord(client, token)).start()
    print("discord: starting", flush=True)
    return handle.stop


def purge_expired(app: App, now: float | None = None) -> dict[str, int]:
    """Apply the retention settings: delete query-log rows older than VAULTBOT_QUERYLOG_DAYS,
    cached answers older than VAULTBOT_CACHE_TTL_HOURS, superseded chunk text older than
    VAULTBOT_KEEP_VERSIONS_DAYS and note events (moves, deletions) older than
    NOTE_EVENTS_DAYS. Returns what was deleted; "chunk_versions" and "note_events" only when
    some were (`vaultbot purge --json` keeps printing the two keys it always printed)."""
    now = time.time() if now is None else now
    counts = {"query_log": app.querylog.purge(app.settings.querylog_days * 86400, now=now),
              "answer_cache": app.answer_cache.purge_expired(now=now)}
    versions = app.index.registry.purge_versions(app.settings.keep_versions_days * 86400, now=now)
    if versions:
        counts["chunk_versions"] = versions
    events = app.index.registry.purge_note_events(NOTE_EVENTS_DAYS * 86400, now=now)
    if events:
        counts["note_events"] = events
    _flush_wal(app.index.registry)
    return counts


def purge_all(app: App) -> dict[str, int]:
    """Delete the whole query log and answer cache. The embedding cache stays: it holds
    vectors of note text, nothing about questions; so do superseded chunks (note text, for the
    links already handed out), until VAULTBOT_KEEP_VERSIONS_DAYS (docs/security.md)."""
    counts = {"query_log": app.querylog.clear(), "answer_cache": app.answer_cache.clear()}
    _flush_wal(app.index.registry)
    return counts


def _flush_wal(registry: Any) -> None:
    """SQLite: secure_delete zeroes the freed rows in the WAL, but the database file keeps
    them until a checkpoint and the WAL keeps the rows' older frames until it is rewritten;
    a truncating checkpoint settles both."""
    if registry.engine.dialect.name == "sqlite":
        with registry.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def start_purge_schedule(app: App, clock: Callable[[], float] = time.time) -> Any:
    """A started BackgroundScheduler whose job "purge" runs `purge_expired` at once (in the
    scheduler's thread) and then every PURGE_HOURS; shut it down when the process stops."""
    from apscheduler.schedulers.background import BackgroundScheduler

    # Built here: the scheduler's thread must not race the main thread to create them.
    _ = (app.querylog, app.answer_cache)

    def purge() -> None:
        try:
            counts = purge_expired(app, now=clock())
        except Exception:
            log.exception("scheduled purge failed")
            return
        if any(counts.values()):
            log.info("purged %d query-log rows, %d cached answers and %d superseded chunks",
                     counts["query_log"], counts["answer_cache"], counts.get("chunk_versions", 0))

    scheduler = BackgroundScheduler(daemon=True)
    scheduler.add_job(purge, "interval", hours=PURGE_HOURS, id="purge", max_instances=1,
                      coalesce=True, next_run_time=datetime.now(UTC))
    scheduler.start()
    return scheduler


def build_api(app: App, *, host: str, token: str, sync_failure: Callable[[], Any] | None = None,
              owner_key: str = "") -> FastAPI:
    """serve's HTTP app: the API, the web pages, /v1 and /mcp, all under `app.access` as the
    file is now (`rules` and `place_scope` are read per request: an edit applies at once, a
    broken file refuses; a folder made private after a link was sent closes the link)."""
    from vaultbot.api import create_app, local_hosts

    generator = app.generator
    access = app.access
    return create_app(
        asker=app.asker, retriever=app.retriever, index=app.index, querylog=app.querylog,
        token=token, llm_health=generator.health if generator is not None else None,
        base_scope=access.base_scope(), mask=app.settings.mask_for("api"),
        # Without a token only loopback is bound, and only loopback names are answered
        # (DNS rebinding); Slack's events carry their own signature.
        allowed_hosts=None if token else local_hosts(host) | page_hosts(
            app.settings.public_url),
        host_check_exempt=("/slack/events",),
        sync_failure=sync_failure, metrics=app.metrics, owner_key=owner_key,
        vault=app.settings.vault, signer=app.link_signer, rules=access.base_scope,
        place_scope=access.place_scope,  # /v1 and /mcp (docs/clients.md)
    )


def page_hosts(public_url: str) -> set[str]:
    """The Host names of VAULTBOT_PUBLIC_URL, answered besides loopback's (a Tailscale Serve
    or a local proxy forwards with the public name as Host)."""
    from urllib.parse import urlsplit

    from vaultbot.api import host_name

    netloc = urlsplit(public_url).netloc if public_url else ""
    return {host_name(netloc.rsplit("@", 1)[-1])} if netloc else set()


def _warm(app: App) -> None:
    """Models and graphs loaded beside the server (App.warm): a question that comes first
    waits for the same loads, no longer. A failure here is the first question's to report."""
    try:
        log.info("warm-up took %s s", app.warm())
    except Exception as exc:  # noqa: BLE001 - logged; the question path raises it properly
        log.warning("warm-up failed (%s); the first question will load what it needs", exc)


def serve(app: App, *, host: str, port: int, watch: bool = True) -> int:
    import uvicorn

    from vaultbot.api import check_bind
    from vaultbot.client import new_owner_key, remove_address, write_address

    token = app.settings.api_token.get_secret_value()
    check_bind(host, token)
    service = None
    purger = None
    stops: list[Callable[[], None]] = []
    lock = app.lock() if watch else None
    if lock is not None:
        lock.acquire()
    try:
        if watch:
            service = app.sync_service()
            service.start()
            # The first sync runs beside the server so the API answers from the old index
            # while a large vault catches up.
            threading.Thread(target=service.reconcile, name="initial-sync", daemon=True).start()
        purger = start_purge_schedule(app)  # with or without --no-watch: the log fills either way
        threading.Thread(target=_warm, args=(app,), name="warm-up", daemon=True).start()
        # Citations link to the note pages served here (the port is fixed once bound, below).
        app.page_base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
        api = build_api(app, host=host, token=token,
                        sync_failure=service.failure if service is not None else None,
                        owner_key=(owner_key := new_owner_key()))
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

        def announce() -> None:
            # Once listening, tell `vaultbot ask`/`search` where (vaultbot/client.py).
            while not (server.started or server.should_exit):
                time.sleep(0.02)
            if server.started and not server.should_exit:
                # The port bound, which --port 0 leaves to the system.
                bound = [s.getsockname()[1] for srv in server.servers for s in srv.sockets]
                if bound:
                    app.page_base = app.page_base.rsplit(":", 1)[0] + f":{bound[0]}"
                write_address(app.data_dir, host=host, port=bound[0] if bound else port,
                              token=bool(token), key=owner_key)

        threading.Thread(target=announce, name="announce", daemon=True).start()
        server.run()
    finally:
        remove_address(app.data_dir)
        for stop in reversed(stops):
            try:
                stop()
            except Exception:
                log.exception("stopping a bot failed")
        if purger is not None:
            purger.shutdown(wait=True)
        if service is not None:
            service.stop()
        if lock is not None:
            lock.release()
    print("stopped", flush=True)
    return 0
