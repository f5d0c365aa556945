"""Feedback on Slack answers: 👍/👎 buttons store a vote on the logged answer (the query log,
through the spine's `record_feedback`); a 👎 also opens an optional "what was wrong?" modal
(with the click's trigger_id, good for 3 s), whose reason is stored with the vote for
`vaultbot stats`. The thanks is ephemeral; for a private answer it goes by its response_url,
never as a fallback message in the channel."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.conversation import record_feedback
from bot.render_slack import FEEDBACK_UP
from bot.render_slack_views import REASON_INPUT, input_value, reason_modal
from bot.slack_private import respond
from bot.slack_stream import _NET_ERRORS, _error_code
from engine.querylog import QueryLog

log = logging.getLogger("bot.slack")


class SlackFeedback:
    """The feedback listeners, as methods of the bot (SlackBot)."""

    querylog: QueryLog | None
    _spawn: Callable[[Coroutine[Any, Any, None]], None]
    _count: Callable[[], None]
    _ephemeral: Callable[..., Awaitable[None]]

    async def on_feedback(self, ack: Callable[[], Awaitable[Any]], body: dict[str, Any],
                          action: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        self._count()
        self._spawn(self._feedback(client, body, action))

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
        if stored and value < 0 and body.get("trigger_id"):  # ask why (optional), within 3 s
            meta = {"query_id": query_id, "channel": channel, "thread_ts": thread_ts}
            try:
                await client.views_open(trigger_id=body["trigger_id"], view=reason_modal(meta))
            except _NET_ERRORS as exc:
                log.info("slack: the feedback reason modal did not open: %s", _error_code(exc))
        if not (channel and user):
            return
        text = ("Thanks for the feedback." if stored
                else "Sorry, I could not record that feedback (the answer is no longer in the log).")
        container = body.get("container") or {}
        if container.get("is_ephemeral") and body.get("response_url"):
            # A private answer: the thanks stays private too (never the channel fallback).
            with contextlib.suppress(Exception):
                await respond(str(body["response_url"]), {
                    "response_type": "ephemeral", "replace_original": False, "text": text})
            return
        await self._ephemeral(client, channel, user, thread_ts, text)

    async def on_reason(self, ack: Callable[..., Awaitable[Any]], body: dict[str, Any],
                        view: dict[str, Any]) -> None:
        """The 👎 reason modal was sent: the vote stays, with the reason as its note."""
        await ack()
        self._count()
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            query_id = int(meta["query_id"])
        except (ValueError, KeyError, TypeError):
            return
        reason = (input_value(view, REASON_INPUT) or "").strip() or None
        if reason is not None:
            self._spawn(self._store_reason(query_id, reason))

    async def _store_reason(self, query_id: int, reason: str) -> None:
        stored = await record_feedback(self.querylog, query_id, -1, reason)
        log.info("slack: feedback reason for query %s (%s)", query_id,
                 "stored" if stored else "not stored")
