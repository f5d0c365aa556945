"""The access file (bot/access.py), read again when it changes, so a new rule needs no restart
of any front end (`App.access` is one AccessFile shared by Slack, Discord, MCP, /v1, the HTTP
API and the note pages). Checked on use: one stat per question (mtime, ctime, size, inode; the
ctime catches a chmod).

Fail closed: while the file on disk does not load (bad YAML, an unknown key, unreadable,
deleted, empty: write `{}` for no rules), every question is refused with `AccessBroken`, an `AccessDenied` whose text names no
path and no content, so every front end shows it as it shows any refusal. One warning per bad
version names the error for the owner. Once the file loads again, so do the rules. At start-up
a file that does not load is an error, as `Access.load` says (an empty one is no rules there,
with a warning)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from bot.access import Access, AccessDenied
from engine.models import Scope

log = logging.getLogger(__name__)

BROKEN = "vaultbot's access rules are broken; the owner has been told. Try again later."

Stamp = tuple[int, int, int, int] | None  # None: the file is gone (or cannot be stat'ed)


class AccessBroken(AccessDenied):
    """The access file does not load now: refused. `str()` is for anyone (no path, no
    content); `error` is the loader's message, for the owner and the log."""

    def __init__(self, error: str) -> None:
        super().__init__(BROKEN)
        self.error = error


class AccessFile:
    """An `Access` that follows its file; it answers what `Access` answers, or raises
    `AccessBroken` while the file does not load."""

    def __init__(self, path: Path, access: Access | None = None) -> None:
        self.path = path
        self._access = access if access is not None else Access.load(path)
        self._stamp = self._stat()
        self._error: str | None = None
        self._lock = threading.Lock()  # the bots' threads and the API's share one AccessFile

    def _stat(self) -> Stamp:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)

    def current(self) -> Access:
        """The rules as the file is now; AccessBroken while it does not load."""
        stamp = self._stat()
        with self._lock:
            if stamp != self._stamp:  # a new version, good or bad: loaded (or logged) once
                self._stamp = stamp
                self._load(stamp)
            if self._error is not None:
                raise AccessBroken(self._error)
            return self._access

    def _load(self, stamp: Stamp) -> None:
        try:
            if stamp is None:
                raise ValueError(f"access file {self.path} is missing")
            # Empty after a change: an editor that truncates, then writes, is between the two;
            # loading it would be "no rules" (the whole vault) for that moment. `{}` says so.
            access = Access.load(self.path, allow_empty=False)
        except Exception as exc:  # any loader failure (a list where a mapping goes, ...)
            self._error = str(exc) or type(exc).__name__
            log.warning("access file %s does not load; every question is refused until it is "
                        "fixed: %s", self.path, self._error)
            return
        self._access, self._error = access, None
        log.info("access file %s reloaded", self.path)

    @property
    def broken(self) -> str | None:
        """The loader's error while the file does not load, else None."""
        try:
            self.current()
        except AccessBroken as exc:
            return exc.error
        return None

    def scope_for(self, platform: str, *, user: str, channel: str | None = None,
                  guild: str | None = None) -> Scope:
        return self.current().scope_for(platform, user=user, channel=channel, guild=guild)

    def place_scope(self, place: str) -> Scope:
        return self.current().place_scope(place)

    def respond_to(self, platform: str, channel: str | None) -> str:
        # Broken: only @mentions, which are then refused with the message (never silently
        # answered, never silently ignored).
        try:
            return self.current().respond_to(platform, channel)
        except AccessBroken:
            return "mentions"

    def base_scope(self) -> Scope:
        return self.current().base_scope()

    def __getattr__(self, name: str) -> Any:  # rules, default, private_folders, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.current(), name)
