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

``.vaultbotignore`` has git's gitignore syntax and meaning, read by ``pathspec``
(``GitIgnoreSpec``) and checked against ``git check-ignore`` in tests/test_ignore.py;
matching is case-sensitive, names compared in Unicode NFC:

- one pattern per line; blank lines and lines starting with ``#`` are ignored;
  surrounding whitespace is stripped (git keeps leading spaces);
- ``*`` matches any run of characters except ``/``, ``?`` one character except ``/``,
  ``[abc]``/``[!abc]`` a character class, ``\\x`` a literal ``x``;
- a pattern without a ``/`` (ignoring a trailing one) matches the *name* of a file or
  directory at any depth: ``*.pdf``, ``Private``;
- a pattern with a ``/`` is anchored at the vault root: ``Daily/2023-*.md``; a leading
  ``/`` only anchors: ``/Readme.md`` matches the root one, not ``Notes/Readme.md``;
- ``**`` as a whole path component matches any number of directories:
  ``**/Secret.md``, ``Archive/**``, ``a/**/b.md``; elsewhere it acts like ``*``;
- a trailing ``/`` makes the pattern match directories only: ``Private/``;
- ``!pattern`` re-includes what an earlier line excluded; the last matching line wins
  (``*.pdf`` then ``!Manual.pdf``);
- a matched directory excludes everything beneath it: as in git, a file under an
  ignored directory cannot be re-included (after ``Drafts/``, ``!Drafts/x.md`` keeps
  nothing), so each directory is decided on its own, top down, as `walk` meets it;
- a line that does not compile (``[z-a]``) is matched literally, with a warning.

Negation only undoes ``.vaultbotignore`` lines: the built-in rules above always apply.

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

# `_DIR_MARK` (`ps_d`) marks a match through a parent directory; it is private, so
# pyproject.toml pins pathspec below 2.
from pathspec import GitIgnoreSpec
from pathspec.patterns.gitignore.spec import _DIR_MARK, GitIgnoreSpecPattern

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


def _dirs_inside(line: str) -> str:
    """`a/**/` means the directories inside `a`, at any depth, as in git; pathspec reads it as
    `a/` (a itself), so it is spelled `a/**/*/`, which pathspec gets right."""
    parts = line.lstrip("!").strip("/").split("/")
    if line.endswith("/**/") and parts[-1] == "**" and any(p != "**" for p in parts[:-1]):
        return line + "*/"
    return line


def _literal(line: str) -> str:
    """`line` with its glob characters escaped: how a pattern that does not compile is read."""
    negated = line.startswith("!")
    body = re.sub(r"([\\*?\[\]])", r"\\\1", line[1:] if negated else line)
    return ("!" if negated else "") + body


@dataclass(frozen=True)
class _Pattern:
    """One compiled line: pathspec's regex, which also matches everything below a matched
    directory (marking such a match with the `ps_d` group), and the same regex pinned to the
    end of the path, which matches only the path itself."""

    excludes: bool  # False for `!pattern`
    regex: re.Pattern[str]
    at_end: re.Pattern[str] | None  # None: `a/**`-style, matching only what lies inside

    @classmethod
    def of(cls, excludes: bool, regex: re.Pattern[str]) -> _Pattern:
        if _DIR_MARK not in regex.groupindex:
            return cls(excludes, regex, None)
        return cls(excludes, regex, re.compile(f"(?:{regex.pattern})\\Z", regex.flags))

    def matches_itself(self, rel: str, is_dir: bool) -> bool:
        """Does the pattern match this path itself, not merely one of its directories? Git
        decides each directory on its own, top down, and never looks inside an excluded one
        (so `!drafts/x.md` cannot bring back a file of an excluded `drafts/`); the callers
        walk the directories, so a match through a parent must not count here."""
        if self.at_end is None:
            return self.regex.search(rel) is not None
        if self.at_end.search(rel) is not None:
            return True
        if is_dir:  # `name/` matches directories only: try the path as a directory
            m = self.at_end.search(rel + "/")
            return m is not None and m.group(_DIR_MARK) is not None
        return False


@dataclass(frozen=True)
class _Rules:
    """Compiled .vaultbotignore patterns, immutable so `reload` can swap them atomically."""

    patterns: tuple[str, ...] = ()
    # In file order: the last pattern matching a path decides, as in git.
    compiled: tuple[_Pattern, ...] = ()

    @classmethod
    def parse(cls, text: str, source: str = IGNORE_FILE_NAME) -> _Rules:
        kept: list[str] = []
        lines: list[str] = []
        for lineno, raw in enumerate(nfc(text).splitlines(), 1):
            line = raw.strip()  # unlike git, leading spaces too: they are never meant
            if not line or line.startswith("#") or not line.lstrip("!").strip("/"):
                continue
            try:
                GitIgnoreSpecPattern(line)
            except (ValueError, re.error):
                logger.warning("%s:%d: invalid pattern, matched literally", source, lineno)
                lines.append(_literal(line))
            else:
                lines.append(_dirs_inside(line))
            kept.append(line)
        spec = GitIgnoreSpec.from_lines(lines)
        compiled = tuple(
            _Pattern.of(bool(p.include), p.regex)
            for p in spec.patterns
            if p.include is not None and p.regex is not None
        )
        return cls(patterns=tuple(kept), compiled=compiled)

    def excludes(self, rel: str, is_dir: bool) -> bool:
        """Is this exact path ignored (its directories are not checked here)? The last pattern
        that matches it decides, so `!pattern` re-includes. Both sides are compared in NFC, so
        a rule typed `인사` matches a folder macOS wrote in NFD."""
        if not self.compiled:
            return False
        rel = nfc(rel)
        for pattern in reversed(self.compiled):
            if pattern.matches_itself(rel, is_dir):
                return pattern.excludes
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
        if self._rules.excludes(rel_path, is_dir=False):
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
            if name[0] == "." or rules.excludes("/".join(dir_parts[: i + 1]), is_dir=True):
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
                        if not rules.excludes(rel, is_dir=True):
                            subdirs.append((rel, entry.path))
                        continue
                    is_link = entry.is_symlink()
                    if not (is_link or entry.is_file(follow_symlinks=False)):
                        continue  # fifo, socket, device
                except OSError:
                    continue
                if not _wanted_file_name(name) or rules.excludes(rel, is_dir=False):
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
