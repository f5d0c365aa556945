"""Keeping credentials out of everything vaultbot shows: logs, errors, notices, health and
doctor output. Pure functions plus a logging filter; the composition root (vaultbot/) knows
which settings hold secrets and hands their values in."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"

# Shorter known values are not masked on their own (masking every "ab" would garble logs);
# they are still masked wherever they sit in a URL's user:pass@ or secret query parameter.
MIN_SECRET_LEN = 4

# `scheme://anything@`: greedy up to the last `@` before the path, as urlsplit reads it, so a
# password with a raw `@` in it is masked whole.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@]*(?:@[^\s/?#@]*)*@")
# Secret-looking parameters in query strings: password, passwd, pwd, token, access_token,
# secret, api_key, apikey, auth, sig, signature, credential, key; the same names but `key`
# also as `name=value` words in free text (libpq connection strings, driver messages).
_SECRET_NAME = r"[\w.\-]*(?:pass|pwd|token|secret|api[_\-]?key|auth|sig|credential)[\w.\-]*"
_SECRET_KEY = rf"{_SECRET_NAME}|key"
_SECRET_PARAM = re.compile(
    rf"(?i)((?:[?&;](?:{_SECRET_KEY})|(?:^|(?<=\s))(?:{_SECRET_NAME}))=)[^&#\s'\"]+")


def _secret_key(name: str) -> bool:
    return re.fullmatch(_SECRET_KEY, name, re.IGNORECASE) is not None


def redact_url(url: str) -> str:
    """`postgresql://u:pw@db:5432/x?password=y` -> `postgresql://***@db:5432/x?password=***`:
    scheme, host, port and path stay, so the message still says where."""
    return redact_text(url)


def url_secrets(url: str) -> set[str]:
    """The secret values inside a URL (as written and percent-decoded): its password (or the
    user name when there is no password: `https://<token>@host`) and secret query values."""
    try:
        parts = urlsplit(url)
        password, username = parts.password, parts.username
    except ValueError:
        return set()
    values = [password] if password else [username]
    values += [v for k, v in parse_qsl(parts.query, keep_blank_values=False) if _secret_key(k)]
    # parse_qsl decodes; the raw form appears in the URL text itself.
    raw = [v for k, _, v in (p.partition("=") for p in parts.query.split("&")) if _secret_key(k)]
    return {s for v in [*values, *raw] if v for s in (v, unquote(v))}


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Masks `user:pass@` in URLs, secret query parameters, and every known secret value."""
    text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, text)
    for secret in sorted({s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record so that nothing a handler writes holds a secret: the message
    template, each argument, the formatted message, the traceback and stack text.

    `install()` puts it on the root logger and its handlers, and in the log record factory, so
    records from any library reach handlers added later (uvicorn's, pytest's) already clean."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add(secrets)
        self._previous_factory: Any = None
        self._handlers: list[logging.Handler] = []

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets |= {s for s in secrets if s}

    def redact(self, text: str) -> str:
        return redact_text(text, self.secrets)

    def _arg(self, value: Any) -> Any:
        # Numbers stay numbers (a `%d` must still format); anything whose text holds a
        # secret becomes its redacted text.
        if isinstance(value, (int, float)) or value is None:
            return value
        text = value if isinstance(value, str) else _safe_str(value)
        clean = self.redact(text)
        return value if clean == text and not isinstance(value, str) else clean

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_redacted_by", None) is self:  # the factory did it already
            return True
        try:
            formatted = record.getMessage()
        except Exception:  # bad %-args: keep the template only, never the raw arguments
            formatted, record.args = str(record.msg), ()
        record.msg = self.redact(str(record.msg)) if isinstance(record.msg, str) else record.msg
        if isinstance(record.args, dict):
            record.args = {k: self._arg(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(self._arg(a) for a in record.args)
        clean = self.redact(formatted)
        try:
            rebuilt = record.getMessage()
        except Exception:
            rebuilt = ""
        if rebuilt != clean:
            # A secret split between template and arguments, or an object whose text changed
            # under redaction: keep the redacted whole message instead.
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        record._redacted_by = self
        return True

    def install(self) -> RedactingFilter:
        root = logging.getLogger()
        root.addFilter(self)
        self._handlers = list(root.handlers)
        for handler in self._handlers:
            handler.addFilter(self)
        previous = self._previous_factory = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            self.filter(record)
            return record

        self._factory = factory
        logging.setLogRecordFactory(factory)
        return self

    def uninstall(self) -> None:
        logging.getLogger().removeFilter(self)
        for handler in self._handlers:
            handler.removeFilter(self)
        # Only unwind our own factory: one installed after it keeps calling ours, which is
        # harmless, while replacing it would drop theirs.
        if self._previous_factory is not None and logging.getLogRecordFactory() is self._factory:
            logging.setLogRecordFactory(self._previous_factory)
        self._previous_factory = None


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__}>"
