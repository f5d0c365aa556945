"""A fake Discord: the REST API and the gateway websocket that discord.py talks to, on one
aiohttp server on 127.0.0.1 (random free port), run inside the test's event loop.

Point discord.py at it with `discord.http.Route.BASE = fake.api_url` and
`discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)`.

Gateway (https://discord.com/developers/docs/events/gateway): HELLO (op 10) on connect, then on
IDENTIFY (op 2, token checked) READY (op 0) with `user`, `application {id, flags}`, the guild
as unavailable, `session_id` and `resume_gateway_url`, then GUILD_CREATE with the text channel
and the active threads; HEARTBEAT (op 1) is acknowledged (op 11). Tests dispatch events with
`dispatch`, or through `ask` (INTERACTION_CREATE for /ask, payload as Discord sends it) and
`post` (MESSAGE_CREATE for a person's message; `mention=True` starts it with the bot's
`<@id>` and lists the bot in `mentions`, as Discord does), `dm_channel` + `post` (a direct
message: no guild_id, no member), `context_menu` (INTERACTION_CREATE for a message command,
the target message in `data.resolved.messages`), `click` and `choose` (INTERACTION_CREATE of
type 3 for a button or a string select on a message, the message included). Like Discord,
the fake dispatches THREAD_CREATE when the bot opens a thread and MESSAGE_CREATE for the bot's
own channel messages.

REST (https://discord.com/developers/docs/resources): `/users/@me`, `/oauth2/applications/@me`,
`/gateway`, `/gateway/bot`, bulk overwrite of global and guild commands, interaction callbacks
(`with_response` answered with `{"interaction", "resource"}`), `@original` get/edit/delete,
follow-ups (webhook execute, edit), channel get, message list/get/create/edit, thread from a
message, typing. Command registration checks names as Discord does per type (chat input:
lowercase letters/digits/-_ up to 32; message and user commands: any 1-32 characters and no
description) and the `name_localizations`/`description_localizations` (known locales only,
the same rules for the localised names, descriptions up to 100). Message bodies keep their
`components` (action rows of buttons and selects: custom_id up to 100, at most 5 rows), and
callbacks of type 4 may carry them. Responses carry `Content-Type: application/json` exactly (discord.py only
parses JSON when the header is exactly that). The fake enforces what the real API refuses:
message and embed limits (400, code 50035), empty messages (50006), a second interaction
callback (40060), unknown interactions (10062), a second thread on one message (160004),
threads from ephemeral messages (not in the channel: 10008). Every request is recorded in
`calls` (method, path without the /api/v10 prefix, query, JSON body, monotonic time, status,
response)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

API_PREFIX = "/api/v10"
DISCORD_EPOCH_MS = 1420070400000
EPHEMERAL = 1 << 6
LOADING = 1 << 7
THREAD_TYPES = {10, 11, 12}
# Permission bits for `permissions` / `app_permissions` strings (everything but admin).
ALL_PERMISSIONS = str((1 << 50) - 1 - 8)


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    json: Any
    time: float
    status: int = 0
    response: Any = None


@dataclass
class InteractionState:
    id: str
    token: str
    channel_id: str
    guild_id: str | None
    user: dict[str, Any]
    response_type: int | None = None
    original: dict[str, Any] | None = None
    followups: list[dict[str, Any]] = field(default_factory=list)
    message: dict[str, Any] | None = None  # the message a component interaction came from


class DiscordError(Exception):
    def __init__(self, status: int, code: int, message: str, errors: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.errors is not None:
            body["errors"] = self.errors
        return body


def _json_response(data: Any, status: int = 200) -> web.Response:
    # Built by hand: web.json_response would add "; charset=utf-8", which discord.py rejects.
    return web.Response(status=status, body=json.dumps(data).encode("utf-8"),
                        headers={"Content-Type": "application/json"})


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def message_problems(payload: dict[str, Any]) -> list[str]:
    """What Discord would refuse in a message body (the server's own copy of the limits)."""
    problems: list[str] = []
    content = payload.get("content") or ""
    if len(content) > 2000:
        problems.append(f"content: {len(content)} > 2000")
    embeds = payload.get("embeds") or []
    if len(embeds) > 10:
        problems.append(f"embeds: {len(embeds)} > 10")
    total = 0
    for i, e in enumerate(embeds):
        title, desc = e.get("title") or "", e.get("description") or ""
        footer = (e.get("footer") or {}).get("text") or ""
        author = (e.get("author") or {}).get("name") or ""
        fields = e.get("fields") or []
        total += len(title) + len(desc) + len(footer) + len(author)
        for what, n, limit in (("title", len(title), 256), ("description", len(desc), 4096),
                               ("footer.text", len(footer), 2048), ("author.name", len(author), 256),
                               ("fields", len(fields), 25)):
            if n > limit:
                problems.append(f"embeds.{i}.{what}: {n} > {limit}")
        for j, f in enumerate(fields):
            name, value = f.get("name") or "", f.get("value") or ""
            total += len(name) + len(value)
            if not name or not value:
                problems.append(f"embeds.{i}.fields.{j}: name and value are required")
            if len(name) > 256:
                problems.append(f"embeds.{i}.fields.{j}.name: {len(name)} > 256")
            if len(value) > 1024:
                problems.append(f"embeds.{i}.fields.{j}.value: {len(value)} > 1024")
        for key in ("url",):
            if e.get(key) and not str(e[key]).startswith(("http://", "https://")):
                problems.append(f"embeds.{i}.{key}: not a well formed URL")
    if total > 6000:
        problems.append(f"embeds: {total} characters in total > 6000")
    return problems


# https://discord.com/developers/docs/reference#locales
LOCALES = frozenset(
    "id da de en-GB en-US es-ES es-419 fr hr it lt hu nl no pl pt-BR ro fi sv-SE vi tr cs el bg "
    "ru uk hi th zh-CN ja zh-TW ko".split())
# Chat input command and option names: lowercase where the script has case, no spaces.
_CHAT_NAME = re.compile(r"^[-_'\w]{1,32}$")


def _name_problems(where: str, name: Any, chat_input: bool) -> list[str]:
    if not isinstance(name, str) or not 1 <= len(name) <= 32:
        return [f"{where}: 1 to 32 characters"]
    if chat_input and (not _CHAT_NAME.fullmatch(name) or name != name.lower()):
        return [f"{where}: {name!r} is not a valid chat input name"]
    return []


def command_problems(cmd: dict[str, Any]) -> list[str]:
    """What Discord refuses in an application command (types 1 chat input, 2 user, 3 message)."""
    kind = cmd.get("type", 1)
    chat = kind == 1
    problems = _name_problems("name", cmd.get("name"), chat)
    description = cmd.get("description", "")
    if chat and not 1 <= len(description or "") <= 100:
        problems.append("description: 1 to 100 characters")
    if not chat and description:
        problems.append("description: must be empty for user and message commands")
    for locale, name in (cmd.get("name_localizations") or {}).items():
        if locale not in LOCALES:
            problems.append(f"name_localizations: unknown locale {locale!r}")
        problems += _name_problems(f"name_localizations.{locale}", name, chat)
    for locale, text in (cmd.get("description_localizations") or {}).items():
        if locale not in LOCALES:
            problems.append(f"description_localizations: unknown locale {locale!r}")
        if not chat or not 1 <= len(text) <= 100:
            problems.append(f"description_localizations.{locale}: 1 to 100 characters")
    for i, option in enumerate(cmd.get("options") or []):
        problems += _name_problems(f"options.{i}.name", option.get("name"), True)
        for locale, name in (option.get("name_localizations") or {}).items():
            problems += _name_problems(f"options.{i}.name_localizations.{locale}", name, True)
        for locale, text in (option.get("description_localizations") or {}).items():
            if locale not in LOCALES or not 1 <= len(text) <= 100:
                problems.append(f"options.{i}.description_localizations.{locale}")
    return problems


def _check_components(rows: list[dict[str, Any]]) -> None:
    problems = []
    if len(rows) > 5:
        problems.append(f"components: {len(rows)} > 5 rows")
    for i, row in enumerate(rows):
        if row.get("type") != 1:
            problems.append(f"components.{i}: top level must be action rows")
        for j, c in enumerate(row.get("components") or []):
            cid = c.get("custom_id") or ""
            if c.get("type") in (2, 3) and c.get("style") != 5 and not 1 <= len(cid) <= 100:
                problems.append(f"components.{i}.components.{j}.custom_id: 1 to 100 characters")
            if c.get("type") == 3 and not 1 <= len(c.get("options") or []) <= 25:
                problems.append(f"components.{i}.components.{j}.options: 1 to 25")
    if problems:
        raise DiscordError(400, 50035, "Invalid Form Body", {"_errors": problems})


def _check_message(payload: dict[str, Any], *, allow_empty: bool = False) -> None:
    problems = message_problems(payload)
    if problems:
        raise DiscordError(400, 50035, "Invalid Form Body", {"_errors": problems})
    if not allow_empty and not (payload.get("content") or payload.get("embeds")):
        raise DiscordError(400, 50006, "Cannot send an empty message")


class FakeDiscord:
    """One guild with one text channel, a bot application, and people who ask."""

    def __init__(self, *, token: str = "fake-bot-token", threads_in_guild_create: bool = True) -> None:
        self.token = token
        # When False, GUILD_CREATE leaves the active threads out, as for a thread archived
        # while the bot was away: discord.py then sees messages in an unknown channel.
        self.threads_in_guild_create = threads_in_guild_create
        self._counter = itertools.count(1)
        self.app_id = self.snowflake()
        self.bot_user: dict[str, Any] = {
            "id": self.app_id, "username": "vaultbot", "discriminator": "0", "global_name": None,
            "avatar": None, "bot": True, "flags": 0, "verified": True, "mfa_enabled": False,
        }
        self.owner: dict[str, Any] = self.make_user("owner")
        self.guild_id = self.snowflake()
        self.channel_id = self.snowflake()
        self.channels: dict[str, dict[str, Any]] = {
            self.channel_id: {
                "id": self.channel_id, "type": 0, "guild_id": self.guild_id, "name": "general",
                "position": 0, "parent_id": None, "topic": None, "nsfw": False,
                "last_message_id": None, "rate_limit_per_user": 0, "permission_overwrites": [],
                "flags": 0, "default_auto_archive_duration": 1440,
            }
        }
        self.messages: dict[str, list[dict[str, Any]]] = {self.channel_id: []}
        self.interactions: dict[str, InteractionState] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}  # "global" or guild id
        self.calls: list[Call] = []
        self.gateway_received: list[dict[str, Any]] = []
        self.identify: dict[str, Any] | None = None
        self.connections = 0
        self.ready = asyncio.Event()
        self._ws: web.WebSocketResponse | None = None
        self._ws_lock = asyncio.Lock()
        self._seq = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", API_PREFIX + "/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------------ ids and objects

    def snowflake(self) -> str:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return str((ms << 22) | (next(self._counter) & 0x3FFFFF))

    def make_user(self, name: str) -> dict[str, Any]:
        return {"id": self.snowflake(), "username": name, "discriminator": "0",
                "global_name": name.title(), "avatar": None, "public_flags": 0, "flags": 0}

    def member(self, user: dict[str, Any]) -> dict[str, Any]:
        return {"user": user, "roles": [], "joined_at": _now_iso(), "deaf": False, "mute": False,
                "flags": 0, "pending": False, "nick": None, "avatar": None,
                "premium_since": None, "communication_disabled_until": None}

    def _guild_payload(self) -> dict[str, Any]:
        channels = [c for c in self.channels.values() if c["type"] not in THREAD_TYPES]
        threads = [c for c in self.channels.values()
                   if c["type"] in THREAD_TYPES and not c["thread_metadata"]["archived"]]
        return {
            "id": self.guild_id, "name": "Notes club", "icon": None, "splash": None,
            "discovery_splash": None, "owner_id": self.owner["id"], "afk_channel_id": None,
            "afk_timeout": 300, "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "premium_tier": 0,
            "preferred_locale": "en-US", "system_channel_id": None, "rules_channel_id": None,
            "public_updates_channel_id": None, "features": [], "emojis": [], "stickers": [],
            "roles": [{"id": self.guild_id, "name": "@everyone", "permissions": ALL_PERMISSIONS,
                       "position": 0, "color": 0, "hoist": False, "managed": False,
                       "mentionable": False, "flags": 0, "icon": None, "unicode_emoji": None}],
            "member_count": 2, "large": False, "unavailable": False, "joined_at": _now_iso(),
            "members": [self.member(self.bot_user)], "channels": channels,
            "threads": threads if self.threads_in_guild_create else [], "presences": [],
            "voice_states": [], "stage_instances": [], "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }

    def _message(self, channel_id: str, *, author: dict[str, Any], content: str = "",
                 embeds: list[dict[str, Any]] | None = None, flags: int = 0, type: int = 0,
                 components: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
        msg = {
            "id": self.snowflake(), "channel_id": channel_id, "author": author,
            "content": content, "timestamp": _now_iso(), "edited_timestamp": None, "tts": False,
            "mention_everyone": False, "mentions": [], "mention_roles": [], "attachments": [],
            "embeds": [{"type": "rich", **e} for e in embeds or []], "pinned": False,
            "type": type, "flags": flags, "components": list(components or []),
        }
        msg.update(extra)
        return msg

    def _store(self, msg: dict[str, Any]) -> None:
        self.messages.setdefault(msg["channel_id"], []).append(msg)
        channel = self.channels.get(msg["channel_id"])
        if channel is not None:
            channel["last_message_id"] = msg["id"]
            if channel["type"] in THREAD_TYPES:
                channel["message_count"] += 1
                channel["total_message_sent"] = channel.get("total_message_sent", 0) + 1

    def _find_message(self, message_id: str) -> dict[str, Any] | None:
        for msgs in self.messages.values():
            for m in msgs:
                if m["id"] == message_id:
                    return m
        for state in self.interactions.values():
            for m in [state.original, *state.followups]:
                if m is not None and m["id"] == message_id:
                    return m
        return None

    def _gateway_message(self, msg: dict[str, Any]) -> dict[str, Any]:
        """MESSAGE_CREATE carries guild_id and the author's member, unlike REST."""
        data = dict(msg)
        channel = self.channels.get(msg["channel_id"])
        if channel is not None and channel.get("guild_id"):
            data["guild_id"] = channel["guild_id"]
            member = self.member(msg["author"])
            member.pop("user")
            data["member"] = member
        return data

    # ------------------------------------------------------------------ gateway

    async def _send(self, payload: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None or ws.closed:
            raise RuntimeError("no gateway connection")
        async with self._ws_lock:
            await ws.send_str(json.dumps(payload))

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self._seq += 1
        await self._send({"op": 0, "t": event, "s": self._seq, "d": data})

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        self.connections += 1
        self.ready.clear()
        await self._send({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            self.gateway_received.append(data)
            op = data.get("op")
            if op == 1:
                await self._send({"op": 11, "d": None, "s": None, "t": None})
            elif op == 2:
                if data["d"].get("token") != self.token:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                self.identify = data["d"]
                await self.dispatch("READY", {
                    "v": 10, "user": self.bot_user, "user_settings": {}, "private_channels": [],
                    "relationships": [], "presences": [], "guild_join_requests": [],
                    "guilds": [{"id": self.guild_id, "unavailable": True}],
                    "session_id": secrets.token_hex(16), "session_type": "normal",
                    "resume_gateway_url": self.gateway_url, "geo_ordered_rtc_regions": [],
                    "application": {"id": self.app_id, "flags": 1 << 19},  # GATEWAY_MESSAGE_CONTENT
                    "auth": {}, "_trace": ["fake-discord"],
                })
                await self.dispatch("GUILD_CREATE", self._guild_payload())
                self.ready.set()
            elif op == 6:
                await self.dispatch("RESUMED", {"_trace": ["fake-discord"]})
                self.ready.set()
        if self._ws is ws:
            self._ws = None
        return ws

    async def wait_ready(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)

    # ------------------------------------------------------------------ test actions

    def interaction_payload(self, question: str, *, private: bool | None = None,
                            user: dict[str, Any] | None = None, channel_id: str | None = None,
                            dm: bool = False) -> dict[str, Any]:
        """An INTERACTION_CREATE for `/ask`, shaped like Discord's."""
        user = user or self.owner
        options: list[dict[str, Any]] = [{"name": "question", "type": 3, "value": question}]
        if private is not None:
            options.append({"name": "private", "type": 5, "value": private})
        guild_cmds = {c["name"]: c for c in self.commands.get(self.guild_id, [])}
        global_cmds = {c["name"]: c for c in self.commands.get("global", [])}
        cmd = guild_cmds.get("ask") or global_cmds.get("ask") or {"id": self.snowflake()}
        data: dict[str, Any] = {"id": cmd["id"], "name": "ask", "type": 1, "options": options}
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        iid = self.snowflake()
        payload: dict[str, Any] = {
            "id": iid, "application_id": self.app_id, "type": 2, "data": data, "token": token,
            "version": 1, "locale": "en-US", "app_permissions": ALL_PERMISSIONS,
            "entitlements": [], "attachment_size_limit": 10 * 1024 * 1024,
        }
        if dm:
            channel = {"id": channel_id or self.snowflake(), "type": 1, "last_message_id": None,
                       "flags": 0, "recipients": [user]}
            payload.update(channel_id=channel["id"], channel=channel, user=user, context=1,
                           authorizing_integration_owners={"0": self.guild_id})
            guild_id = None
        else:
            if "ask" in guild_cmds:
                data["guild_id"] = self.guild_id
            channel = dict(self.channels[channel_id or self.channel_id])
            channel["permissions"] = ALL_PERMISSIONS
            member = self.member(user)
            member["permissions"] = ALL_PERMISSIONS
            payload.update(
                guild_id=self.guild_id, guild={"id": self.guild_id, "locale": "en-US", "features": []},
                guild_locale="en-US", channel_id=channel["id"], channel=channel, member=member,
                context=0, authorizing_integration_owners={"0": self.guild_id},
            )
            guild_id = self.guild_id
        self.interactions[token] = InteractionState(iid, token, channel["id"], guild_id, user)
        return payload

    async def ask(self, question: str, **kw: Any) -> InteractionState:
        payload = self.interaction_payload(question, **kw)
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["token"]]

    async def post(self, channel_id: str, content: str, *, user: dict[str, Any] | None = None,
                   mention: bool = False) -> dict[str, Any]:
        """A person writes `content` in a channel, thread or DM; `mention`: "@vaultbot" first."""
        extra: dict[str, Any] = {}
        if mention:
            content = f"<@{self.app_id}> {content}"
            extra["mentions"] = [self.bot_user]
        msg = self._message(channel_id, author=user or self.owner, content=content, **extra)
        self._store(msg)
        await self.dispatch("MESSAGE_CREATE", self._gateway_message(msg))
        return msg

    def dm_channel(self, user: dict[str, Any] | None = None) -> str:
        """A direct message channel between `user` and the bot."""
        cid = self.snowflake()
        self.channels[cid] = {"id": cid, "type": 1, "last_message_id": None, "flags": 0,
                              "recipients": [user or self.owner]}
        self.messages[cid] = []
        return cid

    def _base_interaction(self, itype: int, data: dict[str, Any], user: dict[str, Any],
                          channel_id: str, **state_kw: Any) -> dict[str, Any]:
        token = "aW50ZXJhY3Rpb246" + secrets.token_urlsafe(48)
        iid = self.snowflake()
        payload: dict[str, Any] = {
            "id": iid, "application_id": self.app_id, "type": itype, "data": data,
            "token": token, "version": 1, "locale": "en-US", "app_permissions": ALL_PERMISSIONS,
            "entitlements": [], "attachment_size_limit": 10 * 1024 * 1024,
        }
        channel = dict(self.channels[channel_id])
        guild_id = channel.get("guild_id")
        if guild_id:
            channel["permissions"] = ALL_PERMISSIONS
            member = self.member(user)
            member["permissions"] = ALL_PERMISSIONS
            payload.update(guild_id=guild_id, guild={"id": guild_id, "locale": "en-US",
                                                     "features": []},
                           guild_locale="en-US", member=member, context=0)
        else:
            payload.update(user=user, context=1)
        payload.update(channel_id=channel_id, channel=channel,
                       authorizing_integration_owners={"0": self.guild_id})
        self.interactions[token] = InteractionState(iid, token, channel_id, guild_id, user,
                                                    **state_kw)
        return payload

    async def command(self, name: str, options: list[dict[str, Any]], *,
                      user: dict[str, Any] | None = None,
                      channel_id: str | None = None) -> InteractionState:
        """A slash command `name` (registered earlier) with its options, as Discord sends it."""
        cmd = self._registered(name, 1)
        data: dict[str, Any] = {"id": cmd["id"], "name": name, "type": 1, "options": options}
        if "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        payload = self._base_interaction(2, data, user or self.owner, channel_id or self.channel_id)
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["token"]]

    async def context_menu(self, name: str, message: dict[str, Any], *,
                           user: dict[str, Any] | None = None) -> InteractionState:
        """A message command (right click > Apps > `name`) on `message`."""
        cmd = self._registered(name, 3)
        data: dict[str, Any] = {"id": cmd["id"], "name": name, "type": 3,
                                "target_id": message["id"],
                                "resolved": {"messages": {message["id"]: message}}}
        if "guild_id" in cmd:
            data["guild_id"] = cmd["guild_id"]
        payload = self._base_interaction(2, data, user or self.owner, message["channel_id"])
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["token"]]

    async def click(self, message: dict[str, Any], custom_id: str, *,
                    user: dict[str, Any] | None = None,
                    values: list[str] | None = None) -> InteractionState:
        """A person presses the button `custom_id` on `message` (or, with `values`, picks those
        options of the string select `custom_id`)."""
        ids = [c.get("custom_id") for row in message.get("components") or []
               for c in row.get("components") or []]
        if custom_id not in ids:
            raise AssertionError(f"no component {custom_id!r} on the message: {ids}")
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": 2}
        if values is not None:
            data.update(component_type=3, values=values)
        payload = self._base_interaction(3, data, user or self.owner, message["channel_id"],
                                         message=message)
        payload["message"] = message
        await self.dispatch("INTERACTION_CREATE", payload)
        return self.interactions[payload["token"]]

    def _registered(self, name: str, kind: int) -> dict[str, Any]:
        for scope in (self.guild_id, "global"):
            for c in self.commands.get(scope, []):
                if c["name"] == name and c.get("type", 1) == kind:
                    return c
        raise AssertionError(f"no command {name!r} of type {kind} registered")

    # ------------------------------------------------------------------ looking at calls

    def calls_matching(self, method: str, pattern: str) -> list[Call]:
        rx = re.compile(pattern)
        return [c for c in self.calls if c.method == method and rx.fullmatch(c.path)]

    async def wait_for(self, predicate: Callable[[Call], bool], timeout: float = 10.0) -> Call:
        deadline = time.monotonic() + timeout
        while True:
            for c in self.calls:
                if predicate(c):
                    return c
            if time.monotonic() > deadline:
                seen = [(c.method, c.path, c.status) for c in self.calls]
                raise AssertionError(f"no matching call within {timeout} s; calls: {seen}")
            await asyncio.sleep(0.01)

    async def wait_call(self, method: str, pattern: str, *, after: int = 0,
                        where: Callable[[Call], bool] = lambda c: True, timeout: float = 10.0) -> Call:
        """The first answered `method` call whose path matches `pattern` (a regex) among
        calls[after:] and satisfies `where`."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for c in self.calls[after:]:
                if c.method == method and c.status and rx.fullmatch(c.path) and where(c):
                    return c
            if time.monotonic() > deadline:
                seen = [(c.method, c.path, c.status) for c in self.calls[after:]]
                raise AssertionError(f"no {method} {pattern} within {timeout} s; calls: {seen}")
            await asyncio.sleep(0.01)

    def errors(self) -> list[Call]:
        return [c for c in self.calls if c.status >= 400]

    # ------------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            if raw and request.content_type == "application/json":
                body = json.loads(raw)
        call = Call(request.method, path, dict(request.query), body, time.monotonic())
        self.calls.append(call)
        if request.headers.get("Authorization") != f"Bot {self.token}" and not path.startswith(
                ("/webhooks/", "/interactions/")):
            call.status = 401
            call.response = {"message": "401: Unauthorized", "code": 0}
            return _json_response(call.response, 401)
        try:
            status, data = await self._route(request.method, path, dict(request.query), body or {})
        except DiscordError as exc:
            call.status, call.response = exc.status, exc.body()
            return _json_response(call.response, exc.status)
        call.status, call.response = status, data
        if status == 204:
            return web.Response(status=204)
        return _json_response(data, status)

    async def _route(self, method: str, path: str, query: dict[str, str],
                     body: dict[str, Any]) -> tuple[int, Any]:
        m = re.fullmatch
        if method == "GET" and path == "/users/@me":
            return 200, self.bot_user
        if method == "GET" and path == "/oauth2/applications/@me":
            return 200, {
                "id": self.app_id, "name": "vaultbot", "description": "", "icon": None,
                "bot_public": False, "bot_require_code_grant": False, "owner": self.owner,
                "verify_key": secrets.token_hex(32), "flags": 1 << 19, "team": None,
                "summary": "", "bot": self.bot_user, "install_params": None,
                "interactions_endpoint_url": None, "redirect_uris": [],
            }
        if method == "GET" and path == "/gateway":
            return 200, {"url": self.gateway_url}
        if method == "GET" and path == "/gateway/bot":
            return 200, {"url": self.gateway_url, "shards": 1, "session_start_limit": {
                "total": 1000, "remaining": 999, "reset_after": 86400000, "max_concurrency": 1}}
        if r := m(r"/applications/(\d+)/(?:guilds/(\d+)/)?commands", path):
            if r[1] != self.app_id:
                raise DiscordError(403, 50001, "Missing Access")
            scope = r[2] or "global"
            if method == "PUT":
                return 200, self._overwrite_commands(scope, body if isinstance(body, list) else [])
            if method == "GET":
                return 200, self.commands.get(scope, [])
        if (r := m(r"/interactions/(\d+)/([^/]+)/callback", path)) and method == "POST":
            return self._callback(r[1], r[2], query, body)
        if r := m(r"/webhooks/(\d+)/([^/]+)(?:/messages/(@original|\d+))?", path):
            return self._webhook(method, r[1], r[2], r[3], query, body)
        if r := m(r"/channels/(\d+)(/.*)?", path):
            return await self._channel(method, r[1], r[2] or "", query, body)
        raise DiscordError(404, 0, "404: Not Found")

    def _overwrite_commands(self, scope: str, payload: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for cmd in payload:
            problems = command_problems(cmd)
            if problems:
                raise DiscordError(400, 50035, "Invalid Form Body", {"_errors": problems})
            saved = {"id": self.snowflake(), "application_id": self.app_id, "version": self.snowflake(),
                     "type": 1, "default_member_permissions": None, "nsfw": False,
                     "description": "", **cmd}  # Discord answers "" for message commands
            if scope != "global":
                saved["guild_id"] = scope
            out.append(saved)
        self.commands[scope] = out
        return out

    def _interaction(self, app_id: str, token: str) -> InteractionState:
        state = self.interactions.get(token)
        if app_id != self.app_id or state is None:
            raise DiscordError(404, 10015, "Unknown Webhook")
        return state

    def _callback(self, iid: str, token: str, query: dict[str, str],
                  body: dict[str, Any]) -> tuple[int, Any]:
        state = self.interactions.get(token)
        if state is None or state.id != iid:
            raise DiscordError(404, 10062, "Unknown interaction")
        if state.response_type is not None:
            raise DiscordError(400, 40060, "Interaction has already been acknowledged.")
        rtype = body.get("type")
        data = body.get("data") or {}
        flags = int(data.get("flags") or 0)
        if rtype == 7:  # UPDATE_MESSAGE: a component's interaction edits its own message
            if state.message is None:
                raise DiscordError(400, 50035, "Invalid Form Body", {"type": rtype})
            self._edit(state.message, data)
            state.response_type = rtype
            state.original = state.message
            return (200, {"interaction": {"id": iid, "type": 3},
                          "resource": {"type": 7, "message": state.message}}
                    ) if query.get("with_response") in ("1", "true", "True") else (204, None)
        if rtype == 4:
            _check_message(data)
            _check_components(data.get("components") or [])
            msg = self._interaction_message(state, content=data.get("content") or "",
                                            embeds=data.get("embeds"), flags=flags & EPHEMERAL,
                                            components=data.get("components"))
        elif rtype == 5:
            msg = self._interaction_message(state, flags=(flags & EPHEMERAL) | LOADING)
        else:
            raise DiscordError(400, 50035, "Invalid Form Body", {"type": rtype})
        state.response_type = rtype
        state.original = msg
        if not msg["flags"] & EPHEMERAL:
            self._store(msg)
        if query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        return 200, {
            "interaction": {"id": iid, "type": 2, "response_message_id": msg["id"],
                            "response_message_loading": rtype == 5,
                            "response_message_ephemeral": bool(msg["flags"] & EPHEMERAL)},
            "resource": {"type": rtype, "message": msg},
        }

    def _interaction_message(self, state: InteractionState, **kw: Any) -> dict[str, Any]:
        metadata = {"id": state.id, "type": 2, "name": "ask", "user": state.user,
                    "authorizing_integration_owners": {"0": state.guild_id or "0"}}
        return self._message(state.channel_id, author=self.bot_user, type=20,
                             webhook_id=self.app_id, application_id=self.app_id,
                             interaction_metadata=metadata, **kw)

    def _webhook(self, method: str, app_id: str, token: str, which: str | None,
                 query: dict[str, str], body: dict[str, Any]) -> tuple[int, Any]:
        state = self._interaction(app_id, token)
        if state.response_type is None:
            raise DiscordError(404, 10008, "Unknown Message")
        if which is None:  # follow-up
            if method != "POST":
                raise DiscordError(405, 0, "405: Method Not Allowed")
            _check_message(body)
            msg = self._interaction_message(
                state, content=body.get("content") or "", embeds=body.get("embeds"),
                flags=int(body.get("flags") or 0) & EPHEMERAL, components=body.get("components"))
            state.followups.append(msg)
            if not msg["flags"] & EPHEMERAL:
                self._store(msg)
            return (200, msg) if query.get("wait") in ("1", "true", "True") else (204, None)
        msgs = [state.original, *state.followups]
        target = state.original if which == "@original" else next(
            (x for x in msgs if x is not None and x["id"] == which), None)
        if target is None:
            raise DiscordError(404, 10008, "Unknown Message")
        if method == "GET":
            return 200, target
        if method == "DELETE":
            target["deleted"] = True
            return 204, None
        if method == "PATCH":
            self._edit(target, body)
            return 200, target
        raise DiscordError(405, 0, "405: Method Not Allowed")

    def _edit(self, target: dict[str, Any], body: dict[str, Any]) -> None:
        after = {"content": target["content"], "embeds": target["embeds"]}
        if "content" in body:
            after["content"] = body["content"] or ""
        if "embeds" in body:
            after["embeds"] = [{"type": "rich", **e} for e in body["embeds"] or []]
        _check_message(after)
        if "components" in body:
            _check_components(body["components"] or [])
            after["components"] = body["components"] or []
        target.update(after)
        target["flags"] &= ~LOADING
        target["edited_timestamp"] = _now_iso()

    async def _channel(self, method: str, channel_id: str, rest: str, query: dict[str, str],
                       body: dict[str, Any]) -> tuple[int, Any]:
        channel = self.channels.get(channel_id)
        if channel is None:
            raise DiscordError(404, 10003, "Unknown Channel")
        msgs = self.messages.setdefault(channel_id, [])
        if rest == "" and method == "GET":
            return 200, channel
        if rest == "/typing" and method == "POST":
            return 204, None
        if rest == "/messages" and method == "GET":
            return 200, self._history(msgs, query)
        if rest == "/messages" and method == "POST":
            _check_message(body)
            extra: dict[str, Any] = {}
            mtype = 0
            ref = body.get("message_reference")
            if ref:
                referenced = next((x for x in msgs if x["id"] == str(ref.get("message_id"))), None)
                if referenced is None and ref.get("fail_if_not_exists", True):
                    raise DiscordError(400, 50035, "Invalid Form Body", {"message_reference": "Unknown message"})
                mtype = 19
                extra = {"message_reference": {"type": 0, "message_id": str(ref.get("message_id")),
                                               "channel_id": channel_id,
                                               "guild_id": channel.get("guild_id")},
                         "referenced_message": referenced}
            _check_components(body.get("components") or [])
            msg = self._message(channel_id, author=self.bot_user, content=body.get("content") or "",
                                embeds=body.get("embeds"), type=mtype,
                                components=body.get("components"), **extra)
            self._store(msg)
            await self.dispatch("MESSAGE_CREATE", self._gateway_message(msg))
            return 200, msg
        if r := re.fullmatch(r"/messages/(\d+)", rest):
            target = next((x for x in msgs if x["id"] == r[1]), None)
            if target is None:
                raise DiscordError(404, 10008, "Unknown Message")
            if method == "GET":
                return 200, target
            if method == "PATCH":
                if target["author"]["id"] != self.bot_user["id"]:
                    raise DiscordError(403, 50005, "Cannot edit a message authored by another user")
                self._edit(target, body)
                return 200, target
        if (r := re.fullmatch(r"/messages/(\d+)/threads", rest)) and method == "POST":
            return 201, await self._start_thread(channel, r[1], body)
        raise DiscordError(404, 0, "404: Not Found")

    @staticmethod
    def _history(msgs: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
        limit = max(1, min(100, int(query.get("limit", 50))))
        newest_first = list(reversed([x for x in msgs if not x.get("deleted")]))
        if "before" in query:
            newest_first = [x for x in newest_first if int(x["id"]) < int(query["before"])]
        if "after" in query:
            older_first = [x for x in reversed(newest_first) if int(x["id"]) > int(query["after"])]
            return list(reversed(older_first[:limit]))
        return newest_first[:limit]

    async def _start_thread(self, channel: dict[str, Any], message_id: str,
                            body: dict[str, Any]) -> dict[str, Any]:
        if channel["type"] not in (0, 5):
            raise DiscordError(400, 50024, "Cannot execute action on this channel type")
        starter = next((x for x in self.messages[channel["id"]] if x["id"] == message_id), None)
        if starter is None:  # ephemeral messages are not in the channel either
            raise DiscordError(404, 10008, "Unknown Message")
        if "thread" in starter:
            raise DiscordError(400, 160004, "A thread has already been created for this message")
        name = body.get("name") or ""
        if not 1 <= len(name) <= 100:
            raise DiscordError(400, 50035, "Invalid Form Body", {"name": len(name)})
        thread = {
            "id": message_id, "type": 11 if channel["type"] == 0 else 10, "guild_id": self.guild_id,
            "parent_id": channel["id"], "owner_id": self.bot_user["id"], "name": name,
            "last_message_id": None, "rate_limit_per_user": body.get("rate_limit_per_user", 0),
            "message_count": 0, "member_count": 1, "total_message_sent": 0, "flags": 0,
            "thread_metadata": {
                "archived": False, "auto_archive_duration": body.get("auto_archive_duration", 1440),
                "archive_timestamp": _now_iso(), "locked": False, "create_timestamp": _now_iso(),
            },
            "member": {"id": message_id, "user_id": self.bot_user["id"], "join_timestamp": _now_iso(),
                       "flags": 1},
        }
        self.channels[message_id] = thread
        self.messages[message_id] = []
        starter["thread"] = thread
        # Discord puts a THREAD_STARTER_MESSAGE (type 21) pointing at the parent message first.
        self._store(self._message(message_id, author=self.bot_user, type=21, message_reference={
            "type": 0, "message_id": message_id, "channel_id": channel["id"],
            "guild_id": self.guild_id}))
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return thread
