"""Server-Sent Events: one event's bytes, and the keep-alive comment for quiet streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any


def sse(event: str, data: Any) -> bytes:
    payload = json.dumps(data, ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()


KEEP_ALIVE = b": keep-alive\n\n"
"""An SSE comment: clients ignore it, proxies see traffic."""


async def keep_alive(events: AsyncIterator[bytes], interval: float) -> AsyncIterator[bytes]:
    """`events`, plus `KEEP_ALIVE` whenever none came for `interval` seconds: a proxy with an
    idle timeout (nginx: 60 s) would otherwise cut the stream while a model loads or the
    generation queue waits, before the first token."""
    source = aiter(events)
    pending: asyncio.Future[bytes] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            # wait() leaves the event's task running on timeout; wait_for would cancel it.
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield KEEP_ALIVE
                continue
            task, pending = pending, None
            try:
                item = task.result()
            except StopAsyncIteration:
                return
            yield item
    finally:  # the client went away (or we are done): stop the generation too
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
