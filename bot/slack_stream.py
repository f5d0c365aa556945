"""The streamed reply: the message(s) of one answer in a Slack thread, the spine's reply target
(bot/conversation.py). Tokens are streamed with `chat.startStream`/`appendStream`/`stopStream`
(or a placeholder edited with `chat.update` where Slack refuses streaming); the finished
answer replaces them with Block Kit (bot/render_slack.py), a long one continuing in further
replies. Also the Slack calls every part of the bot shares (post, quietly) and their errors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web.async_client import AsyncWebClient

from bot.render_slack import SlackMessage, answer_messages, notice_message, progress_text
from engine.answer import Answer

if TYPE_CHECKING:
    from slack_sdk.web.async_chat_stream import AsyncChatStream

log = logging.getLogger("bot.slack")

STREAM_PIECE = 12_000  # chat.appendStream's markdown_text limit
# A Slack call that failed: the API said no, or the network did.
_NET_ERRORS = (SlackClientError, OSError, TimeoutError, aiohttp.ClientError)
# chat.update errors after which the message will never take the answer: only then is a new
# message posted. Any other failure may have been applied (a lost response) or may be Slack's
# own trouble; posting then would leave two answers in the thread.
_UPDATE_GONE = {"message_not_found", "cant_update_message", "edit_window_closed"}


class StreamSwitch(Protocol):
    """Whether streaming is worth trying (the bot turns it off for a while when refused)."""

    def streaming_allowed(self) -> bool: ...

    def refuse_streaming(self, reason: str) -> None: ...


def error_code(exc: BaseException) -> str:
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


_error_code = error_code


async def post(client: AsyncWebClient, channel: str, thread_ts: str | None,
               message: SlackMessage) -> str | None:
    """A message as the bot (links not unfurled: a note link is no web page to preview)."""
    resp = await client.chat_postMessage(channel=channel, thread_ts=thread_ts,
                                         unfurl_links=False, unfurl_media=False,
                                         **message.to_kwargs())
    return resp.get("ts")


async def quietly(call: Awaitable[Any]) -> bool:
    """A cosmetic call (reaction, status): failures are logged at DEBUG and ignored."""
    try:
        await call
        return True
    except _NET_ERRORS as exc:
        log.debug("slack: optional call failed: %s", _error_code(exc))
        return False


async def ephemeral(client: AsyncWebClient, channel: str, user: str, thread_ts: str | None,
                    message: SlackMessage, *, fallback: bool = True) -> bool:
    """A message only `user` sees; if Slack refuses (e.g. the bot is not in the channel) and
    `fallback`, it is said in the thread instead. False when it reached nobody."""
    try:
        await client.chat_postEphemeral(channel=channel, user=user, thread_ts=thread_ts,
                                        **message.to_kwargs())
        return True
    except SlackApiError as exc:
        if not fallback:
            log.info("slack: ephemeral message failed (%s)", _error_code(exc))
            return False
        log.info("slack: ephemeral message failed (%s), posting in the thread", _error_code(exc))
        with contextlib.suppress(*_NET_ERRORS):
            await post(client, channel, thread_ts, message)
            return True
    return False


# --------------------------------------------------------------------------- one reply


class StreamedReply:
    """The message(s) of one answer in a thread, the spine's reply target: streamed (or a
    placeholder + chat.update) while tokens arrive, then replaced by the Block Kit answer."""

    def __init__(self, bot: StreamSwitch, client: AsyncWebClient, *, channel: str, thread_ts: str,
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
        self.placed_ts: str | None = None

    # ---- the spine's ReplyTarget (bot/conversation.py)

    async def show(self, text: str) -> None:
        """Called by the spine's live edit (throttled; the first one an interval after the
        question, so a quick answer is posted once, as its final blocks)."""
        await self._give_way(text)
        self.text = text
        if len(text) <= self.shown:
            return
        try:
            await self._push_now()
        except Exception as exc:  # progress is best effort; finish() still posts the answer
            log.warning("slack: showing progress failed: %s", _error_code(exc))

    async def wait(self, message: str) -> None:
        """In the queue for the model: the thread's status line says so."""
        await quietly(self.client.assistant_threads_setStatus(
            channel_id=self.channel, thread_ts=self.thread_ts, status=message))

    async def settle(self, text: str) -> None:
        """The engine is done: end an open stream holding the whole text (replaced next)."""
        await self._give_way(text)
        self.text = text
        await self._settle()

    async def _give_way(self, text: str) -> None:
        """When `text` does not continue what is shown (the notes quoted by the spine's quick
        answer, then the model's answer): a stream only grows, so it ends as it is and the
        message is edited from then on."""
        if self.shown and not text.startswith(self.text[:self.shown]):
            await self._settle()
            self.mode, self.shown = "update", 0

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
        placed_ts = self.ts
        if not posted:
            placed_ts = await post(self.client, self.channel, self.thread_ts, first)
        self.placed_ts = placed_ts  # the answer's (first) message, for its permalink
        self.ts = None  # placed: anything after this (an error) is a new message
        for message in rest:
            await post(self.client, self.channel, self.thread_ts, message)



_Reply = StreamedReply
