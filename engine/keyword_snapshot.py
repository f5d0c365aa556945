"""The keyword index's snapshot file: its compacted base postings, to memory-map and read by
position instead of holding them in RAM (engine/lexical.py says when one is written and used).

A fixed prefix (magic, format, header length, header CRC, data CRC, file size), a JSON header,
then 64-byte aligned little-endian arrays. Nothing in a file is trusted before its size, both
CRCs and the header's identity (uuid, schema, tokenizer, generation) have been checked."""

from __future__ import annotations

import json
import mmap
import os
import struct
import weakref
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.versions import KEYWORD_SNAPSHOT_FORMAT

_SNAP_MAGIC = b"VBKWBASE"
_SNAP_FORMAT = KEYWORD_SNAPSHOT_FORMAT
_SNAP_PREFIX = struct.Struct("<8sIIIIQ")
_SNAP_ALIGN = 64
_SNAP_SUFFIX = ".base"
_SNAP_ARRAYS = (
    ("base_off", "<i8"),
    ("base_doc", "<i4"),
    ("base_tf", "<u2"),
    ("length", "<f4"),
    ("meta", "<i4"),
    ("names", "u1"),  # JSON: {"ids": [...], "metas": [[note_path, [tags], private], ...]}
)
SNAP_SUFFIX = _SNAP_SUFFIX
SNAP_ARRAY_NAMES = tuple(name for name, _ in _SNAP_ARRAYS)


class BaseFile:
    """A snapshot's postings read by position (pread) rather than through its mapping: a read
    copies from the page cache into a short-lived buffer, so the process keeps nothing. Faults on
    the mapping would keep every page they map counted in its RSS, and the kernel maps whole
    page-cache folios at a time (on ext4 with Linux 6.x, 300 queries at 100k chunks mapped ~140
    of the file's 147 MB although they read ~70 MB). The mapping stays for merges."""

    def __init__(self, fd: int, doc_at: int, tf_at: int, size: int) -> None:
        self.fd = os.dup(fd)
        self._close = weakref.finalize(self, os.close, self.fd)
        self.doc_at, self.tf_at, self.size = doc_at, tf_at, size

    def read(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        n = end - start
        if not 0 <= start <= end <= self.size:
            raise IndexError(f"postings {start}:{end} outside 0:{self.size}")
        docs = os.pread(self.fd, 4 * n, self.doc_at + 4 * start)
        tfs = os.pread(self.fd, 2 * n, self.tf_at + 2 * start)
        if len(docs) != 4 * n or len(tfs) != 2 * n:  # files are never changed in place
            raise OSError(f"short read from a keyword snapshot at postings {start}:{end}")
        return np.frombuffer(docs, dtype="<i4"), np.frombuffer(tfs, dtype="<u2")


class SnapshotRejected(Exception):
    """A snapshot that must not be used; the message says why."""


def _align(n: int) -> int:
    return -(-n // _SNAP_ALIGN) * _SNAP_ALIGN


def write_snapshot(fd: int, arrays: Mapping[str, np.ndarray], header: dict[str, Any]) -> None:
    """Write `arrays` (SNAP_ARRAYS' names, in any order) to the open, empty file `fd`."""
    arrays = {name: np.ascontiguousarray(arrays[name], dtype=dt) for name, dt in _SNAP_ARRAYS}
    layout, pos = {}, 0
    for name, dt in _SNAP_ARRAYS:
        layout[name] = [dt, int(arrays[name].size), pos]
        pos = _align(pos + arrays[name].nbytes)
    head = json.dumps({**header, "arrays": layout}, sort_keys=True).encode()
    start = _align(_SNAP_PREFIX.size + len(head))
    size = start + pos
    with os.fdopen(os.dup(fd), "wb") as f:
        f.write(b"\0" * start)
        crc, written = 0, 0
        for name, _ in _SNAP_ARRAYS:
            a = arrays[name]
            data = a.reshape(-1).view(np.uint8)
            pad = b"\0" * (_align(written + a.nbytes) - written - a.nbytes)
            f.write(data)
            f.write(pad)
            crc = zlib.crc32(pad, zlib.crc32(data, crc))
            written += a.nbytes + len(pad)
        f.seek(0)
        f.write(_SNAP_PREFIX.pack(_SNAP_MAGIC, _SNAP_FORMAT, len(head), zlib.crc32(head), crc,
                                  size))
        f.write(head)
        f.flush()
        os.fsync(f.fileno())


def read_snapshot(
    fd: int, expect: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, np.ndarray], BaseFile]:
    """The header, arrays (read-only views of a mapping) and postings reader of the snapshot
    open as `fd`, after checking everything that can be checked without trusting it: size, both
    CRCs (the data is read once, into the page cache, not into this process), and the header
    against `expect` (the index's uuid, schema, tokenizer, generation and tombstone floor).
    Raises SnapshotRejected."""
    size = os.fstat(fd).st_size
    if size < _SNAP_PREFIX.size:
        raise SnapshotRejected(f"truncated ({size} bytes)")
    prefix = os.pread(fd, _SNAP_PREFIX.size, 0)
    magic, fmt, head_len, head_crc, data_crc, want_size = _SNAP_PREFIX.unpack(prefix)
    if magic != _SNAP_MAGIC:
        raise SnapshotRejected("not a keyword index snapshot")
    if fmt != _SNAP_FORMAT:
        raise SnapshotRejected(f"format {fmt}, expected {_SNAP_FORMAT}")
    if size != want_size:
        raise SnapshotRejected(f"truncated or damaged: {size} bytes, its header says {want_size}")
    head = os.pread(fd, head_len, _SNAP_PREFIX.size)
    if len(head) != head_len or zlib.crc32(head) != head_crc:
        raise SnapshotRejected("damaged header (CRC mismatch)")
    try:
        header = json.loads(head)
    except ValueError as e:
        raise SnapshotRejected(f"unreadable header: {e}") from None
    for key in ("uuid", "schema", "tokenizer"):
        if header.get(key) != expect[key]:
            raise SnapshotRejected(f"{key} {header.get(key)!r}, the index has {expect[key]!r}")
    gen = header.get("generation")
    if not isinstance(gen, int) or gen > expect["generation"]:
        raise SnapshotRejected(f"generation {gen!r} is newer than the index's "
                                f"{expect['generation']} (the index went back in time)")
    if gen < expect["floor"]:
        raise SnapshotRejected(f"generation {gen} is older than the tombstone floor "
                                f"{expect['floor']}: deletions since then are forgotten")
    start = _align(_SNAP_PREFIX.size + head_len)
    crc, pos, buf = 0, start, bytearray(1 << 22)
    with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
        f.seek(start)
        while got := f.readinto(buf):
            crc = zlib.crc32(memoryview(buf)[:got], crc)
            pos += got
    if pos != size or crc != data_crc:
        raise SnapshotRejected("damaged data (CRC mismatch)")
    mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
    arrays = {}
    try:
        layout = header["arrays"]
        for name, dt in _SNAP_ARRAYS:
            kind, count, off = layout[name]
            end = start + off + count * np.dtype(dt).itemsize
            if kind != dt or off % _SNAP_ALIGN or count < 0 or end > size:
                raise SnapshotRejected(f"bad layout for {name}: {layout[name]}")
            arrays[name] = np.frombuffer(mm, dtype=dt, count=count, offset=start + off)
        doc_count = arrays["base_doc"].size
    except (KeyError, TypeError, ValueError) as e:
        raise SnapshotRejected(f"bad layout: {e!r}") from None
    base = BaseFile(fd, start + layout["base_doc"][2], start + layout["base_tf"][2], doc_count)
    return header, arrays, base
