"""A vault of bad input, synced on SQLite and PostgreSQL: every file is indexed with its right
text or skipped with its reason, nothing reaches the database with a NUL, the stores stay in
step, and a skipped file that is fixed (rewritten, or only its mode changed) is indexed at the
next sync."""

from __future__ import annotations

import codecs
import os
import random
from pathlib import Path

import pytest

from engine.embedders.hashing import HashingEmbedder
from engine.index import Index
from sync.decode import BINARY, decode_note
from sync.indexer import Indexer, SyncStats
from sync.pdf import SkipFile, pdf_title
from tests.helpers import build
from tests.helpers import permissions_enforced as _permissions_enforced

KOREAN_BOM = "# 회의록\n\n한국어 노트는 UTF-16으로 저장해도 그대로 읽혀야 합니다.\n"
KOREAN_BARE = "# 일정\n\n바이트 순서 표시가 없는 UTF-16 노트도 한국어로 읽힙니다.\n"
CAP_MB = 0.1  # ~100 KB
TOO_BIG = f"larger than VAULTBOT_MAX_NOTE_MB ({CAP_MB:g} MB)"


def _indexer(tmp_path: Path, vault: Path, registry_url: str) -> tuple[Index, Indexer]:
    index, _ = build(vault, tmp_path / "data", HashingEmbedder(64), registry_url)
    return index, Indexer(index, vault, max_note_mb=CAP_MB)


def _reasons(stats: SyncStats) -> dict[str, str]:
    return {s["path"]: s["reason"] for s in stats.skipped}


def _text(index: Index, path: str) -> str:
    return "\n".join(c.text for c in index.registry.chunks_of_notes([path])[path])


def _in_step(index: Index) -> None:
    n = index.registry.counts()["chunks"]
    assert index.vectors.count() == n
    assert index.keywords is not None and len(index.keywords) == n


def test_bad_vault(tmp_path: Path, registry_url: str) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "utf16 bom.md").write_bytes(KOREAN_BOM.encode("utf-16"))  # BOM + native order
    (vault / "utf16 bare.md").write_bytes(KOREAN_BARE.encode("utf-16-be"))
    # Before the BOM was honoured, it hid the frontmatter (the file did not start with ---).
    (vault / "utf8 bom.md").write_bytes(codecs.BOM_UTF8 + b"---\ntags: [bom]\n---\n# Title\n\nBOM text.\n")
    # A NUL used to make every sync fail on PostgreSQL.
    (vault / "nul.md").write_bytes(b"# Nul\n\nbefore\x00after, and \x00\x00 more.\n")
    (vault / "garbage.md").write_bytes(random.Random(10).randbytes(64 * 1024))
    (vault / "huge.md").write_text("# Huge\n\n" + "word " * 40000)  # ~200 KB
    (vault / "normal.md").write_text("# Normal\n\nA plain note.\n")
    (vault / "grows.md").write_text("# Grows\n\nSmall for now.\n")
    (vault / "embeds.md").write_text("# Embeds\n\n![[utf16 bom]]\n\n![[garbage]]\n")
    index, indexer = _indexer(tmp_path, vault, registry_url)

    stats = indexer.sync()
    assert _reasons(stats) == {"garbage.md": BINARY, "huge.md": TOO_BIG}
    reg = index.registry
    assert set(reg.note_states()) == {"utf16 bom.md", "utf16 bare.md", "utf8 bom.md", "nul.md",
                                      "normal.md", "grows.md", "embeds.md"}
    assert {p: s.reason for p, s in reg.skipped().items()} == _reasons(stats)
    assert "한국어 노트는 UTF-16으로 저장해도 그대로 읽혀야 합니다." in _text(index, "utf16 bom.md")
    assert "바이트 순서 표시가 없는 UTF-16 노트도 한국어로 읽힙니다." in _text(index, "utf16 bare.md")
    assert reg.note_info(["utf8 bom.md"])["utf8 bom.md"].tags == ("bom",)
    assert "\ufeff" not in _text(index, "utf8 bom.md")
    assert "beforeafter, and  more." in _text(index, "nul.md")
    # The embed reader decodes like the sync: the UTF-16 text is embedded, the garbage is not.
    embeds = _text(index, "embeds.md")
    assert "그대로 읽혀야" in embeds and "\ufffd" not in embeds
    everything = "".join(_text(index, p) for p in reg.note_states())
    assert "\x00" not in everything
    _in_step(index)

    # A second pass (a reconcile) tries the skipped files again: the same reasons, nothing new.
    again = indexer.sync()
    assert _reasons(again) == _reasons(stats)
    assert again.notes_added == again.notes_updated == 0

    # Fixed files are indexed; a note that grew past the cap is dropped with its reason.
    (vault / "garbage.md").write_text("# Garbage no more\n\nNow a real note.\n")
    (vault / "huge.md").write_text("# Huge\n\nTrimmed down.\n")
    (vault / "grows.md").write_text("# Grows\n\n" + "word " * 40000)
    fixed = indexer.sync(hint={"garbage.md", "huge.md", "grows.md"})  # as the watcher would
    assert _reasons(fixed) == {"grows.md": TOO_BIG}
    assert fixed.notes_added == 2
    assert "Now a real note." in _text(index, "garbage.md")
    assert "Trimmed down." in _text(index, "huge.md")
    assert "grows.md" not in reg.note_states()
    assert set(reg.skipped()) == {"grows.md"}
    _in_step(index)


def test_a_note_that_grows_past_the_cap_leaves_its_embedders(tmp_path: Path, registry_url: str) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "sub").mkdir()
    part = vault / "sub" / "Part.md"  # found by name, in a folder: only the resolver finds it
    part.write_text("# Part\n\nEmbedded words.\n")
    (vault / "sub" / "Other.md").write_text("# Other\n\nOther words.\n")
    (vault / "whole.md").write_text("# Whole\n\n![[part]]\n\n![[other]]\n")
    index, indexer = _indexer(tmp_path, vault, registry_url)
    indexer.sync()
    assert "Embedded words." in _text(index, "whole.md")
    part.write_text("# Part\n\n" + "word " * 40000)
    stats = indexer.sync(hint={"sub/Part.md"})  # the only change: nothing else is new or gone
    assert _reasons(stats) == {"sub/Part.md": TOO_BIG}
    assert set(index.registry.note_states()) == {"whole.md", "sub/Other.md"}
    assert "Embedded words." not in _text(index, "whole.md")
    assert "Other words." in _text(index, "whole.md")  # re-chunked with the link resolver
    _in_step(index)
    part.write_text("# Part\n\nEmbedded words, back.\n")
    assert indexer.sync(hint={"sub/Part.md"}).skipped == []
    assert "Embedded words, back." in _text(index, "whole.md")
    _in_step(index)


# --------------------------------------------------------------------------- unreadable files

def test_unreadable_note_is_indexed_once_readable(tmp_path: Path, registry_url: str) -> None:
    vault = tmp_path / "vault"
    vault.mkdir()
    (vault / "normal.md").write_text("# Normal\n\nA plain note.\n")
    locked = vault / "locked.md"
    locked.write_text("# Locked\n\nReadable at last.\n")
    big = vault / "big locked.md"
    big.write_text("# Big\n\n" + "word " * 40000)
    index, indexer = _indexer(tmp_path, vault, registry_url)
    locked.chmod(0)
    big.chmod(0)
    with _permissions_enforced():
        with pytest.raises(PermissionError):
            locked.read_bytes()
        stats = indexer.sync()
        # The size cap is checked before reading: the unreadable big file gets the size reason.
        assert _reasons(stats) == {"locked.md": "cannot read: Permission denied",
                                   "big locked.md": TOO_BIG}
        # A watcher batch about other files trusts the skip while the file's stamp holds...
        same = indexer.sync(hint={"normal.md"})
        assert _reasons(same) == _reasons(stats)
        # ...and a chmod, which changes only the mode and ctime, breaks the stamp.
        locked.chmod(0o644)
        fixed = indexer.sync(hint={"normal.md"})
    assert _reasons(fixed) == {"big locked.md": TOO_BIG}
    assert "Readable at last." in _text(index, "locked.md")
    assert "locked.md" not in index.registry.skipped()
    _in_step(index)


def test_reconcile_retries_a_skip_whose_file_did_not_change(tmp_path: Path, registry_url: str) -> None:
    """The file stays the same, the reason goes away (here: the permission to read it)."""
    vault = tmp_path / "vault"
    vault.mkdir()
    locked = vault / "locked.md"
    locked.write_text("# Locked\n\nReadable at last.\n")
    locked.chmod(0)
    index, indexer = _indexer(tmp_path, vault, registry_url)
    with _permissions_enforced():
        assert set(_reasons(indexer.sync())) == {"locked.md"}
    if os.geteuid() != 0:
        locked.chmod(0o400)  # the mode changes: the watcher batch below would retry anyway
        pytest.skip("not root: the file cannot become readable without a change to its stamp")
    # As root, unchanged and readable again: a watcher batch trusts the skip, a reconcile retries.
    assert set(_reasons(indexer.sync(hint={"other.md"}))) == {"locked.md"}
    assert indexer.sync().notes_added == 1
    assert "Readable at last." in _text(index, "locked.md")


# ------------------------------------------------------------------------------ decode_note

def test_decode_note_encodings() -> None:
    text = "# Mixed\n\nEnglish and 한국어, café.\n"
    for data in (text.encode(), codecs.BOM_UTF8 + text.encode(), text.encode("utf-16"),
                 codecs.BOM_UTF16_BE + text.encode("utf-16-be"), text.encode("utf-16-le"),
                 text.encode("utf-16-be")):
        assert decode_note(data) == text, data[:8]
    assert decode_note(b"# Note\n\nbefore\x00after\n") == "# Note\n\nbeforeafter\n"
    assert decode_note(b"") == ""
    # A Latin-1 note is not binary: it keeps its text, accents replaced, as before.
    assert decode_note("résumé café naïve\n".encode("latin-1")).startswith("r\ufffdsum\ufffd")


def test_pdf_title_without_nul() -> None:
    assert pdf_title({"Title": "Quarterly\x00 report\x00"}, "q.pdf") == "Quarterly report"


@pytest.mark.parametrize("size", [4096, 64 * 1024])
def test_decode_note_refuses_binary(size: int) -> None:
    rng = random.Random(size)
    for _ in range(20):
        with pytest.raises(SkipFile, match=BINARY):
            decode_note(rng.randbytes(size))
    png_like = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64
    with pytest.raises(SkipFile, match=BINARY):
        decode_note(png_like)
