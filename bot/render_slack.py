"""Block Kit rendering of an answer for Slack. Pure functions: no I/O, no Slack client.

Slack's limits that shape the output (https://docs.slack.dev/reference/block-kit/blocks):
a section's text is at most 3,000 characters, a message holds at most 50 blocks, and,
undocumented, `chat.postMessage` refuses blocks whose text adds up to about 12,000-13,000
characters (`msg_blocks_too_long`, slackapi/bolt-js#2509 and #2867). A long answer therefore
continues in further messages of the thread, each under every one of those limits.

mrkdwn is not Markdown: `*bold*`, `_italic_`, `~strike~`, `<url|text>` links, no headings, and
`&`, `<`, `>` must be escaped (https://docs.slack.dev/messaging/formatting-message-text)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.answer import Answer
    from engine.citations import Citation

SECTION_LIMIT = 3000  # characters of text in one section block
BLOCK_LIMIT = 50  # blocks in one message
MESSAGE_CHARS = 10_000  # text of all blocks of one message; Slack's real cap is ~12k, kept clear
TEXT_FALLBACK = 300  # the `text` of a message: notifications only, the blocks carry the answer

FEEDBACK_UP = "vaultbot_feedback_up"
FEEDBACK_DOWN = "vaultbot_feedback_down"
# block_id prefixes: they let the bot find the answer text again in `conversations.replies`
# (thread history for follow-ups) without parsing the rest of the message.
ANSWER_BLOCK = "vb_answer"
SOURCES_BLOCK = "vb_sources"
CONTEXT_BLOCK = "vb_context"
FEEDBACK_BLOCK = "vb_feedback"
ERROR_BLOCK = "vb_error"

_LINK_SCHEMES = ("http://", "https://", "obsidian://", "mailto:")


# --------------------------------------------------------------------------- mrkdwn


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack gives a meaning to (`&` first). Nothing else is
    converted: use this for labels and other plain strings, `to_mrkdwn` for answer text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_url(url: str) -> str:
    """A URL inside `<url|label>`: escaped like text, and without the characters that would end
    the link early (`|`, `>`) or break it (whitespace)."""
    url = url.strip().replace("|", "%7C").replace(" ", "%20").replace("\n", "")
    return escape_mrkdwn(url)


def link(url: str, label: str) -> str:
    return f"<{escape_url(url)}|{escape_mrkdwn(label).replace('|', '¦')}>"


_FENCE = re.compile(r"```[^\n`]*\n?(.*?)```", re.S)
_CODE = re.compile(r"`([^`\n]+)`")
_MD_LINK = re.compile(r"!?\[([^\]\n]+)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|obsidian)://[^>\s]+)>")
_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+", re.M)
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$", re.M)
_ITALIC_STAR = re.compile(r"(?<![*\w])\*(?![\s*])(.+?)(?<![\s*])\*(?![*\w])")
_BOLD = re.compile(r"\*\*(?!\s)(.+?)(?<!\s)\*\*|__(?!\s)(.+?)(?<!\s)__")
_STRIKE = re.compile(r"~~(?!\s)(.+?)(?<!\s)~~")
_HOLE = re.compile(r"\x00(\d+)\x00")


def to_mrkdwn(markdown: str) -> str:
    """The answer's Markdown as Slack mrkdwn, escaped: `**bold**` -> `*bold*`, `*it*` -> `_it_`,
    `[text](url)` -> `<url|text>`, headings -> bold lines, `- item` -> `• item`. Code spans and
    fenced blocks are escaped but otherwise left alone (and lose their language tag, which
    Slack would print)."""
    holes: list[str] = []

    def keep(rendered: str) -> str:
        holes.append(rendered)
        return f"\x00{len(holes) - 1}\x00"

    text = markdown.replace("\r\n", "\n").replace("\x00", "")
    text = _FENCE.sub(lambda m: keep("```\n" + escape_mrkdwn(m.group(1).strip("\n")) + "\n```"), text)
    text = _CODE.sub(lambda m: keep("`" + escape_mrkdwn(m.group(1)) + "`"), text)

    def md_link(m: re.Match[str]) -> str:
        label, url = m.group(1), m.group(2)
        if url.startswith(_LINK_SCHEMES):
            return keep(link(url, _strip_emphasis(label)))
        return m.group(0)  # a relative or odd target: leave the text as written

    text = _MD_LINK.sub(md_link, text)
    text = _AUTOLINK.sub(lambda m: keep(f"<{escape_url(m.group(1))}>"), text)
    text = escape_mrkdwn(text)
    text = _RULE.sub("───", text)
    text = _HEADING.sub(lambda m: keep("*" + _strip_emphasis(m.group(1)) + "*"), text)
    text = _BULLET.sub(lambda m: m.group(1) + "• ", text)
    text = _ITALIC_STAR.sub(lambda m: "_" + m.group(1) + "_", text)
    text = _BOLD.sub(lambda m: "*" + (m.group(1) or m.group(2)) + "*", text)
    text = _STRIKE.sub(lambda m: "~" + m.group(1) + "~", text)
    while _HOLE.search(text):  # a heading hole may hold a link hole
        text = _HOLE.sub(lambda m: holes[int(m.group(1))], text)
    return text


def _strip_emphasis(text: str) -> str:
    return re.sub(r"(\*\*|__|\*|_)(.+?)\1", r"\2", text)


def plain_text(mrkdwn: str) -> str:
    """Rough plain text of mrkdwn, for the notification `text`: links become their label."""
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2", mrkdwn)
    text = re.sub(r"<([^|>]+)>", r"\1", text)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(text.split())


def shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


# --------------------------------------------------------------------------- splitting


_SENTENCE_END = re.compile(r"[.!?。！？](?:\s|$)|다\.\s")


def split_mrkdwn(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split mrkdwn into pieces of at most `limit` characters, preferring paragraph, then line,
    then sentence, then word boundaries; never inside a `<...>` link or an `&...;` entity, and
    a code fence cut in two is closed and reopened."""
    if limit < 40:
        raise ValueError("limit is too small to split into")
    pieces: list[str] = []
    rest = text.strip()
    reopen = False
    while rest:
        if reopen:
            rest = "```\n" + rest
        budget = limit - 4  # room to close a fence cut in two
        if len(rest) <= limit and rest.count("```") % 2 == 0:
            pieces.append(rest)
            break
        cut = len(rest) if len(rest) <= budget else _cut_point(rest, budget)
        piece, rest = rest[:cut].rstrip(), rest[cut:].lstrip("\n ")
        reopen = piece.count("```") % 2 == 1
        if reopen:
            piece += "\n```"
        if piece.strip("`\n "):
            pieces.append(piece)
    return pieces


def _cut_point(text: str, budget: int) -> int:
    window = text[:budget]
    cut = -1
    for finder in (lambda w: w.rfind("\n\n"), lambda w: w.rfind("\n")):
        i = finder(window)
        if i > budget // 3:
            cut = i
            break
    if cut < 0:
        ends = [m.end() for m in _SENTENCE_END.finditer(window)]
        if ends and ends[-1] > budget // 3:
            cut = ends[-1]
    if cut < 0:
        i = window.rfind(" ")
        cut = i if i > budget // 3 else budget
    # Never inside a link or an entity: move the cut back to where it starts.
    opened, closed = window.rfind("<", 0, cut), window.rfind(">", 0, cut)
    if opened > closed and opened > 0:
        cut = opened
    amp = window.rfind("&", max(0, cut - 6), cut)
    if amp >= 0 and ";" not in window[amp:cut] and amp > 0:
        cut = amp
    return max(cut, 1)


# --------------------------------------------------------------------------- blocks


@dataclass(frozen=True)
class SlackMessage:
    blocks: list[dict[str, Any]]
    text: str  # the notification fallback

    def to_kwargs(self) -> dict[str, Any]:
        return {"blocks": self.blocks, "text": self.text}


def _section(text: str, block_id: str) -> dict[str, Any]:
    return {"type": "section", "block_id": block_id, "text": {"type": "mrkdwn", "text": text}}


def block_chars(block: dict[str, Any]) -> int:
    """Characters of text in a block, as Slack's cumulative limit counts them (roughly)."""
    total = 0
    stack: list[Any] = [block]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "text" and isinstance(value, str):
                    total += len(value)
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return total


def source_lines(citations: list[Citation]) -> list[str]:
    """One line per cited note section, `[1][3] <link|Title › Heading>`; citations of the same
    place share a line."""
    lines: dict[tuple[str, str, str], list[int]] = {}
    for c in sorted(citations, key=lambda c: c.n):
        # With a note page the obsidian:// link follows it: teammates open the page, the owner
        # the app, and a thread's history reads its sources back from it (cited_paths).
        also = c.uri if c.page_url and c.uri else ""
        lines.setdefault((c.link, c.label, also), []).append(c.n)
    return ["".join(f"[{n}]" for n in ns) + " " + link(url, label)
            + (" · " + link(also, "Open in Obsidian") if also else "")
            for (url, label, also), ns in lines.items()]


def context_text(answer: Answer) -> str:
    parts = [f"model: {escape_mrkdwn(answer.model)}" if answer.mode == "llm" and answer.model
             else "extractive answer (no LLM)"]
    if answer.cached in ("answer", True):
        parts.append("cached")
    if answer.unsupported:
        parts.append(":warning: unsupported: no note supports this answer")
    if answer.notice:
        parts.append(":information_source: " + escape_mrkdwn(shorten(answer.notice, 500)))
    return " · ".join(parts)


def feedback_block(query_id: int) -> dict[str, Any]:
    def button(emoji: str, action_id: str, label: str) -> dict[str, Any]:
        return {"type": "button", "action_id": action_id, "value": str(query_id),
                "text": {"type": "plain_text", "text": emoji, "emoji": True},
                "accessibility_label": label}

    return {"type": "actions", "block_id": FEEDBACK_BLOCK, "elements": [
        button("👍", FEEDBACK_UP, "Helpful"), button("👎", FEEDBACK_DOWN, "Not helpful"),
    ]}


def answer_messages(
    answer: Answer,
    *,
    max_section: int = SECTION_LIMIT,
    max_blocks: int = BLOCK_LIMIT,
    max_chars: int = MESSAGE_CHARS,
) -> list[SlackMessage]:
    """The answer as one or more thread messages: the text in sections, then (on the last
    message) an error line if generation broke, the Sources, a context line and 👍/👎."""
    if max_blocks < 5:
        raise ValueError("max_blocks must leave room for the sources, context and buttons")
    body = to_mrkdwn(answer.text) if answer.text.strip() else "_(the answer is empty)_"
    sections = [_section(p, f"{ANSWER_BLOCK}_{i}")
                for i, p in enumerate(split_mrkdwn(body, min(max_section, max_chars)))]

    tail: list[dict[str, Any]] = []
    if answer.error:
        tail.append(_section(":warning: " + escape_mrkdwn(shorten(answer.error, 1000)), ERROR_BLOCK))
    lines = source_lines(answer.citations)
    if lines:
        text = "*Sources*"
        part = 0
        for line in lines:
            if len(text) + 1 + len(line) > max_section:
                tail.append(_section(text, f"{SOURCES_BLOCK}_{part}"))
                text, part = "", part + 1
            text = f"{text}\n{line}" if text else line
        tail.append(_section(text, f"{SOURCES_BLOCK}_{part}"))
    tail.append({"type": "context", "block_id": CONTEXT_BLOCK,
                 "elements": [{"type": "mrkdwn", "text": context_text(answer)}]})
    if answer.query_id is not None:
        tail.append(feedback_block(answer.query_id))

    # The tail comes after the text; many sources may still need pages of their own.
    pages: list[list[dict[str, Any]]] = [[]]
    used = 0
    for block in [*sections, *tail]:
        size = block_chars(block)
        if pages[-1] and (len(pages[-1]) + 1 > max_blocks or used + size > max_chars):
            pages.append([])
            used = 0
        pages[-1].append(block)
        used += size

    plain = plain_text(body)
    out = []
    for i, blocks in enumerate(pages):
        if i == 0:
            text = shorten(plain, TEXT_FALLBACK)
        else:
            first = next((b["text"]["text"] for b in blocks
                          if b.get("block_id", "").startswith(ANSWER_BLOCK)), "")
            text = shorten(f"(continued {i + 1}/{len(pages)}) " + plain_text(first), TEXT_FALLBACK)
        out.append(SlackMessage(blocks, text))
    return out


def answer_blocks(
    answer: Answer,
    *,
    max_section: int = SECTION_LIMIT,
    max_blocks: int = BLOCK_LIMIT,
    max_chars: int = MESSAGE_CHARS,
) -> list[list[dict[str, Any]]]:
    """Just the blocks of `answer_messages`: one list per message."""
    return [m.blocks for m in answer_messages(
        answer, max_section=max_section, max_blocks=max_blocks, max_chars=max_chars)]


def notice_message(text: str, *, emoji: str = "") -> SlackMessage:
    """A short plain message (help, errors, refusals), escaped."""
    body = (f"{emoji} " if emoji else "") + escape_mrkdwn(shorten(text, SECTION_LIMIT - 10))
    return SlackMessage([_section(body, ERROR_BLOCK)], shorten(text, TEXT_FALLBACK))


def progress_text(markdown: str, limit: int = 3500) -> str:
    """The answer so far, as mrkdwn for a `chat.update` while it streams in: the end is what is
    new, so a long text keeps its head and tail around an ellipsis."""
    text = to_mrkdwn(markdown) if markdown.strip() else "…"
    if len(text) > limit:
        pieces = split_mrkdwn(text, limit // 2 - 5)
        text = pieces[0] + "\n…\n" + pieces[-1]
    return text + " ▍"


def answer_text_of(message: dict[str, Any]) -> str:
    """The answer text of a message this bot posted, read back from its blocks (for thread
    history); falls back to the message's `text`."""
    parts = [b.get("text", {}).get("text", "") for b in message.get("blocks") or []
             if str(b.get("block_id", "")).startswith(ANSWER_BLOCK)]
    return "\n\n".join(p for p in parts if p) if parts else str(message.get("text") or "")
