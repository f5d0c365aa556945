"""Whole HTML documents: the note page and the one refusal page.

The routes (another module) decide whether a note may be shown; this module only builds the
document from what they pass: the note's body and frontmatter, the cited chunk's span and
heading path, the last-modified time, the `obsidian://` link, and the passage as it was cited
when it has changed since. Everything from the note is rendered through the sanitiser or
escaped; the page runs no script (see `vaultbot.web.style` for the CSS and its CSP).
"""

from __future__ import annotations

import datetime as dt
import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

from engine.language import note_language
from vaultbot.web.markdown import EmbedFor, LinkFor, TagFor, render_inline, render_markdown
from vaultbot.web.style import CSS

__all__ = ["UNAVAILABLE_PAGE", "note_page", "properties_html", "unavailable_page"]

_esc = html.escape
_TAG_KEYS = frozenset({"tags", "tag"})


def _document(title: str, body: str, lang: str = "en") -> str:
    return (
        "<!doctype html>\n"
        f'<html lang="{_esc(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head>\n"
        f"<body><main>{body}</main></body></html>\n"
    )


def _value_html(key: str, value: Any, link_for: LinkFor | None, tag_for: TagFor | None) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(h for v in value if (h := _value_html(key, v, link_for, tag_for)))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return f"<code>{_esc(json.dumps(value, ensure_ascii=False, default=str))}</code>"
    text = str(value)
    if key.lower() in _TAG_KEYS:
        tag = text.strip().lstrip("#")
        url = tag_for(tag) if tag_for and tag else None
        if url is None:
            return f'<span class="tag">#{_esc(tag)}</span>'
        return render_inline(f"#{tag}", tag_for=tag_for)
    return render_inline(text, link_for=link_for, tag_for=tag_for)


def properties_html(
    frontmatter: Mapping[str, Any],
    *,
    link_for: LinkFor | None = None,
    tag_for: TagFor | None = None,
) -> str:
    """The frontmatter as Obsidian's properties box: a key/value table. Values are Markdown
    (`"[[Note]]"` links go through link_for like any other link)."""
    if not frontmatter:
        return ""
    rows = "".join(
        f"<tr><th>{_esc(str(k))}</th><td>{_value_html(str(k), v, link_for, tag_for)}</td></tr>"
        for k, v in frontmatter.items()
    )
    return f'<table class="props" aria-label="Properties"><tbody>{rows}</tbody></table>'


def _when(modified: dt.datetime | float | None) -> str:
    if modified is None:
        return ""
    if not isinstance(modified, dt.datetime):
        modified = dt.datetime.fromtimestamp(modified, tz=dt.UTC)
    if modified.tzinfo is None:
        modified = modified.replace(tzinfo=dt.UTC)
    utc = modified.astimezone(dt.UTC)
    return (
        f'<span>Modified <time datetime="{utc.isoformat(timespec="seconds")}">'
        f"{utc:%Y-%m-%d %H:%M} UTC</time></span>"
    )


def note_page(
    *,
    title: str,
    body: str,
    frontmatter: Mapping[str, Any] | None = None,
    link_for: LinkFor | None = None,
    embed_for: EmbedFor | None = None,
    tag_for: TagFor | None = None,
    highlight: tuple[int, int] | None = None,
    heading_path: Sequence[str] = (),
    modified: dt.datetime | float | None = None,
    obsidian_url: str | None = None,
    cited_then: str | None = None,
    lang: str | None = None,
) -> str:
    """The note page. `body` is the note's Markdown without frontmatter (ParsedNote.body, with
    embeds unexpanded: `embed_for` supplies them); `highlight` the cited chunk's span in it;
    `cited_then` the passage as the answer cited it, when it has changed since (shown escaped,
    beside the note as it is now)."""
    rendered = render_markdown(
        body, link_for=link_for, embed_for=embed_for, highlight=highlight, tag_for=tag_for
    )
    parts = ['<header class="page">']
    if heading_path:
        trail = " › ".join(_esc(h) for h in heading_path)
        if rendered.cited:
            trail = f'<a href="#cited">{trail}</a>'
        parts.append(f'<div class="trail">{trail}</div>')
    parts.append(f"<h1>{_esc(title)}</h1>")
    meta = [_when(modified)]
    if obsidian_url and obsidian_url.startswith("obsidian://"):
        meta.append(f'<a class="open" href="{_esc(obsidian_url)}">Open in Obsidian</a>')
    parts.append(f'<div class="meta">{"".join(m for m in meta if m)}</div></header>')
    if cited_then is not None:
        parts.append(
            '<aside class="notice" role="note"><strong>The cited passage changed since the '
            "answer.</strong> As it was cited:"
            f"<pre>{_esc(cited_then)}</pre>The note as it is now is below.</aside>"
        )
    parts.append(properties_html(frontmatter or {}, link_for=link_for, tag_for=tag_for))
    parts.append(f'<article class="note">{rendered.html}</article>')
    language = lang or note_language(title + "\n" + body[:4000])
    return _document(title, "".join(parts), language)


UNAVAILABLE_PAGE = _document(
    "Unavailable",
    '<div class="unavailable"><h1>Unavailable</h1><p>This note is unavailable.</p></div>',
)


def unavailable_page() -> str:
    """The one refusal page: the same bytes whatever the reason (tampered, expired, private,
    moved, deleted), so a refusal tells nothing about the note."""
    return UNAVAILABLE_PAGE
