"""Giving freed heap back to the operating system.

Loading the keyword index reads every document's postings as Python objects and folds them into
a few numpy arrays; the objects are freed, but glibc keeps the pages they used (about 130 MB at
100k chunks, docs/benchmarks.md "Memory"), so the process looks and stays that much bigger.
malloc_trim returns them. Elsewhere (macOS's allocator returns large frees itself) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache
from typing import Any


@cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None  # musl has none
    except OSError:
        return None


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS; True if the allocator could be asked."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
