"""The scope a terminal user's filters describe, shared by the CLI's own path and the API's
answer to the CLI (through `serve`), so both see exactly the same notes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from engine.models import Scope


def where_pairs(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """`--where KEY=VALUE` options as (key, value) pairs."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--where needs KEY=VALUE, got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def terminal_scope(base: Scope | None, folders: Sequence[str], tags: Sequence[str],
                   pairs: Sequence[tuple[str, str]], private: bool) -> Scope:
    """The filters asked for, within what the access file's `private` section hides (`base`);
    the owner's `--private` shows everything (and needs no `base`)."""
    if not private and base is None:
        raise ValueError("terminal_scope needs the access file's base scope without private")
    start = Scope(include_private=True) if private or base is None else base
    return replace(start, folders=tuple(folders), tags=tuple(tags), frontmatter=tuple(pairs))
