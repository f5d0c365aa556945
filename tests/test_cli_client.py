"""`vaultbot ask` and `search` as clients of a running `vaultbot serve`: a real serve process
(hashing embedder, fake Ollama) on a small vault, the CLI run in this process. Through serve or
not, the output and the exit code are the same; a serve that is gone, stale or cut short is
handled; the token is sent."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from corpus import ROOT, copy_vault
from helpers import free_port

import vaultbot.app
from engine.embedders.hashing import HashingEmbedder
from vaultbot.cli import main
from vaultbot.client import ADDRESS_FILE

ANSWER = "The launch is on December 4 [1], moved from November 27 [2]."
TOKEN = "client-test-token"
SECRET_WORD = "zanzibarquokka"
# serve with the hashing embedder (in the child only; everything else is the real CLI).
CHILD = """
import sys
import vaultbot.app as app
from engine.embedders.hashing import HashingEmbedder
app.make_embedder = lambda spec, **kw: HashingEmbedder(dim=64)
from vaultbot.cli import main
sys.exit(main(sys.argv[1:]))
"""
CLIENT_LOG = "vaultbot"


class Vault:
    def __init__(self, tmp_path: Path, run: Callable[..., tuple[int, str, str]]) -> None:
        self.tmp_path = tmp_path
        self.vault = tmp_path / "example"
        self.data = tmp_path / "data"
        self.run = run


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        fake_ollama) -> Vault:
    for var in [v for v in os.environ if v.startswith("VAULTBOT_")]:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VAULTBOT_LLM", "ollama")
    monkeypatch.setenv("VAULTBOT_OLLAMA_URL", fake_ollama.url)
    monkeypatch.setattr(vaultbot.app, "make_embedder", lambda spec, **kw: HashingEmbedder(dim=64))
    monkeypatch.chdir(tmp_path)  # no stray .env
    fake_ollama.responder = lambda *a: ANSWER
    vault = copy_vault("example", tmp_path)
    (vault / "Diary.md").write_text(
        f"---\nprivate: true\n---\n# Diary\n\nThe launch worries me; {SECRET_WORD} knows why.\n")
    data = tmp_path / "data"

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--vault", str(vault), "--data-dir", str(data)])
        out, err = capsys.readouterr()
        return code, out, err

    assert run("sync", "--json")[0] == 0
    return Vault(tmp_path, run)


class Serve:
    def __init__(self, proc: subprocess.Popen[str], url: str, data: Path) -> None:
        self.proc, self.url, self.data = proc, url, data

    def stop(self) -> tuple[str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.communicate(timeout=60)


@pytest.fixture
def start_serve(cli: Vault, fake_ollama) -> Iterator[Callable[..., Serve]]:
    started: list[Serve] = []

    def start(**extra_env: str) -> Serve:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_"))}
        env.update({"PYTHONPATH": str(ROOT), "VAULTBOT_LLM": "ollama",
                    "VAULTBOT_OLLAMA_URL": fake_ollama.url, **extra_env})
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, "serve", "--no-watch", "--port", str(port),
             "--vault", str(cli.vault), "--data-dir", str(cli.data)],
            cwd=cli.tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        serve = Serve(proc, f"http://127.0.0.1:{port}", cli.data)
        started.append(serve)
        deadline = time.monotonic() + 120
        while not (cli.data / ADDRESS_FILE).exists():
            assert proc.poll() is None, f"serve exited: {proc.communicate()}"
            assert time.monotonic() < deadline, "serve did not write its address"
            time.sleep(0.1)
        return serve

    yield start
    for serve in started:
        serve.stop()


def _served(caplog: pytest.LogCaptureFixture) -> bool:
    return any("answered by vaultbot serve" in r.getMessage() for r in caplog.records)


def _stable(out: str) -> str:
    """An answer's output without what differs between two runs: its time and query id."""
    out = re.sub(r"; \d+ ms\)", "; N ms)", out)
    if out.startswith("{"):
        data = json.loads(out)
        data["timings"], data["query_id"] = {}, None
        return json.dumps(data, sort_keys=True)
    return out


RUNS = [
    ("search", "launch"),
    ("search", "launch", "--json"),
    ("search", "launch", "-k", "2", "--mode", "lexical", "--folder", "Projects"),
    ("search", "launch", "--where", "status=active", "--json"),
    ("search", SECRET_WORD, "--mode", "lexical"),  # private: found by neither path
    ("search", SECRET_WORD, "--mode", "lexical", "--private", "--json"),
    ("search", "launch", "-k", "60"),  # more than the API serves: answered locally
    ("search", "launch", "--where", "status"),  # a usage error, said the same way
    ("ask", "When is the launch?", "--no-cache"),
    ("ask", "When is the launch?", "--no-cache", "--json"),
    ("ask", "What worries me about the launch?", "--no-cache", "--private", "--json"),
]


def test_output_and_exit_codes_are_the_same_through_serve(
        cli: Vault, start_serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CLIENT_LOG)
    local = [cli.run(*args) for args in RUNS]
    assert not _served(caplog)
    assert local[0][0] == 0 and "Projects/Vaultbot launch.md" in local[0][1]
    assert SECRET_WORD not in local[4][1] and SECRET_WORD in local[5][1]
    assert local[7][0] == 2 and "KEY=VALUE" in local[7][2]
    assert ANSWER.split(" [")[0] in local[8][1] and "Sources:" in local[8][1]

    serve = start_serve()
    info = json.loads((cli.data / ADDRESS_FILE).read_text())
    assert stat.S_IMODE((cli.data / ADDRESS_FILE).stat().st_mode) == 0o600
    assert info["pid"] == serve.proc.pid and info["token"] is False
    assert f"http://{info['host']}:{info['port']}" == serve.url
    for args, (code, out, err) in zip(RUNS, local, strict=True):
        caplog.clear()
        got = cli.run(*args)
        assert got[0] == code, args
        assert _stable(got[1]) == _stable(out), args
        assert got[2] == err, args
        # Served unless the request is one serve refuses (k > 50) or never sent (bad --where).
        assert _served(caplog) == (args[-1] not in ("60", "status")), args
    # --local answers here although serve runs.
    caplog.clear()
    assert _stable(cli.run("search", "launch", "--local")[1]) == _stable(local[0][1])
    assert not _served(caplog)

    serve.stop()
    assert not (cli.data / ADDRESS_FILE).exists()  # removed on a clean exit


def test_a_stale_address_file_is_ignored(cli: Vault, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CLIENT_LOG)
    want = cli.run("search", "launch")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    address = cli.data / ADDRESS_FILE
    # A pid that is gone; a live pid whose port refuses the connection.
    for pid, why in ((dead.pid, "is gone"), (os.getpid(), "Connection refused")):
        address.write_text(json.dumps({"host": "127.0.0.1", "port": free_port(), "pid": pid,
                                       "token": False, "key": "k"}))
        caplog.clear()
        assert cli.run("search", "launch") == want
        assert not _served(caplog) and why in caplog.text
    address.write_text("{not json")
    assert cli.run("search", "launch") == want


class CutServer:
    """A socket server standing in for a serve that dies: it reads the request, sends `reply`
    (raw bytes, possibly nothing), then drops the connection."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.requests: list[bytes] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                self.requests.append(conn.recv(65536))
                conn.sendall(self.reply)

    def close(self) -> None:
        self.sock.close()

    def announce(self, data: Path, token: bool = False) -> None:
        (data / ADDRESS_FILE).write_text(json.dumps(
            {"host": "127.0.0.1", "port": self.port, "pid": os.getpid(), "token": token,
             "key": "owner-key"}))


def test_serve_gone_before_any_output_falls_back(cli: Vault) -> None:
    ask = ("ask", "When is the launch?", "--no-cache")
    want_search, want_ask = cli.run("search", "launch"), cli.run(*ask)
    head = (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n")
    sources = b'event: sources\ndata: []\n\n'
    # Reset at once; cut after the headers; cut after an event that prints nothing.
    for reply in (b"", head, head + b"%x\r\n" % len(sources) + sources):
        server = CutServer(reply)
        server.announce(cli.data)
        try:
            assert cli.run("search", "launch") == want_search
            code, out, err = cli.run(*ask)
            assert (code, _stable(out), err) == (want_ask[0], _stable(want_ask[1]), want_ask[2])
            assert len(server.requests) == 2
        finally:
            server.close()


def test_serve_gone_after_output_is_one_error_line(cli: Vault) -> None:
    events = b"event: sources\ndata: []\n\nevent: token\ndata: {\"text\": \"The launch\"}\n\n"
    server = CutServer(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                       b"transfer-encoding: chunked\r\n\r\n" + b"%x\r\n" % len(events) + events)
    server.announce(cli.data)
    try:
        code, out, err = cli.run("ask", "When is the launch?", "--no-cache")
    finally:
        server.close()
    assert code == 1
    assert out == "The launch"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "stopped in the middle of the answer" in lines[0], err
    assert "--local" in lines[0]


def test_the_token_is_sent_when_set(cli: Vault, start_serve, monkeypatch: pytest.MonkeyPatch,
                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=CLIENT_LOG)
    want = cli.run("search", "launch", "--json")
    serve = start_serve(VAULTBOT_API_TOKEN=TOKEN)
    info = json.loads((cli.data / ADDRESS_FILE).read_text())
    assert info["token"] is True and TOKEN not in (cli.data / ADDRESS_FILE).read_text()
    assert httpx.get(f"{serve.url}/search", params={"q": "launch"}).status_code == 401

    # Without a token the CLI does not try; with a wrong one serve refuses: both answer here.
    for token in (None, "wrong-token"):
        if token:
            monkeypatch.setenv("VAULTBOT_API_TOKEN", token)
        caplog.clear()
        assert cli.run("search", "launch", "--json") == want
        assert not _served(caplog)
    monkeypatch.setenv("VAULTBOT_API_TOKEN", TOKEN)
    caplog.clear()
    assert cli.run("search", "launch", "--json") == want
    assert _served(caplog)


def test_the_owner_key_is_needed_for_the_terminal_view(cli: Vault, start_serve) -> None:
    """Without the key from the data dir, the API keeps its own rules: no private notes, its
    own masking, callers may only narrow."""
    serve = start_serve()
    key = json.loads((cli.data / ADDRESS_FILE).read_text())["key"]
    params = {"q": SECRET_WORD, "mode": "lexical", "private": "true"}
    assert httpx.get(f"{serve.url}/search", params=params).status_code == 403
    assert httpx.get(f"{serve.url}/search", params={**params, "private": "false",
                                                    "mask": "false"}).status_code == 403
    assert httpx.get(f"{serve.url}/search", params=params,
                     headers={"X-Vaultbot-Owner": "not-the-key"}).status_code == 403
    found = httpx.get(f"{serve.url}/search", params=params, headers={"X-Vaultbot-Owner": key})
    assert SECRET_WORD in found.text
    plain = httpx.get(f"{serve.url}/search", params={"q": SECRET_WORD, "mode": "lexical"})
    assert plain.status_code == 200 and SECRET_WORD not in plain.text
