"""Resolve link targets to vault paths the way Obsidian does.

Order of attempts for a target such as `Folder/Note`, `Note.md`, `image.png` or `./sub/Note`:
1. relative to the linking note's folder, when the target starts with `./` or `../`;
2. the exact vault path, as written and with `.md` appended (case-sensitive, then not);
3. by file name: a note's name is its file name without `.md`, any other file's name keeps its
   extension; a target with folders matches paths that end with it (`folder/Note`).
   Names compare case-insensitively. Ties go to a file in the linking note's folder, then to
   the shortest path (then alphabetical, so the choice is deterministic).
Names are compared in Unicode NFC so that Korean names written by macOS (NFD) still match.
"""

from __future__ import annotations

import posixpath
import unicodedata
from collections.abc import Iterable
from urllib.parse import unquote

__all__ = ["LinkResolver", "normalize_target"]


def _nfc(s: str) -> str:
    return unicodedata.normalize("NFC", s) if not s.isascii() else s


def _key(s: str) -> str:
    return _nfc(s).casefold()


def normalize_target(target: str) -> str:
    """A link target as a clean vault-style path: backslashes to `/`, no surrounding spaces,
    no leading `/`. `#heading` parts must already be split off."""
    t = target.strip().replace("\\", "/")
    while t.startswith("/"):
        t = t[1:]
    return t


def _note_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base[:-3] if base.lower().endswith(".md") else base


class LinkResolver:
    """Maps link targets to vault-relative POSIX paths (notes, PDFs, images, anything)."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths: set[str] = set()
        self._by_key: dict[str, list[str]] = {}  # casefolded full path -> paths
        self._by_name: dict[str, list[str]] = {}  # casefolded name -> paths
        for p in paths:
            self.add(p)

    def add(self, path: str) -> None:
        path = _nfc(path)
        if path in self.paths:
            return
        self.paths.add(path)
        self._by_key.setdefault(_key(path), []).append(path)
        # Notes are named without `.md`; other files only with their extension, as in Obsidian.
        self._by_name.setdefault(_key(_note_name(path)), []).append(path)

    def __contains__(self, path: object) -> bool:
        return isinstance(path, str) and _nfc(path) in self.paths

    def __len__(self) -> int:
        return len(self.paths)

    def resolve(self, target: str, source: str | None = None) -> str | None:
        """The vault path `target` points to, or None. `source` is the linking note's path
        (used for `./` and `../` targets and to break ties in favour of its folder)."""
        t = normalize_target(_nfc(target))
        if not t:
            return source if source in self.paths else None
        folder = source.rsplit("/", 1)[0] if source and "/" in source else ""

        if t.startswith("./") or t.startswith("../"):
            joined = posixpath.normpath(posixpath.join(folder, t))
            if joined.startswith("../"):
                return None  # outside the vault
            hit = self._exact(joined)
            if hit:
                return hit
            t = joined

        hit = self._exact(t)
        if hit:
            return hit

        name = t.rsplit("/", 1)[-1]
        if name.lower().endswith(".md"):
            name = name[:-3]
            t = t[:-3]
        candidates = self._by_name.get(_key(name), [])
        if "/" in t:
            suffix = "/" + _key(t)
            candidates = [
                p
                for p in candidates
                if _key(_strip_md(p)).endswith(suffix) or _key(p).endswith(suffix)
            ]
        if not candidates:
            # Some targets are written URL-encoded (`My%20Note`) in wikilinks too.
            decoded = unquote(t)
            if decoded != t:
                return self.resolve(decoded, source)
            return None
        if len(candidates) == 1:
            return candidates[0]
        return min(candidates, key=lambda p: (_folder(p) != folder, len(p), p))

    def _exact(self, t: str) -> str | None:
        for cand in (t, t + ".md"):
            if cand in self.paths:
                return cand
        for cand in (t, t + ".md"):
            hits = self._by_key.get(_key(cand))
            if hits:
                return min(hits, key=lambda p: (len(p), p))
        return None


def _strip_md(path: str) -> str:
    return path[:-3] if path.lower().endswith(".md") else path


def _folder(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""
