"""Note links are capabilities: a signed token names one note (and the chunk it cited), the scope
of the place that asked, and an expiry. Whoever holds the link may open that note while the
scope may still show it; nothing else.

URL shape: `<public url or serve address>/n/<token>`, with `#cited` to scroll to the cited
passage. The token is itsdangerous' URL-safe timed serialization (base64url and `.`, safe in a
path segment), HMAC-SHA256 with a key kept in the data dir (`link-key`, 0600). Rotating the key
(`rotate_key`) revokes every link made before.

Every request re-checks the current registry (`check`): a note made private, moved, renamed,
put out of the scope or deleted since the link was made is refused, and so is a cited chunk
whose text now comes from a note the scope may not show (engine/provenance.py). Callers show
one generic "unavailable" page for every refusal; the errors below tell logs and tests why."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from engine.models import ChunkRecord, Scope
from engine.names import nfc
from engine.provenance import note_visible, visible
from engine.registry import NoteInfo, Registry

log = logging.getLogger(__name__)

KEY_FILE = "link-key"
KEY_BYTES = 32
_SALT = b"vaultbot.note-link"
_VERSION = 1
DAY = 86400


class LinkError(Exception):
    """A link that must be refused. The message never holds the token's payload."""


class LinkTampered(LinkError):
    """The signature does not match (changed token, another key, a rotated key) or the signed
    payload is not a link this version understands."""


class LinkExpired(LinkError):
    """A genuine link past its expiry (or older than the link lifetime now configured)."""


class KeyFileError(RuntimeError):
    """The key file exists but does not hold a key (say how to fix, never what it holds)."""


# ---------------------------------------------------------------------------------- the key


def _key_path(data_dir: Path) -> Path:
    return Path(data_dir) / KEY_FILE


def _new_key_file(data_dir: Path) -> Path:
    """A fresh key in a temp file beside the key file, 0600 from its creation, synced."""
    tmp = Path(data_dir) / f".{KEY_FILE}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).rstrip(b"="))
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _decode(text: bytes) -> bytes | None:
    text = text.strip()
    try:
        key = base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
    except (ValueError, TypeError):
        return None
    return key if len(key) >= KEY_BYTES else None


def _read_key(path: Path, wait: float = 2.0) -> bytes:
    # Waiting covers only the fallback below, where another process may still be writing.
    deadline = time.monotonic() + wait
    while True:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            st = os.fstat(fd)
            if st.st_mode & 0o077:
                # Anyone who can read the key can forge links: owner only, whatever it was.
                os.fchmod(fd, 0o600)
                log.warning("%s was readable by others; it is owner-only now", path)
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
        key = _decode(raw)
        if key is not None:
            return key
        if time.monotonic() >= deadline:
            raise KeyFileError(
                f"{path} holds no valid link key; run `rotate_key` (delete it "
                "and restart) to make a new one, which revokes every link"
            )
        time.sleep(0.05)


def load_or_create_key(data_dir: Path) -> bytes:
    """The link key, made on first use. Two processes starting at once end with one key: each
    writes its own temp file and hard-links it to `link-key`, which only the first link wins
    (an O_EXCL create whose content is complete the moment it appears); both then read."""
    path = _key_path(data_dir)
    if path.exists():
        return _read_key(path)
    Path(data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = _new_key_file(data_dir)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process won: its key is the key
    except OSError:
        # A file system without hard links: O_EXCL create, then write; a reader that comes
        # between the two waits in _read_key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass
        else:
            try:
                os.write(fd, tmp.read_bytes())
                os.fsync(fd)
            finally:
                os.close(fd)
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(path)


def rotate_key(data_dir: Path) -> None:
    """Replace the key atomically: every link signed before stops verifying (in a running
    process too, when its signer reads the key through `DataDirKey`)."""
    Path(data_dir).mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = _new_key_file(data_dir)
    try:
        os.replace(tmp, _key_path(data_dir))
    finally:
        tmp.unlink(missing_ok=True)


def key_secrets(data_dir: Path) -> set[str]:
    """The key as it could appear in text (the file's content), for the redaction filter;
    empty when there is no key yet."""
    try:
        fd = os.open(_key_path(data_dir), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return set()
    try:
        text = os.read(fd, 4096).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    return {text} if text else set()


class DataDirKey:
    """The current key of a data dir, created on first use and read again when the file
    changes (a `rotate_key` by another process revokes links in this one without a restart)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self._stamp: tuple[int, int, int] | None = None
        self._key = load_or_create_key(self.data_dir)
        self._stamp = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(_key_path(self.data_dir))
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def __call__(self) -> bytes:
        stamp = self._stat()
        if stamp is None or stamp != self._stamp:
            self._key = load_or_create_key(self.data_dir)
            self._stamp = self._stat()
        return self._key

    def __repr__(self) -> str:  # never the key
        return f"DataDirKey({str(self.data_dir)!r})"


# ---------------------------------------------------------------------------- the payload


@dataclass(frozen=True)
class Capability:
    """What a verified link grants: `note_path` under `scope` until `expires_at` (epoch s).
    `chunk_id`/`text_hash`: the cited chunk as it was when the answer was given (None for a
    link from a page to another note)."""

    note_path: str
    chunk_id: str | None
    text_hash: str | None
    scope: Scope
    issued_at: int
    expires_at: int


_SCOPE_FIELDS = tuple(f.name for f in fields(Scope))


def scope_to_json(scope: Scope) -> dict[str, Any]:
    """Every field of the scope: a field left out would widen the link (empty = no limit)."""
    out: dict[str, Any] = {}
    for name in _SCOPE_FIELDS:
        value = getattr(scope, name)
        if isinstance(value, bool):
            out[name] = value
        elif isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            out[name] = [nfc(v) for v in value]
        elif isinstance(value, tuple) and all(
            isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, str) for x in v)
            for v in value
        ):
            out[name] = [[nfc(k), v] for k, v in value]
        else:  # a Scope field this module does not know how to carry: refuse to sign
            raise TypeError(f"cannot sign Scope.{name} of type {type(value).__name__}")
    return out


def scope_from_json(data: Any) -> Scope:
    """The inverse of scope_to_json; anything but exactly the known fields is refused."""
    if not isinstance(data, dict) or set(data) != set(_SCOPE_FIELDS):
        raise LinkTampered("link payload: scope fields differ")
    kwargs: dict[str, Any] = {}
    for name in _SCOPE_FIELDS:
        value = data[name]
        if isinstance(getattr(Scope(), name), bool):
            if not isinstance(value, bool):
                raise LinkTampered(f"link payload: scope {name} is not a boolean")
            kwargs[name] = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            kwargs[name] = tuple(value)
        elif isinstance(value, list) and all(
            isinstance(v, list) and len(v) == 2 and all(isinstance(x, str) for x in v)
            for v in value
        ):
            kwargs[name] = tuple((k, v) for k, v in value)
        else:
            raise LinkTampered(f"link payload: scope {name} is malformed")
    return Scope(**kwargs)


def _opt_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise LinkTampered("link payload: a field is not text")


class LinkSigner:
    """Signs and verifies note links. `key`: the key bytes, or a callable returning the
    current key (`DataDirKey`). `max_age_days`: the lifetime of a new link, and the most any
    link is honoured for (shortening VAULTBOT_LINK_DAYS shortens links already out). `clock`:
    epoch seconds (tests pass a fake one)."""

    def __init__(
        self,
        key: bytes | Callable[[], bytes],
        max_age_days: float = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_age_days <= 0:
            raise ValueError("max_age_days must be positive")
        self._key = key
        self.max_age = int(max_age_days * DAY)
        self.clock = clock
        self._serializer: URLSafeTimedSerializer | None = None
        self._serializer_key: bytes | None = None

    def __repr__(self) -> str:  # never the key
        return f"LinkSigner(max_age={self.max_age}s)"

    def _current(self) -> URLSafeTimedSerializer:
        key = self._key() if callable(self._key) else self._key
        if len(key) < KEY_BYTES:
            raise ValueError(f"the link key must be at least {KEY_BYTES} bytes")
        if self._serializer is None or key != self._serializer_key:
            clock = self.clock

            class _Signer(TimestampSigner):
                # itsdangerous stamps and ages tokens with get_timestamp: our clock.
                def get_timestamp(self) -> int:
                    return int(clock())

            self._serializer = URLSafeTimedSerializer(
                key,
                salt=_SALT,
                signer=_Signer,
                signer_kwargs={"key_derivation": "hmac", "digest_method": hashlib.sha256},
            )
            self._serializer_key = key
        return self._serializer

    def _dump(
        self,
        note_path: str,
        chunk_id: str | None,
        text_hash: str | None,
        scope: Scope,
        expires_at: int,
    ) -> str:
        payload = {
            "v": _VERSION,
            "p": nfc(note_path),
            "c": chunk_id,
            "h": text_hash,
            "s": scope_to_json(scope),
            "x": int(expires_at),
        }
        return self._current().dumps(payload)

    def sign(
        self, note_path: str, chunk_id: str | None, text_hash: str | None, scope: Scope
    ) -> str:
        """A link to `note_path` (citing `chunk_id`, whose text hash was `text_hash`) for a place
        whose scope is `scope`, valid for max_age_days from now."""
        return self._dump(note_path, chunk_id, text_hash, scope, int(self.clock()) + self.max_age)

    def sign_related(self, capability: Capability, note_path: str) -> str:
        """A link from a page opened with `capability` to another note: the same scope and the
        same expiry (a page's links never outlive the link that opened it), no chunk."""
        return self._dump(note_path, None, None, capability.scope, capability.expires_at)

    def verify(self, token: str) -> Capability:
        """The capability a token grants, or LinkTampered / LinkExpired."""
        try:
            payload, signed_at = self._current().loads(
                token, max_age=self.max_age, return_timestamp=True
            )
        except SignatureExpired as exc:
            raise LinkExpired("link expired") from exc
        except BadSignature as exc:
            raise LinkTampered("link signature does not match") from exc
        if not isinstance(payload, dict) or payload.get("v") != _VERSION:
            raise LinkTampered("link payload: unknown version")
        expires = payload.get("x")
        path = payload.get("p")
        if not isinstance(expires, int) or isinstance(expires, bool) or not isinstance(path, str):
            raise LinkTampered("link payload: malformed")
        cap = Capability(
            note_path=nfc(path),
            chunk_id=_opt_str(payload.get("c")),
            text_hash=_opt_str(payload.get("h")),
            scope=scope_from_json(payload.get("s")),
            issued_at=int(signed_at.timestamp()),
            expires_at=expires,
        )
        if self.clock() > cap.expires_at:
            raise LinkExpired("link expired")
        return cap


def note_url_for(base_url: str, token: str, cited: bool = False) -> str:
    """The page's URL: VAULTBOT_PUBLIC_URL when set, else serve's own address (e.g.
    `http://127.0.0.1:8000`); a path prefix (a reverse proxy's `/vaultbot`) is kept."""
    parts = urlsplit(base_url)
    if parts.scheme not in {"http", "https"} or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("the public URL must be http(s)://host[:port][/path]")
    return f"{base_url.rstrip('/')}/n/{token}" + ("#cited" if cited else "")


# ------------------------------------------------------------------------ the current state


@dataclass(frozen=True)
class Note:
    """A note a link may show now. `cited`: the cited chunk as it is now, None when the link
    names none or the note no longer holds it (`cited_changed`: the passage changed after the
    answer; the page says so)."""

    info: NoteInfo
    scope: Scope
    cited: ChunkRecord | None = None
    cited_changed: bool = False


def _resolve(scope: Scope, registry: Registry) -> Scope | None:
    """A frontmatter condition as exact notes, as the retriever resolves it (None: no note
    matches), so the rule below is the one that decided the answer."""
    if not scope.frontmatter:
        return scope
    paths = set(registry.paths_where(dict(scope.frontmatter)))
    if scope.notes:
        paths &= set(scope.notes)
    return replace(scope, notes=tuple(sorted(paths)), frontmatter=()) if paths else None


def may_show(
    scope: Scope, paths: list[str] | set[str], registry: Registry, rules: Scope | None = None
) -> set[str]:
    """Which of `paths` a page opened under `scope` may link to or embed now (for the page's
    wikilinks and embeds; a note left out must not even be named). `rules`: as in `check`."""
    resolved = _resolve(scope, registry)
    if resolved is None:
        return set()
    infos = registry.note_info(nfc(p) for p in paths)
    return {
        p
        for p, info in infos.items()
        if note_visible(resolved, info) and (rules is None or note_visible(rules, info))
    }


def check(capability: Capability, registry: Registry, rules: Scope | None = None) -> Note | None:
    """The note `capability` may show now, or None. Fail closed: a note that is gone (deleted,
    or renamed or moved: the link names a path and the registry keeps no path history, so a
    rename is not followed, as following a text hash could land on another note holding the
    same passage), private, out of the link's scope, or whose cited chunk now holds text of a
    note the scope may not show is refused, and so is anything when the registry cannot be
    read. `rules`: the scope today's access rules allow at most (`Access.base_scope()` of the
    current access file): a folder or tag made private after the link was made is refused too."""
    try:
        return _check(capability, registry, rules)
    except Exception as exc:  # any doubt: refused (the type only; never the note or token)
        log.warning("note link refused: the registry could not be read (%s)", type(exc).__name__)
        return None


def _check(cap: Capability, registry: Registry, rules: Scope | None) -> Note | None:
    scope = _resolve(cap.scope, registry)
    info = registry.note_info([cap.note_path]).get(cap.note_path)
    if scope is None or info is None or not note_visible(scope, info):
        return None
    if rules is not None and not note_visible(rules, info):
        return None
    if cap.chunk_id is None:
        return Note(info, cap.scope)
    chunk = registry.chunks_by_id([cap.chunk_id]).get(cap.chunk_id)
    if (
        chunk is None
        or chunk.note_path != info.path
        or (cap.text_hash is not None and chunk.text_hash != cap.text_hash)
    ):
        return Note(info, cap.scope, cited_changed=True)
    # The provenance rule: every note the chunk's text came from must be visible now.
    notes = {info.path: info}
    if chunk.id not in visible(scope, [chunk], registry, notes):
        return None
    if rules is not None and chunk.id not in visible(rules, [chunk], registry, notes):
        return None
    return Note(info, cap.scope, cited=chunk)
