"""A note's bytes to text: BOMs and UTF-16 decoded, binary content refused, NUL removed.

Obsidian writes UTF-8, but vaults collect files from elsewhere: Windows editors save UTF-8
with a BOM or UTF-16 (with a BOM, or without one), and a stray binary file may end in `.md`.
Decoding them as plain UTF-8 gave mojibake or junk chunks. NUL is removed from every text,
whatever its encoding: PostgreSQL rejects it in text columns, and one such note used to make
every sync fail.
"""

from __future__ import annotations

import codecs
import re

from sync.pdf import SkipFile

__all__ = ["BINARY", "decode_note"]

BINARY = "binary file"

# Characters text does not hold but binary data does: C0 controls other than NUL (counted on
# its own: a few stray NULs in a note are just removed), tab, newline, vertical tab, form feed,
# carriage return and escape, and DEL.
_CONTROL_RE = re.compile("[\x01-\x08\x0e-\x1a\x1c-\x1f\x7f]")
# Binary when NULs pass 10% of the characters (executables, images), controls 5% (random
# bytes: ~10%), or controls plus bytes UTF-8 refused (U+FFFD) 30% (random: ~55%; a Latin-1
# note read as UTF-8 has its accents replaced, rarely 20% of it, and stays text, as before).
_NUL_MAX = 0.10
_CONTROL_MAX = 0.05
_JUNK_MAX = 0.30
# BOM-less UTF-16 is recognised by its NULs: the high byte of every ASCII character (spaces and
# newlines at least) is NUL, so NULs fall on one byte parity. Random bytes spread them evenly.
_PARITY_MIN = 0.9
_SAMPLE = 65536


def decode_note(data: bytes) -> str:
    """The text of a note's bytes, without NUL. Raises `SkipFile(BINARY)` for binary content."""
    for bom, codec in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                       (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            return _checked(data[len(bom):].decode(codec, errors="replace"))
    codec = _utf16_without_bom(data[:_SAMPLE])
    if codec:
        try:
            return _checked(data[: len(data) & ~1].decode(codec))
        except (UnicodeDecodeError, SkipFile):
            pass  # NULs on one parity by chance: judge the bytes as UTF-8 below
    return _checked(data.decode("utf-8", errors="replace"))


def _utf16_without_bom(sample: bytes) -> str | None:
    even = sample[0::2].count(0)
    odd = sample[1::2].count(0)
    nuls = even + odd
    if nuls < 2 or nuls < len(sample) // 50:  # a few NULs in UTF-8 text are just NULs
        return None
    if odd >= _PARITY_MIN * nuls:
        return "utf-16-le"  # "a\0": the high byte second
    if even >= _PARITY_MIN * nuls:
        return "utf-16-be"
    return None


def _checked(text: str) -> str:
    """`text` without NUL, unless it is mostly characters text does not hold."""
    n = len(text)
    controls = len(_CONTROL_RE.findall(text))
    if (text.count("\x00") > _NUL_MAX * n or controls > _CONTROL_MAX * n
            or controls + text.count("\ufffd") > _JUNK_MAX * n):
        raise SkipFile(BINARY)
    return text.replace("\x00", "")
