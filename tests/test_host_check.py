"""Local-only means local-only: without a token the API answers only requests addressed to a
loopback name (a DNS-rebinding page sends its own name as Host), over real HTTP; with a token
the Host check is off and the token decides."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from corpus import ROOT, copy_vault
from helpers import Server, build, free_port

from engine.answer import Asker
from engine.embedders.hashing import HashingEmbedder
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from vaultbot.api import create_app, host_name, local_hosts

TOKEN = "host-check-token"


@pytest.fixture
def make_api(tmp_path: Path):
    index, indexer = build(copy_vault("example", tmp_path), tmp_path / "data", HashingEmbedder())
    indexer.sync()
    retriever = Retriever(index)
    log = QueryLog(index.registry)
    asker = Asker(retriever, None, querylog=log, vault_name="vault")

    def make(**kw):
        return create_app(asker=asker, retriever=retriever, index=index, querylog=log, **kw)

    yield make
    index.registry.close()


def test_host_names() -> None:
    assert host_name("LocalHost:8765") == "localhost"
    assert host_name("[::1]:8765") == "[::1]" and host_name("[::1]") == "[::1]"
    assert host_name("127.0.0.1") == "127.0.0.1"
    assert host_name("evil.example:8765") == "evil.example"
    assert local_hosts("127.0.0.1") == {"localhost", "127.0.0.1", "[::1]"}
    assert "[::1]" in local_hosts("::1")


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        return s.recv(4096)


def test_only_loopback_names_are_answered(make_api) -> None:
    app = make_api(allowed_hosts=local_hosts("127.0.0.1"), host_check_exempt=("/slack/events",))
    app.add_api_route("/slack/events", lambda: {"signed": "checked by the route"}, methods=["POST"])
    with Server(app) as srv, httpx.Client(base_url=srv.url, timeout=10) as c:
        port = srv.port
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}",
                     "localhost:1"):
            r = c.get("/search", params={"q": "launch"}, headers={"Host": host})
            assert r.status_code == 200, host
        for host in (f"evil.example:{port}", "127.0.0.1.nip.io", f"localhost.evil.example:{port}",
                     "[::2]", "", "127.0.0.1@evil.example"):
            for method, path in (("GET", "/search?q=launch"), ("GET", "/health"),
                                 ("POST", "/ask"), ("GET", "/docs")):
                r = c.request(method, path, headers={"Host": host})
                assert r.status_code == 421 and "localhost only" in r.text, (host, path)
        # HTTP/1.0 may omit Host altogether: refused too.
        assert _raw(port, b"GET /health HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 421")
        # Slack's events authenticate by signature and arrive through a tunnel's public name.
        r = c.post("/slack/events", headers={"Host": "bot.example.com"})
        assert r.status_code == 200 and r.json() == {"signed": "checked by the route"}


def test_without_allowed_hosts_any_name_is_served(make_api) -> None:
    """With a token `serve` passes no allowed hosts: the bearer token protects instead."""
    with Server(make_api(token=TOKEN)) as srv, httpx.Client(base_url=srv.url, timeout=10) as c:
        bearer = {"Authorization": f"Bearer {TOKEN}", "Host": "vaultbot.example.com"}
        assert c.get("/search", params={"q": "launch"}, headers=bearer).status_code == 200
        assert c.get("/search", params={"q": "launch"},
                     headers={"Host": "vaultbot.example.com"}).status_code == 401


def _serve(tmp_path: Path, port: int, **env_extra: str) -> subprocess.Popen:
    vault = copy_vault("example", tmp_path / str(port))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_"))}
    env.update(PYTHONPATH=str(ROOT), VAULTBOT_LLM="none", **env_extra)
    return subprocess.Popen(
        [sys.executable, "-m", "vaultbot.cli", "serve", "--no-watch", "--port", str(port),
         "--vault", str(vault), "--data-dir", str(tmp_path / str(port) / "data")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _status(url: str, host: str, headers: dict[str, str] | None = None) -> int | None:
    try:
        # serve loads Kiwi's model beside the server at start-up (App.warm), holding the GIL
        # for up to a few seconds on a busy machine: a reply may wait that long.
        return httpx.get(f"{url}/health", headers={"Host": host, **(headers or {})},
                         timeout=15).status_code
    except httpx.HTTPError:
        return None


@pytest.mark.parametrize("token", ["", TOKEN], ids=["no-token", "token"])
def test_serve_wires_the_check_only_without_a_token(tmp_path: Path, token: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(tmp_path, port, VAULTBOT_API_TOKEN=token)
    try:
        deadline = time.monotonic() + 60
        while _status(url, f"localhost:{port}") is None:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.2)
        assert _status(url, f"localhost:{port}") == 200
        assert _status(url, f"127.0.0.1:{port}") == 200
        foreign = _status(url, f"rebind.evil.example:{port}")
        assert foreign == (200 if token else 421)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
