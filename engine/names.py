"""One canonical form for names: vault paths, folder and tag rules, filters and link targets.

macOS often stores Korean file names decomposed (NFD) while people type them composed (NFC);
the two are different strings for the same name. Every name is brought to NFC where it enters
(the walker, the watcher, the access file, CLI and API filters), and names that the file system
compares without case (macOS by default) are compared through `name_key`."""

from __future__ import annotations

import unicodedata


def nfc(name: str) -> str:
    """`name` in Unicode NFC (ASCII is returned as is, without the normalisation's cost)."""
    return name if name.isascii() else unicodedata.normalize("NFC", name)


def name_key(name: str) -> str:
    """What two folder or tag names are compared by: NFC, then case-folded. Tags are
    case-insensitive in Obsidian, and on macOS's default file system `HR` and `hr` are one
    folder. On a case-sensitive file system a rule naming `HR` also covers a sibling `hr`:
    for a private rule that hides more (fail closed); docs/security.md says so for the rest."""
    return nfc(name).casefold()
