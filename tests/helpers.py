"""Small real helpers for tests (no mocks): an embedder wrapper that counts what it embeds,
a builder for an index + indexer on a temp data dir, a real HTTP server, and a way to make
chmod 000 stop reads when the tests run as root."""

from __future__ import annotations

import ctypes
import io
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn

from engine.embedders.base import Embedder
from engine.index import Index
from engine.lexical import LexicalIndex
from sync.indexer import Indexer


class CountingEmbedder:
    """Wraps a real embedder and counts the passages it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.passages = 0
        self.texts: list[str] = []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        self.passages += len(texts)
        self.texts.extend(texts)
        return self.inner.embed_passages(texts)

    def embed_query(self, text: str) -> np.ndarray:
        return self.inner.embed_query(text)

    def reset(self) -> None:
        self.passages = 0
        self.texts = []


def build(
    vault: Path,
    data_dir: Path,
    embedder: Embedder,
    registry_url: str | None = None,
    keywords: bool = True,
) -> tuple[Index, Indexer]:
    url = registry_url or f"sqlite:///{data_dir / 'registry.sqlite3'}"
    data_dir.mkdir(parents=True, exist_ok=True)
    lex = LexicalIndex(data_dir / "keywords.sqlite3") if keywords else None
    index = Index.open(data_dir=data_dir, registry_url=url, embedder=embedder, keywords=lex)
    return index, Indexer(index, vault)


def until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    """Poll `predicate` until it returns something true, and return that; fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def cli_env(monkeypatch: pytest.MonkeyPatch, cwd: Path, llm: str = "none") -> None:
    """Run the CLI in-process as a clean shell would: no database, Chroma or embedder from the
    environment, `VAULTBOT_LLM=llm`, and `cwd` as the working dir (so no stray .env)."""
    for var in ("VAULTBOT_DATABASE_URL", "VAULTBOT_CHROMA_URL", "VAULTBOT_EMBEDDER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VAULTBOT_LLM", llm)
    monkeypatch.chdir(cwd)


class CliRun:
    """`vaultbot <args> --vault V --data-dir D` in-process: (exit code, stdout, stderr)."""

    def __init__(self, vault: Path, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.vault, self.data, self._capsys = vault, data, capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        from vaultbot.cli import main

        code = main([*args, "--vault", str(self.vault), "--data-dir", str(self.data)])
        out, err = self._capsys.readouterr()
        return code, out, err


@contextmanager
def synced_example(tmp_path: Path, embedder: Embedder) -> Iterator[Index]:
    """The example vault copied under `tmp_path`, synced into an index in `tmp_path/data`;
    closed on exit."""
    from corpus import copy_vault

    index, indexer = build(copy_vault("example", tmp_path), tmp_path / "data", embedder)
    try:
        indexer.sync()
        yield index
    finally:
        close_index(index)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A real uvicorn serving `app` on a free port in a thread, for tests that need HTTP."""

    def __init__(self, app: Any, host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


@contextmanager
def permissions_enforced() -> Iterator[None]:
    """Make chmod 000 stop reads in this thread and in threads it starts meanwhile. Root reads
    anything through CAP_DAC_OVERRIDE (tests run as root in CI), so both DAC capabilities leave
    the thread's effective set for the duration (they stay permitted, so they come back after;
    a thread started inside keeps the reduced set, as Linux copies it at thread creation).
    Skips the test when running as root and the capabilities cannot be dropped."""
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        pytest.skip("running as root and capget failed: chmod 000 cannot make a file unreadable")
    saved = data[0].effective
    data[0].effective &= ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH))
    if libc.capset(ctypes.byref(header), data) != 0:
        pytest.skip("running as root and capset failed: chmod 000 cannot make a file unreadable")
    try:
        yield
    finally:
        data[0].effective = saved
        assert libc.capset(ctypes.byref(header), data) == 0


def close_index(index: Index) -> None:
    """Release what an `Index` holds open (registry pool, keyword SQLite, Chroma's system): a
    suite that leaks them runs out of fds."""
    index.close()


def assert_discord_cites_meetings_only(final: Any, fake_ollama: Any) -> None:
    """A Discord answer scoped to the Meetings/ folder: the final edit's sources embed links
    Meetings/ notes only, and the model's prompt held the meeting note, not the launch note."""
    from bot.render_discord import SOURCES_TITLE

    sources = next(e for e in final.json["embeds"] if e.get("title") == SOURCES_TITLE)
    links = [f["value"] for f in sources["fields"]]
    assert links and all("file=Meetings%2F" in v for v in links), links
    chats = [r.json for r in fake_ollama.requests if r.path == "/api/chat"]
    prompt = chats[-1]["messages"][-1]["content"]
    assert "Weekly sync" in prompt and "Vaultbot launch ›" not in prompt


def make_pdf(path: Path, lines: list[str], size: tuple[float, float] = (612, 792),
              rotation: int = 0) -> Path:
    """A real PDF with a text layer, written with PDFium itself (Helvetica, one line each)."""
    import pypdfium2 as pdfium
    import pypdfium2.raw as raw

    pdf = pdfium.PdfDocument.new()
    page = pdf.new_page(*size)
    for n, line in enumerate(lines):
        obj = raw.FPDFPageObj_NewTextObj(pdf.raw, b"Helvetica", ctypes.c_float(14))
        text = ctypes.create_string_buffer((line + "\x00").encode("utf-16-le"))
        assert raw.FPDFText_SetText(obj, ctypes.cast(text, raw.FPDF_WIDESTRING))
        raw.FPDFPageObj_Transform(obj, 1, 0, 0, 1, 72, size[1] - 100 - 30 * n)
        raw.FPDFPage_InsertObject(page.raw, obj)
    raw.FPDFPage_GenerateContent(page.raw)
    if rotation:
        page.set_rotation(rotation)
    buf = io.BytesIO()
    pdf.save(buf)
    pdf.close()
    path.write_bytes(buf.getvalue())
    return path


def mount(*args: str) -> None:
    """`mount ARGS`, or skip the test where this process may not mount (needs root or
    CAP_SYS_ADMIN)."""
    r = subprocess.run(["mount", *args], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount here ({r.stderr.strip()}): needs root or CAP_SYS_ADMIN")


@contextmanager
def read_only_mount(src: Path, at: Path) -> Iterator[Path]:
    """`src` bind-mounted read-only at `at`, as a read-only data dir (root writes through 0555
    modes, so a mode alone would not do)."""
    at.mkdir(exist_ok=True)
    mount("--bind", str(src), str(at))
    try:
        mount("-o", "remount,bind,ro", str(at))
        assert not os.access(at, os.W_OK)
        yield at
    finally:
        subprocess.run(["umount", str(at)], check=True)
