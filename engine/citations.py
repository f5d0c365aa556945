"""Citations: numbered sources, links to the note, and verification of `[n]` markers.

A generator may invent markers (`[7]` with three sources). They are removed while streaming,
so what the user sees is exactly what the final answer holds, and counted for the query log."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, unquote

from engine.models import Hit


@dataclass(frozen=True)
class Citation:
    n: int
    path: str
    title: str
    heading: str  # heading path joined with " > "
    page: int | None
    snippet: str
    score: float
    uri: str  # obsidian://open link
    url: str | None  # http link from VAULTBOT_NOTE_URL, if configured
    chunk_id: str
    # vaultbot's own note page (a signed link, vaultbot/web/links.py) when serve runs: filled
    # at delivery by Asker's page_link, never cached (a link carries the asking place's scope).
    page_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Citation:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})

    @property
    def link(self) -> str:
        """The link a chat message should use: the note page, else http if configured, else
        obsidian://."""
        return self.page_url or self.url or self.uri

    @property
    def label(self) -> str:
        last = self.heading.split(" > ")[-1] if self.heading else ""
        label = self.title + (f" › {last}" if last and last != self.title else "")
        return label + (f" (p. {self.page})" if self.page else "")


# The link ends where Slack's `<uri|label>`, Markdown's `(uri)`, a code span or JSON's quotes
# end it: the path itself is percent-encoded, so none of those characters is part of it.
_OBSIDIAN_FILE_RE = re.compile(r"obsidian://open\?[^\s|>)`\"'\]]*?file=([^&|>)`\"'\s\]]+)")


def cited_paths(text: str) -> tuple[str, ...]:
    """The vault paths of the `obsidian://` links in a message vaultbot sent (its sources):
    how a thread's earlier answers are tied back to their notes."""
    out = []
    for m in _OBSIDIAN_FILE_RE.finditer(text.replace("&amp;", "&")):
        path = unquote(m.group(1))
        # obsidian_uri drops a note's `.md` and keeps any other file's extension
        out.append(path if path.lower().endswith((".pdf", ".md", ".markdown")) else path + ".md")
    return tuple(dict.fromkeys(out))


def obsidian_uri(vault_name: str, path: str) -> str:
    file = path[:-3] if path.lower().endswith(".md") else path
    return f"obsidian://open?vault={quote(vault_name, safe='')}&file={quote(file, safe='')}"


def note_url(template: str, path: str, heading: str = "") -> str | None:
    """Fill VAULTBOT_NOTE_URL: `{path}` (URL-encoded, slashes kept), `{path_noext}`, `{heading}`."""
    if not template:
        return None
    noext = path[:-3] if path.lower().endswith(".md") else path
    last = heading.split(" > ")[-1] if heading else ""
    return (template.replace("{path}", quote(path)).replace("{path_noext}", quote(noext))
            .replace("{heading}", quote(last)))


def snippet(text: str, n: int = 240) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1].rstrip() + "…"


def make_citations(hits: list[Hit], vault_name: str, url_template: str = "") -> list[Citation]:
    out = []
    for i, h in enumerate(hits, start=1):
        heading = " > ".join(h.heading_path)
        out.append(Citation(
            n=i, path=h.note_path, title=h.title, heading=heading, page=h.page,
            snippet=snippet(h.text), score=round(float(h.score), 6),
            uri=obsidian_uri(vault_name, h.note_path),
            url=note_url(url_template, h.note_path, heading), chunk_id=h.chunk_id,
        ))
    return out


_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")


def clean_markers(text: str, valid: int) -> tuple[str, set[int], int]:
    """Drop markers that point at no source. Returns (text, cited numbers, markers removed)."""
    cited: set[int] = set()
    removed = 0

    def fix(m: re.Match[str]) -> str:
        nonlocal removed
        nums = [int(x) for x in m.group(1).split(",")]
        keep = [n for n in nums if 1 <= n <= valid]
        removed += len(nums) - len(keep)
        cited.update(keep)
        return "".join(f"[{n}]" for n in keep)

    return _MARKER.sub(fix, text), cited, removed


class MarkerFilter:
    """Streaming version of clean_markers: holds back a possible marker until it closes, so
    the streamed text equals the final text."""

    def __init__(self, valid: int) -> None:
        self.valid = valid
        self.cited: set[int] = set()
        self.removed = 0
        self._buf = ""

    def feed(self, piece: str) -> str:
        self._buf += piece
        out: list[str] = []
        while True:
            i = self._buf.find("[")
            if i < 0:
                out.append(self._buf)
                self._buf = ""
                break
            out.append(self._buf[:i])
            self._buf = self._buf[i:]
            end = _OPEN.match(self._buf).end()  # type: ignore[union-attr]
            if end == len(self._buf):
                if end < 16:
                    break  # "[1, 2" may still close: wait for the next piece
                out.append(self._buf)
                self._buf = ""
                break
            if self._buf[end] == "]":
                token = self._buf[: end + 1]
                if _MARKER.fullmatch(token):
                    token, cited, removed = clean_markers(token, self.valid)
                    self.cited |= cited
                    self.removed += removed
                out.append(token)
                self._buf = self._buf[end + 1 :]
            else:  # "[" followed by something else: plain text
                out.append(self._buf[:end])
                self._buf = self._buf[end:]
        return "".join(out)

    def flush(self) -> str:
        rest, self._buf = self._buf, ""
        return rest


_OPEN = re.compile(r"\[[\d,\s]*")
