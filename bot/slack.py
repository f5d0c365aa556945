"""The Slack front end: a Bolt AsyncApp that answers @mentions and thread follow-ups. It is an
adapter on the conversation spine (bot/conversation.py, which answers the turn): Slack events
in, Block Kit out (bot/render_slack.py), `StreamedReply` (bot/slack_stream.py) as the spine's
reply target. This module holds the bot's state, its listeners for questions and the app's
construction; the machinery is in small modules: bot/slack_middleware.py (dedupe, access,
respond_to), bot/slack_threads.py (reading messages and threads), bot/slack_stream.py (the
streamed reply), bot/slack_private.py (`/vault`, Share to channel, the message shortcut),
bot/slack_home.py (App Home), bot/slack_feedback.py (👍/👎 and the reason modal) and
bot/slack_runtime.py (Socket Mode, HTTP mode, the token check). Its public names are
re-exported here.

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
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import Access
from bot.access_file import AccessFile
from bot.conversation import (
    DEFAULT_MAX_TURNS,
    DRAIN_TIMEOUT,
    Conversation,
    InFlight,
    Seen,
    went_wrong,
)
from bot.render_slack import FEEDBACK_DOWN, FEEDBACK_UP, SlackMessage, notice_message
from bot.render_slack_views import (
    ASK_MODAL,
    COMMAND,
    REASON_MODAL,
    SHARE_ACTION,
    SHORTCUT,
    Asked,
)
from bot.slack_feedback import SlackFeedback
from bot.slack_home import SlackHome, Status
from bot.slack_middleware import Next, SlackMiddleware, _retried
from bot.slack_private import SlackPrivate, attachments_notice
from bot.slack_runtime import (
    SlackConfigError,
    SocketModeThread,
    check_tokens,
    mount_http,
    retry_handlers,
    run_socket_mode,
)
from bot.slack_stream import (
    _NET_ERRORS,
    STREAM_PIECE,
    StreamedReply,
    _error_code,
    ephemeral,
    post,
    quietly,
)
from bot.slack_threads import clean_question, is_bot, replied_to, thread_turns
from engine.answer import Answer, Asker
from engine.models import Turn
from engine.querylog import QueryLog

if TYPE_CHECKING:
    from slack_bolt.request.async_request import AsyncBoltRequest

# Everything tests and serve import from here (the machinery lives in bot/slack_*.py).
__all__ = [
    "STREAM_PIECE", "Next", "SlackBot", "SlackConfigError", "SocketModeThread", "VaultbotSlackApp",
    "build_slack_app", "check_tokens", "clean_question", "mount_http", "replied_to",
    "retry_handlers", "run_socket_mode", "thread_turns",
]

log = logging.getLogger(__name__)

HELP = ("Ask me about the notes: mention me with a question, e.g. `@vaultbot when is the launch?` "
        "I answer in a thread, with the notes I used; reply in the thread to ask a follow-up.")
REPLIES_PAGES = 5  # conversations.replies pages (200 messages each) read for a thread
STREAM_RETRY_AFTER = 600.0  # seconds before trying streaming again after Slack refused it
THINKING = "is thinking…"


# --------------------------------------------------------------------------- the bot


class SlackBot(SlackMiddleware, SlackPrivate, SlackHome, SlackFeedback):
    """The listeners, their middleware and their state. `build_slack_app` creates one and
    registers it. Answering itself is the spine's (bot/conversation.py); private answers,
    the shortcut, App Home and feedback are in bot/slack_private.py, bot/slack_home.py and
    bot/slack_feedback.py."""

    def __init__(
        self,
        asker: Asker,
        querylog: QueryLog | None,
        access: Access | AccessFile,
        *,
        update_interval: float = 1.0,
        streaming: bool = True,
        reaction: str = "eyes",
        on_answer: Callable[[Answer, str], None] | None = None,
        mask: bool = True,
        max_turns: int = DEFAULT_MAX_TURNS,
        status: Status | None = None,
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
        self.status = status  # the index's status for App Home (vaultbot/serve.py)
        self._kept: OrderedDict[str, Any] = OrderedDict()  # private answers, for sharing
        self._asked: OrderedDict[str, Any] = OrderedDict()  # recent questions, per user
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
        app.view(REASON_MODAL)(self.on_reason)
        app.command(COMMAND)(self.on_command)
        app.action(SHARE_ACTION)(self.on_share)
        app.shortcut(SHORTCUT)(self.on_shortcut)
        app.view(ASK_MODAL)(self.on_ask_submitted)
        app.event("app_home_opened")(self.on_home_opened)

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
            if not any(is_bot(m, bot_user_id, bot_id) for m in replies):
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
            await self.post(client, channel, thread_ts,
                            attachments_notice() if event.get("files") else notice_message(HELP))
            return
        scope = context.get("scope")
        if scope is None:  # _check_access said no
            log.info("slack: %s denied in %s", user, channel)
            await self._ephemeral(client, channel, str(user), thread_ts, str(context.get("denied")))
            return

        self._threads.add((channel, thread_ts))
        self._not_ours.discard((channel, thread_ts))  # mentioned in a thread it ignored so far
        if event.get("files"):  # said plainly rather than ignored silently
            with contextlib.suppress(*_NET_ERRORS):
                await self.post(client, channel, thread_ts, attachments_notice())

        async def history() -> list[Turn]:
            if thread_ts == ts:
                return []
            thread = replies if replies is not None else await self._replies(client, channel, thread_ts)
            return thread_turns(thread, before_ts=ts, bot_user_id=bot_user_id, bot_id=bot_id)

        reacted = await quietly(client.reactions_add(
            channel=channel, timestamp=ts, name=self.reaction))
        status = await quietly(client.assistant_threads_setStatus(
            channel_id=channel, thread_ts=thread_ts, status=THINKING))
        reply = StreamedReply(self, client, channel=channel, thread_ts=thread_ts, user=user, team=team)
        try:
            answered = await self.conversation.answer(question, reply, scope=scope,
                                                      history=history, channel=f"slack:{channel}",
                                                      user=str(user) if user else None)
            if answered is not None and user:
                link = (await self.annotate_link(client, channel, reply.placed_ts)
                        if reply.placed_ts else None)
                await self.asked(str(user), Asked(question, time.time(), link), answered.query_id)
        finally:
            if reacted:
                await quietly(client.reactions_remove(
                    channel=channel, timestamp=ts, name=self.reaction))
            if status:  # Slack clears it when the bot replies; this covers a failed reply
                await quietly(client.assistant_threads_setStatus(
                    channel_id=channel, thread_ts=thread_ts, status=""))

    # ---- Slack calls

    async def post(self, client: AsyncWebClient, channel: str, thread_ts: str | None,
                   message: SlackMessage) -> str | None:
        return await post(client, channel, thread_ts, message)

    async def _ephemeral(self, client: AsyncWebClient, channel: str, user: str,
                         thread_ts: str | None, text: str) -> None:
        await ephemeral(client, channel, user, thread_ts, notice_message(text))


# --------------------------------------------------------------------------- the app


class VaultbotSlackApp(AsyncApp):
    """An AsyncApp that carries its SlackBot (for draining on shutdown, and for tests)."""

    bot: SlackBot
    verifies_requests: bool


def build_slack_app(
    asker: Asker,
    querylog: QueryLog | None,
    access: Access | AccessFile,
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
    status: Status | None = None,
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
                       max_turns=max_turns, status=status)
    app.bot.register(app)
    return app

