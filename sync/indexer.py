"""One sync pass: walk -> precheck (size+mtime) -> hash -> parse -> chunk -> diff -> embed what
is new -> write through the index.

Order of writes per group of notes, so that a kill -9 anywhere leaves something `Index.repair()` fixes:
new vectors go to the embedding cache first, then into the vector store and keyword index
(idempotent upserts), then the registry swaps the notes' chunks in one transaction, and only
then are vanished chunks dropped from the stores. A run is marked `running` until it ends; a
run found still `running` by the next sync (which holds the lock) triggers a repair."""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine.index import Index
from engine.language import language_of_chunks
from engine.models import ChunkDraft, ChunkRecord, ParsedNote, chunk_id, sha256_hex
from engine.names import nfc
from engine.registry import NoteInfo, NoteState, NoteWrite, SkipState
from engine.versions import PIPELINE_VERSION  # re-chunks older indexes
from sync.chunk import chunk_note
from sync.decode import decode_note
from sync.ignore import VaultFilter
from sync.links import LinkResolver
from sync.parse import parse_markdown
from sync.pdf import SkipFile, parse_pdf

log = logging.getLogger(__name__)

RESCAN = "/"  # a watcher batch entry meaning "look at everything"

Progress = Callable[[int, int], None]


@dataclass
class SyncStats:
    notes_added: int = 0
    notes_updated: int = 0
    notes_moved: int = 0
    notes_deleted: int = 0
    notes_unchanged: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_deleted: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    repaired: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        out = {k: v for k, v in self.__dict__.items() if k != "repaired"}
        out["seconds"] = round(self.seconds, 3)
        if self.repaired:
            out["repaired"] = self.repaired
        return out

    @property
    def changed_paths_count(self) -> int:
        return self.notes_added + self.notes_updated + self.notes_moved + self.notes_deleted


@dataclass
class _Work:
    """A note to (re)write: where it is, where it was, and what we read."""

    path: str
    size: int
    mtime_ns: int
    data: bytes
    content_hash: str
    state: NoteState | None  # its registry row before this sync, if any
    moved_from: str | None = None


def _stamp_of(st: os.stat_result) -> tuple[int, int, int, int]:
    """What must stay the same for a skip to hold: any write, chmod or rename changes it (a
    chmod changes only the mode and ctime)."""
    return st.st_size, st.st_mtime_ns, st.st_mode, st.st_ctime_ns


def _stamp(skip: SkipState) -> tuple[int, int, int | None, int | None]:
    return skip.size, skip.mtime_ns, skip.mode, skip.ctime_ns


def chunk_sources(note: ParsedNote, draft: ChunkDraft) -> tuple[str, ...]:
    """The other notes whose text is in this chunk: every embed region its text overlaps."""
    if not note.embed_regions:
        return ()
    spans = [draft.span] + ([draft.prefix_span] if draft.prefix_span else [])
    found = [p for start, end, paths in note.embed_regions for s, e in spans
             if start < e and s < end for p in paths]
    return tuple(sorted(set(found) - {note.path}))


class Indexer:
    """Keeps an Index equal to a vault. Not thread-safe: one sync at a time (the lock)."""

    def __init__(
        self,
        index: Index,
        vault: Path,
        *,
        chunk_tokens: int = 400,
        group_texts: int = 512,
        vault_filter: VaultFilter | None = None,
        max_note_mb: float = 10.0,
    ) -> None:
        self.index = index
        self.vault = vault.resolve()
        self.chunk_tokens = chunk_tokens
        # Embed and write in groups: a crash loses at most one group's work, and each Chroma
        # upsert call costs ~17 ms on top of its records (512: 3 calls for the help vault).
        self.group_texts = group_texts
        self.filter = vault_filter or VaultFilter(self.vault)
        self.on_change: list[Callable[[set[str]], None]] = []  # called with changed note paths
        self._disk: dict[str, str] = {}  # canonical (NFC) path -> the name on disk
        self._stat: dict[str, os.stat_result] = {}  # canonical path -> its stat from the walk
        # Larger files are skipped unread: a 50 MB note made 45,000 chunks and 1.9 GB of RSS.
        self.max_note_mb = max_note_mb
        self.max_note_bytes = int(max_note_mb * 1024 * 1024)

    # ------------------------------------------------------------------ API
    def sync(self, hint: Iterable[str] = (), progress: Progress | None = None) -> SyncStats:
        """One pass over the whole vault. `hint` names paths the watcher saw change: they are
        hashed even when size and mtime look unchanged (mtime granularity can hide edits)."""
        t0 = time.perf_counter()
        reg = self.index.registry
        stats = SyncStats()
        hint = [nfc(h) for h in hint]  # the watcher reports names as the file system spells them
        unfinished = reg.unfinished_runs()
        run_id = reg.start_run(self.index.model)
        try:
            if unfinished:
                log.warning("previous sync did not finish (runs %s); repairing the index", unfinished)
                reg.close_runs(unfinished, "interrupted")
                stats.repaired = self._repair()
            signature = json.dumps({"pipeline": PIPELINE_VERSION, "chunk_tokens": self.chunk_tokens})
            full_rebuild = reg.get_meta("pipeline") != signature
            self._sync(set(hint), stats, progress, full_rebuild)
            if full_rebuild:
                reg.set_meta("pipeline", signature)
            if not self.index.in_step():
                log.warning("index stores differ from the registry; repairing")
                stats.repaired = self._repair()
            self.index.settled()
        except BaseException:
            stats.seconds = time.perf_counter() - t0
            reg.finish_run(run_id, "failed", stats.to_json())
            raise
        stats.seconds = time.perf_counter() - t0
        reg.finish_run(run_id, "ok", stats.to_json())
        return stats

    # ------------------------------------------------------------- internals
    def _repair(self) -> dict[str, int]:
        r = self.index.repair()
        return {
            "vectors_removed": r.vectors_removed,
            "vectors_added": r.vectors_added,
            "keywords_removed": r.keywords_removed,
            "keywords_added": r.keywords_added,
        }

    def _sync(self, hint: set[str], stats: SyncStats, progress: Progress | None, full: bool) -> None:
        reg = self.index.registry
        model = self.index.model
        files, twins = self._walk(stats)
        states = reg.note_states()
        skips = reg.skipped()
        rescan = RESCAN in hint or full
        # A watcher batch (it always names paths) trusts a skip while the file's stamp is the
        # same; a reconcile or `vaultbot sync` (no hint) tries every skipped file again.
        retry_skips = rescan or not hint
        too_big = f"larger than VAULTBOT_MAX_NOTE_MB ({self.max_note_mb:g} MB)"
        dropped: set[str] = set()  # indexed notes that cannot be indexed any more

        work: list[_Work] = []
        for path, (size, mtime_ns) in files.items():
            state = states.get(path)
            quick_same = state is not None and state.size == size and state.mtime_ns == mtime_ns
            if quick_same and state.embed_model == model and not rescan and path not in hint:
                stats.notes_unchanged += 1
                continue
            skip = skips.get(path)
            if (state is None and skip and not retry_skips and path not in hint
                    and _stamp(skip) == _stamp_of(self._stat[path])):
                stats.skipped.append({"path": path, "reason": skip.reason})
                continue
            if size > self.max_note_bytes:
                self._skip(stats, path, too_big)
                if state is not None:  # it grew past the cap: drop its old text
                    dropped.add(path)
                continue
            try:
                data = self.file(path).read_bytes()
            except OSError as exc:  # vanished or unreadable between walk and read
                self._skip(stats, path, f"cannot read: {exc.strerror or exc}")
                continue
            if skip is not None and state is None and not path.lower().endswith(".pdf"):
                try:  # still binary: settled here, or notes embedding it would be re-chunked
                    decode_note(data)
                except SkipFile as exc:
                    self._skip(stats, path, exc.reason)
                    continue
            digest = sha256_hex(data)
            if state is not None and state.content_hash == digest and state.embed_model == model and not full:
                if not quick_same:
                    reg.touch_note(path, size, mtime_ns)
                stats.notes_unchanged += 1
                continue
            work.append(_Work(path, size, mtime_ns, data, digest, state))

        if dropped:
            removed = reg.delete_notes(dropped)
            self.index.drop_chunks(removed)
            stats.chunks_deleted += len(removed)
            self._notify(dropped)
        gone = {p: s for p, s in states.items() if p not in files}
        # Renames and moves: a new path with the bytes of a vanished one is the same note.
        by_hash: dict[str, list[str]] = {}
        for p, s in gone.items():
            by_hash.setdefault(s.content_hash, []).append(p)
        for w in work:
            if w.state is None and by_hash.get(w.content_hash):
                old = by_hash[w.content_hash].pop(0)
                w.moved_from, w.state = old, gone.pop(old)

        # Notes that embed a changed, moved or deleted note must be re-chunked too, and so must
        # notes with an embed that pointed nowhere and now finds a note that just appeared.
        touched = ({w.path for w in work} | {w.moved_from for w in work if w.moved_from} | set(gone)
                   | dropped)
        queued = {w.path for w in work}
        appeared = {w.path for w in work if w.state is None or w.moved_from}
        # Link resolution over the whole vault costs ~10 ms per 1,000 files: only when needed.
        resolver = LinkResolver(files) if work or gone or dropped else None
        for path, state in states.items():
            if path in queued or path in gone or path in dropped or path not in files:
                continue
            found = appeared and resolver is not None and any(
                resolver.resolve(target.split("#", 1)[0], path) in appeared
                for target in state.missing_embeds
            )
            if found or touched.intersection(state.embedded):
                size, mtime_ns = files[path]
                try:
                    data = self.file(path).read_bytes()
                except OSError:
                    continue
                work.append(_Work(path, size, mtime_ns, data, sha256_hex(data), state))

        done = 0
        total = len(work)
        group: list[tuple[_Work, ParsedNote, list[ChunkRecord]]] = []
        pending_texts: set[str] = set()
        for w in work:
            parsed = self._parse(w, resolver, stats)
            if parsed is None:
                if w.state is not None and w.moved_from is None:
                    # It was indexed and now cannot be: drop it rather than keep stale text.
                    removed = reg.delete_notes([w.path])
                    self.index.drop_chunks(removed)
                    stats.chunks_deleted += len(removed)
                done += 1
                continue
            records = self._records(parsed)
            group.append((w, parsed, records))
            pending_texts.update(c.text_hash for c in records)
            if len(pending_texts) >= self.group_texts:
                done += self._flush(group, stats)
                group, pending_texts = [], set()
                if progress:
                    progress(done, total)
        done += self._flush(group, stats)
        if progress:
            progress(total, total)

        if gone:  # gone from the vault: recorded as note events for MCP recent_changes
            removed = reg.delete_notes(gone, vanished=True)
            self.index.drop_chunks(removed)
            stats.notes_deleted += len(gone)
            stats.chunks_deleted += len(removed)
            self._notify(set(gone))
        # Skips of files that no longer exist are forgotten.
        reg.forget_skips(p for p in skips if p not in files and p not in twins)
        self._fill_languages()

    def _fill_languages(self, batch: int = 500) -> None:
        """Notes stored before sync judged their language (an upgraded registry) get it from
        their stored chunks: no parsing, no embedding."""
        reg = self.index.registry
        todo = reg.notes_without_language()
        for i in range(0, len(todo), batch):
            chunks = reg.chunks_of_notes(todo[i : i + batch])
            reg.set_languages({p: language_of_chunks(cs) for p, cs in chunks.items()})

    def _walk(self, stats: SyncStats) -> tuple[dict[str, tuple[int, int]], set[str]]:
        """Every candidate file under its canonical (NFC) path, with its size and mtime. Paths
        are NFC everywhere past this point; `_disk` maps them back to the names on disk. Two
        files whose names differ only in normalisation (possible on Linux) would be one note:
        the second is skipped with its reason."""
        files: dict[str, tuple[int, int]] = {}
        disk: dict[str, str] = {}
        stat: dict[str, os.stat_result] = {}
        twins: set[str] = set()
        for raw, st in self.filter.walk():
            path = nfc(raw)
            if path in disk:
                twins.add(raw)
                self._skip(stats, raw, f"same name as {disk[path]!r} in another Unicode form "
                           "(NFC/NFD); rename one of them", st)
                continue
            disk[path] = raw
            stat[path] = st
            files[path] = (st.st_size, st.st_mtime_ns)
        self._disk = disk
        self._stat = stat
        return files, twins

    def file(self, path: str) -> Path:
        """The file on disk for a canonical vault path."""
        return self.vault / self._disk.get(path, path)

    def _parse(self, w: _Work, resolver: LinkResolver, stats: SyncStats) -> ParsedNote | None:
        try:
            if w.path.lower().endswith(".pdf"):
                return parse_pdf(w.path, self.file(w.path))
            text = decode_note(w.data)  # BOM, UTF-16; NUL removed; SkipFile for binary data
            if "\ufffd" in text and b"\xef\xbf\xbd" not in w.data:
                log.warning("%s: not valid UTF-8; undecodable bytes replaced", w.path)
            return parse_markdown(w.path, text, resolver, self._read_note)
        except SkipFile as exc:
            self._skip(stats, w.path, exc.reason)
        except Exception as exc:  # one bad file must never stop the sync
            log.warning("%s: skipped, parse failed: %s", w.path, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self._skip(stats, w.path, f"parse failed: {type(exc).__name__}: {exc}")
        return None

    def _read_note(self, path: str) -> str | None:
        """An embedded note's text, decoded like a note's own; None when it cannot be."""
        try:
            file = self.file(path)
            if file.stat().st_size > self.max_note_bytes:
                return None
            return decode_note(file.read_bytes())
        except (OSError, SkipFile):
            return None

    def _skip(self, stats: SyncStats, path: str, reason: str, st: os.stat_result | None = None) -> None:
        """Record a skip with the stamp the walk saw (`st` for a name not in `_stat`)."""
        log.info("skipped %s: %s", path, reason)
        stats.skipped.append({"path": path, "reason": reason})
        st = st or self._stat.get(path)
        if st is None:
            self.index.registry.record_skip(path, reason)  # no stamp: never trusted
        else:
            self.index.registry.record_skip(path, reason, *_stamp_of(st))

    def _records(self, note: ParsedNote) -> list[ChunkRecord]:
        drafts = chunk_note(note, max_tokens=self.chunk_tokens)
        seen: Counter[str] = Counter()
        out = []
        for d in drafts:
            h = d.text_hash
            out.append(ChunkRecord(
                id=chunk_id(note.path, h, seen[h]), note_path=note.path, ordinal=d.ordinal,
                text=d.text, text_hash=h, heading_path=d.heading_path, page=d.page, span=d.span,
                tokens=d.tokens, sources=chunk_sources(note, d),
            ))
            seen[h] += 1
        return out

    def _flush(self, group: list[tuple[_Work, ParsedNote, list[ChunkRecord]]], stats: SyncStats) -> int:
        if not group:
            return 0
        index = self.index
        texts = {c.text_hash: c.vector_text for _, _, recs in group for c in recs}
        vectors, embedded = index.vectors_for(texts)
        stats.chunks_embedded += embedded
        stats.chunks_reused += sum(len(recs) for _, _, recs in group) - embedded
        changed: set[str] = set()
        # One vector-store and keyword-index write for the whole group (per-note calls cost
        # ~10 ms each in Chroma), then one registry transaction, then the deletions.
        infos = {
            note.path: NoteInfo(note.path, note.title, tuple(note.tags), tuple(note.aliases),
                                note.private, note.kind, note.frontmatter, 0,
                                embedded=tuple(note.embedded), suspect=note.suspect_tags)
            for _, note, _ in group
        }
        index.put_chunks([c for _, _, recs in group for c in recs], infos, vectors)
        removed = index.registry.write_notes(
            [NoteWrite(note, w.content_hash, w.size, w.mtime_ns, recs, w.moved_from,
                       language_of_chunks(recs))
             for w, note, recs in group], index.model)
        for w, _, _ in group:
            if w.moved_from:
                stats.notes_moved += 1
                changed.add(w.moved_from)
            elif w.state is None:
                stats.notes_added += 1
            else:
                stats.notes_updated += 1
            changed.add(w.path)
        index.drop_chunks(removed)
        stats.chunks_deleted += len(removed)
        self._notify(changed)
        return len(group)

    def _notify(self, paths: set[str]) -> None:
        for callback in self.on_change:
            try:
                callback(paths)
            except Exception:  # a listener (e.g. a cache) must not break indexing
                log.exception("on_change listener failed")
