"""The Discord front end: `/ask question [private]`, `/search query [private]`, @mentions (in a
channel: the answer goes to a thread opened on the question; in a DM: a reply), the message
command "Ask vaultbot", and 👍/👎 under each answer (bot/discord_feedback.py; a 👎 asks for a
reason). Command names and descriptions are localised (Korean: `TRANSLATIONS`). It is an
adapter on the conversation spine
(bot/conversation.py, which answers the turn): interactions and thread messages in, embeds out
(bot/render_discord.py), `_InteractionTarget`/`_ReplyTarget` as the spine's reply targets.

The command is acknowledged at once (a deferred, "thinking" response: Discord allows 3 s), the
answer streams into that response by edits at most once per `edit_interval` (text with a "…"
cursor), then the final embeds replace it and whatever does not fit one message follows as
follow-up messages. A public answer in a text channel opens a thread on the response; every
later message in that thread (not from a bot) is a follow-up question, answered with the
thread's earlier turns as history. Turns are kept in memory and, after a restart, read back
from the thread itself (the answer embeds carry the question as title). `/ask` used inside a
thread answers there and makes the thread a conversation too.

Who may ask and what they see comes from `Access.scope_for("discord", ...)`; a thread counts as
its parent channel, so a channel's rule also covers its threads. Answers never ping anyone
(allowed mentions: none), whatever the notes contain.

Discord needs: scopes `bot applications.commands`; intents: guilds, guild messages, direct
messages and the privileged message content intent (for follow-ups in threads without a
mention; enable it under Bot in the developer portal, or pass follow_ups=False: mentions and
DMs carry their content without it); a DM follows the access file's default and user rules; permissions: View Channels, Send Messages, Send
Messages in Threads, Create Public Threads, Embed Links, Read Message History (309237730304,
see `invite_url`)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import discord
import yarl
from discord import app_commands
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot import discord_feedback
from bot.access import Access, AccessDenied, AccessRules
from bot.conversation import (
    DEFAULT_MAX_TURNS,
    DRAIN_TIMEOUT,
    RESTARTING,
    SORRY,
    Conversation,
    InFlight,
    Seen,
    recent,
    sorry,
)
from bot.render_discord import (
    CURSOR,
    answer_messages,
    answer_of_embeds,
    search_embed,
    stream_preview,
)
from engine.answer import Answer, Asker
from engine.citations import cited_paths
from engine.models import Scope, Turn

log = logging.getLogger(__name__)

# Discord's own limit is 100 characters; 90 leaves room for Discord's "…" when it shortens.
THREAD_NAME_LIMIT = 90
MAX_THREADS = 1000  # conversations kept in memory; older ones are read back from Discord
HISTORY_MESSAGES = 100  # how far back a thread is read after a restart

EMPTY_QUESTION = "Ask a question, e.g. `/ask question: When is the launch?`"
EMPTY_MENTION = "Ask me a question after the mention, e.g. `@vaultbot When is the launch?`"
NO_TEXT = "That message has no text to ask about."
SEARCH_K = 24  # passages searched; /search lists the notes they come from
# The application commands. Each is registered only when listed in `commands` (serve: all).
COMMANDS = ("ask", "search", "Ask vaultbot")

# Localised command names and descriptions, by Discord locale and English text. Names follow
# Discord's rules (chat input: lowercase, no spaces; the message command: free text).
TRANSLATIONS: dict[discord.Locale, dict[str, str]] = {
    discord.Locale.korean: {
        "ask": "질문하기",
        "Ask a question about the notes": "노트에 대해 질문합니다",
        "question": "질문",
        "What do you want to know?": "무엇이 궁금한가요?",
        "private": "비공개",
        "Only you see the answer (and no thread is opened)": "나만 보는 답변 (스레드를 열지 않음)",
        "search": "검색",
        "Find the notes about something": "관련 노트를 찾습니다",
        "query": "검색어",
        "What to look for": "찾을 내용",
        "Only you see the results": "나만 보는 검색 결과",
        "Ask vaultbot": "vaultbot에게 묻기",
    },
}


class Translations(app_commands.Translator):
    """`TRANSLATIONS` for the command tree: sent as name_localizations and
    description_localizations when the commands are registered."""

    async def translate(self, string: app_commands.locale_str, locale: discord.Locale,
                        context: app_commands.TranslationContextTypes) -> str | None:
        return TRANSLATIONS.get(locale, {}).get(string.message)


def strip_mention(content: str, user_id: int) -> str:
    """The question without the bot's mention (`<@id>` or the older `<@!id>`)."""
    return re.sub(rf"<@!?{user_id}>", " ", content).strip()
THREAD_TYPES = frozenset({discord.ChannelType.public_thread, discord.ChannelType.private_thread,
                          discord.ChannelType.news_thread})
THREAD_PARENTS = frozenset({discord.ChannelType.text, discord.ChannelType.news})
QUESTION_TYPES = frozenset({discord.MessageType.default, discord.MessageType.reply})


# What the bot does in a channel: read it, answer, open and write in threads, read threads back.
INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, send_messages_in_threads=True,
    create_public_threads=True, embed_links=True, read_message_history=True,
)


def invite_url(application_id: int | str) -> str:
    """The OAuth2 URL that adds the bot to a server with the scopes and permissions it needs."""
    return discord.utils.oauth_url(int(application_id), permissions=INVITE_PERMISSIONS,
                                   scopes=("bot", "applications.commands"))


def apply_overrides(api_url: str = "", gateway_url: str = "") -> tuple[str, yarl.URL]:
    """Points discord.py at another REST API (a full base such as `http://host:port/api/v10`)
    and/or gateway (`ws://host:port/...`). These are process-wide class attributes. Returns the
    previous values for `restore_overrides`."""
    previous = (Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY)
    if api_url:
        Route.BASE = api_url.rstrip("/")
    if gateway_url:
        DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)
    return previous


def restore_overrides(previous: tuple[str, yarl.URL]) -> None:
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = previous


def thread_name(question: str) -> str:
    name = " ".join(question.split())
    if len(name) > THREAD_NAME_LIMIT:
        name = name[: THREAD_NAME_LIMIT - 1].rstrip() + "…"
    return name or "vaultbot"


def _embeds(dicts: Sequence[dict[str, Any]]) -> list[discord.Embed]:
    return [discord.Embed.from_dict(d) for d in dicts]


class _Target:
    """A reply target of the spine (bot/conversation.py) on Discord: the streamed text as message
    content with a "…" cursor (the queue position until the first token), each preview sent
    once; then the answer's embeds."""

    def __init__(self) -> None:
        self.waiting = ""
        self._shown: str | None = None

    async def _edit(self, content: str) -> None:
        raise NotImplementedError

    async def show(self, text: str) -> None:
        content = stream_preview(text or self.waiting)
        if content != self._shown:
            await self._edit(content)
            self._shown = content

    async def wait(self, message: str) -> None:
        self.waiting = message  # shown by the live edit the spine runs

    async def settle(self, text: str) -> None:
        pass  # the last preview stays until finish() replaces it


class _InteractionTarget(_Target):
    """The deferred response of an interaction, and its follow-ups. `title`: the question, on
    the first embed (`/ask` answers; a thread read back finds its turns by it)."""

    def __init__(self, interaction: discord.Interaction, ephemeral: bool, title: str | None) -> None:
        super().__init__()
        self.interaction = interaction
        self.ephemeral = ephemeral
        self.title = title
        self.message: discord.InteractionMessage | None = None

    async def _edit(self, content: str) -> None:
        await self.interaction.edit_original_response(content=content)

    async def finish(self, answer: Answer) -> None:
        first, *rest = answer_messages(answer, self.title)
        votes = _votes(answer)  # under the last message of the answer
        self.message = await self.interaction.edit_original_response(
            content=None, embeds=_embeds(first), **(votes if not rest else {}))
        for i, embeds in enumerate(rest, start=1):
            await self.interaction.followup.send(embeds=_embeds(embeds), ephemeral=self.ephemeral,
                                                 wait=True, **(votes if i == len(rest) else {}))

    async def fail(self, text: str) -> None:
        await self.interaction.edit_original_response(content=text, embeds=[])


class _ReplyTarget(_Target):
    """A reply to a message: a placeholder, edited while streaming. With `thread` (an answer to
    a mention, in the thread opened on it) the placeholder is the thread's message instead,
    and `title` (the question) heads the answer, so the thread can be read back."""

    def __init__(self, question: discord.Message, *, thread: discord.Thread | None = None,
                 title: str | None = None) -> None:
        super().__init__()
        self.question = question
        self.thread = thread
        self.title = title
        self.placeholder: discord.Message | None = None

    async def _say(self, content: str) -> discord.Message:
        if self.thread is not None:
            return await self.thread.send(content)
        return await self.question.reply(content, mention_author=False)

    async def start(self) -> None:
        self.placeholder = await self._say(CURSOR.strip())

    async def _edit(self, content: str) -> None:
        assert self.placeholder is not None
        await self.placeholder.edit(content=content)

    async def finish(self, answer: Answer) -> None:
        assert self.placeholder is not None
        first, *rest = answer_messages(answer, self.title)
        votes = _votes(answer)
        await self.placeholder.edit(content=None, embeds=_embeds(first), **(votes if not rest else {}))
        channel = self.thread or self.question.channel
        for i, embeds in enumerate(rest, start=1):
            await channel.send(embeds=_embeds(embeds), **(votes if i == len(rest) else {}))

    async def fail(self, text: str) -> None:
        if self.placeholder is None:
            await self._say(text)
        else:
            await self.placeholder.edit(content=text, embeds=[])


def _votes(answer: Answer) -> dict[str, Any]:
    """The 👍/👎 buttons as message keyword arguments (none when the answer is not logged)."""
    return {} if answer.query_id is None else {"view": discord_feedback.vote_view(answer.query_id)}


@dataclass
class _Conversation:
    """A thread where vaultbot answers every message. `turns` is None until read back."""

    parent_id: int | None
    guild_id: int | None
    turns: list[Turn] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class VaultbotDiscord(discord.Client):
    """The bot. `follow_ups=False` drops the message content intent (privileged) and with it
    answering plain messages in threads; `/ask`, mentions and DMs keep working (Discord sends
    the content of those without the intent). `commands`: the application commands to
    register (`COMMANDS`; by default `/ask` only)."""

    def __init__(self, asker: Asker, access: AccessRules | None = None, *,
                 guild_id: int | None = None, edit_interval: float = 1.0, follow_ups: bool = True, mask: bool = True,
                 max_turns: int = DEFAULT_MAX_TURNS,
                 on_answer: Callable[[Answer, str], None] | None = None,
                 commands: Sequence[str] = ("ask",), **options: Any) -> None:
        intents = discord.Intents.default()  # guilds + guild messages: channels, threads, events
        intents.message_content = follow_ups
        options.setdefault("allowed_mentions", discord.AllowedMentions.none())
        super().__init__(intents=intents, **options)
        self.access = access or Access()
        # VAULTBOT_MASK (`mask`): secrets and personal data leave as "(masked)";
        # `on_answer(answer, "discord")` counts each answer (serve: Metrics.observe).
        self.conversation = Conversation(
            asker, self.access, "discord", max_turns=max_turns, edit_interval=edit_interval,
            mask=mask, on_answer=on_answer, error_text=sorry, logger=log)
        self.guild_id = guild_id
        self.follow_ups = follow_ups
        self.tree = app_commands.CommandTree(self)
        self._conversations: OrderedDict[int, _Conversation] = OrderedDict()
        self._not_ours = Seen(MAX_THREADS)  # fetched channels that are not our threads
        self.inflight = InFlight()  # questions being answered

        @app_commands.command(name="ask", description="Ask a question about the notes")
        @app_commands.describe(question="What do you want to know?",
                               private="Only you see the answer (and no thread is opened)")
        async def ask(interaction: discord.Interaction, question: app_commands.Range[str, 1, 1000],
                      private: bool = False) -> None:
            await self.handle_ask(interaction, question, private)

        @app_commands.command(name="search", description="Find the notes about something")
        @app_commands.describe(query="What to look for", private="Only you see the results")
        async def search(interaction: discord.Interaction, query: app_commands.Range[str, 1, 500],
                         private: bool = False) -> None:
            await self.handle_search(interaction, query, private)

        @app_commands.context_menu(name="Ask vaultbot")
        async def ask_about(interaction: discord.Interaction, message: discord.Message) -> None:
            if not message.content.strip():
                await interaction.response.send_message(NO_TEXT, ephemeral=True)
                return
            await self.handle_ask(interaction, message.content, False)

        defined: list[app_commands.Command[Any, Any, None] | app_commands.ContextMenu] = [
            ask, search, ask_about]
        for command in defined:
            if command.name in commands:
                self.tree.add_command(command)
        self.tree.on_error = self._on_tree_error  # type: ignore[method-assign]

    # ------------------------------------------------------------------ setup

    async def setup_hook(self) -> None:
        await self.tree.set_translator(Translations())
        try:
            if self.guild_id:  # development: guild commands appear at once
                guild = discord.Object(id=self.guild_id)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)
            else:  # global commands can take a while to show up in every client
                await self.tree.sync()
        except discord.HTTPException as exc:
            # Serving still works with commands registered earlier; say what to fix.
            log.error("could not register /ask with Discord (HTTP %s, code %s): invite the bot "
                      "with the applications.commands scope%s", exc.status, exc.code,
                      " to that guild" if self.guild_id else "")

    async def on_ready(self) -> None:
        assert self.user is not None
        log.info("Discord: connected as %s in %d server(s); invite link: %s", self.user,
                 len(self.guilds), invite_url(self.application_id or self.user.id))

    async def _on_tree_error(self, interaction: discord.Interaction,
                             error: app_commands.AppCommandError) -> None:
        log.error("/ask failed before answering", exc_info=error)
        with contextlib.suppress(discord.HTTPException):
            if interaction.response.is_done():
                await interaction.followup.send(SORRY, ephemeral=True)
            else:
                await interaction.response.send_message(SORRY, ephemeral=True)

    # ------------------------------------------------------------------ shutdown

    async def drain(self, timeout: float = DRAIN_TIMEOUT) -> None:
        """Lets the answers being written finish (new questions are turned away meanwhile);
        after `timeout` seconds they are cancelled."""
        await self.inflight.drain(timeout)

    # ------------------------------------------------------------------ /ask

    async def handle_ask(self, interaction: discord.Interaction, question: str, private: bool) -> None:
        if self.inflight.draining:
            await interaction.response.send_message(RESTARTING, ephemeral=True)
            return
        with self.inflight.track():
            await self._ask(interaction, question.strip(), private)

    def _interaction_scope(self, interaction: discord.Interaction) -> Scope:
        """The scope of a command's place: inside a thread, its parent channel's."""
        channel = interaction.channel
        place = channel.parent_id if isinstance(channel, discord.Thread) else interaction.channel_id
        return self.conversation.scope(
            user=str(interaction.user.id), channel=str(place) if place else None,
            guild=str(interaction.guild_id) if interaction.guild_id else None)

    async def _ask(self, interaction: discord.Interaction, question: str, private: bool) -> None:
        channel = interaction.channel
        thread = channel if isinstance(channel, discord.Thread) else None
        try:
            scope = self._interaction_scope(interaction)
        except AccessDenied as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        if not question:
            await interaction.response.send_message(EMPTY_QUESTION, ephemeral=True)
            return
        # Acknowledge first: everything after this may take longer than Discord's 3 seconds.
        await interaction.response.defer(ephemeral=private, thinking=True)
        target = _InteractionTarget(interaction, ephemeral=private, title=question)
        spine = self.conversation
        who = str(interaction.user.id)  # for the query log

        if thread is not None and private:  # others cannot see it: not a turn of the thread
            known = self._conversations.get(thread.id)
            history = list(known.turns or []) if known is not None else []
            await spine.answer(question, target, scope=scope, history=history, user=who)
            return
        if thread is not None:  # answer in place, as the next turn of the thread
            conv = self._conversation(thread.id, thread.parent_id, interaction.guild_id)
            async with conv.lock:
                history = await self._turns(conv, thread.id, before=None)
                answer = await spine.answer(question, target, scope=scope, history=history,
                                            user=who)
                if answer is not None:
                    conv.turns = spine.recent(history + [_turn(question, answer)])
            return

        answer = await spine.answer(question, target, scope=scope, user=who)
        if (answer is None or private or interaction.guild_id is None or channel is None
                or channel.type not in THREAD_PARENTS or target.message is None):
            return
        try:
            opened = await target.message.create_thread(name=thread_name(question))
        except discord.HTTPException as exc:
            log.warning("could not open a thread on the answer (HTTP %s, code %s): does the bot "
                        "have the Create Public Threads permission?", exc.status, exc.code)
            return
        conv = self._conversation(opened.id, channel.id, interaction.guild_id)
        conv.turns = [_turn(question, answer)]

    # ------------------------------------------------------------------ /search

    async def handle_search(self, interaction: discord.Interaction, query: str,
                            private: bool) -> None:
        if self.inflight.draining:
            await interaction.response.send_message(RESTARTING, ephemeral=True)
            return
        try:
            scope = self._interaction_scope(interaction)
        except AccessDenied as exc:
            await interaction.response.send_message(str(exc), ephemeral=True)
            return
        await interaction.response.defer(ephemeral=private, thinking=True)
        with self.inflight.track():
            try:
                found = await self.conversation.asker.find(query.strip(), scope, k=SEARCH_K,
                                                           mask=self.conversation.mask)
                embed = discord.Embed.from_dict(search_embed(query, found))
                await interaction.edit_original_response(embeds=[embed])
            except Exception:
                log.exception("/search failed")
                with contextlib.suppress(discord.HTTPException):
                    await interaction.edit_original_response(content=SORRY, embeds=[])

    # ------------------------------------------------------------------ feedback

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """👍/👎 and their reasons (buttons and selects on answers, bot/discord_feedback.py)."""
        try:
            await discord_feedback.handle(interaction, self.conversation.asker.querylog)
        except discord.HTTPException as exc:
            log.warning("answering a feedback interaction failed (HTTP %s)", exc.status)

    # ------------------------------------------------------------------ messages

    async def on_message(self, message: discord.Message) -> None:
        """Mentions, DMs and messages in vaultbot's threads (follow-ups)."""
        if (self.user is None or message.author.bot or message.webhook_id is not None
                or message.type not in QUESTION_TYPES):
            return
        channel = message.channel
        question = strip_mention(message.content, self.user.id)
        mentioned = any(u.id == self.user.id for u in message.mentions)
        conv = self._conversations.get(channel.id)
        if conv is None and message.guild is None:  # a DM: the DM is the conversation
            if not question:
                return
            conv = self._conversation(channel.id, None, None)
        if conv is None and (self.follow_ups or mentioned):
            thread = await self._our_thread(channel)
            if thread is not None:
                conv = self._conversation(thread.id, thread.parent_id, thread.guild.id)
        if conv is None:
            if mentioned:
                await self._on_mention(message, question)
            return
        if not question:
            return
        self._conversations.move_to_end(channel.id)

        async def follow_up() -> None:
            async with conv.lock:  # one answer at a time, so each sees the previous turn
                await self._follow_up(message, question, channel.id, conv)

        await self._answer_message(message, follow_up, f"a follow-up in thread {channel.id}")

    async def _on_mention(self, message: discord.Message, question: str) -> None:
        """A mention outside vaultbot's threads: a thread opens on the question and the answer
        goes there (a channel that cannot hold threads gets a reply)."""
        await self._answer_message(message, lambda: self._mention(message, question),
                                   f"a mention in channel {message.channel.id}")

    async def _answer_message(self, message: discord.Message,
                              work: Callable[[], Awaitable[None]], what: str) -> None:
        """Answer a message (a mention or a thread follow-up), counted for the drain; while
        draining, the message gets the restart notice instead."""
        if self.inflight.draining:
            with contextlib.suppress(discord.HTTPException):
                await message.reply(RESTARTING, mention_author=False)
            return
        with self.inflight.track():
            try:
                await work()
            except Exception:
                log.exception("answering %s failed", what)

    async def _mention(self, message: discord.Message, question: str) -> None:
        channel = message.channel
        parent = channel.parent_id if isinstance(channel, discord.Thread) else channel.id
        guild = message.guild.id if message.guild is not None else None
        try:
            scope = self.conversation.scope(user=str(message.author.id), channel=str(parent),
                                            guild=str(guild) if guild else None)
        except AccessDenied as exc:
            await message.reply(str(exc), mention_author=False)
            return
        if not question:
            await message.reply(EMPTY_MENTION, mention_author=False)
            return
        thread: discord.Thread | None = None
        if channel.type in THREAD_PARENTS:
            try:
                thread = await message.create_thread(name=thread_name(question))
            except discord.HTTPException as exc:
                log.warning("could not open a thread on a mention (HTTP %s, code %s): does the "
                            "bot have the Create Public Threads permission?", exc.status, exc.code)
        if thread is None:  # answered in place, a one-off
            target = _ReplyTarget(message)
            await target.start()
            await self.conversation.answer(question, target, scope=scope,
                                           user=str(message.author.id))
            return
        conv = self._conversation(thread.id, parent, guild)
        conv.turns = []
        async with conv.lock:  # a follow-up written meanwhile waits for this answer
            target = _ReplyTarget(message, thread=thread, title=question)
            await target.start()
            answer = await self.conversation.answer(question, target, scope=scope,
                                                    user=str(message.author.id))
            if answer is not None:
                conv.turns = [_turn(question, answer)]

    async def _follow_up(self, message: discord.Message, question: str, thread_id: int,
                         conv: _Conversation) -> None:
        try:
            scope = self.conversation.scope(
                user=str(message.author.id),
                channel=str(conv.parent_id) if conv.parent_id else None,
                guild=str(conv.guild_id) if conv.guild_id else None)
        except AccessDenied as exc:
            await message.reply(str(exc), mention_author=False)
            return
        target = _ReplyTarget(message)
        await target.start()
        history = await self._turns(conv, thread_id, before=message)
        answer = await self.conversation.answer(question, target, scope=scope, history=history,
                                                user=str(message.author.id))
        if answer is not None:
            conv.turns = self.conversation.recent(history + [_turn(question, answer)])

    async def _our_thread(self, channel: Any) -> discord.Thread | None:
        """The thread a message was posted in, if vaultbot opened it (so it answers there)."""
        assert self.user is not None
        if isinstance(channel, discord.Thread):
            return channel if channel.owner_id == self.user.id else None
        if not isinstance(channel, discord.PartialMessageable) or channel.id in self._not_ours:
            return None
        # Not in the cache, e.g. a thread archived while the bot was away: ask Discord once.
        try:
            fetched = await self.fetch_channel(channel.id)
        except discord.HTTPException:
            return None
        if isinstance(fetched, discord.Thread) and fetched.owner_id == self.user.id:
            return fetched
        self._not_ours.add(channel.id)
        return None

    def _conversation(self, thread_id: int, parent_id: int | None, guild_id: int | None) -> _Conversation:
        conv = self._conversations.get(thread_id)
        if conv is None:
            conv = self._conversations[thread_id] = _Conversation(parent_id, guild_id)
            while len(self._conversations) > MAX_THREADS:
                self._conversations.popitem(last=False)
        self._conversations.move_to_end(thread_id)
        return conv

    async def _turns(self, conv: _Conversation, thread_id: int,
                     before: discord.Message | None) -> list[Turn]:
        if conv.turns is None:
            try:
                conv.turns = await self._read_thread(thread_id, conv.parent_id, before)
            except discord.HTTPException as exc:
                log.warning("could not read thread %s (HTTP %s): answering without history",
                            thread_id, exc.status)
                conv.turns = []
        return list(conv.turns)

    async def _read_thread(self, thread_id: int, parent_id: int | None,
                           before: discord.Message | None) -> list[Turn]:
        """Earlier turns read back from Discord: the answer the thread was opened on (a thread
        started from a message shares its id) and the messages in the thread."""
        messages: list[discord.Message] = []
        if parent_id is not None:
            with contextlib.suppress(discord.NotFound, discord.Forbidden):
                messages.append(await self.get_partial_messageable(parent_id).fetch_message(thread_id))
        thread = self.get_partial_messageable(thread_id)
        recent = [m async for m in thread.history(limit=HISTORY_MESSAGES, before=before)]
        messages.extend(reversed(recent))
        assert self.user is not None
        return turns_from_messages(messages, self.user.id, self.conversation.max_turns)


def _turn(question: str, answer: Answer) -> Turn:
    return Turn(question, answer.text, tuple(c.path for c in answer.sources))


def turns_from_messages(messages: Sequence[discord.Message], me: int,
                        max_turns: int = DEFAULT_MAX_TURNS) -> list[Turn]:
    """Pairs people's questions with vaultbot's answers, oldest first. An answer's question is
    its embed title (`/ask` answers) or the message it replies to (follow-ups); an untitled
    answer that replies to nothing continues the previous one (overflow messages)."""
    turns: list[Turn] = []
    questions: dict[int, str] = {}
    for m in messages:
        if m.author.id == me:
            embeds = [e.to_dict() for e in m.embeds]
            question, text = answer_of_embeds(embeds)
            if not text:
                continue  # placeholders, error messages, the thread starter notice
            # The notes its sources linked to: the engine checks them again before reuse.
            sources = cited_paths(json.dumps(embeds) + m.content)
            ref = m.reference.message_id if m.reference is not None else None
            if question is None and ref is not None:
                question = questions.get(ref)
            if question is not None:
                turns.append(Turn(question, text, sources))
            elif turns:
                last = turns[-1]
                turns[-1] = Turn(last.question, last.answer + "\n\n" + text,
                                 tuple(dict.fromkeys((*(last.sources or ()), *sources))))
        elif not m.author.bot and m.type in QUESTION_TYPES and m.content.strip():
            questions[m.id] = m.content.strip()
    return recent(turns, max_turns)


def build_discord_client(asker: Asker, access: AccessRules | None = None, *,
                         guild_id: int | str | None = None, api_url: str = "",
                         gateway_url: str = "", **options: Any) -> VaultbotDiscord:
    """The bot, with the API/gateway overrides applied when given (they are process-wide)."""
    if api_url or gateway_url:
        apply_overrides(api_url, gateway_url)
    return VaultbotDiscord(asker, access, guild_id=int(guild_id) if guild_id else None, **options)


async def run_discord(client: discord.Client, token: str, *,
                      drain_timeout: float = DRAIN_TIMEOUT) -> None:
    """Runs the bot in the current event loop until it is closed or this task is cancelled
    (shutdown): answers being written get `drain_timeout` seconds to finish, then the client
    closes. Raises discord.LoginFailure for a bad token and discord.PrivilegedIntentsRequired
    when the message content intent is not enabled in the developer portal."""
    try:
        await client.start(token)
    finally:
        if isinstance(client, VaultbotDiscord) and not client.is_closed():
            await client.drain(drain_timeout)
        if not client.is_closed():
            await client.close()
