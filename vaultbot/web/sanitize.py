"""The last step before note HTML leaves the server: an explicit allow-list (nh3).

Notes are untrusted: they may hold raw HTML, scripts, event handlers, `javascript:` links.
Everything the renderer produced, and everything a note smuggled in, passes through here.
"""

from __future__ import annotations

from collections.abc import Collection

import nh3

__all__ = ["ALLOWED_TAGS", "sanitize"]

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "code", "dd", "del", "details", "div",
        "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "input", "kbd", "li",
        "mark", "ol", "p", "pre", "q", "s", "section", "small", "span", "strong", "sub",
        "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
    }
)  # fmt: skip
# Tags removed with their content (the rest of a disallowed tag's content stays, as text).
_DROP_WITH_CONTENT = frozenset({"script", "style", "template", "noscript", "title", "textarea"})
_ATTRIBUTES = {
    "*": {"class", "id", "title", "lang", "dir"},
    "a": {"href"},
    "ol": {"start"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "details": {"open", "data-callout"},
    "div": {"data-callout"},
    "input": {"checked", "disabled"},
}
_TAG_VALUES = {"input": {"type": {"checkbox"}}}
# A note's checkbox is never a control: every <input> is disabled.
_FORCED = {"input": {"disabled": "disabled"}}
# Hrefs the page can use: the web, mail, the Obsidian app. data:, javascript:, vbscript:, file:
# and every other scheme are dropped by nh3 (it decodes entities and strips tabs first).
URL_SCHEMES = frozenset({"http", "https", "mailto", "obsidian"})
_EXTERNAL_PREFIXES = ("http://", "https://", "mailto:", "obsidian://")


def sanitize(html: str, own_urls: Collection[str] = ()) -> str:
    """`html` reduced to the allow-list. Relative hrefs survive only when the renderer made them
    (`own_urls`: what link_for returned) or when they are in-page fragments, so a note's raw
    `<a href="Private/diary.md">` never names a path. No element keeps `id="cited"`: the
    renderer names the cited passage with an unguessable id and renames it afterwards."""
    urls = frozenset(own_urls)
    html = html.encode("utf-8", "replace").decode("utf-8")  # lone surrogates: nh3 needs UTF-8

    def keep(tag: str, attr: str, value: str) -> str | None:
        if attr == "href":
            v = value.strip()
            if v in urls or v.startswith("#") or v.lower().startswith(_EXTERNAL_PREFIXES):
                return value
            return None
        if attr == "id" and value.strip().lower() == "cited":
            return None  # a note cannot plant our anchor elsewhere
        return value

    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes={k: set(v) for k, v in _ATTRIBUTES.items()},
        attribute_filter=keep,
        tag_attribute_values={k: {a: set(v) for a, v in d.items()} for k, d in _TAG_VALUES.items()},
        set_tag_attribute_values=_FORCED,
        url_schemes=set(URL_SCHEMES),
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
