"""Block Kit for the Slack bot's private answers, modals and App Home. Pure functions: no I/O.

A private answer (`/vault`, or the message shortcut's "only me") is the thread answer's blocks
(bot/render_slack.py) plus a "Share to channel" button; shared, the button gives way to a
line saying who shared it. Modals: the shortcut's question (prefilled with the message, where
the answer goes) and the reason after a 👎. App Home: index status, the person's recent
questions and what the workspace's channels may see (views: https://docs.slack.dev/surfaces)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.render_slack import (
    BLOCK_LIMIT,
    MESSAGE_CHARS,
    SECTION_LIMIT,
    SlackMessage,
    answer_messages,
    escape_mrkdwn,
    link,
    shorten,
)

if TYPE_CHECKING:
    from engine.answer import Answer

COMMAND = "/vault"
SHARE_ACTION = "vaultbot_share"
SHORTCUT = "vaultbot_ask_about"  # the message shortcut's callback_id (deploy/slack-manifest.yaml)
ASK_MODAL = "vaultbot_ask_modal"
REASON_MODAL = "vaultbot_feedback_reason"
SHARE_BLOCK = "vb_share"
SHARED_BLOCK = "vb_shared"
QUESTION_INPUT = ("vb_question", "question")  # (block_id, action_id)
WHERE_INPUT = ("vb_where", "where")
REASON_INPUT = ("vb_reason", "reason")
INPUT_LIMIT = 3000  # plain_text_input's max_length ceiling
HOME_BLOCKS = 100  # a view's block limit
ATTACHMENTS_NOT_READ = ("I read only the text of your question: attachments are not read, and "
                        "the answer comes from the notes alone.")


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _section(text: str, block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section",
                             "text": {"type": "mrkdwn", "text": shorten(text, SECTION_LIMIT)}}
    if block_id:
        block["block_id"] = block_id
    return block


# --------------------------------------------------------------------------- private answers


def private_pages(answer: Answer) -> list[SlackMessage]:
    """The answer's messages, each with room left for one more block (share, or shared by)."""
    return answer_messages(answer, max_blocks=BLOCK_LIMIT - 1, max_chars=MESSAGE_CHARS - 200)


def with_share_button(page: SlackMessage, key: str) -> SlackMessage:
    """A private page with the button that posts the answer to the channel."""
    button = {"type": "button", "action_id": SHARE_ACTION, "value": key, "style": "primary",
              "text": _plain("Share to channel")}
    return SlackMessage([*page.blocks, {"type": "actions", "block_id": SHARE_BLOCK,
                                        "elements": [button]}], page.text)


def shared_page(page: SlackMessage, user: str, question: str) -> SlackMessage:
    """A page as posted to the channel: who shared it, and what they asked."""
    line = f"Shared by <@{user}> · asked: {escape_mrkdwn(shorten(question, 300))}"
    return SlackMessage([*page.blocks, {"type": "context", "block_id": SHARED_BLOCK,
                                        "elements": [{"type": "mrkdwn", "text": line}]}],
                        page.text)


# --------------------------------------------------------------------------- modals


def ask_modal(text: str, metadata: dict[str, Any]) -> dict[str, Any]:
    """The message shortcut's modal: the question (prefilled with the message) and where the
    answer goes (the message's thread, or only to the person asking)."""
    block_id, action_id = QUESTION_INPUT
    where_block, where_action = WHERE_INPUT
    thread = {"text": _plain("In the message's thread"), "value": "thread"}
    private = {"text": _plain("Only to me"), "value": "private"}
    return {
        "type": "modal", "callback_id": ASK_MODAL, "title": _plain("Ask vaultbot"),
        "submit": _plain("Ask"), "close": _plain("Cancel"),
        "private_metadata": json.dumps(metadata),
        "blocks": [
            {"type": "input", "block_id": block_id, "label": _plain("Question"),
             "element": {"type": "plain_text_input", "action_id": action_id, "multiline": True,
                         "max_length": INPUT_LIMIT, "initial_value": shorten(text, INPUT_LIMIT)}},
            {"type": "input", "block_id": where_block, "label": _plain("Answer"),
             "element": {"type": "radio_buttons", "action_id": where_action,
                         "options": [thread, private], "initial_option": thread}},
        ],
    }


def reason_modal(metadata: dict[str, Any]) -> dict[str, Any]:
    """After a 👎: what was wrong, optionally (the owner reads it in `vaultbot stats`)."""
    block_id, action_id = REASON_INPUT
    return {
        "type": "modal", "callback_id": REASON_MODAL, "title": _plain("What was wrong?"),
        "submit": _plain("Send"), "close": _plain("Skip"),
        "private_metadata": json.dumps(metadata),
        "blocks": [
            _section("Thanks: the 👎 is recorded. A reason helps the notes' owner fix them."),
            {"type": "input", "block_id": block_id, "optional": True,
             "label": _plain("Reason (optional)"),
             "element": {"type": "plain_text_input", "action_id": action_id, "multiline": True,
                         "max_length": 1000}},
        ],
    }


def input_value(view: dict[str, Any], ids: tuple[str, str]) -> str | None:
    """What was typed or chosen in a submitted view's input (None: left empty)."""
    block_id, action_id = ids
    state = (((view.get("state") or {}).get("values") or {}).get(block_id) or {}).get(action_id) or {}
    if state.get("type") == "radio_buttons":
        return ((state.get("selected_option") or {}).get("value")) or None
    value = state.get("value")
    return str(value) if value else None


# --------------------------------------------------------------------------- App Home


@dataclass(frozen=True)
class Asked:
    """A question someone asked, for their App Home."""

    question: str
    at: float
    link: str | None  # the answer's permalink; None for a private answer


def _ago(seconds: float) -> str:
    if seconds < 90:
        return "just now"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min ago"
    if seconds < 36 * 3600:
        return f"{round(seconds / 3600)} h ago"
    return f"{round(seconds / 86400)} days ago"


def home_view(status: dict[str, Any] | None, asked: list[Asked], places: list[str], *,
              now: float) -> dict[str, Any]:
    """The App Home tab. `status`: notes, last_sync (epoch seconds), skipped, ollama (bool);
    `places`: one mrkdwn line per channel rule."""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain("vaultbot")}]
    if status is None:
        blocks.append(_section("_Index status is not available._", "vb_home_status"))
    else:
        last = status.get("last_sync")
        lines = [
            f"*Notes indexed:* {int(status.get('notes') or 0)}",
            f"*Last sync:* {_ago(now - float(last)) if last else 'never'}",
            f"*Skipped files:* {int(status.get('skipped') or 0)}",
            "*Ollama:* " + ("reachable" if status.get("ollama") else
                            ":warning: not reachable (answers are quoted from the notes)"),
        ]
        blocks.append(_section("\n".join(lines), "vb_home_status"))
    blocks += [{"type": "divider"}, {"type": "header", "text": _plain("Your recent questions")}]
    if not asked:
        blocks.append(_section(f"_None yet._ Mention me in a channel or use `{COMMAND}`.",
                               "vb_home_recent"))
    for i, a in enumerate(asked[:10]):
        q = escape_mrkdwn(shorten(a.question, 200))
        where = link(a.link, "answer") if a.link else "private answer"
        blocks.append(_section(f"{q}\n_{_ago(now - a.at)} · {where}_", f"vb_home_recent_{i}"))
    blocks += [{"type": "divider"}, {"type": "header", "text": _plain("What channels may see")}]
    shown = places[:HOME_BLOCKS - len(blocks) - 2]
    text = ""
    part = 0
    for line in shown or ["_The whole vault except private notes, everywhere._"]:
        if len(text) + len(line) + 1 > SECTION_LIMIT - 50:
            blocks.append(_section(text, f"vb_home_places_{part}"))
            text, part = "", part + 1
        text = f"{text}\n{line}" if text else line
    if text:
        blocks.append(_section(text, f"vb_home_places_{part}"))
    return {"type": "home", "blocks": blocks[:HOME_BLOCKS]}
