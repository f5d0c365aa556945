"""`vaultbot serve` as a real process: it syncs the vault, serves the API, and answers a Slack
@mention end to end (HTTP mode with a signed request, and Socket Mode), then stops cleanly on
SIGTERM. Slack and Ollama are local fakes; everything else is the real thing."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from corpus import ROOT, copy_vault
from fakes.slack_api import APP_TOKEN, BOT_TOKEN, FakeSlack
from helpers import free_port

SECRET = "serve-test-signing-secret"
ANSWER = "The launch is on December 4 [1]."





def _wait(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.communicate()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        yield slack


def _serve(tmp_path: Path, port: int, extra_env: dict[str, str]) -> subprocess.Popen:
    vault = copy_vault("example", tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_"))}
    env.update({"PYTHONPATH": str(ROOT), "VAULTBOT_RECONCILE_MINUTES": "0", **extra_env})
    return subprocess.Popen(
        [sys.executable, "-m", "vaultbot.cli", "serve", "--port", str(port), "--vault", str(vault),
         "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _indexed(url: str) -> bool:
    # Without a token /health says only ok: the launch note being found means the sync is done.
    try:
        ok = httpx.get(f"{url}/health", timeout=2).json()["ok"]
        found = httpx.get(f"{url}/search", params={"q": "launch", "mode": "lexical"}, timeout=5)
        paths = {r["path"] for r in found.json()["results"]}
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return ok and "Projects/Vaultbot launch.md" in paths


def _mention(ts: str) -> dict:
    return {
        "token": "x", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": "Ev0001", "event_time": int(time.time()),
        "authorizations": [{"team_id": "T1", "user_id": "UBOT", "is_bot": True}],
        "event": {"type": "app_mention", "user": "U1", "text": "<@UBOT> When is the launch?",
                  "ts": ts, "channel": "C1", "channel_type": "channel", "team": "T1",
                  "event_ts": ts},
    }


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in out
    return out


def _answered(slack: FakeSlack, ts: str) -> list:
    return [m for m in slack.bot_messages("C1", ts) if "December 4" in json.dumps(m)]


def test_serve_answers_signed_slack_mention_http_mode(tmp_path: Path, fake_slack: FakeSlack, fake_ollama) -> None:
    fake_ollama.responder = lambda *a: ANSWER
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port, {
        "VAULTBOT_OLLAMA_URL": fake_ollama.url, "VAULTBOT_SLACK_MODE": "http",
        "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET,
        "VAULTBOT_SLACK_API_URL": fake_slack.api_url,
    })
    try:
        _wait(lambda: _indexed(url), 120, "the initial sync", proc)
        ts = fake_slack.new_ts()
        body = json.dumps(_mention(ts)).encode()
        stamp = str(int(time.time()))
        sig = "v0=" + hmac.new(SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
        r = httpx.post(f"{url}/slack/events", content=body, timeout=10, headers={
            "Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": sig})
        assert r.status_code == 200
        messages = _wait(lambda: _answered(fake_slack, ts), 60, "the answer in the thread", proc)
        assert "Vaultbot launch" in json.dumps(messages[-1]) or "Weekly sync" in json.dumps(messages[-1])
        # A forged request is refused and answered by nothing.
        bad = httpx.post(f"{url}/slack/events", content=body, timeout=10, headers={
            "Content-Type": "application/json", "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": "v0=00"})
        assert bad.status_code == 401
    finally:
        out = _stop(proc) if proc.poll() is None else proc.communicate()[0]
    assert "slack: HTTP mode" in out


async def test_serve_answers_slack_socket_mode_and_discord_slash_command(
        tmp_path: Path, fake_slack: FakeSlack, fake_ollama) -> None:
    """One serve runs both bots, as a deployment may: a Slack @mention arrives over Socket
    Mode and is answered in its thread; then, from a fake Discord REST API and gateway (HELLO,
    READY, INTERACTION_CREATE), /ask is answered by editing the deferred response."""
    import asyncio

    from fakes.discord_api import FakeDiscord

    fake_ollama.responder = lambda *a: ANSWER
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with FakeDiscord() as discord:
        proc = _serve(tmp_path, port, {
            "VAULTBOT_OLLAMA_URL": fake_ollama.url, "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_APP_TOKEN": APP_TOKEN, "VAULTBOT_SLACK_API_URL": fake_slack.api_url,
            "DISCORD_BOT_TOKEN": discord.token, "VAULTBOT_DISCORD_API_URL": discord.api_url,
            "VAULTBOT_DISCORD_GATEWAY_URL": discord.gateway_url, "VAULTBOT_DISCORD_GUILD": "1000",
        })
        try:
            await asyncio.to_thread(_wait, lambda: _indexed(url), 120, "the initial sync", proc)
            # Slack, Socket Mode.
            await asyncio.to_thread(_wait, lambda: fake_slack.connected_sockets > 0, 30,
                                    "the Socket Mode connection", proc)
            ts = fake_slack.new_ts()
            fake_slack.push_event(_mention(ts))
            await asyncio.to_thread(_wait, lambda: _answered(fake_slack, ts), 60,
                                    "the answer in the thread", proc)
            # Discord.
            await discord.wait_ready(timeout=60)
            start = len(discord.calls)
            await discord.ask("When is the launch?")
            await discord.wait_call("POST", r"/interactions/\d+/[^/]+/callback", after=start, timeout=30)
            final = await discord.wait_call(
                "PATCH", r"/webhooks/\d+/[^/]+/messages/@original", after=start, timeout=60,
                where=lambda c: bool((c.json or {}).get("embeds")) and "December 4" in json.dumps(c.json),
            )
            assert "Vaultbot launch" in json.dumps(final.json) or "Weekly sync" in json.dumps(final.json)
            synced = [c for c in discord.calls if c.method == "PUT" and "/guilds/1000/commands" in c.path]
            assert synced, "the /ask command was not synced to the dev guild"
        finally:
            out = await asyncio.to_thread(_stop, proc) if proc.poll() is None else proc.communicate()[0]
    assert "Socket Mode" in out and "discord: starting" in out
