"""The Slack App Home tab (`app_home_opened` → `views.publish`): the index's status (from a
callable `vaultbot serve` injects: notes, last sync, skipped files, Ollama reachable), the
person's recent questions with links to their answers, and what the workspace's channels may
see by the access file.

Recent questions are read from the query log (engine/querylog.py `recent_for`): the person's
own questions in Slack, newest first, with the permalink of the answer when it was posted in a
thread or shared (`asked` stores it on the logged row), so they survive a restart. With the
query log off (VAULTBOT_QUERYLOG_DAYS=0, nothing about questions is stored) they are kept in
memory per person instead (bounded) and gone after a restart."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Coroutine
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from bot.access import AccessDenied
from bot.conversation import Conversation
from bot.render_slack import escape_mrkdwn
from bot.render_slack_views import Asked, home_view
from bot.slack_stream import _NET_ERRORS, error_code
from engine.querylog import QueryLog

log = logging.getLogger("bot.slack")

RECENT_PER_USER = 10
USERS_KEPT = 5000
Status = Callable[[], dict[str, Any]]


def places(access: Any) -> list[str]:
    """One line per Slack channel rule of the access file, then the default: folders and tags
    shown, who may ask, whether thread messages need a mention. Private folders are not named."""
    def describe(rule: Any) -> str:
        if not rule.allow:
            return "not answered"
        what = ", ".join([*(f"{f}/" for f in rule.folders), *(f"#{t}" for t in rule.tags)])
        parts = [f"sees {escape_mrkdwn(what)}" if what else "sees the whole vault"]
        if rule.users:
            parts.append(f"{len(rule.users)} people may ask")
        if rule.respond_to == "mentions":
            parts.append("answers @mentions only")
        return " · ".join(parts)

    lines = []
    for name, rule in sorted(access.rules.items()):
        if name.startswith("slack:channel:"):
            lines.append(f"<#{name.split(':', 2)[2]}>: {describe(rule)}")
    lines.append(f"Everywhere else: {describe(access.default)}")
    return lines


class SlackHome:
    """App Home, as methods of the bot (SlackBot)."""

    conversation: Conversation
    querylog: QueryLog | None
    status: Status | None
    _asked: OrderedDict[str, deque[Asked]]
    _spawn: Callable[[Coroutine[Any, Any, None]], None]
    _count: Callable[[], None]

    def _logged(self) -> QueryLog | None:
        """The query log App Home reads, when questions are logged."""
        log_ = self.querylog
        return log_ if log_ is not None and log_.enabled else None

    async def asked(self, user: str, asked: Asked, query_id: int | None) -> None:
        """`user` got (or shared) the answer logged as `query_id`: its permalink goes on the
        logged row; without a query log, into memory."""
        querylog = self._logged()
        if querylog is None:
            self.remember(user, asked)
            return
        try:
            await asyncio.to_thread(querylog.set_link, query_id, asked.link)
        except Exception as exc:  # the link only: never worth the answer
            log.warning("slack: could not store the answer's link: %s", type(exc).__name__)

    def remember(self, user: str, asked: Asked) -> None:
        """A question `user` asked (or an answer they shared), for their App Home, in memory:
        only when there is no query log to read them from."""
        if not user or self._logged() is not None:
            return
        recent = self._asked.setdefault(user, deque(maxlen=RECENT_PER_USER))
        self._asked.move_to_end(user)
        if asked.link and recent and recent[0].question == asked.question and not recent[0].link:
            recent.popleft()  # the shared copy replaces the private one
        recent.appendleft(asked)
        while len(self._asked) > USERS_KEPT:
            self._asked.popitem(last=False)

    async def annotate_link(self, client: AsyncWebClient, channel: str, ts: str) -> str | None:
        """The permalink of a message the bot posted (None when Slack will not say)."""
        try:
            resp = await client.chat_getPermalink(channel=channel, message_ts=ts)
            return str(resp.get("permalink") or "") or None
        except _NET_ERRORS as exc:
            log.debug("slack: no permalink for %s: %s", ts, error_code(exc))
            return None

    async def on_home_opened(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        self._count()
        if event.get("tab") != "home" or not event.get("user"):
            return
        self._spawn(self.publish_home(client, str(event["user"])))

    async def publish_home(self, client: AsyncWebClient, user: str) -> None:
        status: dict[str, Any] | None = None
        if self.status is not None:
            try:  # the registry and Ollama are asked: not on the event loop
                status = await asyncio.to_thread(self.status)
            except Exception as exc:
                log.warning("slack: the index status failed: %s", type(exc).__name__)
        try:
            shown = places(self.conversation.access)
        except AccessDenied as exc:  # the access file is broken now: say so, name no place
            shown = [str(exc)]
        view = home_view(status, await self._recent(user), shown, now=time.time())
        try:
            await client.views_publish(user_id=user, view=view)
        except _NET_ERRORS as exc:
            log.warning("slack: publishing App Home failed: %s", error_code(exc))

    async def _recent(self, user: str) -> list[Asked]:
        """`user`'s own recent questions in Slack, newest first (never another person's)."""
        querylog = self._logged()
        if querylog is None:
            return list(self._asked.get(user, ()))
        try:
            rows = await asyncio.to_thread(querylog.recent_for, user, "slack", RECENT_PER_USER)
        except Exception as exc:
            log.warning("slack: reading recent questions failed: %s", type(exc).__name__)
            return []
        return [Asked(r["question"], r["at"], r["link"]) for r in rows]
