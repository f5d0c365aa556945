"""The note page's renderer (vaultbot/web): Obsidian Markdown as safe HTML, the cited passage
marked, links only to notes the page may show, and the page document around it."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

import pytest

from sync.chunk import chunk_note
from sync.links import LinkResolver
from sync.parse import parse_markdown
from tests.corpus import VAULTS, need_corpus
from vaultbot.web import CSP, CSS, SECURITY_HEADERS, note_page, render_markdown, unavailable_page
from vaultbot.web.source import embed_piece, source_span

# --------------------------------------------------------------------------------------------
# A small DOM from html.parser, enough to ask about elements, attributes and text
# --------------------------------------------------------------------------------------------

_VOID = {"br", "hr", "input", "img", "meta", "link", "wbr", "col", "source", "area", "base"}


@dataclass
class El:
    tag: str
    attrs: dict[str, str]
    children: list[El | str] = field(default_factory=list)

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[El]:
        yield self
        for c in self.children:
            if isinstance(c, El):
                yield from c.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None) -> list[El]:
        return [
            e
            for e in self.iter()
            if (tag is None or e.tag == tag) and (cls is None or cls in e.classes)
        ]


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = El("#root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        el = El(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(el)
        if tag not in _VOID:
            self.stack.append(el)

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self.stack) - 1, 0, -1):
            if self.stack[i].tag == tag:
                del self.stack[i:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def dom(markup: str) -> El:
    b = _Builder()
    b.feed(markup)
    b.close()
    return b.root


# --------------------------------------------------------------------------------------------
# The help vaults, with callbacks as the page routes will give them
# --------------------------------------------------------------------------------------------


class Vault:
    def __init__(self, name: str) -> None:
        need_corpus()
        self.root = VAULTS / name
        self.paths = sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )
        self.notes = [p for p in self.paths if p.endswith(".md")]
        self.resolver = LinkResolver(self.paths)

    def text(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def read(self, rel: str) -> str | None:
        f = self.root / rel
        return f.read_text(encoding="utf-8") if f.is_file() else None

    def link_for(self, source: str):
        def link(target: str) -> str | None:
            path = self.resolver.resolve(target, source)
            return None if path is None else "/note/" + hashlib.sha1(path.encode()).hexdigest()

        return link

    def embed_for(self, source: str):
        def embed(target: str) -> str | None:
            name, _, sub = target.partition("#")
            path = self.resolver.resolve(name, source)
            if path is None or not path.endswith(".md"):
                return None
            return embed_piece(self.text(path), sub)

        return embed

    def page(self, rel: str, **kw: object) -> str:
        note = parse_markdown(rel, self.text(rel))
        return note_page(
            title=note.title,
            body=note.body,
            frontmatter=note.frontmatter,
            link_for=self.link_for(rel),
            embed_for=self.embed_for(rel),
            **kw,  # type: ignore[arg-type]
        )


@pytest.fixture(scope="module")
def en() -> Vault:
    return Vault("obsidian-help-en")


@pytest.fixture(scope="module")
def ko() -> Vault:
    return Vault("obsidian-help-ko")


@pytest.mark.parametrize("name", ["obsidian-help-en", "obsidian-help-ko"])
def test_every_help_note_renders(name: str) -> None:
    vault = Vault(name)
    assert len(vault.notes) > 150
    sizes: list[int] = []
    seen = {"h2": 0, "callout": 0, "internal": 0, "table": 0, "task": 0, "embed": 0}
    elapsed = 0.0
    for rel in vault.notes:
        started = time.perf_counter()
        page = vault.page(rel)
        elapsed += time.perf_counter() - started
        sizes.append(len(page.encode("utf-8")))
        root = dom(page)
        assert root.find_all("article", "note"), rel
        seen["h2"] += len(root.find_all("h2"))
        seen["callout"] += len(root.find_all(cls="callout"))
        seen["internal"] += len(root.find_all("a", "internal"))
        seen["table"] += len(root.find_all("table")) - len(root.find_all("table", "props"))
        seen["task"] += len(root.find_all("input"))
        seen["embed"] += len(root.find_all(cls="embed"))
    print(
        f"\n{name}: {len(vault.notes)} notes parsed and rendered as pages in {elapsed:.2f} s "
        f"({elapsed / len(vault.notes) * 1000:.1f} ms each); page size median "
        f"{statistics.median(sizes) / 1024:.1f} KB, max {max(sizes) / 1024:.1f} KB; {seen}"
    )
    assert all(v > 0 for v in seen.values()), seen
    assert statistics.median(sizes) <= 50 * 1024


def test_callouts_note_as_obsidian_shows_it(en: Vault) -> None:
    rel = "Editing and formatting/Callouts.md"
    root = dom(en.page(rel))
    callouts: dict[str, El] = {}
    for c in root.find_all(cls="callout"):
        callouts.setdefault(c.attrs["data-callout"], c)  # the first of each type
    assert {"info", "tip", "faq", "question", "todo", "example", "warning"} <= set(callouts)
    faq = callouts["faq"]  # `> [!faq]-`: folded
    assert faq.tag == "details" and "open" not in faq.attrs
    assert faq.find_all("summary")[0].text() == "Are callouts foldable?"
    assert callouts["info"].tag == "div"
    assert callouts["info"].find_all(cls="callout-title")[0].text() == "Here's a callout title"
    # nested: todo inside question, example inside todo
    assert callouts["todo"] in callouts["question"].iter()
    assert callouts["example"] in callouts["todo"].iter()
    ids = {h.attrs.get("id") for lvl in (2, 3) for h in root.find_all(f"h{lvl}")}
    assert {"change-the-title", "foldable-callouts", "nested-callouts", "supported-types"} <= ids
    # [[#Supported types]] points into the page; [[Internal links|Wikilinks]] to the note
    hrefs = {a.text(): a.attrs["href"] for a in root.find_all("a", "internal")}
    assert hrefs["Supported types"] == "#supported-types"
    assert hrefs["Wikilinks"] == en.link_for(rel)("Internal links")
    # ![[Engelbart.jpg]] is a placeholder, never an <img>
    assert not root.find_all("img")
    assert any("Engelbart" in e.text() for e in root.find_all(cls="embed-image"))


def test_basic_formatting_elements(en: Vault) -> None:
    root = dom(en.page("Editing and formatting/Basic formatting syntax.md"))
    boxes = root.find_all("input")
    assert boxes and all(b.attrs.get("disabled") is not None for b in boxes)
    assert all(b.attrs.get("type") == "checkbox" for b in boxes)
    assert any("checked" in b.attrs for b in boxes) and any("checked" not in b.attrs for b in boxes)
    tables = [t for t in root.find_all("table") if "props" not in t.classes]
    assert tables and tables[0].find_all("th")
    assert "Highlighted text" in [m.text() for m in root.find_all("mark")]
    assert root.find_all(cls="footnotes") and root.find_all("sup", "footnote-ref")
    assert root.find_all("pre") and root.find_all("blockquote")
    # Markdown headings get unique ids (the note's raw HTML <h1> examples keep none)
    ids = [
        h.attrs["id"] for lvl in range(1, 7) for h in root.find_all(f"h{lvl}") if "id" in h.attrs
    ]
    assert len(ids) > 20 and len(ids) == len(set(ids))
    assert "bold-italics-highlights" in ids


def test_properties_box_and_embeds(en: Vault) -> None:
    rel = "Editing and formatting/Callouts.md"
    root = dom(en.page(rel))
    props = root.find_all("table", "props")[0]
    rows = {tr.find_all("th")[0].text(): tr.find_all("td")[0].text() for tr in props.find_all("tr")}
    assert rows["permalink"] == "callouts" and rows["publish"] == "true"
    # ![[Credits#^lucide]] inside a callout: the embedded block's text, rendered inline
    warning = next(c for c in root.find_all(cls="callout") if c.attrs["data-callout"] == "warning")
    embeds = warning.find_all(cls="embed")
    assert embeds and "lucide" in embeds[0].text().lower()


def test_korean_note(ko: Vault) -> None:
    rel = "편집 및 서식/콜아웃.md"
    note = parse_markdown(rel, ko.text(rel))
    chunks = chunk_note(note)
    assert len(chunks) > 3
    chunk = chunks[len(chunks) // 2]
    page = ko.page(rel, highlight=chunk.span, heading_path=chunk.heading_path)
    root = dom(page)
    assert root.find_all("html")[0].attrs["lang"] == "ko"
    assert "word-break:keep-all" in page
    cited = root.find_all(cls="cited")
    assert cited and len([e for e in root.iter() if e.attrs.get("id") == "cited"]) == 1
    cited_text = " ".join(" ".join(e.text().split()) for e in cited)
    words = [w for w in re.findall(r"[가-힣]{2,}", chunk.text)][:5]
    assert words and all(w in cited_text for w in words)
    # the note's first paragraph is not part of this chunk and is not marked
    first_p = root.find_all("article")[0].find_all("p")[0]
    assert "cited" not in first_p.classes
    trail = root.find_all(cls="trail")[0]
    assert trail.text() == " › ".join(chunk.heading_path)


# --------------------------------------------------------------------------------------------
# The cited passage
# --------------------------------------------------------------------------------------------

NOTE = """# Top

First paragraph.

## Middle

Second paragraph, the cited one.

- item one
- item two

```python
print("code")
```

> [!tip]- Folded
> Hidden text.

Last paragraph.
"""


def _span(text: str, part: str) -> tuple[int, int]:
    i = text.index(part)
    return i, i + len(part)


def test_highlight_marks_only_the_cited_blocks() -> None:
    root = dom(render_markdown(NOTE, highlight=_span(NOTE, "Second paragraph")).html)
    cited = root.find_all(cls="cited")
    assert [e.tag for e in cited] == ["p"] and cited[0].attrs["id"] == "cited"
    assert cited[0].text() == "Second paragraph, the cited one."
    assert sum(1 for e in root.iter() if e.attrs.get("id") == "cited") == 1
    assert root.find_all("details")[0].attrs.get("open") is None


def test_highlight_of_list_code_and_folded_callout() -> None:
    r = render_markdown(NOTE, highlight=_span(NOTE, "item two"))
    assert [(e.tag, e.text()) for e in dom(r.html).find_all(cls="cited")] == [("li", "item two")]
    r = render_markdown(NOTE, highlight=_span(NOTE, 'print("code")'))
    (box,) = dom(r.html).find_all(cls="cited")
    assert box.tag == "div" and box.find_all("pre") and box.attrs["id"] == "cited"
    r = render_markdown(NOTE, highlight=_span(NOTE, "Hidden text."))
    root = dom(r.html)
    assert root.find_all("details")[0].attrs.get("open") is not None  # opened to show it
    assert [e.text() for e in root.find_all(cls="cited")] == ["Hidden text."]
    # a span over several blocks marks each; the heading keeps its own id
    r = render_markdown(NOTE, highlight=(NOTE.index("## Middle"), NOTE.index("- item one")))
    root = dom(r.html)
    assert [e.tag for e in root.find_all(cls="cited")] == ["h2", "p"]
    assert root.find_all("h2")[0].attrs["id"] == "middle"
    assert [e.tag for e in root.iter() if e.attrs.get("id") == "cited"] == ["span"]
    assert not render_markdown(NOTE).cited and not render_markdown(NOTE, highlight=(5, 5)).cited


def test_a_note_cannot_plant_the_cited_anchor() -> None:
    text = '<p id="cited">decoy</p>\n\n# Cited\n\nreal passage\n'
    root = dom(render_markdown(text, highlight=_span(text, "real passage")).html)
    anchored = [e for e in root.iter() if e.attrs.get("id") == "cited"]
    assert [e.text() for e in anchored] == ["real passage"]
    assert root.find_all("h1")[0].attrs["id"] == "cited-1"


def test_cited_span_through_embeds(en: Vault) -> None:
    """Chunks count characters of the body with embeds expanded; the page shows the note as
    written: source_span maps each chunk onto it, embedded text onto its `![[embed]]`."""
    checked = 0
    for rel in en.notes:
        text = en.text(rel)
        expanded = parse_markdown(rel, text, resolver=en.resolver, read=en.read)
        written = parse_markdown(rel, text)
        if expanded.body == written.body:
            continue
        for c in chunk_note(expanded):
            a, b = source_span(written.body, expanded.body, expanded.embed_regions, c.span)
            assert 0 <= a <= b <= len(written.body)
            start_in = any(s <= c.span[0] < e for s, e, _ in expanded.embed_regions)
            end_in = any(s < c.span[1] <= e for s, e, _ in expanded.embed_regions)
            head = expanded.body[c.span[0] : c.span[0] + 20]
            tail = expanded.body[c.span[1] - 20 : c.span[1]]
            assert start_in or written.body[a:].startswith(head), (rel, c.span)
            assert end_in or written.body[:b].endswith(tail), (rel, c.span)
            assert (
                start_in or end_in or b - a == c.span[1] - c.span[0] or "![[" in written.body[a:b]
            )
            checked += 1
    assert checked > 50


def test_cited_embed_is_marked() -> None:
    written_text = "Intro.\n\n![[Other]]\n\nOutro."
    other = "Embedded words."
    expanded = parse_markdown(
        "n.md", written_text, read=lambda p: other if p == "Other.md" else None
    )
    written = parse_markdown("n.md", written_text)
    span = _span(expanded.body, "Embedded words.")
    mapped = source_span(written.body, expanded.body, expanded.embed_regions, span)
    assert written.body[mapped[0] : mapped[1]] == "![[Other]]"
    r = render_markdown(written.body, embed_for=lambda t: other, highlight=mapped)
    (cited,) = dom(r.html).find_all(cls="cited")
    assert "Embedded words." in cited.text()
    # a private embed, left out of the expanded body, still maps around it
    expanded = parse_markdown(
        "n.md",
        written_text,
        read=lambda p: "---\nprivate: true\n---\nx" if p == "Other.md" else None,
    )
    assert "![[" not in expanded.body
    outro = _span(expanded.body, "Outro.")
    a, b = source_span(written.body, expanded.body, expanded.embed_regions, outro)
    assert written.body[a:b] == "Outro."


def test_embed_piece() -> None:
    text = "---\ntitle: x\n---\n# A\n\none\n\n## B\n\ntwo ^blk\n\n# C\n\nthree\n"
    assert embed_piece(text).startswith("# A")
    assert embed_piece(text, "B") == "## B\n\ntwo ^blk"
    assert embed_piece(text, "^blk") == "two"
    assert embed_piece(text, "Nope") is None


# --------------------------------------------------------------------------------------------
# Untrusted notes
# --------------------------------------------------------------------------------------------

HOSTILE = """\
# Totally normal note

<script>alert(1)</script>
<SCRIPT SRC=//evil.example/x.js></SCRIPT>

<img src=x onerror=alert(1)>
<svg onload=alert(1)><circle r=1 /></svg>
<a href="javascript:alert(1)">click</a>
<a href="jav&#x09;ascript:alert(1)">tab</a>
<a href="&#106;avascript:alert(1)">entity</a>
<a href=" JaVaScRiPt:alert(1)">case</a>
<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">data</a>
<a href="vbscript:msgbox(1)">vb</a>
<style>body{background:url(https://evil.example/track.png)}</style>
<iframe src="https://evil.example"></iframe>
<object data="https://evil.example/x.swf"></object>
<embed src="https://evil.example/x.swf">
<form action="https://evil.example"><input name=q><button>go</button></form>
<meta http-equiv="refresh" content="0;url=https://evil.example">
<link rel=stylesheet href="https://evil.example/x.css">
<base href="https://evil.example/">
<div style="background:url(https://evil.example/t.png)" onclick="alert(1)">styled</div>
<p onmouseover="alert(1)">hover</p>
<details open ontoggle=alert(1)><summary>t</summary>x</details>

[md link](javascript:alert(1))
[md entity](jav&#x09;ascript:alert(1))
[md data](data:text/html,<script>alert(1)</script>)
![md image](https://evil.example/pixel.png)
<https://fine.example/page>

| a | b |
|---|---|
| <img src=x onerror=alert(1)> | <script>alert(2)</script> |

> [!note] <img src=x onerror=alert(1)>
> <a href="javascript:alert(1)">in a callout</a>

Text with ==<b onclick=alert(1)>mark</b>== and #tag and [[Other note]].

<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>
"""

_BAD_SCHEME = re.compile(r"^(?:javascript|data|vbscript|file):")
_CONTROL = re.compile(r"[\x00-\x20]+")


def _assert_inert(markup: str) -> None:
    low = markup.lower()
    assert "<script" not in low
    for tag in ("iframe", "object", "embed", "form", "meta", "link", "base", "style", "svg", "img"):
        assert f"<{tag}" not in low, tag
    for el in dom(markup).iter():
        for name, value in el.attrs.items():
            assert not re.fullmatch(r"on\w+", name), (el.tag, name)
            assert name != "style", el.tag
            plain = _CONTROL.sub("", html.unescape(value)).lower()
            assert not _BAD_SCHEME.match(plain), (el.tag, name, value)
            assert "url(" not in plain
        if el.tag == "input":
            assert el.attrs.get("disabled") is not None
    assert not re.search(r"<[^>]*\son\w+\s*=", markup)
    assert "evil.example" not in low


def test_hostile_note_stays_inert() -> None:
    r = render_markdown(HOSTILE, link_for=lambda t: "/note/x", highlight=(0, 40))
    _assert_inert(r.html)
    root = dom(r.html)
    assert "Totally normal note" in root.find_all("h1")[0].text()  # the rest still renders
    assert [m.text() for m in root.find_all("mark")] == ["mark"]
    assert "md image" in [e.text() for e in root.find_all(cls="embed-image")]
    assert root.find_all("a", "internal")[0].attrs["href"] == "/note/x"
    assert any(a.attrs.get("href") == "https://fine.example/page" for a in root.find_all("a"))


def test_hostile_note_page_and_properties_stay_inert() -> None:
    page = note_page(
        title='<script>alert("t")</script>',
        body=HOSTILE,
        frontmatter={
            "x": "<img src=x onerror=alert(1)> [a](javascript:alert(1))",
            "tags": ["ok", "<script>"],
            "<b onclick=alert(1)>k</b>": "v",
        },
        heading_path=("<script>",),
        obsidian_url="javascript:alert(1)",
        cited_then="<script>alert('old')</script>",
    )
    body = page.split("<body>", 1)[1]
    _assert_inert(body)
    assert "&lt;script&gt;alert(&#x27;old&#x27;)&lt;/script&gt;" in body
    assert "Open in Obsidian" not in body  # not an obsidian:// URL


def test_hostile_embed_stays_inert() -> None:
    r = render_markdown("![[Evil]]", embed_for=lambda t: HOSTILE)
    _assert_inert(r.html)
    assert "Totally normal note" in r.html


# --------------------------------------------------------------------------------------------
# Links only where the page may link
# --------------------------------------------------------------------------------------------

PRIVATE_LINKS = """\
See [[Secret folder/Diary entry]] and [[Secret folder/Diary entry#Plans|my plans]].
A markdown link: [the diary](Secret%20folder/Diary%20entry.md#Plans).
Raw: <a href="Secret folder/Diary entry.md">raw link</a>
![[Secret folder/Diary entry]]
![[Secret folder/Diary entry#Plans|plans]]
And a shared one: [[Shared note]]. A [reference link][d].

[d]: Secret%20folder/Diary%20entry.md "Diary"
"""


def _link_for(target: str) -> str | None:
    return "/note/shared-token" if target == "Shared note" else None


def test_a_note_the_page_may_not_show_is_never_named() -> None:
    r = render_markdown(PRIVATE_LINKS, link_for=_link_for, embed_for=lambda t: None)
    assert "Secret folder" not in r.html and "Secret%20folder" not in r.html
    assert "Diary entry.md" not in r.html
    root = dom(r.html)
    hrefs = [a.attrs["href"] for a in root.find_all("a") if "href" in a.attrs]
    assert hrefs == ["/note/shared-token"]
    unlinked = [e.text() for e in root.find_all(cls="unlinked")]
    assert unlinked == ["Diary entry", "my plans", "the diary", "reference link"]
    # the raw <a> keeps its text, not its href
    assert "raw link" in r.html


def test_links_carry_heading_fragments() -> None:
    r = render_markdown(
        "[[Shared note#Some Heading]] [x](Shared%20note#Some%20Heading)",
        link_for=lambda t: "/note/tok?s=1&t=2",
    )
    hrefs = [a.attrs["href"] for a in dom(r.html).find_all("a")]
    assert hrefs == ["/note/tok?s=1&t=2#some-heading"] * 2


def test_comments_and_block_ids_are_not_shown() -> None:
    text = "a %%secret remark%% b\n\n%%\nhidden block\n%%\n\n`%%kept%%` end ^blk1\n\n- item ^b2\n"
    out = render_markdown(text).html
    assert "secret" not in out and "hidden block" not in out and "^b" not in out
    assert "<code>%%kept%%</code>" in out
    # blanking keeps offsets: a span after the comment still marks its own block
    root = dom(render_markdown(text, highlight=_span(text, "item")).html)
    assert [e.text() for e in root.find_all(cls="cited")] == ["item"]


def test_embedded_footnotes_stay_apart() -> None:
    r = render_markdown(
        "Outer[^1].\n\n![[E]]\n\n[^1]: outer note",
        embed_for=lambda t: "Inner[^1].\n\n[^1]: inner note",
    )
    root = dom(r.html)
    ids = [e.attrs["id"] for e in root.iter() if "id" in e.attrs]
    assert len(ids) == len(set(ids))
    (embed,) = root.find_all(cls="embed")
    assert "inner note" in embed.text() and "outer note" not in embed.text()
    assert len(embed.find_all("li", "footnote-item")) == 1
    assert len(root.find_all("li", "footnote-item")) == 2


def test_properties_and_tags_follow_the_callbacks() -> None:
    page = note_page(
        title="T",
        body="Body #topic/sub and #123 and #done.",
        frontmatter={
            "up": "[[Secret folder/Diary entry]]",
            "related": ["[[Shared note]]", "plain"],
            "tags": ["topic/sub", "other"],
            "count": 3,
            "meta": {"a": 1},
        },
        link_for=_link_for,
        tag_for=lambda tag: None if tag == "other" else f"/tag/{tag}",
    )
    assert "Secret folder" not in page
    root = dom(page)
    rows = {
        tr.find_all("th")[0].text(): tr.find_all("td")[0]
        for tr in root.find_all("table", "props")[0].find_all("tr")
    }
    assert rows["up"].find_all(cls="unlinked")[0].text() == "Diary entry"
    assert [a.attrs["href"] for a in rows["related"].find_all("a")] == ["/note/shared-token"]
    assert "plain" in rows["related"].text() and rows["count"].text() == "3"
    assert [(e.tag, e.text()) for e in rows["tags"].find_all(cls="tag")] == [
        ("a", "#topic/sub"),
        ("span", "#other"),
    ]
    body_tags = root.find_all("article")[0].find_all(cls="tag")
    assert [(e.tag, e.attrs.get("href")) for e in body_tags] == [
        ("a", "/tag/topic/sub"),
        ("a", "/tag/done"),
    ]  # `#123` is no tag in Obsidian


def test_embeds_are_bounded() -> None:
    from vaultbot.web.markdown import MAX_EMBED_DEPTH, MAX_EMBEDS

    calls: list[str] = []

    def fan_out(target: str) -> str:
        calls.append(target)
        return "![[x]]\n" * 3

    started = time.perf_counter()
    r = render_markdown("![[a]]\n" * 500, embed_for=fan_out)
    assert len(calls) == MAX_EMBEDS and r.html.count('class="embed"') == MAX_EMBEDS
    assert time.perf_counter() - started < 10
    # a note embedding itself stops at the depth limit
    r = render_markdown("![[self]]", embed_for=lambda t: "again ![[self]]\n\n![[self]]")
    assert r.html.count('<div class="embed">') <= 2**MAX_EMBED_DEPTH


def test_odd_text_does_not_break_the_renderer() -> None:
    for text in (
        "",
        "a\x00b",
        "lone \ud800 surrogate [[x\udc00]]",
        "> " * 500 + "deep",
        "[" * 5000,
    ):
        render_markdown(text, link_for=lambda t: "/n", highlight=(0, 10))


# --------------------------------------------------------------------------------------------
# The page document
# --------------------------------------------------------------------------------------------


def test_page_is_self_contained_and_matches_its_csp(en: Vault) -> None:
    page = en.page(
        "Editing and formatting/Callouts.md",
        modified=1_700_000_000.0,
        obsidian_url="obsidian://open?vault=help&file=Callouts",
        heading_path=("Callouts", "Foldable callouts"),
    )
    style = re.search(r"<style>(.*?)</style>", page, re.S).group(1)  # type: ignore[union-attr]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in CSP
    for directive in (
        "default-src 'none'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ):
        assert directive in CSP
    assert SECURITY_HEADERS["Content-Security-Policy"] == CSP
    assert SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"
    # nothing fetched from anywhere: no src, no stylesheet links, no url() or @import in CSS
    assert not re.search(r"\ssrc=", page) and "<link" not in page and "<script" not in page
    assert "url(" not in CSS and "@import" not in CSS and "@font-face" not in CSS
    assert "prefers-color-scheme:dark" in CSS and "word-break:keep-all" in CSS
    assert "overflow-wrap:anywhere" in CSS and "Noto Sans KR" in CSS
    root = dom(page)
    assert root.find_all("time")[0].attrs["datetime"] == "2023-11-14T22:13:20+00:00"
    assert root.find_all("a", "open")[0].attrs["href"].startswith("obsidian://open?vault=help")
    assert root.find_all("title")[0].text() == "Callouts"
    assert '<meta name="referrer" content="no-referrer">' in page
    assert len(page.encode("utf-8")) <= 50 * 1024


def test_typical_page_size(en: Vault, ko: Vault) -> None:
    for vault, rel in ((en, "Getting started/Link notes.md"), (ko, "편집 및 서식/콜아웃.md")):
        size = len(vault.page(rel).encode("utf-8"))
        assert size <= 50 * 1024, (rel, size)
    assert len(CSS.encode()) <= 8 * 1024


def test_changed_passage_notice() -> None:
    page = note_page(title="T", body="Now.\n", cited_then="Then <b>bold</b> & more")
    notice = dom(page).find_all("aside", "notice")[0]
    assert "changed since the answer" in notice.text()
    assert "Then <b>bold</b> & more" in notice.find_all("pre")[0].text()
    assert not dom(note_page(title="T", body="Now.\n")).find_all("aside")


def test_unavailable_page_is_one_page() -> None:
    page = unavailable_page()
    assert page == unavailable_page()
    assert "unavailable" in page.lower()
    assert re.search(r"<style>(.*?)</style>", page, re.S).group(1) == CSS  # type: ignore[union-attr]
    text = dom(page).text()
    for word in ("expired", "private", "deleted", "tamper", "moved"):
        assert word not in text.lower()
