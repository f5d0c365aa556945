"""Registry.write_notes: a sync group's notes in one transaction, with the same outcome as
writing them one by one (on SQLite and on PostgreSQL)."""

from __future__ import annotations

from engine.models import ChunkRecord, ParsedNote
from engine.registry import NoteWrite, Registry


def _write(path: str, texts: list[str], h: str, replaces: str | None = None) -> NoteWrite:
    note = ParsedNote(path=path, kind="md", title=path[:-3], body=" ".join(texts))
    chunks = [ChunkRecord(f"{path}#{t}", path, i, t, f"h-{t}", (), None, (0, len(t)), 1)
              for i, t in enumerate(texts)]
    return NoteWrite(note, h, 1, 1, chunks, replaces)


def test_group_write_matches_one_by_one(registry_url: str) -> None:
    reg = Registry(registry_url)
    assert reg.write_notes([_write("a.md", ["a1", "a2"], "ha"), _write("b.md", ["b1"], "hb")], "m") == []
    gen = reg.generation()
    states = reg.note_states()
    b_id = states["b.md"].id
    assert {p: s.content_hash for p, s in states.items()} == {"a.md": "ha", "b.md": "hb"}

    # One group: a.md edited (a2 gone, a3 new), b.md moved to c.md, d.md new.
    removed = reg.write_notes([
        _write("a.md", ["a1", "a3"], "ha2"),
        _write("c.md", ["b1"], "hb", replaces="b.md"),
        _write("d.md", ["d1"], "hd"),
    ], "m")
    assert removed == ["a.md#a2", "b.md#b1"]
    assert reg.generation() > gen  # readers see that the index changed
    states = reg.note_states()
    assert sorted(states) == ["a.md", "c.md", "d.md"]
    assert states["c.md"].id == b_id  # the moved note kept its row
    with reg.engine.connect() as conn:
        ids = sorted(r[0] for r in conn.exec_driver_sql("select id from chunks"))
    assert ids == ["a.md#a1", "a.md#a3", "c.md#b1", "d.md#d1"]
    assert reg.counts()["chunks"] == 4
    reg.close()


def test_group_write_is_all_or_nothing(registry_url: str) -> None:
    reg = Registry(registry_url)
    reg.write_notes([_write("a.md", ["a1"], "ha")], "m")
    bad = _write("b.md", ["x", "x"], "hb")  # two chunks with one id: the chunk insert fails
    try:
        reg.write_notes([_write("a.md", ["a2"], "ha2"), bad], "m")
    except Exception:
        pass
    else:
        raise AssertionError("a duplicate chunk id must fail the write")
    states = reg.note_states()
    assert sorted(states) == ["a.md"] and states["a.md"].content_hash == "ha"
    reg.close()


def test_group_without_moves_in_few_statements(registry_url: str) -> None:
    """The common group (new and edited notes): same rows as note-by-note writes, and the
    skip record of a note that now parses is cleared."""
    one = Registry(registry_url)
    one.write_notes([_write("a.md", ["a1", "a2"], "ha")], "m")
    one.record_skip("d.md", "parse failed")
    removed = one.write_notes([_write("a.md", ["a1", "a3"], "ha2"), _write("d.md", ["d1"], "hd"),
                               _write("e.md", [], "he")], "m")
    assert removed == ["a.md#a2"]
    assert one.skipped() == {}
    states = one.note_states()
    assert {p: s.content_hash for p, s in states.items()} == {"a.md": "ha2", "d.md": "hd", "e.md": "he"}
    with one.engine.connect() as conn:
        rows = sorted(conn.exec_driver_sql(
            "select n.path, c.id, c.ordinal from chunks c join notes n on n.id = c.note_id"))
        versions = {r[0]: r[1] for r in conn.exec_driver_sql("select path, version from notes")}
    assert [tuple(r) for r in rows] == [("a.md", "a.md#a1", 0), ("a.md", "a.md#a3", 1), ("d.md", "d.md#d1", 0)]
    assert versions == {"a.md": 2, "d.md": 1, "e.md": 1}
    one.close()


def test_move_onto_an_existing_note_reports_its_chunks(registry_url: str) -> None:
    reg = Registry(registry_url)
    reg.write_notes([_write("a.md", ["a1"], "ha"), _write("b.md", ["b1"], "hb")], "m")
    removed = reg.write_notes([_write("b.md", ["a1"], "ha", replaces="a.md")], "m")
    assert removed == ["a.md#a1", "b.md#b1"]  # the overwritten note's chunks leave the stores too
    assert sorted(reg.note_states()) == ["b.md"]
    reg.close()
