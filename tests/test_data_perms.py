"""Data at rest: the data dir holds note text, the query log and cached answers, so the CLI
makes it owner-only (directories 0700, files 0600) even under a permissive umask, and
`vaultbot doctor` says so when something in it is open to others, without creating anything."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from corpus import ROOT, copy_vault

from vaultbot.app import App
from vaultbot.settings import Settings


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual 022, under which files would be world-readable unless vaultbot prevents it."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _vaultbot(tmp_path: Path, data: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_"))}
    env.update(PYTHONPATH=str(ROOT), VAULTBOT_LLM="none")
    return subprocess.run(
        [sys.executable, "-m", "vaultbot.cli", *args, "--vault", str(tmp_path / "example"),
         "--data-dir", str(data)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )


def _modes(root: Path) -> dict[str, int]:
    out = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        out[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return out


def _doctor_says(tmp_path: Path, data: Path, *args: str) -> str:
    """`vaultbot doctor <args>` run in this process (the CLI's own main, with the same clean
    environment as _vaultbot): what it prints. Doctor only reads, so it needs no process of its
    own; the syncs and asks that create the files run as real processes."""
    from vaultbot.cli import main

    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith(("VAULTBOT_", "SLACK_", "DISCORD_")):
                mp.delenv(key)
        mp.setenv("VAULTBOT_LLM", "none")
        mp.chdir(tmp_path)
        with contextlib.redirect_stdout(out):
            main(["doctor", *args, "--vault", str(tmp_path / "example"), "--data-dir", str(data)])
    return out.getvalue()


def _doctor(tmp_path: Path, data: Path) -> dict:
    return {c["name"]: c for c in json.loads(_doctor_says(tmp_path, data, "--json"))}


def test_sync_and_ask_leave_everything_owner_only(tmp_path: Path, loose_umask: None) -> None:
    copy_vault("example", tmp_path)
    data = tmp_path / "nested" / "data"
    assert _vaultbot(tmp_path, data, "sync").returncode == 0
    assert _vaultbot(tmp_path, data, "ask", "When is the launch?").returncode == 0  # query log
    modes = _modes(data)
    assert {"registry.sqlite3", "keywords.sqlite3", "chroma", "index.lock"} <= set(modes)
    for name, mode in modes.items():
        path = data / name
        if path.is_dir():
            assert mode == 0o700, f"{name}: {oct(mode)}"
        else:
            assert mode & 0o077 == 0, f"{name}: {oct(mode)}"
    assert _doctor(tmp_path, data)["perms"]["ok"]


def test_app_creates_the_data_dir_private_without_the_cli(tmp_path: Path,
                                                          loose_umask: None) -> None:
    """Libraries and tests build App directly, without the CLI's umask: the dir is still 0700."""
    vault = copy_vault("example", tmp_path)
    app = App(Settings(vault=vault, data_dir=tmp_path / "d", llm="none", _env_file=None))
    app.index.status()
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o700
    app.close()


def test_doctor_warns_on_readable_files_and_names_the_fix(tmp_path: Path) -> None:
    copy_vault("example", tmp_path)
    data = tmp_path / "data"
    assert _vaultbot(tmp_path, data, "sync").returncode == 0
    (data / "registry.sqlite3").chmod(0o644)
    perms = _doctor(tmp_path, data)["perms"]
    assert not perms["ok"] and "registry.sqlite3 (-rw-r--r--)" in perms["detail"]
    assert perms["fix"] == f"chmod -R go-rwx {data}"
    text = _doctor_says(tmp_path, data)
    assert "[!!] perms" in text and f"fix: chmod -R go-rwx {data}" in text

    (data / "registry.sqlite3").chmod(0o600)
    data.chmod(0o755)
    perms = _doctor(tmp_path, data)["perms"]
    assert not perms["ok"] and "(drwxr-xr-x)" in perms["detail"]
    subprocess.run(perms["fix"], shell=True, check=True)  # the printed fix works
    assert _doctor(tmp_path, data)["perms"]["ok"]


def test_doctor_creates_nothing(tmp_path: Path) -> None:
    copy_vault("example", tmp_path)
    missing = tmp_path / "never"
    checks = _doctor(tmp_path, missing)
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir(mode=0o700)
    in_empty = _doctor(tmp_path, empty)
    assert list(empty.iterdir()) == []
    for said in (checks, in_empty):
        assert not said["index"]["ok"] and said["index"]["fix"] == "run `vaultbot sync`"
    assert checks["perms"]["optional"] and in_empty["perms"]["ok"]
