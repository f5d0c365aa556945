"""The keyword index's snapshots (engine/lexical.py, "Snapshots"): the compact base written beside
keywords.sqlite3 after a merge or a full load, memory-mapped and read by position by the next
process, which applies only the rows committed after it. Results must be exactly those of a load
from SQLite; a snapshot that does not provably match the index must never be used."""

from __future__ import annotations

import json
import logging
import mmap
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import engine.keyword_snapshot as keyword_snapshot
import engine.lexical as lexical
from engine.lexical import LexDoc, LexicalIndex
from engine.models import Scope

TOK = "bigram"  # no Kiwi: quick to load, also in a child process
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
         "sigma tau upsilon phi chi psi omega apple banana cherry durian elder fig grape "
         "회의록 작성 요령 점심 메뉴 추천 여행 준비물 일정 정리").split()
QUERIES = ["alpha beta", "gamma", "kappa lambda iota", "zeta eta", "omega apple fig",
           "회의록 작성", "점심 메뉴", "여행 일정 정리", "pi rho sigma tau", "durian", "nothing"]
SCOPES = [None, Scope(), Scope(folders=("f1",)), Scope(tags=("t0",)),
          Scope(include_private=True, exclude_folders=("f2",))]


def make_docs(n: int, seed: int, prefix: str = "c") -> list[LexDoc]:
    rng = random.Random(seed)
    weights = [1 / (i + 1) for i in range(len(WORDS))]  # Zipf-like: shared terms, varied tfs
    docs = []
    for i in range(n):
        text = " ".join(rng.choices(WORDS, weights, k=rng.randint(3, 40)))
        docs.append(LexDoc(f"{prefix}{i}", text, f"f{i % 3}/n{i // 4}.md", (f"t{i % 2}",),
                           i % 17 == 0))
    return docs


def results(ix: LexicalIndex, k: int = 1000) -> dict[str, list[tuple[str, float]]]:
    return {f"{q}|{j}|{k}": ix.search(q, k, scope) for q in QUERIES
            for j, scope in enumerate(SCOPES)}


def all_results(ix: LexicalIndex) -> dict[str, list[tuple[str, float]]]:
    return {**results(ix, 7), **results(ix, 1000)}


def as_sets(res: dict[str, list[tuple[str, float]]]) -> dict[str, dict[str, float]]:
    """Exact ids and scores, whatever the order of equal scores (which depends on slot order)."""
    return {key: dict(hits) for key, hits in res.items() if key.endswith("|1000")}


def mapped(a: np.ndarray) -> bool:
    base = a
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return isinstance(base, mmap.mmap)


def snapshots(path: Path) -> list[Path]:
    return sorted(path.parent.glob(path.name + ".*.base"))


def full_load(path: Path, tmp: Path) -> LexicalIndex:
    """The index loaded from its SQLite rows alone: a copy in a dir without snapshots."""
    tmp.mkdir()
    copy = tmp / path.name
    src = sqlite3.connect(path)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    ix = LexicalIndex(copy, TOK)
    assert ix.snapshot is not None and ix.snapshot.parent == tmp  # none was there: it wrote one
    return ix


def built(path: Path, n: int = 300) -> LexicalIndex:
    ix = LexicalIndex(path, TOK)
    docs = make_docs(n, seed=1)
    for i in range(0, n, 50):
        ix.upsert(docs[i : i + 50])
    ix.delete([f"c{i}" for i in range(0, n, 11)])
    ix.upsert([LexDoc("c5", "alpha alpha alpha beta 회의록", "f1/n1.md", ("t0",))])
    ix.merge()
    return ix


# ---------------------------------------------------------------- exact results


def test_reopened_from_snapshot_results_are_identical(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    writer = built(path)
    assert writer.snapshot is not None and snapshots(path) == [writer.snapshot]
    # the merge's arrays were swapped for the file's
    assert mapped(writer._mem.base_doc) and writer._mem.base_file is not None
    want = all_results(writer)
    assert any(len(v) > 20 for v in want.values())

    again = LexicalIndex(path, TOK)
    assert again.snapshot == writer.snapshot
    mem = again._mem
    assert mem.base_file is not None and mapped(mem.base_doc) and mapped(mem.base_tf)
    assert not mem.base_doc.flags.writeable
    assert all_results(again) == want  # same ids, same order, same float scores
    assert again.ids() == writer.ids() and again.generation == writer.generation

    # the same in another process, scores compared through repr() (exact for floats)
    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
            "import tests.test_lexical_snapshot as t\n"
            f"ix = t.LexicalIndex({str(path)!r}, t.TOK)\n"
            "print(json.dumps([str(ix.snapshot), t.mapped(ix._mem.base_doc), t.all_results(ix)]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    snap, was_mapped, got = json.loads(proc.stdout)
    assert snap == str(writer.snapshot) and was_mapped
    assert {k: [tuple(h) for h in v] for k, v in got.items()} == want


def test_rows_after_the_snapshot_are_caught_up_exactly(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    writer = built(path)
    snap = writer.snapshot
    # after the snapshot: new chunks, replaced chunks, deletions, a delete and re-add
    writer.upsert(make_docs(40, seed=2, prefix="n"))
    writer.upsert([LexDoc(f"c{i}", "gamma gamma 점심 메뉴 replaced", "f2/r.md") for i in (1, 2, 3)])
    writer.delete(["c4", "c6", "n3"])
    writer.delete(["c7"])
    writer.upsert([LexDoc("c7", "back again zeta", "f0/b.md", ("t1",))])
    assert snapshots(path) == [snap]  # upserts write no snapshot

    reader = LexicalIndex(path, TOK)
    assert reader.snapshot == snap and reader._mem.delta_count > 0
    scratch = full_load(path, tmp_path / "full")
    assert reader.ids() == scratch.ids() == writer.ids()
    assert as_sets(results(reader)) == as_sets(results(scratch)) == as_sets(results(writer))


def test_avgdl_is_exact_whatever_the_path() -> None:
    """Document lengths are integers; their sum must not depend on how the index got them, or a
    snapshot plus catch-up, a full load and a writer's incremental updates would score
    differently in the last bits. A float32 sum rounds once past 2**24: here numpy's pairwise
    sum adds the 1-long documents at slots 8, 16, ... to the 39M-long one at slot 0, and loses
    them."""

    def row(i: int, tids: list[int], tfs: list[int]) -> tuple[str, str, str, int, bytes, bytes]:
        return (f"d{i}", "n.md", "", 0, np.array(tids, dtype=np.int32).tobytes(),
                np.array(tfs, dtype=np.uint16).tobytes())

    rows = [row(0, [*range(600), 600], [65535] * 600 + [4])]  # 39321004: a float32
    rows += [row(i, [601], [1]) for i in range(1, 128)]
    whole = lexical._Postings.build(rows, 602)
    part = lexical._Postings.build(rows[:1], 602)
    for r in rows[1:]:
        part.add(lexical.LexicalIndex._row_doc(r))
    assert whole.total_len == part.total_len == 600 * 65535 + 4 + 127
    want = whole.search([600], 5, None)
    assert part.search([600], 5, None) == want
    assert part.compacted(602).search([600], 5, None) == want


# ---------------------------------------------------------------- never trusted


@pytest.fixture
def snapped(tmp_path: Path) -> tuple[Path, Path, dict[str, dict[str, float]]]:
    """(index path, its snapshot, results of a load from SQLite); nothing left open."""
    path = tmp_path / "kw.sqlite3"
    ix = built(path)
    snap = ix.snapshot
    assert snap is not None
    ix.close()
    return path, snap, as_sets(results(full_load(path, tmp_path / "full")))


def reopen_rejecting(path: Path, want: dict, caplog: pytest.LogCaptureFixture, reason: str,
                     ) -> LexicalIndex:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="engine.lexical"):
        ix = LexicalIndex(path, TOK)
    said = [r.getMessage().split(" not used: ")[1] for r in caplog.records
            if " not used: " in r.getMessage()]
    assert said and reason in said[0], said  # the first (newest) file, for this reason
    assert as_sets(results(ix)) == want
    return ix


def test_truncated_or_damaged_snapshot_is_not_used(snapped, caplog) -> None:
    path, snap, want = snapped
    data = snap.read_bytes()
    snap.write_bytes(data[:-100])
    ix = reopen_rejecting(path, want, caplog, "truncated")
    assert ix.snapshot == snap and snap.stat().st_size == len(data)  # replaced by a good one
    ix.close()

    mid = len(data) // 2  # one flipped bit in the postings
    snap.write_bytes(data[:mid] + bytes([data[mid] ^ 1]) + data[mid + 1 :])
    reopen_rejecting(path, want, caplog, "CRC").close()
    snap.write_bytes(b"not a snapshot at all, but long enough to have a prefix")
    reopen_rejecting(path, want, caplog, "not a keyword index snapshot").close()


def test_snapshot_of_another_index_is_not_used(snapped, tmp_path: Path, caplog) -> None:
    path, snap, want = snapped
    other = LexicalIndex(tmp_path / "other" / "kw.sqlite3", TOK)  # other uuid, fewer chunks
    other.upsert(make_docs(120, seed=7))
    other.merge()
    assert other.snapshot is not None and other._uuid not in snap.name
    shutil.copyfile(other.snapshot, snap)  # under this index's name (uuid and generation)
    reopen_rejecting(path, want, caplog, "uuid").close()


def test_snapshot_that_disagrees_with_sqlite_is_not_used(snapped, tmp_path: Path,
                                                         caplog) -> None:
    """Last line of defence: a header that matches but other content (a bug, another history
    that kept the uuid and generation) must not survive the count check after catch-up."""
    path, snap, want = snapped
    fd = os.open(snap, os.O_RDONLY)
    try:
        header, _, _ = keyword_snapshot.read_snapshot(fd, {
            "uuid": snap.name.split(".")[2], "schema": lexical.SCHEMA_VERSION, "tokenizer": TOK,
            "generation": 10**9, "floor": 0})
    finally:
        os.close(fd)
    other = LexicalIndex(tmp_path / "other" / "kw.sqlite3", TOK)
    other.upsert(make_docs(120, seed=7))
    other.merge()
    fd = os.open(snap, os.O_RDWR | os.O_TRUNC)
    try:
        keyword_snapshot.write_snapshot(fd, lexical._snapshot_arrays(other._mem), {**header, "n_slots": other._mem.n_slots})
    finally:
        os.close(fd)
    reopen_rejecting(path, want, caplog, "chunks after catching up").close()


@pytest.mark.parametrize("field", ["schema", "tokenizer"])
def test_snapshot_of_another_schema_or_tokenizer_is_not_used(
    tmp_path: Path, caplog, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    path = tmp_path / "kw.sqlite3"
    ix = built(path)
    ix.upsert([LexDoc("x", "omega omega", "f0/x.md")])
    with monkeypatch.context() as mp:  # the snapshot is written as if under another one
        if field == "schema":
            mp.setattr(lexical, "SCHEMA_VERSION", "older")
        else:
            mp.setattr(ix, "tokenizer", "kiwi")
        ix.merge()
    assert ix.snapshot is not None
    want = as_sets(results(full_load(path, tmp_path / "full")))
    ix.close()
    reopen_rejecting(path, want, caplog, field).close()


def test_snapshot_newer_than_the_index_is_not_used(tmp_path: Path, caplog) -> None:
    """A keywords.sqlite3 restored from a backup goes back to an older generation: a snapshot
    written after the backup does not describe it, now or once it reaches that generation."""
    path = tmp_path / "kw.sqlite3"
    ix = built(path)
    backup = tmp_path / "backup.sqlite3"
    src, dst = sqlite3.connect(path), sqlite3.connect(backup)
    src.backup(dst)
    src.close()
    dst.close()
    # the same chunks with other texts: only the generation tells the snapshot apart
    for i in (1, 2, 8):
        ix.upsert([LexDoc(f"c{i}", "psi psi psi chi", "f0/z.md")])
    ix.merge()
    future = ix.snapshot
    assert future is not None
    ix.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(backup, path)
    want = as_sets(results(full_load(path, tmp_path / "full")))
    restored = reopen_rejecting(path, want, caplog, "newer")
    assert future.exists()  # ignored, not removed: a process that only reads writes nothing
    for i in (1, 2, 8):  # back to the future snapshot's generation, with other texts
        restored.upsert([LexDoc(f"c{i}", f"omega {i}", "f0/o.md")])
    assert not future.exists()  # the first commit removed it: it claimed a generation to come
    scratch = full_load(path, tmp_path / "full2")
    again = LexicalIndex(path, TOK)
    assert again.generation == int(future.name.split(".")[-2])
    assert as_sets(results(again)) == as_sets(results(scratch))


def test_snapshot_older_than_the_kept_tombstones_is_not_used(
    tmp_path: Path, caplog, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lexical, "_TOMBSTONE_KEEP", 3)
    path = tmp_path / "kw.sqlite3"
    ix = built(path)
    ix.close()
    ix = LexicalIndex(path, TOK)
    ix.delete(["c1"])  # its tombstone will be pruned below
    for i in range(5):
        ix.upsert([LexDoc(f"new{i}", "kappa", "f0/k.md")])
    ix.close()
    want = as_sets(results(full_load(path, tmp_path / "full")))
    reopen_rejecting(path, want, caplog, "tombstone floor").close()


# ---------------------------------------------------------------- processes, disks


def test_reader_keeps_its_snapshot_while_the_writer_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    writer = built(path)
    first = writer.snapshot
    reader = LexicalIndex(path, TOK)
    assert reader.snapshot == first and mapped(reader._mem.base_doc)
    assert results(reader) == results(writer)

    writer.upsert(make_docs(60, seed=3, prefix="w"))
    writer.delete([f"c{i}" for i in range(1, 40, 3)])
    writer.merge()
    second = writer.snapshot
    assert second is not None and second != first
    assert snapshots(path) == [second] and not first.exists()  # unlinked, still mapped
    assert as_sets(results(reader)) == as_sets(results(writer))  # caught up from its old one
    assert reader.snapshot == first and reader._mem.delta_count > 0

    writer.upsert([LexDoc("late", "omega omega durian", "f1/l.md")])
    fresh = LexicalIndex(path, TOK)
    assert fresh.snapshot == second
    assert as_sets(results(fresh)) == as_sets(results(reader)) == as_sets(results(writer))


def test_failed_snapshot_write_leaves_a_working_index(tmp_path: Path, caplog,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kw.sqlite3"

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as mp:
        mp.setattr(lexical, "write_snapshot", full_disk)
        ix = built(path)
        assert ix.snapshot is None and snapshots(path) == []
        assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        want = all_results(ix)
        ix.close()
        ix = LexicalIndex(path, TOK)
        assert ix.snapshot is None and all_results(ix) == want
    assert "No space left" in caplog.text


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    old = tmp_path / f".{path.name}.x.1.base.99-dead.tmp"
    new = tmp_path / f".{path.name}.x.2.base.98-live.tmp"
    ix = LexicalIndex(path, TOK)
    for p in (old, new):
        p.write_bytes(b"partial")
    long_ago = time.time() - 2 * lexical._SNAP_TMP_MAX_AGE
    os.utime(old, (long_ago, long_ago))
    ix.upsert(make_docs(30, seed=4))
    ix.merge()
    assert not old.exists() and new.exists()  # a live writer's may still be in progress


@pytest.mark.parametrize("with_snapshot", [True, False])
def test_read_only_data_dir(tmp_path: Path, with_snapshot: bool) -> None:
    src = tmp_path / "src"
    src.mkdir()
    ix = built(src / "kw.sqlite3")
    want = all_results(ix)
    ix.close()
    if not with_snapshot:
        for p in snapshots(src / "kw.sqlite3"):
            p.unlink()
    from helpers import read_only_mount  # here: the subprocess above imports this module alone

    with read_only_mount(src, tmp_path / "ro") as ro:
        before = sorted(p.name for p in ro.iterdir())
        ix = LexicalIndex(ro / "kw.sqlite3", TOK)
        assert (ix.snapshot is not None) == with_snapshot
        if with_snapshot:
            assert all_results(ix) == want
        else:
            assert as_sets(results(ix)) == as_sets(want)
        ix.merge()  # nothing to write it to: still searchable
        assert as_sets(results(ix)) == as_sets(want)
        ix.close()
        assert sorted(p.name for p in ro.iterdir()) == before
