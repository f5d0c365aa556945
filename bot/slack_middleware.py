"""The Slack bot's Bolt middleware: one answer per delivery (Slack retries with the same
`event_id`) and per message (a mention in a followed thread also arrives as `message`, under
another id), only messages that are questions to the bot (the channel's `respond_to:` in the
access file decides whether thread messages without a mention are), and who may ask what
here (`context["scope"]`, or `context["denied"]` with the text to show).

Bolt injects the arguments by name; `next` continues the chain, and a middleware that answers
with its own `BoltResponse` stops it (the event is acknowledged, no listener runs)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from slack_bolt.response import BoltResponse

from bot.access import AccessDenied
from bot.conversation import Conversation, Seen
from bot.slack_threads import HUMAN_SUBTYPES

if TYPE_CHECKING:
    from slack_bolt.request.async_request import AsyncBoltRequest

log = logging.getLogger("bot.slack")

# A middleware's `next`: continues the chain (the middleware returns what it returns).
Next = Callable[[], Awaitable[Any]]


def retried(request: AsyncBoltRequest | None) -> bool:
    """A redelivery: Slack (HTTP) and Socket Mode both set `X-Slack-Retry-Num`."""
    if request is None:
        return False
    value = request.headers.get("x-slack-retry-num") or ["0"]
    try:
        return int(value[0] if isinstance(value, list) else value) > 0
    except ValueError:
        return False



_retried = retried


class SlackMiddleware:
    """The middleware, as methods of the bot (SlackBot) whose state they keep."""

    conversation: Conversation
    received: int
    _events: Seen
    _messages: Seen
    _lock: threading.Lock

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
        if event.get("subtype") not in HUMAN_SUBTYPES or event.get("bot_id") or event.get("hidden"):
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
        if self.conversation.access.respond_to("slack", channel) == "mentions":
            return self._skip()  # this channel's rule: answer @mentions only
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
