"""markdown-it rules for what Obsidian adds to Markdown: `[[wikilinks]]`, `![[embeds]]`, `#tags`,
`==highlights==`, callouts (`> [!type]- Title`) and stable heading ids.

The rules only build tokens; what a link points at is decided at render time by the callbacks in
`env` (see `vaultbot.web.markdown`), so a note this page may not show never becomes a link.
"""

from __future__ import annotations

import re
import unicodedata

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

from sync.parse import fenced_lines

__all__ = ["display_name", "hide_hidden", "install", "slug", "split_target"]

_WIKI_RE = re.compile(r"(!?)\[\[([^\[\]\n]+?)\]\]")
# Obsidian: letters of any script, digits, `_`, `-`, `/`; at least one non-digit (sync/parse.py).
_TAG_RE = re.compile(r"#([^\s!-,.:-@\[-^`{-~]+)")
_TAG_HAS_NAME_RE = re.compile(r"[^\d/\-]")
_CALLOUT_RE = re.compile(r"^\[!([^\]\s]+)\]([+-]?)[ \t]*(.*)$")
_SLUG_DROP_RE = re.compile(r"[^\w\- ]+")
# Our own anchor; a heading of that name gets another id so `#cited` always means the passage.
RESERVED_IDS = frozenset({"cited"})


def slug(text: str) -> str:
    """A heading's id: casefolded words joined by `-` (any script kept, punctuation dropped).
    `[[note#Heading]]` links use the same function, so their fragments find the heading."""
    text = unicodedata.normalize("NFC", text).casefold()
    words = _SLUG_DROP_RE.sub("", text).split()
    return "-".join(words) or "section"


def split_target(inner: str) -> tuple[str, str, str | None]:
    """`note#heading|alias` -> (note, subpath, alias). `[[a\\|b]]` (inside tables) works too."""
    alias = None
    if "|" in inner:
        inner, alias = inner.split("|", 1)
        inner = inner.rstrip("\\")
        alias = alias.strip() or None
    target, _, sub = inner.partition("#")
    return target.strip(), sub.strip(), alias


def display_name(target: str, sub: str) -> str:
    """What Obsidian shows for an unaliased link, with folders left out: the page never shows
    where in the vault another note lives."""
    name = target.replace("\\", "/").rsplit("/", 1)[-1]
    if name.lower().endswith(".md"):
        name = name[:-3]
    parts = [p.strip().lstrip("^") for p in sub.split("#") if p.strip()]
    return " > ".join([name, *parts] if name else parts) or name


_INLINE_CODE_RE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_COMMENT_RE = re.compile(r"%%.*?%%", re.DOTALL)
_BLOCK_ID_RE = re.compile(r"(?<=[ \t])\^[A-Za-z0-9-]+[ \t]*$|^\^[A-Za-z0-9-]+[ \t]*$", re.MULTILINE)


def hide_hidden(text: str) -> str:
    """What Obsidian's reading view never shows: `%% comments %%` and `^block-ids`, blanked
    outside code. Same length and lines, so a chunk's span still points at the same text."""
    if "%%" not in text and "^" not in text:
        return text
    lines = text.split("\n")
    fenced = fenced_lines(lines)
    masked = "\n".join(
        " " * len(ln) if f else _INLINE_CODE_RE.sub(lambda m: " " * len(m.group(0)), ln)
        for ln, f in zip(lines, fenced, strict=True)
    )
    spans = [m.span() for m in _COMMENT_RE.finditer(masked)]
    spans += [m.span() for m in _BLOCK_ID_RE.finditer(masked)]
    if not spans:
        return text
    out = list(text)
    for a, b in spans:
        for i in range(a, b):
            if out[i] != "\n":
                out[i] = " "
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Inline rules
# --------------------------------------------------------------------------------------------


def _wikilink(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if src[pos] not in "![" or not src.startswith("[[", pos + (src[pos] == "!")):
        return False
    m = _WIKI_RE.match(src, pos)
    if m is None or m.end() > state.posMax:
        return False
    target, sub, alias = split_target(m.group(2))
    if not target and not sub:
        return False
    if not silent:
        token = state.push("wikiembed" if m.group(1) else "wikilink", "", 0)
        token.meta = {"target": target, "sub": sub, "alias": alias}
        token.content = m.group(0)
    state.pos = m.end()
    return True


def _tag(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if src[pos] != "#" or (pos > 0 and not src[pos - 1].isspace()):
        return False
    m = _TAG_RE.match(src, pos, state.posMax)
    if m is None:
        return False
    tag = m.group(1).rstrip("/")
    if not tag or not _TAG_HAS_NAME_RE.search(tag):
        return False
    if not silent:
        token = state.push("tag", "", 0)
        token.meta = {"tag": tag}
        token.content = "#" + tag
    state.pos = pos + 1 + len(tag)
    return True


def _mark(state: StateInline, silent: bool) -> bool:
    src, pos = state.src, state.pos
    if not src.startswith("==", pos) or pos + 2 >= state.posMax or src[pos + 2] in " \t=":
        return False
    end = src.find("==", pos + 2, state.posMax)
    if end < 0 or src[end - 1] in " \t":
        return False
    if not silent:
        old_max = state.posMax
        state.push("mark_open", "mark", 1)
        state.pos, state.posMax = pos + 2, end
        state.md.inline.tokenize(state)
        state.posMax = old_max
        state.push("mark_close", "mark", -1)
    state.pos = end + 2
    return True


# --------------------------------------------------------------------------------------------
# Core rules (on the block token stream)
# --------------------------------------------------------------------------------------------


def _callouts(state: StateCore) -> None:
    """`> [!type]± Title` blockquotes become callouts: a <div>, or a <details> when foldable
    (`-` folded, `+` open). Runs before the inline stage, on the paragraph's raw text."""
    tokens = state.tokens
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if (
            tok.type != "blockquote_open"
            or i + 2 >= len(tokens)
            or tokens[i + 1].type != "paragraph_open"
            or tokens[i + 2].type != "inline"
        ):
            i += 1
            continue
        inline = tokens[i + 2]
        first, _, rest = inline.content.partition("\n")
        m = _CALLOUT_RE.match(first.strip())
        if m is None:
            i += 1
            continue
        kind, fold, title = m.group(1).lower(), m.group(2), m.group(3).strip()
        close = _matching_close(tokens, i)
        box = "details" if fold else "div"
        tok.tag = tokens[close].tag = box
        tok.attrSet("class", "callout")
        tok.attrSet("data-callout", kind)
        if fold == "+":
            tok.attrSet("open", "")
        tok.meta["callout"] = kind
        title_tag = "summary" if fold else "div"
        title_open = Token("callout_title_open", title_tag, 1, map=tok.map, block=True)
        title_open.attrSet("class", "callout-title")
        title_inline = Token(
            "inline", "", 0, map=tok.map, content=title or kind.title(), children=[]
        )
        title_close = Token("callout_title_close", title_tag, -1, block=True)
        body_open = Token("callout_body_open", "div", 1, block=True)
        body_open.attrSet("class", "callout-content")
        body_close = Token("callout_body_close", "div", -1, block=True)
        inline.content = rest
        if tokens[i + 1].map:  # the paragraph now starts below the title line
            tokens[i + 1].map = [tokens[i + 1].map[0] + 1, tokens[i + 1].map[1]]
        if not rest.strip():  # title-only first paragraph: drop it
            del tokens[i + 1 : i + 4]
            close -= 3
        head = [title_open, title_inline, title_close]
        if close > i + 1:  # something besides the title
            tokens.insert(close, body_close)
            head.append(body_open)
        tokens[i + 1 : i + 1] = head
        i += 1 + len(head)


def _matching_close(tokens: list[Token], i: int) -> int:
    depth = 0
    for j in range(i, len(tokens)):
        depth += tokens[j].nesting
        if depth == 0:
            return j
    return len(tokens) - 1


def _block_embeds(state: StateCore) -> None:
    """An embed on a line of its own is a block, as in Obsidian: its paragraph is split around
    it (an embedded note's blocks cannot sit inside a <p>)."""
    tokens = state.tokens
    if not any(t.type == "inline" and "![[" in t.content for t in tokens):
        return
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if (
            tok.type == "paragraph_open"
            and i + 2 < len(tokens)
            and any(k.type == "wikiembed" for k in tokens[i + 1].children or [])
        ):
            out.extend(_split_paragraph(tok, tokens[i + 1], tokens[i + 2]))
            i += 3
        else:
            out.append(tok)
            i += 1
    state.tokens = out


def _split_paragraph(p_open: Token, inline: Token, p_close: Token) -> list[Token]:
    lines: list[list[Token]] = [[]]
    for k in inline.children or []:
        if k.type in ("softbreak", "hardbreak"):
            lines[-1].append(k)
            lines.append([])
        else:
            lines[-1].append(k)
    first = p_open.map[0] if p_open.map else None
    out: list[Token] = []
    pending: list[tuple[int, list[Token]]] = []

    def flush() -> None:
        if not pending:
            return
        kids = [k for _, line in pending for k in line]
        while kids and kids[-1].type in ("softbreak", "hardbreak"):
            kids.pop()
        lo, hi = pending[0][0], pending[-1][0] + 1
        line_map = [first + lo, first + hi] if first is not None else None
        opened = Token("paragraph_open", "p", 1, map=line_map, block=True, hidden=p_open.hidden)
        body = Token("inline", "", 0, map=line_map, children=kids, level=inline.level)
        closed = Token("paragraph_close", "p", -1, block=True, hidden=p_close.hidden)
        opened.level = closed.level = p_open.level
        out.extend([opened, body, closed])
        pending.clear()

    for n, line in enumerate(lines):
        words = [k for k in line if k.type not in ("softbreak", "hardbreak")]
        embeds = [k for k in words if k.type == "wikiembed"]
        if embeds and all(k.type == "wikiembed" or not k.content.strip() for k in words):
            flush()
            for k in embeds:
                k.block, k.level = True, p_open.level
                k.map = [first + n, first + n + 1] if first is not None else None
                out.append(k)
        else:
            pending.append((n, line))
    flush()
    return out


def _heading_ids(state: StateCore) -> None:
    """Stable, unique ids for headings (not for embedded notes: their ids belong to their own
    page and would collide with this one's)."""
    if state.env.get("depth", 0):
        return
    seen: set[str] = set(RESERVED_IDS)
    headings: list[tuple[int, str, str]] = []
    tokens = state.tokens
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open" or i + 1 >= len(tokens):
            continue
        text = _plain(tokens[i + 1].children or [])
        base = slug(text)
        hid, n = base, 1
        while hid in seen:
            hid, n = f"{base}-{n}", n + 1
        seen.add(hid)
        tok.attrSet("id", hid)
        headings.append((int(tok.tag[1]), text, hid))
    state.env["headings"] = headings


def _plain(children: list[Token]) -> str:
    out = []
    for k in children:
        if k.type in ("text", "code_inline"):
            out.append(k.content)
        elif k.type == "wikilink":
            out.append(k.meta["alias"] or display_name(k.meta["target"], k.meta["sub"]))
        elif k.type == "tag":
            out.append(k.content)
        elif k.children:
            out.append(_plain(k.children))
    return " ".join("".join(out).split())


def _table_align(state: StateCore) -> None:
    """Column alignment as a class, so the sanitiser can refuse every `style` attribute."""
    for tok in state.tokens:
        if tok.type in ("th_open", "td_open"):
            style = tok.attrGet("style")
            if isinstance(style, str) and style.startswith("text-align:"):
                del tok.attrs["style"]
                tok.attrSet("class", "align-" + style.split(":", 1)[1].strip())


def install(md: MarkdownIt) -> MarkdownIt:
    """Add the Obsidian rules to a parser."""
    md.inline.ruler.before("link", "wikilink", _wikilink)
    md.inline.ruler.before("link", "obsidian_tag", _tag)
    md.inline.ruler.before("emphasis", "mark", _mark)
    md.core.ruler.after("block", "callouts", _callouts)
    md.core.ruler.after("inline", "block_embeds", _block_embeds)
    md.core.ruler.after("block_embeds", "heading_ids", _heading_ids)
    md.core.ruler.after("heading_ids", "table_align", _table_align)
    return md
