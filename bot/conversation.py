"""The conversation spine: one turn of a chat front end, whatever the platform.

A turn is: a place and a user become a `Scope` (bot/access.py; `AccessDenied` when they may not
ask), the thread's earlier turns become the history (the newest `max_turns`), and the question
is streamed through `Asker.stream()` into a `ReplyTarget`, the platform's message(s) for the
answer: a throttled live edit while tokens arrive (`show`), the finished answer (`finish`) or
an error text (`fail`). Then the answer is counted (`on_answer(answer, front_end)`, e.g.
`Metrics.observe`); the engine has already written it to the query log, whose feedback votes
`record_feedback` stores. On shutdown `drain` lets the answers being written finish.

A front end (bot/slack.py, bot/discord_bot.py) is an adapter around this: platform events in,
a `ReplyTarget` and a renderer (bot/render_*.py) out. This module imports no platform SDK
(tests/test_layers.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Hashable, Iterator, Sequence
from typing import Any, Protocol

from bot.access import AccessRules
from engine.answer import Answer, Asker, AskOptions, Done, Queued, Quick, Token
from engine.models import Scope, Turn
from engine.querylog import QueryLog

log = logging.getLogger(__name__)

DEFAULT_MAX_TURNS = 10  # VAULTBOT_MAX_TURNS' default (vaultbot/settings.py)
DRAIN_TIMEOUT = 30.0  # seconds answers in progress get on shutdown
# The quick answer (the notes quoted) is shown when no token came this long after it: a model
# that answers at once is not preceded by a flash of quoted text (nor an extra edit).
QUICK_AFTER = 0.6

# The error texts people see (never the exception's message: it may quote a note).
SORRY = "Sorry, something went wrong while answering. The error was logged; please try again."
RESTARTING = "vaultbot is restarting; please ask again in a minute."
QUICK_LABEL = "_Quoted from the notes while the answer is being written:_"


def quick_preview(text: str) -> str:
    """The engine's `Quick` answer as shown until the first token replaces it: labelled, so
    nobody takes quoted sentences for the written answer."""
    return f"{QUICK_LABEL}\n\n{text.strip()}"


def went_wrong(exc: BaseException) -> str:
    """The error text that names the kind of failure (Slack shows it as a notice)."""
    return f"Something went wrong: {type(exc).__name__}. The details are in the vaultbot log."


def sorry(exc: BaseException) -> str:
    return SORRY


class ReplyTarget(Protocol):
    """The platform's message(s) for one answer."""

    async def show(self, text: str) -> None:
        """The answer so far (called by the live edit, at most once per interval). The first
        may be the notes quoted (`quick_preview`), which the next one replaces: it is not
        always an extension of the text shown before."""

    async def wait(self, message: str) -> None:
        """Before the first token: the question waits for the model ("waiting: 1 question
        ahead"). A target that shows it in the live preview keeps it and returns; the live
        edit is touched after this."""

    async def settle(self, text: str) -> None:
        """The stream ended with `text` (the last live edit may not have shown all of it): a
        target that streams natively ends its stream holding all of it."""

    async def finish(self, answer: Answer) -> None:
        """The finished answer, rendered for the platform, replacing the live preview."""

    async def fail(self, text: str) -> None:
        """An error text in place of the answer."""


History = Sequence[Turn] | Callable[[], Awaitable[Sequence[Turn]]]


def recent(turns: Sequence[Turn], max_turns: int) -> list[Turn]:
    """The newest `max_turns` turns (none for 0)."""
    return list(turns[-max_turns:]) if max_turns > 0 else []


class LiveEdit:
    """Shows streamed text through `show`, at most once per `interval` seconds, the first time
    `first_after` seconds after the start (a quick, cached answer then goes out once, as its
    final form). The edits run in a background task, so a slow platform never holds up
    reading the stream, and the latest text is shown even when the model pauses."""

    def __init__(self, show: Callable[[str], Awaitable[Any]], interval: float, *,
                 first_after: float = 0.0) -> None:
        self._show = show
        self._interval = interval
        self._text = ""
        self._dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self._early = asyncio.Event()
        self._task = asyncio.create_task(self._run(first_after))

    def update(self, text: str, *, at_once: bool = False) -> None:
        """`at_once`: show it without waiting for `first_after` (the quick answer)."""
        self._text = text
        self._dirty.set()
        if at_once:
            self._early.set()

    def touch(self) -> None:
        self._dirty.set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _run(self, first_after: float) -> None:
        if first_after > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._early.wait(), first_after)
        while not self._stop.is_set():
            await self._dirty.wait()
            if self._stop.is_set():
                return
            self._dirty.clear()
            try:
                await self._show(self._text)
            except Exception as exc:  # a lost preview edit is harmless; the final one counts
                log.warning("streaming edit failed: %s", type(exc).__name__)
            await self._pause(self._interval)

    async def close(self) -> None:
        """Stops editing; an edit in flight finishes first, so it cannot land after the final."""
        self._stop.set()
        self._dirty.set()
        self._early.set()
        await self._task

    def cancel(self) -> None:
        self._task.cancel()


class Conversation:
    """Answers turns for one front end (`front_end`: "slack", "discord": the section of the
    access file and the metrics label). `log` is the adapter's logger, so failures are logged
    where its operators look; never a question, an answer or note text above DEBUG."""

    def __init__(
        self,
        asker: Asker,
        access: AccessRules,
        front_end: str,
        *,
        max_turns: int = DEFAULT_MAX_TURNS,
        edit_interval: float = 1.0,
        first_edit_after: float = 0.0,
        quick_after: float = QUICK_AFTER,
        mask: bool = True,
        on_answer: Callable[[Answer, str], None] | None = None,
        error_text: Callable[[BaseException], str] = went_wrong,
        logger: logging.Logger | None = None,
    ) -> None:
        self.asker = asker
        self.access = access
        self.front_end = front_end
        self.max_turns = max_turns
        self.edit_interval = edit_interval
        self.first_edit_after = first_edit_after
        self.quick_after = quick_after
        self.mask = mask  # VAULTBOT_MASK: secrets and personal data leave as "(masked)"
        self.on_answer = on_answer
        self.error_text = error_text
        self.log = logger or log

    def scope(self, *, user: str, channel: str | None = None, guild: str | None = None) -> Scope:
        """What `user` may see at this place; raises AccessDenied (its text is for the user)."""
        return self.access.scope_for(self.front_end, user=user, channel=channel, guild=guild)

    def recent(self, turns: Sequence[Turn]) -> list[Turn]:
        return recent(turns, self.max_turns)

    async def answer(self, question: str, target: ReplyTarget, *, scope: Scope,
                     history: History = (), channel: str | None = None,
                     user: str | None = None) -> Answer | None:
        """Streams the answer into `target`; None (after `target.fail`) when it failed.
        `history`: the thread's earlier turns, or a coroutine function that reads them (a
        failure to read is then the answer's failure). `channel` labels the question in the
        query log (default: the front end); `user`, the asker's id there (App Home lists a
        person's own questions by it)."""
        text = ""
        answer: Answer | None = None
        live = LiveEdit(target.show, self.edit_interval, first_after=self.first_edit_after)
        quick: asyncio.Task[None] | None = None

        async def show_quick(preview: str) -> None:
            await asyncio.sleep(self.quick_after)
            if not text:  # still no token: the notes quoted, replaced by the first tokens
                live.update(preview, at_once=True)
        try:
            turns = await history() if callable(history) else history
            options = AskOptions(scope=scope, history=self.recent(turns),
                                 channel=channel or self.front_end, mask=self.mask,
                                 user=user or None)
            async for event in self.asker.stream(question, options):
                if isinstance(event, Token):
                    text += event.text
                    live.update(text)
                elif isinstance(event, Quick) and not text:
                    quick = asyncio.create_task(show_quick(quick_preview(event.text)))
                elif isinstance(event, Queued) and not text:
                    await target.wait(event.message)
                    live.touch()
                elif isinstance(event, Done):
                    answer = event.answer
            await live.close()
            await target.settle(text)
            if answer is None:
                raise RuntimeError("the answer stream ended without an answer")
            await target.finish(answer)
        except Exception as exc:
            # The traceback only: no question, note text or token in the log.
            self.log.exception("%s: answering in %s failed", self.front_end, channel or "a channel")
            await live.close()
            try:
                await target.settle(text)
                await target.fail(self.error_text(exc))
            except Exception as fail_exc:
                self.log.error("could not tell the user about the failure: %s",
                               type(fail_exc).__name__)
            return None
        finally:
            live.cancel()  # a no-op once closed; stops the edits when this task is cancelled
            if quick is not None:
                quick.cancel()
        if self.on_answer is not None:
            try:
                self.on_answer(answer, self.front_end)
            except Exception:
                self.log.exception("%s: the on_answer hook failed", self.front_end)
        return answer


async def record_feedback(querylog: QueryLog | None, query_id: int | None, value: int,
                          note: str | None = None) -> bool:
    """Store a 👍/👎 vote on a logged answer (`note`: the reason given, if any); False when it
    could not be (no log, gone)."""
    if query_id is None or querylog is None:
        return False
    try:
        return bool(await asyncio.to_thread(querylog.feedback, query_id, value, note))
    except Exception:
        log.exception("storing feedback failed")
        return False


async def drain(tasks: set[asyncio.Task[Any]], timeout: float = DRAIN_TIMEOUT) -> None:
    """Wait for the answers being written (on shutdown); cancel what is left after `timeout`."""
    pending = {t for t in tasks if t is not asyncio.current_task()}
    if not pending:
        return
    _, late = await asyncio.wait(pending, timeout=timeout)
    for task in late:
        task.cancel()
    if late:
        log.warning("cancelled %d unfinished answer(s) on shutdown", len(late))
        await asyncio.wait(late, timeout=5)


class Seen:
    """A bounded set, oldest forgotten first: what a bot remembers of deliveries, messages
    and threads (for dedupe), without growing for ever."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, None] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def add(self, key: Hashable) -> bool:
        """Add `key`; False if it was already there."""
        if key in self._items:
            self._items.move_to_end(key)
            return False
        self._items[key] = None
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return True

    def discard(self, key: Hashable) -> None:
        self._items.pop(key, None)


class InFlight:
    """The answers a bot is writing: tasks it started (`spawn`) or runs in (`track`), for
    `drain`. Once draining, `draining` tells the bot to turn new questions away."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()
        self.draining = False

    def spawn(self, coro: Coroutine[Any, Any, None],
              done: Callable[[asyncio.Task[None]], None] | None = None) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if done is not None:
            task.add_done_callback(done)
        return task

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            yield
        finally:
            self.tasks.discard(task)

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        self.draining = True
        await drain(self.tasks, timeout)
