"""The Slack front end: a Bolt AsyncApp that answers @mentions and thread follow-ups. It is an
adapter on the conversation spine (bot/conversation.py, which answers the turn): Slack events
in, Block Kit out (bot/render_slack.py), `_Reply` as the spine's reply target.

Flow of one question (an `app_mention`, a message in a thread the bot answered in, or a DM):
ack at once (Bolt acks Events API requests before listeners run; the listener only dedupes and
starts a task, so even with `process_before_response=True` the 200 leaves within milliseconds),
check access, mark the message with a reaction and the thread with "is thinking…", then stream
the answer into the thread with Slack's `chat.startStream`/`appendStream`/`stopStream`. If
Slack refuses streaming (older workspaces, missing features), a placeholder message is edited
with `chat.update` at most once per `update_interval` instead. The finished answer replaces the
streamed or placeholder message with Block Kit (render_slack); a long answer continues in
further thread replies.

Threads: replies always go to a thread (`thread_ts` = the thread's root, or the message itself),
in channels and in DMs alike; streaming needs a thread and a follow-up needs one to find its
history. A message in a thread the bot has answered in is a follow-up and needs no mention; the
thread's earlier question/answer pairs (from `conversations.replies`) go to the engine as
history. Threads answered in are remembered in memory and, after a restart, recognised by a
message from the bot's own user in `conversations.replies`.

Duplicates: Slack retries an event it thinks was not acknowledged (same `event_id`,
`X-Slack-Retry-Num` header), and an @mention in a followed thread arrives twice, as
`app_mention` and as `message`. Both are answered once: by `event_id`, and by (channel, ts),
remembered in process (bounded), in Bolt middleware (`SlackBot.register`), as is the access
check. A retry this process has not seen (it arrives after a restart,
or at another replica) is checked against the thread itself: if the bot already replied to the
message (a finished bot reply after it, before the next person's), it is not answered again;
a reply cut off by a crash mid-stream has no answer blocks, so the retry answers in full.

Logging: never tokens, never question, answer or note text above DEBUG."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import aiohttp
from fastapi import FastAPI, Request
from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import Access, AccessDenied
from bot.conversation import (
    DEFAULT_MAX_TURNS,
    DRAIN_TIMEOUT,
    Conversation,
    InFlight,
    Seen,
    recent,
    record_feedback,
    went_wrong,
)
from bot.render_slack import (
    FEEDBACK_DOWN,
    FEEDBACK_UP,
    SlackMessage,
    answer_messages,
    answer_text_of,
    notice_message,
    progress_text,
)
from engine.answer import Answer, Asker
from engine.citations import cited_paths
from engine.models import Turn
from engine.querylog import QueryLog

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
    from slack_bolt.request.async_request import AsyncBoltRequest
    from slack_sdk.web.async_chat_stream import AsyncChatStream

log = logging.getLogger(__name__)

HELP = ("Ask me about the notes: mention me with a question, e.g. `@vaultbot when is the launch?` "
        "I answer in a thread, with the notes I used; reply in the thread to ask a follow-up.")
REPLIES_PAGES = 5  # conversations.replies pages (200 messages each) read for a thread
STREAM_PIECE = 12_000  # chat.appendStream's markdown_text limit
STREAM_RETRY_AFTER = 600.0  # seconds before trying streaming again after Slack refused it
THINKING = "is thinking…"
# Message subtypes that are people writing; edits, joins, bot posts and the like are not.
_HUMAN_SUBTYPES = {None, "thread_broadcast", "file_share"}
# A middleware's `next`: continues the chain (bot/slack.py's middleware returns what it returns).
Next = Callable[[], Awaitable[Any]]
# A Slack call that failed: the API said no, or the network did.
_NET_ERRORS = (SlackClientError, OSError, TimeoutError, aiohttp.ClientError)
# chat.update errors after which the message will never take the answer: only then is a new
# message posted. Any other failure may have been applied (a lost response) or may be Slack's
# own trouble; posting then would leave two answers in the thread.
_UPDATE_GONE = {"message_not_found", "cant_update_message", "edit_window_closed"}


def retry_handlers() -> list[AsyncRetryHandler]:
    """slack_sdk's retries for every Web API call: a 429 waits its Retry-After (a busy channel
    gets rate limited while answers stream), a dropped connection is tried again."""
    return [AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncConnectionErrorRetryHandler(max_retry_count=2)]


# --------------------------------------------------------------------------- helpers


_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")


def clean_question(text: str, bot_user_id: str | None) -> str:
    """The question in a Slack message: the bot's mention removed, other mentions, channels and
    links turned into readable text, Slack's escapes undone."""
    if bot_user_id:
        text = re.sub(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>", " ", text)
    text = re.sub(r"<#[CG][A-Z0-9]+\|([^>]*)>", r"#\1", text)
    text = re.sub(r"<!(here|channel|everyone)(?:\|[^>]*)?>", r"@\1", text)
    text = _MENTION.sub(lambda m: "@" + m.group(1), text)
    text = re.sub(r"<([^<>|]+)\|([^<>]+)>", r"\2", text)
    text = re.sub(r"<([^<>]+)>", r"\1", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split()) if "\n" not in text else text.strip()


def _ts(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def thread_turns(
    messages: list[dict[str, Any]],
    *,
    before_ts: str,
    bot_user_id: str | None,
    bot_id: str | None,
    max_turns: int | None = None,
) -> list[Turn]:
    """Question/answer pairs of a thread before `before_ts`: a person's message followed by the
    bot's message(s). Unanswered questions and other bots are left out; the last `max_turns`
    (None: all; the spine keeps VAULTBOT_MAX_TURNS of them)."""
    turns: list[Turn] = []
    question: str | None = None
    answer: list[str] = []
    sources: list[str] = []  # the notes the bot's reply linked to: checked again by the engine
    for m in sorted(messages, key=lambda m: _ts(m.get("ts"))):
        if _ts(m.get("ts")) >= _ts(before_ts):
            break
        if _is_bot(m, bot_user_id, bot_id):
            if question is not None:
                answer.append(answer_text_of(m))
                sources += cited_paths(json.dumps(m.get("blocks") or []) + str(m.get("text") or ""))
            continue
        if m.get("bot_id") or m.get("subtype") not in _HUMAN_SUBTYPES:
            continue
        if question and any(answer):
            turns.append(Turn(question, "\n\n".join(a for a in answer if a), tuple(sources)))
        question, answer, sources = clean_question(str(m.get("text") or ""), bot_user_id), [], []
    if question and any(answer):
        turns.append(Turn(question, "\n\n".join(a for a in answer if a), tuple(sources)))
    return turns if max_turns is None else recent(turns, max_turns)


def _is_bot(message: dict[str, Any], bot_user_id: str | None, bot_id: str | None) -> bool:
    return bool((bot_user_id and message.get("user") == bot_user_id)
                or (bot_id and message.get("bot_id") == bot_id))


def replied_to(messages: list[dict[str, Any]], ts: str, bot_user_id: str | None,
               bot_id: str | None) -> bool:
    """Whether the bot finished a reply to message `ts`: a message of its own after it, before
    the next message of a person, carrying the blocks of a finished answer or notice (a reply
    cut off mid-stream by a crash has only its streamed text, so it does not count)."""
    for m in sorted(messages, key=lambda m: _ts(m.get("ts"))):
        if _ts(m.get("ts")) <= _ts(ts):
            continue
        if _is_bot(m, bot_user_id, bot_id):
            if any(str(b.get("block_id", "")).startswith("vb_") for b in m.get("blocks") or ()):
                return True
            continue
        if not m.get("bot_id") and m.get("subtype") in _HUMAN_SUBTYPES:
            return False
    return False


def _retried(request: AsyncBoltRequest | None) -> bool:
    """A redelivery: Slack (HTTP) and Socket Mode both set `X-Slack-Retry-Num`."""
    if request is None:
        return False
    value = request.headers.get("x-slack-retry-num") or ["0"]
    try:
        return int(value[0] if isinstance(value, list) else value) > 0
    except ValueError:
        return False


def _error_code(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or exc.response.status_code)
    return type(exc).__name__


def _neutralise(markdown: str) -> str:
    """Streamed text goes to Slack as raw Markdown: keep a model from pinging @channel or
    people while it streams (the final Block Kit text is escaped anyway)."""
    return markdown.replace("<!", "<\u200b!").replace("<@", "<\u200b@")


def _pieces(text: str, size: int) -> list[str]:
    out = []
    while len(text) > size:
        cut = text.rfind(" ", size // 2, size)
        cut = cut if cut > 0 else size
        out.append(text[:cut])
        text = text[cut:]
    if text:
        out.append(text)
    return out


# --------------------------------------------------------------------------- one reply


class _Reply:
    """The message(s) of one answer in a thread, the spine's reply target: streamed (or a
    placeholder + chat.update) while tokens arrive, then replaced by the Block Kit answer."""

    def __init__(self, bot: SlackBot, client: AsyncWebClient, *, channel: str, thread_ts: str,
                 user: str | None, team: str | None) -> None:
        self.bot = bot
        self.client = client
        self.channel = channel
        self.thread_ts = thread_ts
        self.user = user
        self.team = team
        self.text = ""  # everything the engine produced so far
        self.shown = 0  # how much of it was streamed to Slack
        self.mode = "none"  # "stream" or "update" once something is shown
        self.ts: str | None = None  # the streamed or placeholder message
        self.stream: AsyncChatStream | None = None

    # ---- the spine's ReplyTarget (bot/conversation.py)

    async def show(self, text: str) -> None:
        """Called by the spine's live edit (throttled; the first one an interval after the
        question, so a quick answer is posted once, as its final blocks)."""
        self.text = text
        if len(text) <= self.shown:
            return
        try:
            await self._push_now()
        except Exception as exc:  # progress is best effort; finish() still posts the answer
            log.warning("slack: showing progress failed: %s", _error_code(exc))

    async def wait(self, message: str) -> None:
        """In the queue for the model: the thread's status line says so."""
        await self.bot._quietly(self.client.assistant_threads_setStatus(
            channel_id=self.channel, thread_ts=self.thread_ts, status=message))

    async def settle(self, text: str) -> None:
        """The engine is done: end an open stream holding the whole text (replaced next)."""
        self.text = text
        await self._settle()

    async def finish(self, answer: Answer) -> None:
        await self._place(answer_messages(answer))

    async def fail(self, text: str) -> None:
        await self._place([notice_message(text, emoji=":warning:")])

    # ---- Slack calls

    async def _push_now(self) -> None:
        text = self.text
        if self.mode == "none" and self.bot.streaming_allowed():
            stream = await self.client.chat_stream(
                channel=self.channel, thread_ts=self.thread_ts, buffer_size=1,
                recipient_team_id=self.team, recipient_user_id=self.user,
            )
            try:
                await self._append(stream, text[self.shown:])
            except SlackApiError as exc:
                self.bot.refuse_streaming(_error_code(exc))
                self.ts = stream.ts  # None unless it started and then broke
                if stream.ts is not None:
                    with contextlib.suppress(*_NET_ERRORS):
                        await stream.stop()
            else:
                self.stream, self.ts, self.mode, self.shown = stream, stream.ts, "stream", len(text)
                return
        if self.mode == "stream":
            assert self.stream is not None
            try:
                await self._append(self.stream, text[self.shown:])
                self.shown = len(text)
                return
            except SlackApiError as exc:  # e.g. the stream expired: edit the message instead
                log.info("slack: stream broke (%s), editing the message instead", _error_code(exc))
                self.ts = self.stream.ts
                self.stream = None
        self.mode = "update"
        if self.ts is None:
            resp = await self.client.chat_postMessage(
                channel=self.channel, thread_ts=self.thread_ts, text=progress_text(text))
            self.ts = str(resp["ts"])
        else:
            await self.client.chat_update(channel=self.channel, ts=self.ts, text=progress_text(text))
        self.shown = len(text)

    @staticmethod
    async def _append(stream: AsyncChatStream, text: str) -> None:
        for piece in _pieces(_neutralise(text), STREAM_PIECE):
            await stream.append(markdown_text=piece)

    async def _settle(self) -> None:
        """End an open stream (its text is replaced next)."""
        if self.stream is not None:
            stream, self.stream = self.stream, None
            # The stream ends holding the whole text: should the final chat.update fail, the
            # streamed message is a complete answer (finish() posts no second one).
            rest = _pieces(_neutralise(self.text[self.shown:]), STREAM_PIECE)
            try:
                for piece in rest[:-1]:
                    await stream.append(markdown_text=piece)
                await stream.stop(markdown_text=rest[-1] if rest else None)
                self.shown = len(self.text)
            except _NET_ERRORS as exc:
                log.info("slack: stopping the stream failed: %s", _error_code(exc))

    async def _place(self, messages: list[SlackMessage]) -> None:
        await self._settle()
        first, rest = messages[0], messages[1:]
        posted = False
        if self.ts is not None:
            try:
                await self.client.chat_update(channel=self.channel, ts=self.ts, **first.to_kwargs())
                posted = True
            except _NET_ERRORS as exc:
                code = _error_code(exc)
                # The streamed or placeholder message stays as the answer unless it is gone.
                posted = code not in _UPDATE_GONE
                log.warning("slack: replacing the progress message failed: %s%s", code,
                            "" if posted else "; posting the answer as a new message")
        if not posted:
            await self.bot.post(self.client, self.channel, self.thread_ts, first)
        self.ts = None  # placed: anything after this (an error) is a new message
        for message in rest:
            await self.bot.post(self.client, self.channel, self.thread_ts, message)


# --------------------------------------------------------------------------- the bot


class SlackBot:
    """The listeners, their middleware and their state. `build_slack_app` creates one and
    registers it. Answering itself is the spine's (bot/conversation.py)."""

    def __init__(
        self,
        asker: Asker,
        querylog: QueryLog | None,
        access: Access,
        *,
        update_interval: float = 1.0,
        streaming: bool = True,
        reaction: str = "eyes",
        on_answer: Callable[[Answer, str], None] | None = None,
        mask: bool = True,
        max_turns: int = DEFAULT_MAX_TURNS,
    ) -> None:
        # The first progress waits one interval too: a quick (cached, extractive) answer is
        # then posted once, as its final blocks, without a stream or placeholder first.
        self.conversation = Conversation(
            asker, access, "slack", max_turns=max_turns, edit_interval=update_interval,
            first_edit_after=update_interval, mask=mask, on_answer=on_answer,
            error_text=went_wrong, logger=log)
        self.querylog = querylog
        self.streaming = streaming
        self.reaction = reaction
        self.inflight = InFlight()
        self.received = 0  # events that reached the bot, duplicates included
        self.finished = 0  # background tasks (answers, refusals, feedback) done
        self._events = Seen()
        self._messages = Seen()  # (channel, ts) claimed for an answer
        self._threads = Seen()  # (channel, thread_ts) the bot answered in
        self._not_ours = Seen()  # (channel, thread_ts) checked: the bot never spoke there
        self._stream_refused_at: float | None = None
        self._lock = threading.Lock()  # counters are read by tests from another thread

    @property
    def mask(self) -> bool:
        """VAULTBOT_MASK: secrets and personal data leave as "(masked)"."""
        return self.conversation.mask

    @mask.setter
    def mask(self, value: bool) -> None:
        self.conversation.mask = value

    @property
    def active(self) -> set[asyncio.Task[Any]]:
        """The tasks in progress (answers, refusals, feedback)."""
        return self.inflight.tasks

    # ---- registration

    def register(self, app: AsyncApp) -> None:
        # Middleware, in order: one answer per delivery (event_id, for the whole app), then,
        # per listener, only messages that are questions to the bot (a mention in a followed
        # thread also arrives as `message`: app_mention answers it), one answer per message
        # (channel, ts, whatever the event_id), and who may ask what here (context["scope"],
        # or context["denied"]).
        app.use(self._dedupe_events)
        answering: list[Callable[..., Any]] = [self._claim_message, self._check_access]
        app.event("app_mention", middleware=[self._is_mention, *answering])(self.on_mention)
        app.event("message", middleware=[self._is_question, *answering])(self.on_message)
        app.action(FEEDBACK_UP)(self.on_feedback)
        app.action(FEEDBACK_DOWN)(self.on_feedback)

    # ---- streaming switch

    def streaming_allowed(self) -> bool:
        if not self.streaming:
            return False
        refused = self._stream_refused_at
        return refused is None or time.monotonic() - refused > STREAM_RETRY_AFTER

    def refuse_streaming(self, reason: str) -> None:
        log.info("slack: streaming refused (%s); using chat.update for %.0f s",
                 reason, STREAM_RETRY_AFTER)
        self._stream_refused_at = time.monotonic()

    # ---- tasks

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.inflight.spawn(coro, done=self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        with self._lock:
            self.finished += 1
        if not task.cancelled() and task.exception() is not None:
            log.error("slack: a task failed", exc_info=task.exception())

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Let answers in progress finish (on shutdown); cancel what is left after `timeout`."""
        await self.inflight.drain(timeout)

    def _count(self) -> None:
        with self._lock:
            self.received += 1

    def _skip(self) -> BoltResponse:
        """An event not answered: counted, acknowledged, no listener runs."""
        self._count()
        return BoltResponse(status=200, body="")

    # ---- middleware (Bolt injects arguments by name; `next` continues the chain)

    async def _dedupe_events(self, body: dict[str, Any], next: Next) -> BoltResponse | None:
        """Slack retries an event it thinks was not acknowledged, with the same event_id."""
        event_id = body.get("event_id")
        if event_id and not self._events.add(event_id):
            log.info("slack: duplicate delivery of %s skipped", event_id)
            return self._skip()
        return await next()

    async def _is_mention(self, event: dict[str, Any], next: Next) -> BoltResponse | None:
        if event.get("bot_id") or not event.get("channel") or not event.get("ts"):
            return self._skip()  # another bot mentioning this one: no bot-to-bot conversations
        return await next()

    async def _is_question(self, event: dict[str, Any], context: dict[str, Any],
                           next: Next) -> BoltResponse | None:
        """A person's message in a DM or in a thread the bot may follow; a mention is left to
        the app_mention event, channel chatter outside threads to itself."""
        if event.get("subtype") not in _HUMAN_SUBTYPES or event.get("bot_id") or event.get("hidden"):
            return self._skip()
        channel, ts, user = event.get("channel"), event.get("ts"), event.get("user")
        if not channel or not ts or not user:
            return self._skip()
        bot_user_id = context.get("bot_user_id")
        thread_ts = event.get("thread_ts")
        if event.get("channel_type") == "im":
            return await next()
        if bot_user_id and f"<@{bot_user_id}" in str(event.get("text") or ""):
            return self._skip()  # a mention: the app_mention event answers it
        if not thread_ts:
            return self._skip()  # channel chatter: only threads the bot answered in are followed
        return await next()

    async def _claim_message(self, event: dict[str, Any], next: Next) -> BoltResponse | None:
        if not self._messages.add((event["channel"], event["ts"])):
            return self._skip()  # answered already (e.g. as a mention)
        return await next()

    async def _check_access(self, event: dict[str, Any], context: dict[str, Any],
                            next: Next) -> BoltResponse | None:
        """Who may ask what here. A refusal is said by the answer (after a retry and an empty
        question are dealt with), and only for a message the bot answers: chatter in a thread
        it never spoke in gets nothing."""
        try:
            context["scope"] = self.conversation.scope(user=str(event.get("user")),
                                                       channel=event["channel"])
        except AccessDenied as exc:
            context["denied"] = str(exc)
        return await next()

    # ---- listeners

    async def on_mention(self, body: dict[str, Any], event: dict[str, Any],
                         context: dict[str, Any], client: AsyncWebClient,
                         request: AsyncBoltRequest | None = None) -> None:
        self._count()
        self._spawn(self._answer(
            client, event=event, body=body, context=context,
            thread_ts=event.get("thread_ts") or event["ts"], retried=_retried(request),
        ))

    async def on_message(self, body: dict[str, Any], event: dict[str, Any],
                         context: dict[str, Any], client: AsyncWebClient,
                         request: AsyncBoltRequest | None = None) -> None:
        self._count()
        if event.get("channel_type") == "im":
            self._spawn(self._answer(client, event=event, body=body, context=context,
                                     thread_ts=event.get("thread_ts") or event["ts"],
                                     retried=_retried(request)))
            return
        self._spawn(self._follow_up(client, event=event, body=body, context=context,
                                    thread_ts=event["thread_ts"], retried=_retried(request)))

    async def on_feedback(self, ack: Callable[[], Awaitable[Any]], body: dict[str, Any],
                          action: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        self._count()
        self._spawn(self._feedback(client, body, action))

    # ---- work

    async def _follow_up(self, client: AsyncWebClient, *, event: dict[str, Any],
                         body: dict[str, Any], context: dict[str, Any], thread_ts: str,
                         retried: bool = False) -> None:
        channel = event["channel"]
        replies: list[dict[str, Any]] | None = None
        if (channel, thread_ts) in self._not_ours:
            return  # a thread the bot never spoke in (checked, and not mentioned in since)
        if (channel, thread_ts) not in self._threads:
            try:
                replies = await self._replies(client, channel, thread_ts)
            except _NET_ERRORS as exc:
                log.warning("slack: reading thread %s failed: %s", thread_ts, _error_code(exc))
                return
            bot_user_id, bot_id = context.get("bot_user_id"), context.get("bot_id")
            if not any(_is_bot(m, bot_user_id, bot_id) for m in replies):
                self._not_ours.add((channel, thread_ts))
                return
            self._threads.add((channel, thread_ts))
        await self._answer(client, event=event, body=body, context=context,
                           thread_ts=thread_ts, replies=replies, retried=retried)

    async def _replies(self, client: AsyncWebClient, channel: str, thread_ts: str
                       ) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        cursor = None
        for _ in range(REPLIES_PAGES):
            resp = await client.conversations_replies(
                channel=channel, ts=thread_ts, limit=200, cursor=cursor)
            messages.extend(resp.get("messages") or [])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor")
            if not resp.get("has_more") or not cursor:
                break
        return messages

    async def _answer(self, client: AsyncWebClient, *, event: dict[str, Any], body: dict[str, Any],
                      context: dict[str, Any], thread_ts: str,
                      replies: list[dict[str, Any]] | None = None, retried: bool = False) -> None:
        channel, ts = event["channel"], event["ts"]
        user = event.get("user")
        team = event.get("team") or body.get("team_id") or context.get("team_id")
        bot_user_id, bot_id = context.get("bot_user_id"), context.get("bot_id")
        if retried:  # a retry this process never saw: did the bot reply before a restart?
            if replies is None:
                try:  # read once: the history below reuses it
                    replies = await self._replies(client, channel, thread_ts)
                except _NET_ERRORS as exc:  # then answer: twice beats never
                    log.warning("slack: reading thread %s for a retry failed: %s", thread_ts, _error_code(exc))
            if replies is not None and replied_to(replies, ts, bot_user_id, bot_id):
                log.info("slack: retried event for %s in %s was answered before; skipped", ts, channel)
                return
        question = clean_question(str(event.get("text") or ""), bot_user_id)
        log.info("slack: question in %s (thread %s, %d chars)", channel, thread_ts, len(question))
        if not question:
            await self.post(client, channel, thread_ts, notice_message(HELP))
            return
        scope = context.get("scope")
        if scope is None:  # _check_access said no
            log.info("slack: %s denied in %s", user, channel)
            await self._ephemeral(client, channel, str(user), thread_ts, str(context.get("denied")))
            return

        self._threads.add((channel, thread_ts))
        self._not_ours.discard((channel, thread_ts))  # mentioned in a thread it ignored so far

        async def history() -> list[Turn]:
            if thread_ts == ts:
                return []
            thread = replies if replies is not None else await self._replies(client, channel, thread_ts)
            return thread_turns(thread, before_ts=ts, bot_user_id=bot_user_id, bot_id=bot_id)

        reacted = await self._quietly(client.reactions_add(
            channel=channel, timestamp=ts, name=self.reaction))
        status = await self._quietly(client.assistant_threads_setStatus(
            channel_id=channel, thread_ts=thread_ts, status=THINKING))
        reply = _Reply(self, client, channel=channel, thread_ts=thread_ts, user=user, team=team)
        try:
            await self.conversation.answer(question, reply, scope=scope, history=history,
                                           channel=f"slack:{channel}")
        finally:
            if reacted:
                await self._quietly(client.reactions_remove(
                    channel=channel, timestamp=ts, name=self.reaction))
            if status:  # Slack clears it when the bot replies; this covers a failed reply
                await self._quietly(client.assistant_threads_setStatus(
                    channel_id=channel, thread_ts=thread_ts, status=""))

    async def _feedback(self, client: AsyncWebClient, body: dict[str, Any],
                        action: dict[str, Any]) -> None:
        value = 1 if action.get("action_id") == FEEDBACK_UP else -1
        user = str((body.get("user") or {}).get("id") or "")
        channel = ((body.get("channel") or {}).get("id")
                   or (body.get("container") or {}).get("channel_id"))
        message = body.get("message") or {}
        thread_ts = message.get("thread_ts") or message.get("ts")
        try:
            query_id: int | None = int(str(action.get("value")))
        except ValueError:
            query_id = None
        stored = await record_feedback(self.querylog, query_id, value)
        log.info("slack: feedback %+d for query %s (%s)", value, query_id,
                 "stored" if stored else "not stored")
        if channel and user:
            text = ("Thanks for the feedback." if stored
                    else "Sorry, I could not record that feedback (the answer is no longer in the log).")
            await self._ephemeral(client, channel, user, thread_ts, text)

    # ---- Slack calls

    async def post(self, client: AsyncWebClient, channel: str, thread_ts: str | None,
                   message: SlackMessage) -> str | None:
        resp = await client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                             unfurl_links=False, unfurl_media=False,
                                             **message.to_kwargs())
        return resp.get("ts")

    async def _ephemeral(self, client: AsyncWebClient, channel: str, user: str,
                         thread_ts: str | None, text: str) -> None:
        message = notice_message(text)
        try:
            await client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts,
                                            **message.to_kwargs())
        except SlackApiError as exc:  # e.g. not in the channel: say it in the thread instead
            log.info("slack: ephemeral message failed (%s), posting in the thread", _error_code(exc))
            with contextlib.suppress(*_NET_ERRORS):
                await self.post(client, channel, thread_ts, message)

    @staticmethod
    async def _quietly(call: Awaitable[Any]) -> bool:
        """A cosmetic call (reaction, status): failures are logged at DEBUG and ignored."""
        try:
            await call
            return True
        except _NET_ERRORS as exc:
            log.debug("slack: optional call failed: %s", _error_code(exc))
            return False


# --------------------------------------------------------------------------- the app


class VaultbotSlackApp(AsyncApp):
    """An AsyncApp that carries its SlackBot (for draining on shutdown, and for tests)."""

    bot: SlackBot
    verifies_requests: bool


def build_slack_app(
    asker: Asker,
    querylog: QueryLog | None,
    access: Access,
    *,
    bot_token: str,
    signing_secret: str = "",
    api_url: str = "",
    process_before_response: bool = False,
    update_interval: float = 1.0,
    streaming: bool = True,
    on_answer: Callable[[Answer, str], None] | None = None,
    mask: bool = True,
    max_turns: int = DEFAULT_MAX_TURNS,
) -> VaultbotSlackApp:
    """The Bolt app. `signing_secret` is required for HTTP mode (`mount_http`) and unused in
    Socket Mode. `api_url` overrides the Web API base URL (tests). `on_answer(answer, "slack")`
    is called after each answer (e.g. to count it in the API's metrics)."""
    if not bot_token:
        raise ValueError("SLACK_BOT_TOKEN is not set")
    base_url = api_url or AsyncWebClient.BASE_URL
    client = AsyncWebClient(token=bot_token, base_url=base_url.rstrip("/") + "/",
                            retry_handlers=retry_handlers())  # Bolt copies them per request
    app = VaultbotSlackApp(
        name="vaultbot",
        client=client,
        signing_secret=signing_secret,
        # SignatureVerifier refuses an empty secret; Socket Mode requests are not signed.
        request_verification_enabled=bool(signing_secret),
        process_before_response=process_before_response,
    )
    app.verifies_requests = bool(signing_secret)
    app.bot = SlackBot(asker, querylog, access, update_interval=update_interval,
                       streaming=streaming, on_answer=on_answer, mask=mask,
                       max_turns=max_turns)
    app.bot.register(app)
    return app


def mount_http(fastapi_app: FastAPI, slack_app: AsyncApp, path: str = "/slack/events") -> None:
    """Serve Slack's Events API and interactivity (both point at `path`) from the FastAPI app.
    Requests are checked against the signing secret (401 if the signature is wrong or the
    timestamp more than 5 minutes off), not against the API's bearer token."""
    from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler

    if not getattr(slack_app, "verifies_requests", False):
        raise ValueError("Slack HTTP mode needs SLACK_SIGNING_SECRET (requests must be verified)")
    handler = AsyncSlackRequestHandler(slack_app)

    # (Request is imported at module level: FastAPI resolves this annotation by name.)
    async def slack_events(req: Request) -> Any:
        return await handler.handle(req)

    fastapi_app.add_api_route(path, slack_events, methods=["POST"], include_in_schema=False)


# --------------------------------------------------------------------------- Socket Mode


class SlackConfigError(RuntimeError):
    """Slack refused a token: the message says which one and why (safe to print)."""


async def check_tokens(slack_app: AsyncApp, app_token: str | None = None) -> dict[str, Any]:
    """Ask Slack whether the bot token (and the app token, if given) work, so a bad token
    fails at startup with a clear message instead of in every answer. Returns `auth.test`."""
    try:
        auth = await slack_app.client.auth_test()
    except SlackApiError as exc:
        raise SlackConfigError(f"Slack refused SLACK_BOT_TOKEN: {_error_code(exc)}") from None
    if app_token is not None:
        if not app_token.startswith("xapp-"):
            raise SlackConfigError("SLACK_APP_TOKEN must be an app-level token (xapp-...)")
        try:
            await slack_app.client.apps_connections_open(app_token=app_token)
        except SlackApiError as exc:
            raise SlackConfigError(f"Slack refused SLACK_APP_TOKEN: {_error_code(exc)}") from None
    return dict(auth.data) if isinstance(auth.data, dict) else {}


async def run_socket_mode(
    slack_app: AsyncApp,
    app_token: str,
    stop: asyncio.Event | None = None,
    on_connected: Callable[[], None] | None = None,
) -> None:
    """Check the tokens, connect over Socket Mode and serve until `stop` is set or the task is
    cancelled; then disconnect and let answers in progress finish (up to 30 s). Raises
    SlackConfigError for a token Slack refuses."""
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    if not app_token:
        raise SlackConfigError("SLACK_APP_TOKEN (xapp-...) is required for Socket Mode")
    await check_tokens(slack_app, app_token)
    handler: AsyncSocketModeHandler = AsyncSocketModeHandler(slack_app, app_token)
    try:
        await handler.connect_async()
        log.info("slack: connected over Socket Mode")
        if on_connected is not None:
            on_connected()
        await (stop or asyncio.Event()).wait()
    finally:
        with contextlib.suppress(Exception):
            await handler.close_async()
        bot = getattr(slack_app, "bot", None)
        if isinstance(bot, SlackBot):
            await bot.drain()
        log.info("slack: Socket Mode stopped")


class SocketModeThread:
    """Socket Mode on its own event loop in a daemon thread, for a synchronous caller:
    `start()` returns once connected (or raises SlackConfigError), `stop()` disconnects,
    waits for answers in progress and joins."""

    def __init__(self, slack_app: AsyncApp, app_token: str) -> None:
        self.slack_app = slack_app
        self.app_token = app_token
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> SocketModeThread:
        self._thread = threading.Thread(target=self._run, name="slack-socket-mode", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop(timeout=5)
            raise TimeoutError("Slack Socket Mode did not connect in time")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await run_socket_mode(self.slack_app, self.app_token, self._stop,
                                  on_connected=self._ready.set)

        try:
            asyncio.run(main())
        except BaseException as exc:  # start() raises it if we never connected
            if not self._ready.is_set():
                self._error = exc
            else:
                log.exception("slack: Socket Mode failed")
        finally:
            self._ready.set()

    def stop(self, timeout: float = 40.0) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
