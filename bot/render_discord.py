"""Discord rendering of an Answer: embeds as plain dicts (`discord.Embed.from_dict` takes them),
packed into messages that respect Discord's limits. Pure functions, no I/O.

Limits (https://discord.com/developers/docs/resources/message#embed-object-embed-limits):
title 256, description 4,096, 25 fields, field name 256, field value 1,024, footer 2,048,
at most 10 embeds per message, and at most 6,000 characters summed over title, description,
field names and values, footer and author name of *all* embeds of one message. Message
content is at most 2,000 characters.

Layout of an answer:
* answer embeds: the question as the first title (so a thread's history can be rebuilt from
  Discord alone), the answer text split over descriptions at paragraph, line, sentence or word
  boundaries; a notice (why the answer is extractive) before it, an error after it;
* source embeds titled "Sources" (cited notes) or "Related notes" (retrieved, none cited), one
  field per note: name `[n] Title › Heading (p. 3)`, value a masked link to the note's http URL
  (VAULTBOT_NOTE_URL) when configured. Discord only makes http(s) links clickable, so with
  obsidian:// links only, the value shows the vault path and the obsidian:// URI in code spans,
  ready to copy (the URI is left out when it would not fit the field);
* the last embed carries the footer: model name or "extractive answer (no LLM)", and flags
  (cached answer, no cited source).
Messages beyond the first are sent as follow-ups."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from engine.answer import Answer
from engine.citations import Citation

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELDS_LIMIT = 25
FOOTER_LIMIT = 2048
EMBEDS_PER_MESSAGE = 10
MESSAGE_TOTAL_LIMIT = 6000
CONTENT_LIMIT = 2000

SOURCES_TITLE = "Sources"
RELATED_TITLE = "Related notes"
CONTINUED = " (continued)"
# Titles of the embeds that hold links, not answer text.
SOURCE_TITLES = frozenset(t + c for t in (SOURCES_TITLE, RELATED_TITLE) for c in ("", CONTINUED))
EXTRACTIVE = "extractive answer (no LLM)"
CURSOR = " …"

COLOUR_OK = 0x7C3AED  # Obsidian violet
COLOUR_WARN = 0xF59E0B  # unsupported or degraded answer
COLOUR_ERROR = 0xEF4444  # generation broke mid-answer

# Our own footer is short; capping it keeps every single embed far below the 6,000 total.
_FOOTER_CAP = 256
# Room for the source fields of one embed: 6,000 minus its title and the footer.
_SOURCES_BUDGET = MESSAGE_TOTAL_LIMIT - _FOOTER_CAP - len(RELATED_TITLE + CONTINUED)

Embed = dict[str, Any]


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_MD_SPECIAL = re.compile(r"([\\*_~|`>\[\]])")


def escape_markdown(text: str) -> str:
    """Escapes Markdown in note titles and headings, so `my_note_name` is not shown in italics."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _code(text: str) -> str:
    return "`" + text.replace("`", "ʼ") + "`"


# ------------------------------------------------------------------------- splitting text

_FENCE = "```"


def split_text(text: str, limit: int = DESCRIPTION_LIMIT) -> list[str]:
    """Cuts text into pieces of at most `limit` characters at the best boundary found in the
    second half of each window: blank line, line break, sentence end, space; a code block cut
    in two is closed and reopened, so each piece renders on its own."""
    if limit < 64:
        raise ValueError("limit too small")
    pieces: list[str] = []
    rest = text.strip()
    reopen = ""
    while rest:
        rest = reopen + rest
        if len(rest) <= limit:
            pieces.append(rest)
            break
        window = rest[: limit - len(_FENCE) - 1]  # room to close a code block
        cut = _best_cut(window)
        piece, rest = rest[:cut].rstrip(), rest[cut:].lstrip()
        reopen = ""
        if piece.count(_FENCE) % 2:
            piece += "\n" + _FENCE
            reopen = _FENCE + "\n"
        pieces.append(piece)
    return pieces


def _best_cut(window: str) -> int:
    half = len(window) // 2
    for sep in ("\n\n", "\n", ". ", "。", "? ", "! ", " "):
        i = window.rfind(sep)
        if i >= half:
            return i + len(sep)
    return len(window)


# ------------------------------------------------------------------------- streaming preview


def stream_preview(text: str, limit: int = CONTENT_LIMIT) -> str:
    """Message content while the answer streams: the text so far and a cursor; when it no
    longer fits one message, its end (that is where the news is)."""
    body = text.strip()
    if not body:
        return CURSOR.strip()
    if len(body) + len(CURSOR) <= limit:
        return body + CURSOR
    return "…" + body[-(limit - len(CURSOR) - 1):] + CURSOR


# ------------------------------------------------------------------------- embeds


def embed_size(embed: Embed) -> int:
    """The characters Discord counts against the 6,000 per message."""
    size = len(embed.get("title") or "") + len(embed.get("description") or "")
    size += sum(len(f.get("name", "")) + len(f.get("value", "")) for f in embed.get("fields", []))
    size += len((embed.get("footer") or {}).get("text", ""))
    size += len((embed.get("author") or {}).get("name", ""))
    return size


def footer_text(answer: Answer) -> str:
    parts = [answer.model if answer.mode == "llm" and answer.model else EXTRACTIVE]
    if answer.cached == "answer":
        parts.append("cached answer")
    if answer.unsupported:
        parts.append("no cited source")
    return truncate(" · ".join(parts), _FOOTER_CAP)


def _quote(text: str, icon: str) -> str:
    lines = text.strip().splitlines() or [""]
    return "\n".join(f"> {icon} {lines[0]}" if i == 0 else f"> {line}" for i, line in enumerate(lines))


def answer_text(answer: Answer) -> str:
    """The answer as shown: notice first (it explains the answer), error last."""
    parts = []
    if answer.notice:
        parts.append(_quote(answer.notice, "ℹ️"))
    parts.append(answer.text.strip() or "_(no answer text)_")
    if answer.error:
        parts.append(_quote(answer.error, "⚠️"))
    return "\n\n".join(parts)


def _colour(answer: Answer) -> int:
    if answer.error:
        return COLOUR_ERROR
    if answer.unsupported or answer.notice:
        return COLOUR_WARN
    return COLOUR_OK


def source_field(c: Citation) -> dict[str, Any]:
    name = truncate(f"[{c.n}] {escape_markdown(c.label)}", FIELD_NAME_LIMIT)
    url = c.page_url or c.url  # the note page first (VAULTBOT_PUBLIC_URL or serve's address)
    if url and url.startswith(("http://", "https://")):
        value = f"[{escape_markdown(c.path)}]({url})"
        if len(value) > FIELD_VALUE_LIMIT:  # a very long URL: show it bare (Discord links it)
            value = truncate(url, FIELD_VALUE_LIMIT)
        uri = _code(c.uri)  # "Open in Obsidian": not clickable on Discord, copyable
        if c.page_url and c.uri and len(value) + 1 + len(uri) <= FIELD_VALUE_LIMIT:
            value += "\n" + uri
    else:
        value = truncate(_code(c.path), FIELD_VALUE_LIMIT)
        uri = _code(c.uri)
        if c.uri and len(value) + 1 + len(uri) <= FIELD_VALUE_LIMIT:
            value += "\n" + uri
    return {"name": name, "value": value, "inline": False}


def source_embeds(citations: Iterable[Citation], title: str, colour: int) -> list[Embed]:
    """One field per note; a new embed when 25 fields or the character budget are used up."""
    embeds: list[Embed] = []
    fields: list[dict[str, Any]] = []
    used = 0

    def close() -> None:
        name = title if not embeds else title + CONTINUED
        embeds.append({"title": name, "color": colour, "fields": list(fields)})

    for c in citations:
        field = source_field(c)
        size = len(field["name"]) + len(field["value"])
        if fields and (len(fields) == FIELDS_LIMIT or used + size > _SOURCES_BUDGET):
            close()
            fields, used = [], 0
        fields.append(field)
        used += size
    if fields:
        close()
    return embeds


def answer_embeds(answer: Answer, question: str | None = None) -> list[Embed]:
    """Every embed of an answer, in order; `pack_messages` groups them into messages."""
    colour = _colour(answer)
    embeds: list[Embed] = []
    for i, piece in enumerate(split_text(answer_text(answer), DESCRIPTION_LIMIT)):
        embed: Embed = {"description": piece, "color": colour}
        if i == 0 and question and question.strip():
            embed["title"] = truncate(" ".join(question.split()), TITLE_LIMIT)
        embeds.append(embed)
    if answer.citations:
        embeds += source_embeds(answer.citations, SOURCES_TITLE, colour)
    elif answer.sources:  # retrieved but not cited: still worth a look, labelled as such
        embeds += source_embeds(answer.sources, RELATED_TITLE, colour)
    embeds[-1]["footer"] = {"text": footer_text(answer)}
    return embeds


def pack_messages(embeds: list[Embed]) -> list[list[Embed]]:
    """Groups embeds, in order, into messages of at most 10 embeds and 6,000 characters."""
    messages: list[list[Embed]] = []
    current: list[Embed] = []
    total = 0
    for embed in embeds:
        size = embed_size(embed)
        if size > MESSAGE_TOTAL_LIMIT:
            raise ValueError(f"an embed of {size} characters cannot be sent")
        if current and (len(current) == EMBEDS_PER_MESSAGE or total + size > MESSAGE_TOTAL_LIMIT):
            messages.append(current)
            current, total = [], 0
        current.append(embed)
        total += size
    if current:
        messages.append(current)
    return messages


def answer_messages(answer: Answer, question: str | None = None) -> list[list[Embed]]:
    """The answer as messages of embeds: the first replaces the streamed text, the rest follow."""
    return pack_messages(answer_embeds(answer, question))


def check_message(embeds: list[Embed], content: str | None = None) -> list[str]:
    """Every Discord limit the message breaks (empty when it can be sent). The fake Discord API
    in the tests checks with its own copy of the limits, so a mistake here cannot hide there."""
    problems = []
    if content is not None and len(content) > CONTENT_LIMIT:
        problems.append(f"content has {len(content)} > {CONTENT_LIMIT} characters")
    if len(embeds) > EMBEDS_PER_MESSAGE:
        problems.append(f"{len(embeds)} > {EMBEDS_PER_MESSAGE} embeds")
    total = 0
    for i, e in enumerate(embeds):
        total += embed_size(e)
        checks = [("title", len(e.get("title") or ""), TITLE_LIMIT),
                  ("description", len(e.get("description") or ""), DESCRIPTION_LIMIT),
                  ("fields", len(e.get("fields", [])), FIELDS_LIMIT),
                  ("footer", len((e.get("footer") or {}).get("text", "")), FOOTER_LIMIT)]
        for f in e.get("fields", []):
            checks.append(("field name", len(f.get("name", "")), FIELD_NAME_LIMIT))
            checks.append(("field value", len(f.get("value", "")), FIELD_VALUE_LIMIT))
            if not f.get("name") or not f.get("value"):
                problems.append(f"embed {i}: empty field name or value")
        problems += [f"embed {i}: {what} {n} > {limit}" for what, n, limit in checks if n > limit]
    if total > MESSAGE_TOTAL_LIMIT:
        problems.append(f"embeds total {total} > {MESSAGE_TOTAL_LIMIT} characters")
    return problems


def answer_of_embeds(embeds: list[Embed]) -> tuple[str | None, str]:
    """(question, answer text) from the answer embeds of one message we sent: how a thread's
    earlier turns are read back from Discord after a restart."""
    question = None
    texts = []
    for e in embeds:
        title = e.get("title") or ""
        if title in SOURCE_TITLES:
            continue
        if title and question is None:
            question = title
        if e.get("description"):
            texts.append(e["description"])
    # Notice and error paragraphs were for the reader, not part of the answer.
    paragraphs = "\n\n".join(texts).split("\n\n")
    kept = [p for p in paragraphs if not p.startswith(("> ℹ️", "> ⚠️"))]
    return question, "\n\n".join(kept).strip()


# ------------------------------------------------------------------------- /search

SEARCH_NOTES = 8  # notes listed by /search
_SNIPPET = 200


def search_embed(query: str, citations: Iterable[Citation]) -> Embed:
    """`/search`: the top notes (one field per note, its best passage first), with links; an
    empty result says so."""
    fields: list[dict[str, Any]] = []
    seen: set[str] = set()
    for c in citations:
        if c.path in seen:
            continue
        seen.add(c.path)
        link = source_field(c)["value"]
        snippet = truncate(" ".join(c.snippet.split()), _SNIPPET)
        value = truncate(f"{link}\n{escape_markdown(snippet)}" if snippet else link,
                         FIELD_VALUE_LIMIT)
        name = truncate(f"{len(fields) + 1}. {escape_markdown(c.label)}", FIELD_NAME_LIMIT)
        fields.append({"name": name, "value": value, "inline": False})
        if len(fields) == SEARCH_NOTES:
            break
    embed: Embed = {"title": truncate(f"Notes for: {' '.join(query.split())}", TITLE_LIMIT),
                    "color": COLOUR_OK, "fields": fields}
    if not fields:
        embed["description"] = "No notes match this search."
    return embed
