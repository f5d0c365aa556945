"""👍/👎 under a Discord answer, and the reason for a 👎.

The buttons carry the answer's query-log id in their custom_id (`vaultbot:vote:<+1|-1>:<id>`),
so a vote pressed after a restart still lands: the bot reads every component interaction
(`handle`), no view has to be kept in memory. 👍 is stored at once. 👎 is stored at once too,
and answers (only to the voter) with a select of reasons (`vaultbot:why:<id>`); the reason
chosen is stored with the vote (`QueryLog.feedback(..., note)`), for `vaultbot stats`."""

from __future__ import annotations

import logging
import re

import discord

from bot.conversation import record_feedback
from engine.querylog import QueryLog

log = logging.getLogger("bot.discord_bot")

VOTE = re.compile(r"vaultbot:vote:([+-]1):(\d+)")
WHY = re.compile(r"vaultbot:why:(\d+)")
REASONS = {
    "wrong": "The answer is wrong",
    "outdated": "The notes are out of date",
    "missing": "It missed something in the notes",
    "sources": "The sources do not say this",
    "question": "It did not answer my question",
}
THANKS = "Thanks for the feedback."
ASK_WHY = "Thanks. What was wrong with the answer? (optional)"
NOT_STORED = "Sorry, the feedback could not be stored (the answer is no longer in the log)."


def vote_view(query_id: int) -> discord.ui.View:
    """The 👍/👎 buttons for one logged answer."""
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Button(emoji="👍", style=discord.ButtonStyle.secondary,
                                    custom_id=f"vaultbot:vote:+1:{query_id}"))
    view.add_item(discord.ui.Button(emoji="👎", style=discord.ButtonStyle.secondary,
                                    custom_id=f"vaultbot:vote:-1:{query_id}"))
    return view


def reason_view(query_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(discord.ui.Select(
        custom_id=f"vaultbot:why:{query_id}", placeholder="Pick a reason",
        options=[discord.SelectOption(label=text, value=key) for key, text in REASONS.items()]))
    return view


async def handle(interaction: discord.Interaction, querylog: QueryLog | None) -> bool:
    """A vote or a reason; False when the interaction is not one of ours."""
    if interaction.type is not discord.InteractionType.component or interaction.data is None:
        return False
    custom_id = str(interaction.data.get("custom_id", ""))
    if m := VOTE.fullmatch(custom_id):
        value, query_id = int(m[1]), int(m[2])
        stored = await record_feedback(querylog, query_id, value)
        if not stored:
            await interaction.response.send_message(NOT_STORED, ephemeral=True)
        elif value > 0:
            await interaction.response.send_message(THANKS, ephemeral=True)
        else:
            await interaction.response.send_message(ASK_WHY, view=reason_view(query_id),
                                                    ephemeral=True)
        return True
    if m := WHY.fullmatch(custom_id):
        values = interaction.data.get("values")
        reason = REASONS.get(str(values[0])) if isinstance(values, list) and values else None
        stored = await record_feedback(querylog, int(m[1]), -1, reason)
        await interaction.response.edit_message(
            content=f"{THANKS} Noted: {reason}." if stored and reason else NOT_STORED,
            view=None)
        return True
    return False
