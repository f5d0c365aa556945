"""A note's Markdown as Obsidian shows it, as safe HTML.

`render_markdown(text, link_for=..., embed_for=..., highlight=...)` renders CommonMark plus
tables, task lists (disabled checkboxes), footnotes, bare URLs and Obsidian's additions
(`vaultbot.web.obsidian`), then sanitises the result (`vaultbot.web.sanitize`).

Links are decided by the caller: `link_for(target)` returns the URL of a note this page may
link to, or None, and then the link is plain text, with no trace of where the note lives.
`embed_for(target)` returns an embedded note's Markdown (the caller cuts `#heading`/`#^block`
sections and applies the provenance rule), or None. Images and other files are placeholders:
the page never fetches anything from outside.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import OptionsDict
from mdit_py_plugins.footnote import footnote_plugin
from mdit_py_plugins.front_matter import front_matter_plugin
from mdit_py_plugins.gfm_autolink import gfm_autolink_plugin
from mdit_py_plugins.tasklists import tasklists_plugin

from vaultbot.web import obsidian
from vaultbot.web.sanitize import sanitize

__all__ = ["EmbedFor", "LinkFor", "Rendered", "TagFor", "render_inline", "render_markdown"]

LinkFor = Callable[[str], "str | None"]
EmbedFor = Callable[[str], "str | None"]
TagFor = Callable[[str], "str | None"]

MAX_EMBED_DEPTH = 3  # as sync/parse.py expands them
MAX_EMBEDS = 64  # embedded notes per page, nested ones included; the rest are placeholders
_IMAGE_EXTS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "avif", "heic", "tif"})
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_CITED_ANCHOR = "cited"
_FOOTNOTE_ID_RE = re.compile(r'((?:id|href)="#?)(fn(?:ref)?\d+(?::\d+)?)"')


@dataclass(frozen=True)
class Rendered:
    """Sanitised HTML of a note body; its headings as (level, text, id); whether the cited span
    was found and marked (`<... class="cited" id="cited">`)."""

    html: str
    headings: list[tuple[int, str, str]] = field(default_factory=list)
    cited: bool = False


def _no_link(_: str) -> str | None:
    return None


# --------------------------------------------------------------------------------------------
# Render rules (methods named for token types; callbacks come through `env`)
# --------------------------------------------------------------------------------------------


def _esc(s: str) -> str:
    return html.escape(s, quote=True)


def _own_url(env: dict[str, Any], url: str) -> str:
    env["urls"].add(url)
    return url


def _fragment(sub: str) -> str:
    """`#heading` (or `#a#b`) -> the heading's id; block refs have no anchor on our pages."""
    parts = [p for p in sub.split("#") if p.strip()]
    if not parts or parts[-1].lstrip().startswith("^"):
        return ""
    return "#" + obsidian.slug(parts[-1])


def _ext(target: str) -> str:
    name = target.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _wrap_cited(out: str, tok: Token) -> str:
    """Raw HTML and code cannot take a class themselves: the cited one is wrapped."""
    cited = tok.meta.get("cited") if tok.meta else None
    if not cited:
        return out
    anchor = f' id="{_esc(cited)}"' if isinstance(cited, str) else ""
    return f'<div class="cited"{anchor}>{out}</div>\n'


Tokens = Sequence[Token]


class _Renderer(RendererHTML):
    def wikilink(self, tokens: Tokens, idx: int, _o: OptionsDict, env: dict[str, Any]) -> str:
        meta = tokens[idx].meta
        target, sub, alias = meta["target"], meta["sub"], meta["alias"]
        text = _esc(alias or obsidian.display_name(target, sub))
        if not target:  # [[#Heading]]: this very page
            frag = _fragment(sub)
            return f'<a class="internal" href="{_esc(frag)}">{text}</a>' if frag else text
        url = env["link_for"](target)
        if url is None:
            return f'<span class="unlinked">{text}</span>'
        href = _own_url(env, url + _fragment(sub))
        return f'<a class="internal" href="{_esc(href)}">{text}</a>'

    def wikiembed(self, tokens: Tokens, idx: int, _o: OptionsDict, env: dict[str, Any]) -> str:
        meta = tokens[idx].meta
        target, sub, alias = meta["target"], meta["sub"], meta["alias"]
        name = _esc(alias or obsidian.display_name(target, sub))
        ext = _ext(target)
        if ext in _IMAGE_EXTS:
            return f'<span class="embed-file embed-image">{name}</span>'
        if ext and ext != "md":
            return f'<span class="embed-file">{name}</span>'
        depth = env.get("depth", 0) + 1
        markdown = None
        budget = env["embed_budget"]  # shared by nested renders: fan-out stays bounded
        if depth <= MAX_EMBED_DEPTH and budget[0] > 0:
            budget[0] -= 1
            markdown = env["embed_for"](target + ("#" + sub if sub else ""))
        if markdown is None:
            return f'<span class="embed-file embed-missing">{name}</span>'
        # Its own footnotes (kept apart from the page's, ids made unique); links and URLs shared.
        inner_env = {k: v for k, v in env.items() if k != "footnotes"} | {"depth": depth}
        markdown = obsidian.hide_hidden(markdown)
        if not tokens[idx].block:  # amid text: Obsidian shows it inline
            return f'<span class="embed">{_MD.renderInline(markdown, inner_env)}</span>'
        env["embeds"] = n = env.get("embeds", 0) + 1
        inner = _FOOTNOTE_ID_RE.sub(rf'\1e{n}-\2"', _MD.render(markdown, inner_env))
        return _wrap_cited(f'<div class="embed">{inner}</div>\n', tokens[idx])

    def tag(self, tokens: Tokens, idx: int, _o: OptionsDict, env: dict[str, Any]) -> str:
        tok = tokens[idx]
        url = env["tag_for"](tok.meta["tag"]) if env.get("tag_for") else None
        text = _esc(tok.content)
        if url is None:
            return f'<span class="tag">{text}</span>'
        return f'<a class="tag" href="{_esc(_own_url(env, url))}">{text}</a>'

    def image(self, tokens: Tokens, idx: int, _o: OptionsDict, env: Any) -> str:
        """`![alt](url)`: never fetched; the alt text stands in."""
        alt = "".join(k.content for k in tokens[idx].children or []) or "image"
        return f'<span class="embed-file embed-image">{_esc(alt)}</span>'

    def heading_open(self, tokens: Tokens, idx: int, options: OptionsDict, env: Any) -> str:
        anchor = tokens[idx].meta.get("anchor")
        out = self.renderToken(tokens, idx, options, env)
        return f'<span class="cited-anchor" id="{_esc(anchor)}"></span>{out}' if anchor else out

    def fence(self, tokens: Tokens, idx: int, options: OptionsDict, env: Any) -> str:
        return _wrap_cited(super().fence(tokens, idx, options, env), tokens[idx])

    def code_block(self, tokens: Tokens, idx: int, options: OptionsDict, env: Any) -> str:
        return _wrap_cited(super().code_block(tokens, idx, options, env), tokens[idx])

    def html_block(self, tokens: Tokens, idx: int, options: OptionsDict, env: Any) -> str:
        return _wrap_cited(super().html_block(tokens, idx, options, env), tokens[idx])

    def hr(self, tokens: Tokens, idx: int, options: OptionsDict, env: Any) -> str:
        return _wrap_cited(self.renderToken(tokens, idx, options, env), tokens[idx])


# --------------------------------------------------------------------------------------------
# Core rule: Markdown links inside the vault go through link_for too
# --------------------------------------------------------------------------------------------


def _md_links(state: StateCore) -> None:
    env = state.env
    for block in state.tokens:
        for tok in block.children or []:
            if tok.type != "link_open":
                continue
            href = str(tok.attrGet("href") or "")
            if _SCHEME_RE.match(href) or href.startswith("//"):
                continue  # the web, mail, obsidian://: the sanitiser judges the scheme
            path, _, frag = href.partition("#")
            if not path:
                tok.attrSet("href", _fragment(unquote(frag)) or "#")
                continue
            url = env["link_for"](unquote(path))
            if url is None:
                tok.attrs.pop("href", None)
                tok.tag = "span"
                tok.attrSet("class", "unlinked")
                tok.type = "unlinked_open"
                _close_of(block.children or [], tok).tag = "span"
            else:
                tok.attrSet("href", _own_url(env, url + _fragment(unquote(frag))))
                tok.attrSet("class", "internal")


def _close_of(children: list[Token], open_tok: Token) -> Token:
    depth = 0
    for k in children[children.index(open_tok) :]:
        if k.type in ("link_open", "unlinked_open"):
            depth += 1
        elif k.type == "link_close":
            depth -= 1
            if depth == 0:
                return k
    return open_tok  # unbalanced: leave the open token as the one to change (harmless)


# --------------------------------------------------------------------------------------------
# The cited passage
# --------------------------------------------------------------------------------------------

_LEAVES = frozenset(
    {
        "paragraph_open", "heading_open", "table_open", "fence", "code_block", "hr", "html_block",
        "wikiembed",
    }
)  # fmt: skip
_WRAPPED = frozenset({"fence", "code_block", "html_block", "hr", "wikiembed"})


def _lines_of(text: str, span: tuple[int, int]) -> tuple[int, int] | None:
    start, end = max(0, span[0]), min(len(text), span[1])
    if end <= start:
        return None
    return text.count("\n", 0, start), text.count("\n", 0, end - 1)


def _mark_cited(tokens: list[Token], lines: tuple[int, int], anchor: str) -> bool:
    """Mark every leaf block whose source lines overlap `lines`; a tight list's hidden
    paragraph marks its list item. Folded callouts around the passage are opened."""
    first, last = lines
    stack: list[Token] = []
    found = False
    for tok in tokens:
        if tok.nesting == -1:
            if stack:
                stack.pop()
            continue
        if tok.type in _LEAVES and tok.map and tok.map[0] <= last and tok.map[1] > first:
            target = tok
            if tok.type == "paragraph_open" and tok.hidden:
                target = next((t for t in reversed(stack) if t.type == "list_item_open"), tok)
            if target.type in _WRAPPED:
                target.meta["cited"] = True if found else anchor
            elif "cited" not in str(target.attrGet("class") or "").split():
                target.attrJoin("class", "cited")
                if not found and target.attrGet("id") is None:
                    target.attrSet("id", anchor)
                elif not found:  # a heading keeps its own id: the anchor goes just before it
                    target.meta["anchor"] = anchor
            found = True
            for outer in stack:
                if outer.tag == "details":
                    outer.attrSet("open", "")
        if tok.nesting == 1:
            stack.append(tok)
    return found


# --------------------------------------------------------------------------------------------
# The parser and the entry points
# --------------------------------------------------------------------------------------------


def _build() -> MarkdownIt:
    md = MarkdownIt(
        "commonmark",
        {"html": True, "linkify": False, "typographer": False},
        renderer_cls=_Renderer,
    )
    md.enable(["table", "strikethrough"])
    md.use(front_matter_plugin)
    md.use(footnote_plugin)
    md.use(tasklists_plugin, enabled=False)
    md.use(gfm_autolink_plugin)
    obsidian.install(md)
    md.core.ruler.after("inline", "vault_links", _md_links)
    return md


_MD = _build()


def _env(
    link_for: LinkFor | None, embed_for: EmbedFor | None, tag_for: TagFor | None
) -> dict[str, Any]:
    return {
        "link_for": link_for or _no_link,
        "embed_for": embed_for or _no_link,
        "tag_for": tag_for,
        "urls": set(),
        "depth": 0,
        "embed_budget": [MAX_EMBEDS],
    }


def render_markdown(
    text: str,
    *,
    link_for: LinkFor | None = None,
    embed_for: EmbedFor | None = None,
    highlight: tuple[int, int] | None = None,
    tag_for: TagFor | None = None,
) -> Rendered:
    """The note body `text` (a ParsedNote.body: frontmatter already removed) as safe HTML.
    `highlight` is a character span in `text` (a chunk's span); the blocks it overlaps get
    class `cited`, the first of them `id="cited"` (the page's `#cited` fragment)."""
    env = _env(link_for, embed_for, tag_for)
    tokens = _MD.parse(obsidian.hide_hidden(text), env)
    nonce = f"{_CITED_ANCHOR}-{secrets.token_hex(8)}"  # renamed after sanitising: see below
    cited = False
    if highlight is not None and (lines := _lines_of(text, highlight)) is not None:
        cited = _mark_cited(tokens, lines, nonce)
    raw = _MD.renderer.render(tokens, _MD.options, env)
    clean = sanitize(raw, env["urls"])
    # Only the renderer knows the nonce, so the one `id="cited"` is the passage, never a note's.
    clean = clean.replace(f'id="{nonce}"', f'id="{_CITED_ANCHOR}"')
    return Rendered(html=clean, headings=env.get("headings", []), cited=cited)


def render_inline(
    text: str, *, link_for: LinkFor | None = None, tag_for: TagFor | None = None
) -> str:
    """One line of Markdown (a property value) as safe inline HTML."""
    env = _env(link_for, None, tag_for)
    return sanitize(_MD.renderInline(obsidian.hide_hidden(text), env), env["urls"])
