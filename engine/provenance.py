"""The one visibility rule: a chunk may be shown only where every note its text came from may be
shown: its own note and each note embedded into it, at any depth (`ChunkRecord.sources`).

Every place that shows note text asks here: retrieval results and their neighbours, the answer
cache, citations and snippets (made from those results). The stores' own scope filters only
narrow the candidates early; this is the check that decides."""

from __future__ import annotations

from collections.abc import Iterable

from engine.models import ChunkRecord, Scope
from engine.registry import NoteInfo, Registry


def sources_of(chunk: ChunkRecord, note: NoteInfo | None) -> tuple[str, ...]:
    """The other notes whose text is in `chunk`. A row written before provenance was recorded
    (None) counts every note its note embeds: unknown means all of them."""
    if chunk.sources is not None:
        return chunk.sources
    return note.embedded if note is not None else ()


def note_visible(scope: Scope, note: NoteInfo | None) -> bool:
    """May `scope` show this note? An unknown note (not in the registry) is never shown."""
    return note is not None and scope.allows(note.path, note.tags, note.private, note.suspect)


def visible(scope: Scope, chunks: Iterable[ChunkRecord], registry: Registry,
            notes: dict[str, NoteInfo] | None = None) -> set[str]:
    """The ids of `chunks` that `scope` may show. `notes` (path -> info) saves reads; the
    notes missing from it are read from the registry (and added to it)."""
    chunks = list(chunks)
    notes = notes if notes is not None else {}
    want = {c.note_path for c in chunks} - notes.keys()
    if want:
        notes.update(registry.note_info(want))
    want = {s for c in chunks for s in sources_of(c, notes.get(c.note_path))} - notes.keys()
    if want:
        notes.update(registry.note_info(want))
    out = set()
    for c in chunks:
        info = notes.get(c.note_path)
        if note_visible(scope, info) and all(
            note_visible(scope, notes.get(s)) for s in sources_of(c, info)
        ):
            out.add(c.id)
    return out
