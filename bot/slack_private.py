"""Private answers in Slack: the `/vault` slash command, the "Share to channel" button, and the
message shortcut "Ask vaultbot about this" (a modal; the answer in the message's thread or only
to the person asking).

`/vault` is acknowledged at once (Slack wants the ack within 3 s; the ack's text is shown only
to the person), then answered through the command's `response_url` as an ephemeral message:
never in the channel. The answer is kept in memory (bounded) under a random key that the share
button carries, so the button posts exactly what the person saw, to the channel they asked in,
as the bot; a button older than the memory says so. The scope is the one of that person in
that channel (bot/access.py), so sharing shows the channel nothing its rule hides.

The shortcut's modal is opened with the interaction's trigger_id (valid for 3 s: opened in the
listener, right after the ack); its submission is acknowledged (closing the modal) before the
answer starts."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from bot.access import AccessDenied
from bot.conversation import Conversation
from bot.render_slack import SlackMessage, notice_message
from bot.render_slack_views import (
    ATTACHMENTS_NOT_READ,
    QUESTION_INPUT,
    WHERE_INPUT,
    Asked,
    ask_modal,
    input_value,
    private_pages,
    shared_page,
    with_share_button,
)
from bot.slack_stream import _NET_ERRORS, error_code, post
from bot.slack_threads import clean_question
from engine.answer import Answer

log = logging.getLogger("bot.slack")

Ack = Callable[..., Awaitable[Any]]
VAULT_HELP = "Ask the notes privately: `/vault when is the launch?` Only you see the answer."
LOOKING = "Looking in the notes…"
SHARES_KEPT = 500  # private answers the share button can still post


@dataclass
class Kept:
    """A private answer, for its share button."""

    channel: str
    user: str
    question: str
    pages: list[SlackMessage]
    query_id: int | None


class PrivateReply:
    """The spine's reply target for an answer only one person sees: nothing is streamed (an
    ephemeral message cannot be edited by the bot), the finished answer goes by the command's
    response_url, else chat.postEphemeral, with a share button."""

    def __init__(self, bot: SlackPrivate, client: AsyncWebClient, *, channel: str, user: str,
                 question: str, response_url: str | None = None,
                 thread_ts: str | None = None) -> None:
        self.bot, self.client = bot, client
        self.channel, self.user, self.question = channel, user, question
        self.response_url, self.thread_ts = response_url, thread_ts

    async def show(self, text: str) -> None:
        return None

    async def wait(self, message: str) -> None:
        return None

    async def settle(self, text: str) -> None:
        return None

    async def finish(self, answer: Answer) -> None:
        pages = private_pages(answer)
        key = self.bot.keep(Kept(self.channel, self.user, self.question, pages, answer.query_id))
        for page in [*pages[:-1], with_share_button(pages[-1], key)]:
            await self.deliver(page)

    async def fail(self, text: str) -> None:
        await self.deliver(notice_message(text, emoji=":warning:"))

    async def deliver(self, message: SlackMessage) -> None:
        if self.response_url:
            await respond(self.response_url, {"response_type": "ephemeral", **message.to_kwargs()})
            return
        await self.client.chat_postEphemeral(channel=self.channel, user=self.user,
                                             thread_ts=self.thread_ts, **message.to_kwargs())


async def respond(url: str, body: dict[str, Any]) -> None:
    """A post to an interaction's response_url (the URL is its own credential)."""
    resp = await AsyncWebhookClient(url).send_dict(body)
    if resp.status_code != 200:
        raise RuntimeError(f"response_url refused the message: {resp.status_code} {resp.body}")


class SlackPrivate:
    """The listeners for private answers, as methods of the bot (SlackBot) whose state and
    conversation they use."""

    conversation: Conversation
    _kept: OrderedDict[str, Kept]
    _spawn: Callable[[Coroutine[Any, Any, None]], None]
    _count: Callable[[], None]
    remember: Callable[[str, Asked], None]
    asked: Callable[[str, Asked, int | None], Awaitable[None]]
    annotate_link: Callable[..., Awaitable[str | None]]
    _answer: Callable[..., Coroutine[Any, Any, None]]

    def keep(self, kept: Kept) -> str:
        key = secrets.token_urlsafe(12)
        self._kept[key] = kept
        while len(self._kept) > SHARES_KEPT:
            self._kept.popitem(last=False)
        return key

    # ---- /vault

    async def on_command(self, ack: Ack, command: dict[str, Any], client: AsyncWebClient) -> None:
        self._count()
        question = clean_question(str(command.get("text") or ""), None)
        user, channel = str(command.get("user_id") or ""), str(command.get("channel_id") or "")
        if not question:
            await ack(text=VAULT_HELP)
            return
        try:
            scope = self.conversation.scope(user=user, channel=channel)
        except AccessDenied as exc:
            await ack(text=str(exc))
            return
        await ack(text=LOOKING)  # within Slack's 3 s; the answer follows by response_url
        log.info("slack: /vault in %s (%d chars)", channel, len(question))
        self.remember(user, Asked(question, time.time(), None))
        self._spawn(self._private_answer(
            client, question=question, scope=scope, channel=channel, user=user,
            response_url=str(command.get("response_url") or "") or None))

    async def _private_answer(self, client: AsyncWebClient, *, question: str, scope: Any,
                              channel: str, user: str, response_url: str | None = None,
                              thread_ts: str | None = None) -> None:
        reply = PrivateReply(self, client, channel=channel, user=user, question=question,
                             response_url=response_url, thread_ts=thread_ts)
        await self.conversation.answer(question, reply, scope=scope, channel=f"slack:{channel}",
                                       user=user)

    # ---- the share button

    async def on_share(self, ack: Ack, body: dict[str, Any], action: dict[str, Any],
                       client: AsyncWebClient) -> None:
        await ack()
        self._count()
        self._spawn(self._share(client, body, str(action.get("value") or "")))

    async def _share(self, client: AsyncWebClient, body: dict[str, Any], key: str) -> None:
        user = str((body.get("user") or {}).get("id") or "")
        response_url = body.get("response_url")
        kept = self._kept.get(key)
        if kept is None or kept.user != user:
            text = "This answer is no longer kept for sharing; please ask again."
            if response_url:
                await respond(str(response_url), {"response_type": "ephemeral", "text": text,
                                                  "replace_original": False})
            return
        ts: str | None = None
        try:
            for page in kept.pages:
                posted = await post(client, kept.channel, None, shared_page(page, user, kept.question))
                ts = ts or posted
        except _NET_ERRORS as exc:
            log.info("slack: sharing to %s failed: %s", kept.channel, error_code(exc))
            if response_url:
                await respond(str(response_url), {
                    "response_type": "ephemeral", "replace_original": False,
                    "text": "I could not post in this channel (invite me with `/invite @vaultbot`)."})
            return
        del self._kept[key]
        if response_url:  # the private copy goes: the channel has the answer now
            await respond(str(response_url), {"delete_original": True})
        if ts:
            link = await self.annotate_link(client, kept.channel, ts)
            await self.asked(user, Asked(kept.question, time.time(), link), kept.query_id)

    # ---- the message shortcut

    async def on_shortcut(self, ack: Ack, shortcut: dict[str, Any],
                          client: AsyncWebClient) -> None:
        await ack()
        self._count()
        message = shortcut.get("message") or {}
        channel = str((shortcut.get("channel") or {}).get("id") or "")
        ts = str(message.get("ts") or shortcut.get("message_ts") or "")
        metadata = {"channel": channel, "ts": ts, "thread_ts": message.get("thread_ts") or ts,
                    "team": (shortcut.get("team") or {}).get("id")}
        text = clean_question(str(message.get("text") or ""), None)
        try:  # now: the trigger_id is good for 3 s
            await client.views_open(trigger_id=shortcut["trigger_id"], view=ask_modal(text, metadata))
        except _NET_ERRORS as exc:
            log.warning("slack: opening the question modal failed: %s", error_code(exc))

    async def on_ask_submitted(self, ack: Ack, body: dict[str, Any], view: dict[str, Any],
                               context: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()  # closes the modal
        self._count()
        user = str((body.get("user") or {}).get("id") or "")
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except ValueError:
            meta = {}
        question = (input_value(view, QUESTION_INPUT) or "").strip()
        where = input_value(view, WHERE_INPUT) or "thread"
        channel, ts = str(meta.get("channel") or ""), str(meta.get("ts") or "")
        if not question or not channel or not ts:
            return
        if where == "private":
            try:
                scope = self.conversation.scope(user=user, channel=channel)
            except AccessDenied as exc:
                self._spawn(self._tell(client, channel, user, str(exc)))
                return
            self.remember(user, Asked(question, time.time(), None))
            self._spawn(self._private_answer(client, question=question, scope=scope,
                                             channel=channel, user=user,
                                             thread_ts=meta.get("thread_ts")))
            return
        # In the thread: the same turn as a mention there (access, history, streaming).
        event = {"channel": channel, "ts": ts, "user": user, "text": question,
                 "team": meta.get("team") or (body.get("team") or {}).get("id")}
        turn: dict[str, Any] = {"bot_user_id": context.get("bot_user_id"),
                                "bot_id": context.get("bot_id")}
        try:
            turn["scope"] = self.conversation.scope(user=user, channel=channel)
        except AccessDenied as exc:
            turn["denied"] = str(exc)
        self._spawn(self._answer(client, event=event, body=body, context=turn,
                                 thread_ts=str(meta.get("thread_ts") or ts)))

    async def _tell(self, client: AsyncWebClient, channel: str, user: str, text: str) -> None:
        try:
            await client.chat_postEphemeral(channel=channel, user=user,
                                            **notice_message(text).to_kwargs())
        except _NET_ERRORS as exc:
            log.info("slack: telling %s failed: %s", user, error_code(exc))


def attachments_notice() -> SlackMessage:
    return notice_message(ATTACHMENTS_NOT_READ, emoji=":paperclip:")
