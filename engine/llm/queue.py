"""The generation queue: at most N generations per model at once, identical requests merged.

Ollama runs one model mostly serially, so 50 concurrent questions are better served one or two
at a time than as 50 contexts of one model. `GenerationQueue.stream(model, key, produce)` wraps
one generation: it waits for a slot of `model` (yielding `Queued(position)` whenever the
number of questions ahead changes), then yields `produce()`'s pieces. Callers passing the same
`key` while one is waiting or running share that generation: they get every piece from the
first one on, and the same error if it fails.

`serve` runs the API, Slack and Discord on different event loops (threads), so the state is
guarded by a thread lock and each waiter is fed through its own loop (call_soon_threadsafe).
A generation runs as a task on the loop of the caller that started it, and is cancelled once
no caller is left listening.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LIMIT = 1


@dataclass(frozen=True)
class Queued:
    """The question waits for the model: `position` questions are ahead of it (the ones being
    answered plus the ones waiting before it)."""

    position: int

    @property
    def message(self) -> str:
        """What the front ends show: "waiting: 2 questions ahead"."""
        return f"waiting: {self.position} question{'' if self.position == 1 else 's'} ahead"


def parse_limits(spec: str, *, fast_model: str, deep_model: str) -> dict[str, int]:
    """`VAULTBOT_LLM_CONCURRENCY`: "fast=2,deep=1" (either part may be left out and keeps its
    default), or one number for both. When both roles name one model, the smaller cap wins."""
    roles = {"fast": 2, "deep": 1}
    spec = spec.strip()
    if spec.isdigit():
        roles = dict.fromkeys(roles, int(spec))
    elif spec:
        for part in spec.split(","):
            role, sep, value = part.partition("=")
            role, value = role.strip().lower(), value.strip()
            if not sep or role not in roles or not value.isdigit():
                raise ValueError(f"expected e.g. fast=2,deep=1, got {part.strip()!r}")
            roles[role] = int(value)
    if any(n < 1 for n in roles.values()):
        raise ValueError("each limit must be at least 1")
    limits = {deep_model: roles["deep"]}
    limits[fast_model] = min(roles["fast"], limits.get(fast_model, roles["fast"]))
    return limits


class _Listener:
    """One caller's inbox, fed from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def send(self, kind: str, value: Any = None) -> None:
        # RuntimeError: that caller's loop is closed, nobody is listening any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.inbox.put_nowait, (kind, value))


@dataclass(eq=False)
class _Generation:
    model: str
    key: Hashable | None
    loop: asyncio.AbstractEventLoop
    listeners: list[_Listener] = field(default_factory=list)
    pieces: list[str] = field(default_factory=list)
    started: bool = False
    finished: bool = False
    position: int | None = None  # last position told to the listeners
    go: asyncio.Event = field(default_factory=asyncio.Event)  # set on `loop` when a slot is free
    task: asyncio.Task[None] | None = None


class GenerationQueue:
    def __init__(self, limits: dict[str, int] | None = None, default: int = DEFAULT_LIMIT) -> None:
        self.limits = dict(limits or {})
        self.default = default
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}
        self._waiting: dict[str, list[_Generation]] = {}
        self._shared: dict[tuple[str, Hashable], _Generation] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # For tests and benchmarks: generations started, and the most running at once per model.
        self.started = 0
        self.peak: dict[str, int] = {}

    def limit(self, model: str) -> int:
        return self.limits.get(model, self.default)

    def running(self, model: str) -> int:
        with self._lock:
            return self._running.get(model, 0)

    async def stream(
        self,
        model: str,
        key: Hashable | None,
        produce: Callable[[], AsyncIterator[str]],
    ) -> AsyncIterator[str | Queued]:
        """`produce()`'s pieces once a slot of `model` is free, `Queued` events before that.
        `key=None` never shares."""
        listener = _Listener()
        with self._lock:
            gen = self._shared.get((model, key)) if key is not None else None
            if gen is None:
                gen = _Generation(model, key, listener.loop)
                if key is not None:
                    self._shared[(model, key)] = gen
                gen.listeners.append(listener)
                gen.task = listener.loop.create_task(self._run(gen, produce))
                self._tasks.add(gen.task)
                # Also when cancelled before it ever ran (its body, and so its handlers, never
                # start then): the slot or the place in line must still be given back.
                gen.task.add_done_callback(lambda task: self._finish(gen, ("end", None)))
                gen.task.add_done_callback(self._tasks.discard)
                self._waiting.setdefault(model, []).append(gen)
                self._schedule(model)
            else:  # catch up with what was already streamed, then follow
                for piece in gen.pieces:
                    listener.inbox.put_nowait(("piece", piece))
                if gen.position is not None and not gen.started:
                    listener.inbox.put_nowait(("queued", gen.position))
                gen.listeners.append(listener)
        try:
            while True:
                kind, value = await listener.inbox.get()
                if kind == "piece":
                    yield value
                elif kind == "queued":
                    yield Queued(value)
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            self._leave(gen, listener)

    def _leave(self, gen: _Generation, listener: _Listener) -> None:
        with self._lock:
            gen.listeners.remove(listener)
            abandoned = not gen.listeners and not gen.finished
            if abandoned and self._shared.get((gen.model, gen.key)) is gen:
                del self._shared[(gen.model, gen.key)]  # a newcomer must not join a dying one
        if abandoned and gen.task is not None:  # nobody wants this answer any more
            with contextlib.suppress(RuntimeError):  # its loop is closed: the task is gone
                gen.loop.call_soon_threadsafe(gen.task.cancel)

    async def _run(self, gen: _Generation, produce: Callable[[], AsyncIterator[str]]) -> None:
        try:
            await gen.go.wait()
            async for piece in produce():
                with self._lock:
                    gen.pieces.append(piece)
                    listeners = list(gen.listeners)
                for listener in listeners:
                    listener.send("piece", piece)
            self._finish(gen, ("end", None))
        except Exception as exc:  # every waiter gets the same failure
            self._finish(gen, ("error", exc))

    def _finish(self, gen: _Generation, message: tuple[str, Any]) -> None:
        with self._lock:
            if gen.finished:
                return
            gen.finished = True
            if gen.key is not None and self._shared.get((gen.model, gen.key)) is gen:
                del self._shared[(gen.model, gen.key)]
            if gen.started:
                self._running[gen.model] -= 1
            else:
                self._waiting[gen.model].remove(gen)
            listeners = list(gen.listeners)
            self._schedule(gen.model)
        for listener in listeners:
            listener.send(*message)

    def _schedule(self, model: str) -> None:
        """Start what fits, then tell every waiter its position. Called with the lock held."""
        waiting = self._waiting.get(model, [])
        while waiting and self._running.get(model, 0) < self.limit(model):
            gen = waiting.pop(0)
            gen.started = True
            self._running[model] = self._running.get(model, 0) + 1
            self.started += 1
            self.peak[model] = max(self.peak.get(model, 0), self._running[model])
            # RuntimeError: its loop is closed; the task's done callback frees the slot.
            with contextlib.suppress(RuntimeError):
                gen.loop.call_soon_threadsafe(gen.go.set)
        ahead = self._running.get(model, 0)
        for i, gen in enumerate(waiting):
            if gen.position != ahead + i:
                gen.position = ahead + i
                for listener in gen.listeners:
                    listener.send("queued", gen.position)
