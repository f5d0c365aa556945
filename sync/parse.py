"""Obsidian Markdown parsing: frontmatter, title, aliases, tags, links, and note embeds.

`parse_markdown` returns a `ParsedNote` whose `body` is the text to chunk: the note without its
frontmatter, with `![[note]]` / `![[note#heading]]` / `![[note#^block]]` embeds replaced by the
text they show in Obsidian. Code (fenced and inline) and comments (`%% %%`, `<!-- -->`) are
masked before looking for links, tags and embeds, so examples in code never count.

The line-structure helpers (`fenced_lines`, `heading_of`, `clean_inline`) are shared with
`sync.chunk`, so both agree on what is code and what is a heading.
"""

from __future__ import annotations

import datetime as _dt
import posixpath
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import yaml
from frontmatter import YAMLHandler

from engine.models import Link, ParsedNote, is_private_value, mentions_private
from sync.links import LinkResolver, normalize_target

__all__ = [
    "clean_inline",
    "code_mask",
    "fence_regions",
    "fenced_lines",
    "heading_of",
    "parse_markdown",
    "quote_depth",
    "split_frontmatter",
]

try:  # the C loader is ~10x faster; fall back when libyaml is missing
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _YamlLoader = yaml.SafeLoader


class _SafeYAMLHandler(YAMLHandler):
    """python-frontmatter's YAML handler, pinned to a safe loader whatever a caller passes: a
    note is untrusted input, and a `!!python/object` tag must never build or run anything (a
    safe loader refuses it, so the block is bad YAML and fails closed like any other)."""

    def load(self, fm: str, **kwargs: object) -> Any:
        kwargs["Loader"] = _YamlLoader
        return super().load(fm, **kwargs)


_YAML = _SafeYAMLHandler()

Reader = Callable[[str], "str | None"]
Region = tuple[int, int, tuple[str, ...]]  # (start, end, notes the text came from)
Expanded = tuple[str, list[Region]]

# ---------------------------------------------------------------------------------------------
# Line structure: code fences and headings
# ---------------------------------------------------------------------------------------------

# A fence may sit inside a blockquote/callout (`> ```css`) and, in practice, be indented in a
# list item, so any indentation is accepted.
_FENCE_RE = re.compile(r"^((?:[ \t]*>)*)[ \t]*(`{3,}|~{3,})(.*)$")
_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")


def fence_regions(lines: list[str]) -> list[int]:
    """For each line, 0 if it is outside fenced code, else the number (1, 2, ...) of the fenced
    block it belongs to (fence lines included).

    An unclosed fence runs to the end of the text (CommonMark), except that a fence opened
    inside a blockquote ends with the blockquote."""
    regions = [0] * len(lines)
    region = 0
    open_char = ""
    open_len = 0
    open_depth = 0
    for i, line in enumerate(lines):
        if not open_char and "`" not in line and "~" not in line:
            continue
        m = _FENCE_RE.match(line)
        if open_char:
            if quote_depth(line) < open_depth:
                open_char = ""  # the quote holding the fence ended; this line is outside
            else:
                regions[i] = region
                if (
                    m
                    and m.group(2)[0] == open_char
                    and len(m.group(2)) >= open_len
                    and not m.group(3).strip()
                    and m.group(1).count(">") == open_depth
                ):
                    open_char = ""
                continue
        if m:
            fence, info = m.group(2), m.group(3)
            if fence[0] == "`" and "`" in info:
                continue  # ```code``` on one line is an inline span, not a fence
            open_char, open_len, open_depth = fence[0], len(fence), m.group(1).count(">")
            region += 1
            regions[i] = region
    return regions


def fenced_lines(lines: list[str]) -> list[bool]:
    """For each line, whether it belongs to a fenced code block (fence lines included)."""
    return [r > 0 for r in fence_regions(lines)]


def quote_depth(line: str) -> int:
    """How many `>` blockquote markers start the line."""
    depth = 0
    for ch in line:
        if ch == ">":
            depth += 1
        elif ch not in " \t":
            break
    return depth


def heading_of(line: str) -> tuple[int, str] | None:
    """(level, raw text) if `line` is an ATX heading (`## Title`), else None. `#tag` is not."""
    if not line or line.lstrip(" ")[:1] != "#":
        return None
    m = _HEADING_RE.match(line)
    if not m:
        return None
    return len(m.group(1)), (m.group(2) or "").strip()


_WIKI_DISPLAY_RE = re.compile(r"!?\[\[([^\[\]|]*?)(?:\|([^\[\]]*))?\]\]")
_MD_LINK_TEXT_RE = re.compile(r"!?\[([^\[\]]*)\]\([^)]*\)")
_HTML_TAG_RE = re.compile(r"<[^<>\n]+>")
_EMPH_RE = re.compile(r"(\*\*|__|==|~~|`)")
_SINGLE_EMPH_RE = re.compile(r"(?<![\w*])[*_](?=\S)(.+?)(?<=\S)[*_](?![\w*])")
_BLOCK_ID_END_RE = re.compile(r"(?:^|[ \t])\^[A-Za-z0-9-]+[ \t]*$")


def clean_inline(text: str) -> str:
    """Plain text of a heading: `[[a|b]]` -> b, `[[a#h]]` -> `a > h`, `[t](u)` -> t, no
    emphasis markers, code ticks, HTML tags or trailing block id."""

    def wiki(m: re.Match[str]) -> str:
        if m.group(2) is not None and m.group(2).strip():
            return m.group(2).strip()
        target = m.group(1)
        return " > ".join(p.strip().lstrip("^") for p in target.split("#") if p.strip())

    text = _BLOCK_ID_END_RE.sub("", text)
    text = _WIKI_DISPLAY_RE.sub(wiki, text)
    text = _MD_LINK_TEXT_RE.sub(lambda m: m.group(1), text)
    text = _HTML_TAG_RE.sub("", text)
    text = _EMPH_RE.sub("", text)
    text = _SINGLE_EMPH_RE.sub(lambda m: m.group(1), text)
    return " ".join(text.split())


def _heading_key(text: str) -> str:
    """How a `#heading` link subpath is compared with heading text: Obsidian drops characters
    that cannot appear in a link (`#|^:[]%`), so compare on words only, case-insensitively."""
    return " ".join(re.sub(r"[^\w]+", " ", clean_inline(text).casefold()).split())


# ---------------------------------------------------------------------------------------------
# Masking code and comments (same length, newlines kept, so offsets stay valid)
# ---------------------------------------------------------------------------------------------

_INLINE_CODE_RE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_COMMENT_RE = re.compile(r"%%.*?%%|<!--.*?-->", re.DOTALL)


def _blank(s: str) -> str:
    return re.sub(r"[^\n]", " ", s)


def code_mask(text: str) -> str:
    """`text` with fenced code, inline code and comments replaced by spaces (same length)."""
    lines = text.split("\n")
    flags = fenced_lines(lines)
    out = []
    for line, fenced in zip(lines, flags, strict=True):
        if fenced:
            out.append(" " * len(line))
        elif "`" in line:
            out.append(_INLINE_CODE_RE.sub(lambda m: " " * len(m.group(0)), line))
        else:
            out.append(line)
    masked = "\n".join(out)
    if "%%" in masked or "<!--" in masked:
        masked = _COMMENT_RE.sub(lambda m: _blank(m.group(0)), masked)
    return masked


# ---------------------------------------------------------------------------------------------
# Frontmatter
# ---------------------------------------------------------------------------------------------

_FM_OPEN_RE = re.compile(r"---[ \t]*\n")
_FM_CLOSE_RE = re.compile(r"^(?:---|\.\.\.)[ \t]*$", re.MULTILINE)


def split_frontmatter(text: str) -> tuple[str | None, int]:
    """(YAML source or None, offset where the body starts). Only a `---` block on the very
    first line counts, and it must be closed by `---` (or `...`); otherwise it is body text.

    Obsidian's rules, so not `frontmatter.parse`: that one strips the text (embed regions need
    the body's offsets), opens after blank lines and on `----`, and never closes on `...`."""
    m = _FM_OPEN_RE.match(text)
    if not m:
        return None, 0
    close = _FM_CLOSE_RE.search(text, m.end())
    if not close:
        return None, 0
    body_start = close.end()
    if text[body_start : body_start + 1] == "\n":
        body_start += 1
    return text[m.end() : close.start()], body_start


def _json_safe(value: Any) -> Any:
    """YAML gives dates and other types the registry cannot store as JSON; keep them as text."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(v) for v in value]
    if isinstance(value, _dt.date | _dt.datetime | _dt.time):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _load_frontmatter(source: str, note: ParsedNote) -> dict[str, Any]:
    try:
        data = _YAML.load(source)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()
        note.warnings.append(f"invalid YAML frontmatter: {' '.join(first[:3])}")
        # Fail closed: visibility is judged on the raw text (ParsedNote.private), and what
        # can be read entry by entry (title, tags, aliases) is kept.
        note.frontmatter_error = source
        return _salvage(source)
    if data is None:
        return {}
    if not isinstance(data, dict):
        note.warnings.append(f"frontmatter ignored: expected a mapping, got {type(data).__name__}")
        note.frontmatter_error = source
        return {}
    return _json_safe(data)


def _salvage(source: str) -> dict[str, Any]:
    """The top-level entries of broken frontmatter that parse on their own (`title: A: B`
    breaks the whole block, while the `tags:` entry below it is fine)."""
    entries: list[list[str]] = []
    for line in source.split("\n"):
        if line[:1] not in ("", " ", "\t", "-", "#") or not entries:
            entries.append([line])
        else:
            entries[-1].append(line)
    out: dict[str, Any] = {}
    for entry in entries:
        try:
            data = _YAML.load("\n".join(entry))
        except yaml.YAMLError:
            continue
        if isinstance(data, dict):
            out.update(_json_safe(data))
    return out


def _embedded_private(fm_source: str | None) -> bool:
    """Does an embedded note's frontmatter make it private (unparseable and naming the key
    counts, as for the note itself)?"""
    if fm_source is None:
        return False
    try:
        data = _YAML.load(fm_source)
    except yaml.YAMLError:
        return mentions_private(fm_source)
    if not isinstance(data, dict):
        return mentions_private(fm_source)
    return is_private_value(data.get("private"))


def _str_list(value: Any, split: str | None) -> list[str]:
    """A frontmatter field that may be a string or a list (Obsidian accepts both)."""
    if value is None:
        return []
    items: list[Any] = list(value) if isinstance(value, list | tuple) else [value]
    out: list[str] = []
    for item in items:
        if item is None or isinstance(item, dict | list):
            continue
        s = str(item)
        parts = re.split(split, s) if split and isinstance(item, str) else [s]
        out.extend(p.strip() for p in parts if p.strip())
    return out


# ---------------------------------------------------------------------------------------------
# Links and tags
# ---------------------------------------------------------------------------------------------

_WIKILINK_RE = re.compile(r"(!?)\[\[([^\[\]\n]+?)\]\]")
_MDLINK_RE = re.compile(
    r"(!?)\[((?:[^\[\]\n]|\[[^\[\]\n]*\])*)\]\(\s*(<[^>\n]+>|[^)\s]+)(?:\s+(?:\"[^\"\n]*\"|'[^'\n]*'))?\s*\)"
)
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# Obsidian: `#` at the start or after whitespace, then letters (any script), digits, `_`, `-`,
# `/`; punctuation ends the tag. At least one character must be something other than a digit.
_TAG_RE = re.compile(r"(?<!\S)#([^\s!-,.:-@\[-^`{-~]+)")
_TAG_HAS_NAME_RE = re.compile(r"[^\d/\-]")


def _parse_wikilink(inner: str, embed: bool, self_path: str) -> Link | None:
    alias = None
    if "|" in inner:
        inner, alias = inner.split("|", 1)
        inner = inner.rstrip("\\")  # `[[a\|b]]` inside tables
        alias = alias.strip() or None
    target, _, sub = inner.partition("#")
    target = normalize_target(target)
    heading = block = None
    if sub:
        parts = [p.strip() for p in sub.split("#") if p.strip()]
        if parts and parts[-1].startswith("^"):
            block = parts.pop()[1:] or None
        heading = "#".join(parts) or None
    if not target:
        if heading is None and block is None:
            return None
        target = self_path  # `[[#Heading]]` points into this note
    return Link(target=target, heading=heading, block=block, alias=alias, embed=embed)


def _parse_mdlink(text: str, url: str, embed: bool, self_path: str) -> Link | None:
    url = url.strip()
    if url.startswith("<") and url.endswith(">"):
        url = url[1:-1].strip()
    if not url or _SCHEME_RE.match(url) or url.startswith("//"):
        return None  # web, mailto:, obsidian:// ...: not a vault file
    path, _, sub = url.partition("#")
    path = unquote(path)
    sub = unquote(sub)
    heading = block = None
    if sub.startswith("^"):
        block = sub[1:] or None
    elif sub:
        heading = sub
    if not path:
        if heading is None and block is None:
            return None
        path = self_path
    elif path.startswith("./") or path.startswith("../"):
        folder = posixpath.dirname(self_path)
        path = posixpath.normpath(posixpath.join(folder, path))
    return Link(
        target=normalize_target(path),
        heading=heading,
        block=block,
        alias=text.strip() or None,
        embed=embed,
    )


def _find_links(masked: str, self_path: str) -> list[Link]:
    found: list[tuple[int, Link]] = []
    for m in _WIKILINK_RE.finditer(masked):
        link = _parse_wikilink(m.group(2), bool(m.group(1)), self_path)
        if link:
            found.append((m.start(), link))
    if "](" in masked:
        for m in _MDLINK_RE.finditer(masked):
            link = _parse_mdlink(m.group(2), m.group(3), bool(m.group(1)), self_path)
            if link:
                found.append((m.start(), link))
    found.sort(key=lambda x: x[0])
    return list(dict.fromkeys(link for _, link in found))


def _find_tags(masked: str) -> list[str]:
    # Link targets and URLs are no place for tags (`[[a| #b]]`, `(x.md#h)`).
    if "[" in masked:
        masked = _WIKILINK_RE.sub(lambda m: " " * len(m.group(0)), masked)
        masked = _MDLINK_RE.sub(lambda m: " " * len(m.group(0)), masked)
    out = []
    for m in _TAG_RE.finditer(masked):
        tag = m.group(1).strip("/")
        if tag and _TAG_HAS_NAME_RE.search(tag):
            out.append(tag)
    return out


def _dedupe_tags(tags: list[str]) -> list[str]:
    """Obsidian tags are case-insensitive; the first spelling wins, order is kept."""
    seen: dict[str, str] = {}
    for t in tags:
        t = t.strip().lstrip("#").strip("/")
        if t and t.casefold() not in seen:
            seen[t.casefold()] = t
    return list(seen.values())


# ---------------------------------------------------------------------------------------------
# Embeds
# ---------------------------------------------------------------------------------------------

_BLOCK_ID_RE = re.compile(r"(?:^|[ \t]|(?<=\]\]))\^([A-Za-z0-9-]+)[ \t]*$")
_LIST_ITEM_RE = re.compile(r"^([ \t]*)(?:[-*+]|\d+[.)])[ \t]")
_QUOTE_PREFIX_RE = re.compile(r"^[ \t]*(?:>[ \t]?)+$")
_LIST_PREFIX_RE = re.compile(r"^[ \t]*(?:[-*+]|\d+[.)])[ \t]+$")
_NOTE_EXTS = (".md",)


def _section(body: str, heading: str) -> str | None:
    """The text under `heading` (nested `A#B` allowed) up to the next heading of the same or a
    higher level, heading line included; None when there is no such heading."""
    lines = body.split("\n")
    fenced = fenced_lines(lines)
    heads = [
        (i, h[0], _heading_key(h[1]))
        for i, line in enumerate(lines)
        if not fenced[i] and (h := heading_of(line)) is not None
    ]
    lo, hi = 0, len(lines)
    for part in heading.split("#"):
        key = _heading_key(part)
        if not key:
            continue
        match = next(((i, lvl) for i, lvl, k in heads if lo <= i < hi and k == key), None)
        if match is None:
            return None
        start, level = match
        end = next((i for i, lvl, _ in heads if i > start and lvl <= level), len(lines))
        lo, hi = start, min(end, hi)
    return "\n".join(lines[lo:hi]).strip("\n")


def _block(body: str, block_id: str) -> str | None:
    """The paragraph, list item (with its children) or quote/callout/table carrying `^id`."""
    lines = body.split("\n")
    fenced = fenced_lines(lines)
    idx = None
    for i, line in enumerate(lines):
        if fenced[i] or "^" not in line:
            continue
        m = _BLOCK_ID_RE.search(line)
        if m and m.group(1) == block_id:
            idx = i
            break
    if idx is None:
        return None
    line = lines[idx]
    own = line[: _BLOCK_ID_RE.search(line).start()].rstrip()  # type: ignore[union-attr]
    if not own.strip():
        # `^id` on its own line names the block just above it (blank lines allowed between).
        end = idx
        while end > 0 and not lines[end - 1].strip():
            end -= 1
        if end == 0:
            return None
        start = _group_start(lines, fenced, end - 1)
        return "\n".join(lines[start:end]).strip("\n")
    item = _LIST_ITEM_RE.match(line)
    if item:
        indent = len(item.group(1).expandtabs(4))
        end = idx + 1
        while end < len(lines) and lines[end].strip():
            nxt = lines[end]
            if len(nxt.expandtabs(4)) - len(nxt.expandtabs(4).lstrip()) <= indent:
                break
            end += 1
        return "\n".join([own, *lines[idx + 1 : end]])
    start = _group_start(lines, fenced, idx)
    return "\n".join([*lines[start:idx], own])


def _group_start(lines: list[str], fenced: list[bool], i: int) -> int:
    """First line of the blank-line-delimited block containing line i (fences kept whole)."""
    while i > 0 and (lines[i - 1].strip() or (fenced[i - 1] and fenced[i])):
        i -= 1
    return i


def _demote_headings(text: str) -> str:
    """Embedded headings become bold lines: they belong to the embedded note, and as real
    headings they would re-parent the rest of the embedding note's section when chunking."""
    if "#" not in text:
        return text
    lines = text.split("\n")
    fenced = fenced_lines(lines)
    for i, line in enumerate(lines):
        if not fenced[i] and (h := heading_of(line)) is not None and h[1]:
            lines[i] = f"**{h[1]}**"
    return "\n".join(lines)


class _Embedder:
    """Expands note embeds recursively for one `parse_markdown` call."""

    def __init__(
        self,
        resolver: LinkResolver | None,
        read: Reader | None,
        max_depth: int,
        note: ParsedNote,
    ) -> None:
        self.resolver = resolver
        self.read = read
        self.max_depth = max_depth
        self.note = note
        self._bodies: dict[str, str | None] = {}
        self._private: dict[str, bool] = {}

    def _resolve(self, target: str, source: str) -> str | None:
        if self.resolver is not None:
            return self.resolver.resolve(target, source)
        if self.read is None:
            return None
        for cand in (target, target + ".md"):  # no resolver: exact vault paths only
            if self._body(cand) is not None:
                return cand
        return None

    def _body(self, path: str) -> str | None:
        if path not in self._bodies:
            raw = self.read(path) if self.read else None
            if raw is None:
                self._bodies[path] = None
            else:
                raw = _normalize_newlines(raw)
                fm_source, start = split_frontmatter(raw)
                self._bodies[path] = raw[start:]
                self._private[path] = _embedded_private(fm_source)
        return self._bodies[path]

    def _missing(self, what: str, why: str) -> None:
        if what not in self.note.missing_embeds:
            self.note.missing_embeds.append(what)
        self.note.warnings.append(f"missing embed {why}")

    def expand(self, text: str, source: str, stack: tuple[str, ...], depth: int) -> Expanded:
        """`text` with its embeds replaced, and where each replacement landed with the notes
        its text came from (nested embeds included): what a chunk's provenance is made of."""
        if depth >= self.max_depth or "![[" not in text:
            return text, []
        masked = code_mask(text)
        out: list[str] = []
        regions: list[Region] = []
        size = 0
        pos = 0
        for m in _WIKILINK_RE.finditer(masked):
            if not m.group(1):
                continue
            line_start = masked.rfind("\n", 0, m.start()) + 1
            line_end = masked.find("\n", m.start())
            if heading_of(masked[line_start : line_end if line_end >= 0 else len(masked)]):
                continue  # a heading names its section: it never takes another note's text
            link = _parse_wikilink(m.group(2), True, source)
            if link is None:
                continue
            found = self._embed_text(link, m.group(2), source, stack, depth)
            if found is None:
                continue
            replacement, paths = found
            before = text[pos : m.start()]
            fitted = _fit(text, m.start(), m.end(), replacement)
            out += [before, fitted]
            size += len(before)
            if paths:
                regions.append((size, size + len(fitted), paths))
            size += len(fitted)
            pos = m.end()
        if not out:
            return text, []
        out.append(text[pos:])
        return "".join(out), regions

    def _embed_text(
        self, link: Link, raw: str, source: str, stack: tuple[str, ...], depth: int
    ) -> tuple[str, tuple[str, ...]] | None:
        written = raw.split("|", 1)[0].rstrip("\\").strip()
        path = self._resolve(link.target, source)
        if path is None:
            self._missing(link.target, f"{written}: target not found")
            return None
        if not path.lower().endswith(_NOTE_EXTS):
            return None  # images, PDFs, audio, canvases...: left as the link they are
        if path in stack:
            self.note.warnings.append(
                f"embed ![[{written}]] not expanded: a note never includes itself (cycle)"
            )
            return None
        body = self._body(path)
        if body is None:
            self._missing(link.target, f"{written}: file could not be read")
            return None
        if path not in self.note.embedded:
            self.note.embedded.append(path)  # also when left out: it is re-read if it changes
        if self._private.get(path) and not self.note.private:
            # A private note's text never enters a note others may see; the rest of the
            # note stays searchable. (The note itself is indexed, as private.)
            if path not in self.note.private_embeds:
                self.note.private_embeds.append(path)
                self.note.warnings.append(f"embed of a private note left out: {path}")
            return "", ()
        if link.block:
            piece = _block(body, link.block)
        elif link.heading:
            piece = _section(body, link.heading)
        else:
            piece = body.strip("\n")
        if piece is None:
            self._missing(written, f"{written}: heading or block not found in {path}")
            return None
        piece, inner = self.expand(piece, path, (*stack, path), depth + 1)
        paths = (path, *(p for _, _, ps in inner for p in ps if p != path))
        return _demote_headings(piece).strip("\n"), tuple(dict.fromkeys(paths))


def _fit(text: str, start: int, end: int, replacement: str) -> str:
    """Embedded text placed where the embed was: inside a callout/quote every line gets the
    quote prefix, inside a list item the continuation lines are indented, so the surrounding
    block stays one block."""
    line_start = text.rfind("\n", 0, start) + 1
    prefix = text[line_start:start]
    lines = replacement.split("\n")
    if len(lines) == 1 or not prefix:
        return replacement
    if _QUOTE_PREFIX_RE.match(prefix):
        bare = prefix.rstrip()
        return "\n".join([lines[0]] + [prefix + ln if ln.strip() else bare for ln in lines[1:]])
    if _LIST_PREFIX_RE.match(prefix):
        pad = " " * len(prefix.expandtabs(4))
        return "\n".join([lines[0]] + [pad + ln if ln.strip() else "" for ln in lines[1:]])
    return replacement


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------


def _normalize_newlines(text: str) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _stem(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base else base


def parse_markdown(
    path: str,
    text: str,
    resolver: LinkResolver | None = None,
    read: Reader | None = None,
    max_embed_depth: int = 3,
) -> ParsedNote:
    """Parse one Markdown note. `path` is vault-relative (POSIX), `text` its content.

    `resolver` finds embed targets and `read(path)` returns a vault file's raw text (or None);
    without `read`, embeds are left unexpanded. Never raises on malformed input: problems are
    reported in `warnings`."""
    text = _normalize_newlines(text)
    note = ParsedNote(path=path, kind="md", title=_stem(path))

    fm_source, body_start = split_frontmatter(text)
    if fm_source is not None:
        note.frontmatter = _load_frontmatter(fm_source, note)
    fm = note.frontmatter

    title = fm.get("title")
    if isinstance(title, str) and title.strip():
        note.title = title.strip()

    alias_value = fm.get("aliases", fm.get("alias"))
    note.aliases = list(dict.fromkeys(_str_list(alias_value, r","))) if alias_value else []

    own = text[body_start:]
    masked = code_mask(own)
    note.links = _find_links(masked, path)

    tag_value = fm.get("tags", fm.get("tag"))
    fm_tags = _str_list(tag_value, r"[,\s]+") if tag_value is not None else []
    note.tags = _dedupe_tags(fm_tags + _find_tags(masked))

    regions: list[Region] = []
    if read is not None and max_embed_depth > 0 and "![[" in own:
        expander = _Embedder(resolver, read, max_embed_depth, note)
        own, regions = expander.expand(own, path, (path,), 0)
    lead = len(own) - len(own.lstrip("\n"))
    note.body = own.strip("\n").rstrip()
    for start, end, paths in regions:  # offsets into the trimmed body
        start, end = max(0, start - lead), min(len(note.body), end - lead)
        if end > start:
            note.embed_regions.append((start, end, paths))
    return note
