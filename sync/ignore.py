"""Which files in a vault vaultbot indexes.

`VaultFilter` answers two questions with the same rules: "is this path a candidate?"
(`is_candidate`, used by the watcher for single events) and "list every candidate"
(`walk`, used for full scans). Keeping both in one class is what guarantees that a
file the watcher reports is also one a rescan would find, and vice versa.

Rules, in order:

1. Only Markdown (``.md``, ``.markdown``) and PDF (``.pdf``) files; the extension is
   compared case-insensitively (``Note.MD`` counts).
2. Anything hidden is skipped: a file or directory whose name starts with ``.``. That
   covers ``.obsidian/``, ``.trash/``, ``.git/``, ``.DS_Store``, Emacs ``.#lock`` files,
   vim ``.Note.md.swp`` and iCloud placeholders (``.Note.md.icloud``).
3. Temp/editor files are skipped even when visible: ``*.swp``, ``*.swx``, ``*~``,
   ``*.tmp``, ``4913`` (vim's write probe), ``*.crdownload``, ``*.icloud``.
4. Paths matching ``<vault>/.vaultbotignore`` (see below).
5. Symlinks: a symlinked *file* is indexed only if its target resolves to a regular
   file inside the vault (it is then reported under the link's own path, so the
   target may appear twice). Symlinked *directories* are never descended into, even
   when they point inside the vault: that rules out loops and escapes without having
   to track visited inodes. Files below a symlinked directory are never candidates.

``.vaultbotignore`` syntax (a gitignore subset; matching is case-sensitive, names compared
in Unicode NFC):

- one pattern per line; blank lines and lines starting with ``#`` are ignored;
  surrounding whitespace is stripped;
- ``*`` matches any run of characters except ``/``, ``?`` one character except ``/``,
  ``[abc]``/``[!abc]`` a character class, ``\\x`` a literal ``x``;
- a pattern without a ``/`` (ignoring a trailing one) matches the *name* of a file or
  directory at any depth: ``*.pdf``, ``Private``;
- a pattern with a ``/`` is anchored at the vault root: ``Daily/2023-*.md``; a leading
  ``/`` only anchors: ``/Readme.md`` matches the root one, not ``Notes/Readme.md``;
- ``**`` as a whole path component matches any number of directories:
  ``**/Secret.md``, ``Archive/**``, ``a/**/b.md``; elsewhere it acts like ``*``;
- a trailing ``/`` makes the pattern match directories only: ``Private/``;
- a matched directory excludes everything beneath it (like git, there is no way to
  re-include a file under an ignored directory);
- negation (``!pattern``) is not supported: such lines are skipped with a warning,
  which errs on the side of ignoring more, never less.

If ``.vaultbotignore`` exists but cannot be read, construction raises; a later
`reload` keeps the previous rules. Failing closed matters: the ignore file is how
users keep private notes out of a chat bot.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from engine.names import nfc

logger = logging.getLogger(__name__)

IGNORE_FILE_NAME = ".vaultbotignore"
NOTE_EXTENSIONS = frozenset({".md", ".markdown", ".pdf"})
TEMP_SUFFIXES = (".swp", ".swx", "~", ".tmp", ".crdownload", ".icloud")
TEMP_NAMES = frozenset({"4913"})


def _wanted_file_name(name: str) -> bool:
    """Built-in rules for a file's own name: visible, not a temp file, right extension."""
    if not name or name[0] == "." or name in TEMP_NAMES or name.endswith(TEMP_SUFFIXES):
        return False
    dot = name.rfind(".")
    return dot > 0 and name[dot:].lower() in NOTE_EXTENSIONS


def _translate(pattern: str) -> str:
    """Translate one glob (no leading/trailing '/') into a regex body, gitignore-style.

    fnmatch.translate is not usable as is: its `*` also crosses `/`.
    """
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            j = i
            while j < n and pattern[j] == "*":
                j += 1
            whole_component = (i == 0 or pattern[i - 1] == "/") and (j == n or pattern[j] == "/")
            if j - i >= 2 and whole_component:
                if j == n:
                    out.append(".*")  # trailing "/**": everything below
                else:
                    out.append("(?:[^/]*/)*")  # "**/": zero or more directories
                    j += 1  # the '/' is part of the group
            else:
                out.append("[^/]*")
            i = j
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            j = i + 1
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:  # no closing bracket: a literal '['
                out.append(re.escape(c))
                i += 1
                continue
            body = pattern[i + 1 : j]
            if body[0] in "!^":
                body = "^" + body[1:]
            body = body.replace("\\", "\\\\")
            out.append("(?!/)[" + body + "]")  # a class never matches the separator
            i = j + 1
        elif c == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


def _combine(bodies: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{b})" for b in bodies)) if bodies else None


@dataclass(frozen=True)
class _Rules:
    """Compiled .vaultbotignore patterns, immutable so `reload` can swap them atomically."""

    patterns: tuple[str, ...] = ()
    name_any: re.Pattern[str] | None = None  # unanchored, files and dirs: match the name
    name_dir: re.Pattern[str] | None = None  # unanchored, dirs only
    path_any: re.Pattern[str] | None = None  # anchored, files and dirs: match the rel path
    path_dir: re.Pattern[str] | None = None  # anchored, dirs only

    @classmethod
    def parse(cls, text: str, source: str = IGNORE_FILE_NAME) -> _Rules:
        kept: list[str] = []
        buckets: dict[tuple[bool, bool], list[str]] = {
            (False, False): [],
            (False, True): [],
            (True, False): [],
            (True, True): [],
        }
        for lineno, raw in enumerate(nfc(text).splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("!"):
                logger.warning("%s:%d: negation is not supported, line skipped", source, lineno)
                continue
            dir_only = line.endswith("/")
            pat = line.rstrip("/")
            anchored = "/" in pat
            pat = pat.lstrip("/")
            if not pat:
                continue
            body = _translate(pat)
            try:
                re.compile(body)
            except re.error:
                logger.warning("%s:%d: invalid pattern, matched literally", source, lineno)
                body = re.escape(pat)
            buckets[(anchored, dir_only)].append(body)
            kept.append(line)
        return cls(
            patterns=tuple(kept),
            name_any=_combine(buckets[(False, False)]),
            name_dir=_combine(buckets[(False, True)]),
            path_any=_combine(buckets[(True, False)]),
            path_dir=_combine(buckets[(True, True)]),
        )

    def excludes(self, rel: str, name: str, is_dir: bool) -> bool:
        """Does a pattern match this exact path (its ancestors are not checked here)? Both
        sides are compared in NFC, so a rule typed `인사` matches a folder macOS wrote in NFD."""
        rel, name = nfc(rel), nfc(name)
        if self.name_any is not None and self.name_any.fullmatch(name):
            return True
        if self.path_any is not None and self.path_any.fullmatch(rel):
            return True
        if is_dir:
            if self.name_dir is not None and self.name_dir.fullmatch(name):
                return True
            if self.path_dir is not None and self.path_dir.fullmatch(rel):
                return True
        return False


class VaultFilter:
    """The indexing rules for one vault; see the module docstring for the rules.

    Paths are vault-relative POSIX strings ("Notes/Idea.md"), no leading "/" or "./".
    Thread-safe: `reload` swaps an immutable rule set, and `walk` uses the rules that
    were current when it started.
    """

    def __init__(self, vault: Path) -> None:
        self.vault = Path(vault)
        # Resolved once: the containment check for symlinks compares real paths.
        self.root = self.vault.resolve()
        self._root_str = str(self.root)
        self._rules = self._read_rules()  # raises if the ignore file exists but is unreadable

    @property
    def ignore_file(self) -> Path:
        return self.root / IGNORE_FILE_NAME

    @property
    def patterns(self) -> tuple[str, ...]:
        """The active .vaultbotignore patterns, as written."""
        return self._rules.patterns

    def _read_rules(self) -> _Rules:
        try:
            text = self.ignore_file.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return _Rules()
        return _Rules.parse(text)

    def reload(self) -> None:
        """Re-read .vaultbotignore; on a read error keep the previous rules (fail closed)."""
        try:
            self._rules = self._read_rules()
        except OSError as exc:
            logger.warning("cannot read %s, keeping previous rules: %s", IGNORE_FILE_NAME, exc)

    # -- single paths -------------------------------------------------------

    def is_candidate(self, rel_path: str) -> bool:
        """Would `walk` yield this file (if it existed)?

        Name and pattern rules are checked lexically, so the answer also holds for a
        path that was just deleted. If the path exists the symlink rules are checked
        on disk too.
        """
        parts = self._split(rel_path)
        if parts is None or not _wanted_file_name(parts[-1]):
            return False
        if not self._dirs_allowed(parts[:-1]):
            return False
        if self._rules.excludes(rel_path, parts[-1], is_dir=False):
            return False
        return self._on_disk_ok(parts, is_dir=False)

    def is_candidate_dir(self, rel_path: str) -> bool:
        """Would `walk` descend into this directory (if it existed)?"""
        parts = self._split(rel_path)
        if parts is None or not self._dirs_allowed(parts):
            return False
        return self._on_disk_ok(parts, is_dir=True)

    @staticmethod
    def _split(rel_path: str) -> list[str] | None:
        if not rel_path or rel_path.startswith("/"):
            return None
        parts = rel_path.split("/")
        if any(p in ("", ".", "..") for p in parts):
            return None
        return parts

    def _dirs_allowed(self, dir_parts: list[str]) -> bool:
        rules = self._rules
        for i, name in enumerate(dir_parts):
            if name[0] == "." or rules.excludes("/".join(dir_parts[: i + 1]), name, is_dir=True):
                return False
        return True

    def _on_disk_ok(self, parts: list[str], is_dir: bool) -> bool:
        """Reject paths that go through a symlinked directory or link out of the vault."""
        path = os.path.join(self._root_str, *parts)
        parent_rel = parts if is_dir else parts[:-1]
        # realpath resolves whatever exists, so a deleted path still passes while a
        # symlinked ancestor directory (or a dir that is itself a link) does not.
        expected = os.path.join(self._root_str, *parent_rel)
        if os.path.realpath(expected) != expected:
            return False
        if not is_dir and os.path.islink(path):
            return self._link_target_stat(path) is not None
        return True

    def _link_target_stat(self, path: str) -> os.stat_result | None:
        """stat of a symlink's target if it is a regular file inside the vault."""
        real = os.path.realpath(path)
        if not real.startswith(self._root_str + os.sep):
            logger.debug("symlink leaves the vault, skipped: %s", path)
            return None
        try:
            st = os.stat(real)
        except OSError:
            return None  # dangling
        return st if stat.S_ISREG(st.st_mode) else None

    # -- full scan ----------------------------------------------------------

    def walk(self) -> Iterator[tuple[str, os.stat_result]]:
        """Yield (rel_path, stat) for every candidate file, depth first, sorted by name.

        The stat is the file's (the target's, for a symlinked file). Unreadable or
        vanished subdirectories are skipped with a debug log; an unreadable vault
        root raises.
        """
        rules = self._rules  # one rule set for the whole walk
        stack: list[tuple[str, str]] = [("", self._root_str)]
        while stack:
            rel_dir, abs_dir = stack.pop()
            try:
                # Read the directory fully before yielding so no fd stays open
                # while the caller works.
                with os.scandir(abs_dir) as it:
                    entries = sorted(it, key=lambda e: e.name)
            except OSError as exc:
                if not rel_dir:
                    raise
                logger.debug("cannot scan %s: %s", rel_dir, exc)
                continue
            prefix = rel_dir + "/" if rel_dir else ""
            subdirs: list[tuple[str, str]] = []
            for entry in entries:
                name = entry.name
                if name[0] == ".":
                    continue
                rel = prefix + name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not rules.excludes(rel, name, is_dir=True):
                            subdirs.append((rel, entry.path))
                        continue
                    is_link = entry.is_symlink()
                    if not (is_link or entry.is_file(follow_symlinks=False)):
                        continue  # fifo, socket, device
                except OSError:
                    continue
                if not _wanted_file_name(name) or rules.excludes(rel, name, is_dir=False):
                    continue
                if is_link:
                    st = self._link_target_stat(entry.path)
                    if st is None:
                        continue
                else:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue  # deleted while walking
                yield rel, st
            stack.extend(reversed(subdirs))
