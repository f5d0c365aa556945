"""Each failure a user can fix is one line naming the setting to change, with a non-zero exit and
no traceback unless `-v`: a bad or unreachable database URL, a Chroma server that is down, a
read-only data dir, a full disk. Ollama down still answers (extractive). `status`, `search` and
`ask` read a read-only data dir. `doctor` blames the part at fault and creates nothing. An empty
setting (`KEY=` as .env.example writes them) means unset.

Every command runs as a real `vaultbot` process. Tests run as root here, where a 0555 dir is
still writable, so "read-only" is a real read-only bind mount and "disk full" a 256 KB tmpfs;
both skip (with the reason) where `mount` is not allowed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from corpus import ROOT, copy_vault
from fakes.ollama_server import unused_url
from helpers import free_port, mount, read_only_mount

from vaultbot.app import App
from vaultbot.doctor import run_doctor
from vaultbot.settings import Settings

PW = "s3cretPW"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_"))}
    env.update({"PYTHONPATH": str(ROOT), "VAULTBOT_LLM": "none", **extra})
    return env


def _run(cwd: Path, vault: Path, data: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vaultbot.cli", *args, "--vault", str(vault), "--data-dir", str(data)],
        cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=180,
    )


def _one_line(r: subprocess.CompletedProcess, *wanted: str) -> str:
    """A failure as the user must see it: exit 2, one line on stderr, no traceback, no password."""
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaultbot: "), r.stderr
    assert "Traceback" not in r.stderr and PW not in r.stdout + r.stderr
    for w in wanted:
        assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(cwd, vault, data dir) of one synced example vault, shared by the module: read it only."""
    root = tmp_path_factory.mktemp("indexed")
    vault = copy_vault("example", root)
    r = _run(root, vault, root / "data", "sync")
    assert r.returncode == 0, r.stderr
    return root, vault, root / "data"


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], check=True)


@pytest.fixture
def read_only_copy(indexed: tuple[Path, Path, Path], tmp_path: Path) -> Iterator[Path]:
    """The indexed data dir, copied and mounted read-only (root writes through 0555 modes)."""
    src = tmp_path / "src"
    shutil.copytree(indexed[2], src)
    with read_only_mount(src, tmp_path / "ro") as ro:
        yield ro


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(path.rglob("*"))}


# ---------------------------------------------------------------- database and Chroma URLs
def test_postgres_scheme_is_one_line_naming_the_setting(indexed, tmp_path: Path) -> None:
    cwd, vault, _ = indexed
    url = f"postgres://u:{PW}@127.0.0.1:5432/x"
    for command in ("status", "sync"):
        r = _run(cwd, vault, tmp_path / "d", command, VAULTBOT_DATABASE_URL=url)
        line = _one_line(r, "VAULTBOT_DATABASE_URL=postgres://***@127.0.0.1:5432/x",
                         "postgresql+psycopg://")
    assert "scheme 'postgres'" in line
    # -v still shows the traceback, through the redacting log.
    r = _run(cwd, vault, tmp_path / "d", "-v", "status", VAULTBOT_DATABASE_URL=url)
    assert r.returncode == 2 and "Traceback" in r.stderr and PW not in r.stderr


def test_unreachable_database_is_one_line(indexed, tmp_path: Path) -> None:
    cwd, vault, _ = indexed
    url = f"postgresql+psycopg://u:{PW}@127.0.0.1:{free_port()}/x"
    r = _run(cwd, vault, tmp_path / "d", "status", VAULTBOT_DATABASE_URL=url)
    _one_line(r, "cannot reach the database", "VAULTBOT_DATABASE_URL=postgresql+psycopg://***@",
              "Connection refused")


def test_chroma_server_down_is_one_line(indexed, tmp_path: Path) -> None:
    cwd, vault, _ = indexed
    url = unused_url().replace("http://", f"http://cu:{PW}@")
    r = _run(cwd, vault, tmp_path / "d", "search", "bread", VAULTBOT_CHROMA_URL=url)
    _one_line(r, "cannot reach the Chroma server", "VAULTBOT_CHROMA_URL=http://***@127.0.0.1")


def test_ollama_down_still_answers(indexed) -> None:
    cwd, vault, data = indexed
    r = _run(cwd, vault, data, "ask", "--no-cache", "How long does the bread bake?",
             VAULTBOT_LLM="ollama", VAULTBOT_OLLAMA_URL=unused_url())
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and "Ollama is not reachable" in r.stderr
    assert "extractive answer" in r.stdout and "Sourdough bread" in r.stdout


# ---------------------------------------------------------------- read-only data dir, full disk
def test_read_only_data_dir_serves_status_search_and_ask(indexed, read_only_copy: Path) -> None:
    cwd, vault, _ = indexed
    before = _tree(read_only_copy)
    r = _run(cwd, vault, read_only_copy, "status", "--json")
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["notes"] == 6 and status["vectors"] == status["chunks"] > 6
    r = _run(cwd, vault, read_only_copy, "search", "sourdough starter", "-k", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["path"] == "Recipes/Sourdough bread.md"
    r = _run(cwd, vault, read_only_copy, "ask", "--json", "How long does the bread bake?")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["citations"][0]["path"] == "Recipes/Sourdough bread.md"
    assert "Traceback" not in r.stderr
    # Writing is what cannot work: one line, the setting named.
    _one_line(_run(cwd, vault, read_only_copy, "sync"), "VAULTBOT_DATA_DIR", "read-only")
    _one_line(_run(cwd, vault, read_only_copy / "new", "status"), "VAULTBOT_DATA_DIR")
    assert _tree(read_only_copy) == before


def test_full_disk_is_one_line(indexed, tmp_path: Path) -> None:
    cwd, vault, _ = indexed
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    mount("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(tiny))
    try:
        r = _run(cwd, vault, tiny / "data", "sync")
    finally:
        _umount(tiny)
    _one_line(r, "the disk is full", "VAULTBOT_DATA_DIR")


# ---------------------------------------------------------------- doctor
def test_doctor_blames_the_database_for_a_bad_url_and_creates_nothing(indexed, tmp_path: Path) -> None:
    cwd, vault, _ = indexed
    data = tmp_path / "d"
    data.mkdir(mode=0o700)
    r = _run(cwd, vault, data, "doctor", "--json",
             VAULTBOT_DATABASE_URL=f"postgres://u:{PW}@127.0.0.1:5432/x")
    assert r.returncode == 1 and PW not in r.stdout + r.stderr and "Traceback" not in r.stderr
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    assert not checks["database"]["ok"] and "postgresql+psycopg://" in checks["database"]["fix"]
    assert checks["embedder"]["ok"] and checks["vault"]["ok"]
    assert not checks["index"]["ok"] and "database" in checks["index"]["detail"]
    assert checks["privacy"]["optional"] and checks["access"]["optional"]
    assert list(data.iterdir()) == []


def test_doctor_checks_chroma_and_database_apart(indexed, tmp_path: Path) -> None:
    cwd, vault, data = indexed
    chroma = unused_url()
    app = App(Settings(vault=vault, data_dir=data, llm="none", chroma_url=chroma, _env_file=None))
    checks = {c.name: c for c in run_doctor(app)}
    assert checks["database"].ok and not checks["vectors"].ok
    assert "VAULTBOT_CHROMA_URL" in checks["vectors"].fix and not checks["index"].ok
    dead_db = f"postgresql+psycopg://u:{PW}@127.0.0.1:{free_port()}/x"
    app = App(Settings(vault=vault, data_dir=data, llm="none", database_url=dead_db, _env_file=None))
    checks = {c.name: c for c in run_doctor(app)}
    assert not checks["database"].ok and "cannot reach" in checks["database"].detail
    assert PW not in checks["database"].detail and checks["vectors"].ok and checks["embedder"].ok


def test_doctor_checks_the_access_file(indexed, tmp_path: Path) -> None:
    _, vault, data = indexed

    def access(path: Path) -> object:
        app = App(Settings(vault=vault, data_dir=data, llm="none", access_file=path,
                           _env_file=None))
        return {c.name: c for c in run_doctor(app)}["access"]

    assert not access(tmp_path).ok  # a directory (what an empty value used to become)
    assert "VAULTBOT_ACCESS_FILE" in access(tmp_path / "missing.yaml").fix
    bad = tmp_path / "bad.yaml"
    bad.write_text("slack: [unclosed\n")
    got = access(bad)
    assert not got.ok and "cannot read access file" in got.detail
    good = tmp_path / "access.yaml"
    good.write_text("slack:\n  channels:\n    C1: {folders: [Recipes]}\n")
    got = access(good)
    assert got.ok and "1 rules" in got.detail, got


# ---------------------------------------------------------------- empty settings
def _example_env(tmp_path: Path, vault: Path, data: Path) -> Path:
    """.env.example as docs/deploy.md says to use it: copied, the vault and data dir filled in."""
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.startswith("VAULTBOT_VAULT="):
            line = f"VAULTBOT_VAULT={vault}"
        elif line.startswith("VAULTBOT_DATA_DIR="):
            line = f"VAULTBOT_DATA_DIR={data}"
        elif line.startswith("VAULTBOT_LLM="):
            line = "VAULTBOT_LLM=none"
        lines.append(line)
    env = tmp_path / ".env"
    env.write_text("\n".join(lines) + "\n")
    return env


def test_empty_values_mean_unset(tmp_path: Path) -> None:
    env = _example_env(tmp_path, tmp_path / "v", tmp_path / "d")
    empty = {line.partition("=")[0] for line in env.read_text().splitlines()
             if line and not line.startswith("#") and line.endswith("=")}
    assert "VAULTBOT_ACCESS_FILE" in empty and "SLACK_BOT_TOKEN" in empty
    got = Settings(_env_file=env)
    default = Settings(_env_file=None)
    for name, field in Settings.model_fields.items():
        keys = {f"VAULTBOT_{name.upper()}"} | set(getattr(field.validation_alias, "choices", []))
        if keys & empty:
            assert getattr(got, name) == getattr(default, name), name
    assert got.access_file is None


def test_env_copied_from_example_starts_status_and_serve(indexed, tmp_path: Path) -> None:
    _, src_vault, src_data = indexed
    vault = copy_vault("example", tmp_path)
    data = tmp_path / "data"
    shutil.copytree(src_data, data)
    _example_env(tmp_path, vault, data)
    env = {k: v for k, v in _env().items() if k not in ("VAULTBOT_LLM",)}
    r = subprocess.run([sys.executable, "-m", "vaultbot.cli", "status", "--json"], cwd=tmp_path,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["notes"] == 6

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaultbot.cli", "serve", "--no-watch", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).json()["ok"]:
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "slack" not in out.lower() and "discord" not in out.lower()  # empty tokens: bots off
    assert "cannot read access file" not in err
