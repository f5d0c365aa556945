"""The access file (bot/access.py), read again when it changes, so a new rule needs no restart
of the bots. Checked on use (its mtime, size and inode: one stat per question). A file that
no longer parses keeps the rules in force (never wider than what was checked) and logs one
line per bad version."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from bot.access import Access
from engine.models import Scope

log = logging.getLogger(__name__)


class AccessFile:
    """An `Access` that follows its file; it answers what `Access` answers."""

    def __init__(self, path: Path, access: Access | None = None) -> None:
        self.path = path
        self._access = access if access is not None else Access.load(path)
        self._stamp = self._stat()
        self._bad: tuple[int, int, int] | None = None

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def current(self) -> Access:
        stamp = self._stat()
        if stamp is not None and stamp != self._stamp and stamp != self._bad:
            try:
                self._access = Access.load(self.path)
                self._stamp = stamp
                log.info("access file %s reloaded", self.path)
            except ValueError as exc:
                self._bad = stamp
                log.warning("access file %s changed but does not load; the old rules stay: %s",
                            self.path, exc)
        return self._access

    def scope_for(self, platform: str, *, user: str, channel: str | None = None,
                  guild: str | None = None) -> Scope:
        return self.current().scope_for(platform, user=user, channel=channel, guild=guild)

    def place_scope(self, place: str) -> Scope:
        return self.current().place_scope(place)

    def respond_to(self, platform: str, channel: str | None) -> str:
        return self.current().respond_to(platform, channel)

    def base_scope(self) -> Scope:
        return self.current().base_scope()

    def __getattr__(self, name: str) -> Any:  # rules, default, private_folders, ...
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.current(), name)
