"""`vaultbot search`/`ask` through a running serve import neither pydantic-settings nor the
engine (vaultbot/fast_settings.py reads the data dir), and when the settings are anything the
fast reader cannot vouch for, the CLI reads the full Settings first, as before. A stand-in serve
(a thread answering /search) keeps these fast; tests/test_cli_client.py runs the real one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from corpus import ROOT

from vaultbot.client import ADDRESS_FILE

ROWS = [{"path": "Projects/Vaultbot launch.md", "title": "Vaultbot launch", "heading": "Timeline",
         "page": None, "score": 0.5, "sources": ["dense"], "text": "Launch: December 4."}]
HEAVY = ["pydantic_settings", "pydantic", "sqlalchemy", "numpy", "chromadb", "engine.index",
         "engine.retrieve", "vaultbot.settings", "vaultbot.app", "dataclasses"]
# Runs the CLI in a fresh interpreter and reports which heavy modules it imported.
CHILD = f"""
import sys
from vaultbot.cli import main
code = main(sys.argv[1:])
print("HEAVY=" + ",".join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)
sys.exit(code)
"""


class StandIn(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        StandIn.requests.append(self.path)
        body = json.dumps({"results": ROWS}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Path]:
    """A data dir announcing the stand-in serve (this process's pid: alive)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    data = tmp_path / "data"
    data.mkdir()
    (data / ADDRESS_FILE).write_text(json.dumps(
        {"host": "127.0.0.1", "port": server.server_address[1], "pid": os.getpid(),
         "token": False, "key": "owner-key"}))
    StandIn.requests = []
    yield data
    server.shutdown()


def _run(cwd: Path, *args: str, **env: str) -> tuple[int, str, str, list[str]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_"))}
    proc = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=cwd, capture_output=True,
                          text=True, env={**base, "PYTHONPATH": str(ROOT), **env}, timeout=300)
    err, _, heavy = proc.stderr.rpartition("HEAVY=")
    return proc.returncode, proc.stdout, err, [m for m in heavy.strip().split(",") if m]


def test_search_through_serve_imports_nothing_heavy(serve: Path, tmp_path: Path) -> None:
    code, out, err, heavy = _run(tmp_path, "search", "launch", "-v",
                                 VAULTBOT_DATA_DIR=str(serve))
    assert code == 0 and "Projects/Vaultbot launch.md" in out, err
    assert "answered by vaultbot serve" in err
    assert heavy == []
    assert len(StandIn.requests) == 1 and "mask=false" in StandIn.requests[0]


def test_the_data_dir_and_masking_from_dotenv(serve: Path, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"VAULTBOT_DATA_DIR={serve}\nVAULTBOT_MASK=true\n")
    code, out, err, heavy = _run(tmp_path, "search", "launch", "--json", "-v")
    assert code == 0 and json.loads(out)[0]["path"] == ROWS[0]["path"], err
    assert heavy == [] and "mask=true" in StandIn.requests[0]


def test_a_setting_settings_refuses_is_still_refused(serve: Path, tmp_path: Path) -> None:
    code, out, err, heavy = _run(tmp_path, "search", "launch", VAULTBOT_DATA_DIR=str(serve),
                                 VAULTBOT_TOP_K="0")
    assert code == 2 and "bad setting VAULTBOT_TOP_K" in err and out == ""
    assert StandIn.requests == []  # never sent: the full Settings read first, as before


def test_settings_the_fast_reader_is_unsure_of_take_the_full_path(serve: Path,
                                                                   tmp_path: Path) -> None:
    # " 12" is a value pydantic may well accept, but the fast reader does not vouch for it.
    code, out, err, heavy = _run(tmp_path, "search", "launch", "-v", VAULTBOT_DATA_DIR=str(serve),
                                 VAULTBOT_TOP_K=" 12")
    assert code == 0 and "answered by vaultbot serve" in err
    assert "pydantic_settings" in heavy and "chromadb" not in heavy
