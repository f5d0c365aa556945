"""VaultWatcher against real watchdog observers on temporary vaults (no mocks).

Waits poll for a condition with a timeout instead of sleeping a fixed time; the
only fixed waits are the short "nothing else arrives" windows.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sync.ignore import VaultFilter
from sync.watcher import RESCAN, VaultWatcher, is_dir_entry

WAIT = 10.0  # upper bound for anything to show up
QUIET = 0.6  # "no further batch" window: twice the debounce of the fast watchers
FAST = {"debounce": 0.3, "max_delay": 3.0}

# watchdog's inotify backend races with itself when nested directories appear fast
# (mkdir -p) and warns that it re-adds a watch; harmless, and not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")


class Collector:
    """An on_batch that records batches and lets tests wait on them."""

    def __init__(self, action: Callable[[int, set[str]], None] | None = None) -> None:
        self.batches: list[set[str]] = []
        self.cond = threading.Condition()
        self.action = action

    def __call__(self, batch: set[str]) -> None:
        with self.cond:
            self.batches.append(set(batch))
            n = len(self.batches)
            self.cond.notify_all()
        if self.action is not None:
            self.action(n, batch)

    def wait_for(self, pred: Callable[[list[set[str]]], bool], timeout: float = WAIT) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: pred(self.batches), timeout)

    def wait_seen(self, *entries: str, timeout: float = WAIT) -> bool:
        return self.wait_for(lambda b: set(entries) <= set().union(*b), timeout)

    def union(self) -> set[str]:
        with self.cond:
            return set().union(*self.batches)


def wait_until(pred: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def write(root: Path, rel: str, text: str = "x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    for d in ("Notes", ".obsidian", ".trash", "Private", "Drafts"):
        (root / d).mkdir(parents=True)
    return root


@pytest.fixture
def start_watcher(vault: Path) -> Iterator[Callable[..., tuple[VaultWatcher, Collector]]]:
    watchers: list[VaultWatcher] = []

    def start(
        collector: Collector | None = None, **kwargs: float
    ) -> tuple[VaultWatcher, Collector]:
        collector = collector or Collector()
        w = VaultWatcher(vault, collector, filter=VaultFilter(vault), **(kwargs or FAST))
        watchers.append(w)
        w.start()
        return w, collector

    yield start
    for w in watchers:
        w.stop()


def test_editor_save_burst_is_one_batch(vault: Path, start_watcher) -> None:
    note = write(vault, "Notes/Idea.md", "v1")
    # A 1 s debounce (the default is 0.5) so a disk stall on a busy CI box cannot split it.
    _, col = start_watcher(debounce=1.0, max_delay=5.0)
    notes = vault / "Notes"
    # What vim/Obsidian-like editors do on save.
    write(notes, ".Idea.md.swp", "swap")
    write(notes, "4913").unlink()
    shutil.copyfile(note, notes / "Idea.md~")
    write(notes, "Idea.md.tmp", "v2")
    os.replace(notes / "Idea.md.tmp", note)
    for i in range(3):
        with note.open("a", encoding="utf-8") as fh:
            fh.write(f" more {i}")
        time.sleep(0.02)
    (notes / ".Idea.md.swp").unlink()

    assert col.wait_for(lambda b: len(b) >= 1)
    assert not col.wait_for(lambda b: len(b) > 1, timeout=1.2)
    assert col.batches == [{"Notes/Idea.md"}]


def test_thousand_files_one_batch(vault: Path, start_watcher) -> None:
    _, col = start_watcher(debounce=0.5, max_delay=5.0)
    expected = set()
    for i in range(1000):
        rel = f"Notes/gen-{i:04}.md"
        write(vault, rel, f"note {i}")
        expected.add(rel)
    assert col.wait_for(lambda b: expected <= set().union(*b))
    with col.cond:
        n_batches = len(col.batches)
    assert col.union() == expected  # every path, nothing else
    assert n_batches <= 3, f"{n_batches} batches"


def test_rename_delivers_old_and_new_paths(vault: Path, start_watcher) -> None:
    write(vault, "Notes/Old.md")
    write(vault, "Notes/Sub/Inner.md")
    write(vault, "Notes/Binned.md")
    _, col = start_watcher()
    (vault / "Notes/Old.md").rename(vault / "Notes/New.md")
    assert col.wait_seen("Notes/Old.md", "Notes/New.md")
    assert any({"Notes/Old.md", "Notes/New.md"} <= b for b in col.batches)

    # Moving into Obsidian's .trash: only the old path is a candidate.
    (vault / "Notes/Binned.md").rename(vault / ".trash/Binned.md")
    # A directory rename: both prefixes, marked as directories.
    (vault / "Notes/Sub").rename(vault / "Notes/Moved")
    assert col.wait_seen("Notes/Binned.md", "Notes/Sub/", "Notes/Moved/")
    assert not [e for e in col.union() if e.startswith(".trash")]
    assert is_dir_entry("Notes/Moved/") and not is_dir_entry("Notes/New.md")


def test_delete_delivers_path(vault: Path, start_watcher) -> None:
    write(vault, "Notes/Gone.md")
    write(vault, "Notes/Dir/a.md")
    write(vault, "Notes/Dir/b.pdf")
    _, col = start_watcher()
    (vault / "Notes/Gone.md").unlink()
    assert col.wait_seen("Notes/Gone.md")
    shutil.rmtree(vault / "Notes/Dir")
    assert col.wait_seen("Notes/Dir/")
    assert col.union() <= {"Notes/Gone.md", "Notes/Dir/", "Notes/Dir/a.md", "Notes/Dir/b.pdf"}


def test_hidden_temp_and_ignored_files_never_appear(vault: Path, start_watcher) -> None:
    write(vault, ".vaultbotignore", "Private/\n*.secret.md\n")
    w, col = start_watcher()
    noise = [
        ".obsidian/workspace.json",
        ".obsidian/plugins/x/README.md",
        ".trash/Old.md",
        ".Note.md.icloud",
        "Notes/.Note.md.swp",
        "Notes/Note.md~",
        "Notes/Note.md.tmp",
        "Notes/4913",
        "Notes/.#Note.md",
        "Notes/Paper.pdf.crdownload",
        "Notes/image.png",
        "Private/diary.md",
        "Notes/plans.secret.md",
    ]
    for rel in noise:
        write(vault, rel)
    write(vault, "Notes/visible.md")  # last, so the noise is already through
    assert col.wait_seen("Notes/visible.md")
    assert w.flush_now()
    assert not col.wait_for(lambda b: len(col.union()) > 1, timeout=QUIET)
    assert col.union() == {"Notes/visible.md"}


def test_vaultbotignore_change_reloads_and_requests_rescan(vault: Path, start_watcher) -> None:
    w, col = start_watcher()
    write(vault, ".vaultbotignore", "Drafts/\n")
    assert col.wait_seen(RESCAN)
    assert wait_until(lambda: w.filter.patterns == ("Drafts/",))
    write(vault, "Drafts/wip.md")
    write(vault, "Notes/done.md")
    assert col.wait_seen("Notes/done.md")
    assert w.flush_now()
    assert "Drafts/wip.md" not in col.union()


def test_raising_on_batch_does_not_kill_the_watcher(
    vault: Path, start_watcher, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(n: int, batch: set[str]) -> None:
        if n == 1:
            raise RuntimeError("indexer crashed")

    caplog.set_level(logging.ERROR, logger="sync.watcher")
    _, col = start_watcher(Collector(explode))
    write(vault, "Notes/first.md")
    assert col.wait_seen("Notes/first.md")
    assert wait_until(lambda: "on_batch failed" in caplog.text)
    assert "RuntimeError: indexer crashed" in caplog.text
    write(vault, "Notes/second.md")
    assert col.wait_seen("Notes/second.md")
    assert col.batches[0] == {"Notes/first.md"}
    assert col.union() == {"Notes/first.md", "Notes/second.md"}


def test_events_during_slow_batch_go_to_next_batch(vault: Path, start_watcher) -> None:
    entered = threading.Event()
    release = threading.Event()
    active = 0
    max_active = 0
    lock = threading.Lock()

    def slow(n: int, batch: set[str]) -> None:
        nonlocal active, max_active
        with lock:
            active += 1
            max_active = max(max_active, active)
        if n == 1:
            entered.set()
            release.wait(WAIT)
        with lock:
            active -= 1

    w, col = start_watcher(Collector(slow))
    write(vault, "Notes/a.md")
    assert entered.wait(WAIT)
    write(vault, "Notes/b.md")
    write(vault, "Notes/c.md")
    # Queued while on_batch is busy, and held well past the debounce.
    assert wait_until(lambda: w.pending_count >= 2)
    time.sleep(0.5)
    assert len(col.batches) == 1
    release.set()
    assert col.wait_for(lambda b: len(b) >= 2)
    assert col.batches[0] == {"Notes/a.md"}
    assert {"Notes/b.md", "Notes/c.md"} <= col.batches[1]
    assert max_active == 1


def test_max_delay_flushes_a_continuous_stream(vault: Path, start_watcher) -> None:
    _, col = start_watcher(debounce=0.3, max_delay=0.8)
    note = vault / "Notes/stream.md"
    start = time.monotonic()
    first_batch_at = None
    # A write every 0.1 s for 2 s never leaves a 0.3 s gap: only max_delay can flush.
    while time.monotonic() - start < 2.0:
        note.write_text(str(time.monotonic()), encoding="utf-8")
        if first_batch_at is None and col.batches:
            first_batch_at = time.monotonic() - start
        time.sleep(0.1)
    assert first_batch_at is not None, "no batch while the stream was running"
    assert first_batch_at < 1.8
    assert col.union() == {"Notes/stream.md"}


def test_chmod_and_touch_of_a_file_are_delivered(vault: Path, start_watcher) -> None:
    """A chmod can make a skipped (unreadable) note readable: it must reach a batch (issue #10).
    A directory's chmod and a read of a file do not."""
    note = write(vault, "Notes/locked.md")
    note.chmod(0)
    _, col = start_watcher()
    note.chmod(0o644)
    assert col.wait_seen("Notes/locked.md")
    n = len(col.batches)
    os.utime(note)  # `touch` of an existing file: an attrib event too
    assert col.wait_for(lambda b: len(b) > n)
    assert col.batches[n:] == [{"Notes/locked.md"}]
    n = len(col.batches)
    (vault / "Notes").chmod(0o755)
    note.read_text()
    time.sleep(QUIET)
    assert len(col.batches) == n


def test_flush_now_skips_the_debounce(vault: Path, start_watcher) -> None:
    w, col = start_watcher(debounce=5.0, max_delay=10.0)
    assert w.flush_now(timeout=1)  # nothing pending: returns at once
    # Saved atomically (as editors do: a hidden temp file renamed into place), so one event
    # arrives; a plain write's create/modify/close events could trail in after the flush.
    os.replace(write(vault, ".urgent.md.tmp"), vault / "Notes" / "urgent.md")
    assert wait_until(lambda: w.pending_count == 1)
    start = time.monotonic()
    assert w.flush_now(timeout=5)
    assert time.monotonic() - start < 1.0
    assert col.batches == [{"Notes/urgent.md"}]
    assert w.pending_count == 0


def test_stop_joins_threads_and_delivers_nothing_more(vault: Path) -> None:
    col = Collector()
    before = set(threading.enumerate())
    w = VaultWatcher(vault, col, filter=VaultFilter(vault), debounce=5.0, max_delay=10.0)
    w.start()
    assert w.running
    write(vault, "Notes/pending.md")
    assert wait_until(lambda: w.pending_count == 1)
    start = time.monotonic()
    assert w.stop(timeout=5) is True
    assert time.monotonic() - start < 5
    assert not w.running
    assert w.pending_count == 0
    assert set(threading.enumerate()) <= before  # observer, emitter and worker joined
    write(vault, "Notes/after.md")
    time.sleep(0.3)
    assert col.batches == []  # pending entries dropped, later events ignored
    with pytest.raises(RuntimeError):
        w.start()


def test_vault_given_through_a_symlink(vault: Path, tmp_path: Path) -> None:
    link = tmp_path / "link-to-vault"
    link.symlink_to(vault, target_is_directory=True)
    col = Collector()
    with VaultWatcher(link, col, filter=VaultFilter(link), **FAST) as w:
        write(link, "Notes/via-link.md")
        assert col.wait_seen("Notes/via-link.md")
        assert w.flush_now()
    assert col.union() == {"Notes/via-link.md"}


def test_context_manager_and_bad_arguments(vault: Path, tmp_path: Path) -> None:
    col = Collector()
    with VaultWatcher(vault, col, filter=VaultFilter(vault), **FAST) as w:
        assert w.running
        write(vault, "Notes/ctx.md")
        assert col.wait_seen("Notes/ctx.md")
    assert not w.running
    with pytest.raises(ValueError):
        VaultWatcher(vault, col, filter=VaultFilter(vault), debounce=2.0, max_delay=1.0)
    missing = tmp_path / "missing"
    with pytest.raises(FileNotFoundError):
        VaultWatcher(missing, col, filter=VaultFilter(missing)).start()
