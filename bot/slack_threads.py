"""Reading Slack messages and threads: the question in a message (mentions, links and escapes
undone), a thread's earlier question/answer pairs as history, and whether the bot already
finished a reply to a message (a retried event after a restart)."""

from __future__ import annotations

import json
import re
from typing import Any

from bot.conversation import recent
from bot.render_slack import answer_text_of
from engine.citations import cited_paths
from engine.models import Turn

# Message subtypes that are people writing; edits, joins, bot posts and the like are not.
HUMAN_SUBTYPES = {None, "thread_broadcast", "file_share"}
_HUMAN_SUBTYPES = HUMAN_SUBTYPES


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
        if is_bot(m, bot_user_id, bot_id):
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


def is_bot(message: dict[str, Any], bot_user_id: str | None, bot_id: str | None) -> bool:
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
        if is_bot(m, bot_user_id, bot_id):
            if any(str(b.get("block_id", "")).startswith("vb_") for b in m.get("blocks") or ()):
                return True
            continue
        if not m.get("bot_id") and m.get("subtype") in _HUMAN_SUBTYPES:
            return False
    return False




_is_bot = is_bot
