"""From the index's view of a note to the page's: embeds and cited spans.

The index chunks a note's body with its `![[embeds]]` expanded (sync/parse.py), so a chunk's
span counts characters of that expanded text. The page renders the note as written and shows
each embed through `embed_for`, which applies the visibility rule per embedded note. So the
cited span is mapped back onto the text as written (`source_span`), and an embed's Markdown is
cut from the embedded note as Obsidian cuts it (`embed_piece`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sync.parse import _block, _section, code_mask, heading_of, split_frontmatter

__all__ = ["embed_piece", "source_span"]

_EMBED_RE = re.compile(r"!\[\[([^\[\]\n]+?)\]\]")


def embed_piece(text: str, subpath: str = "") -> str | None:
    """What `![[note#subpath]]` shows of a note whose file holds `text`: the whole body
    (frontmatter removed), a heading's section (`Heading`, `A#B`) or a block (`^id`);
    None when the heading or block is not there."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    _, start = split_frontmatter(text.removeprefix("\ufeff"))
    body = text.removeprefix("\ufeff")[start:]
    subpath = subpath.strip().lstrip("#")
    if not subpath:
        return body.strip("\n")
    if subpath.startswith("^"):
        return _block(body, subpath[1:])
    return _section(body, subpath)


def _embeds(text: str) -> list[tuple[int, int]]:
    """Where sync/parse.py would expand an embed in `text` (not in code, not in a heading)."""
    masked = code_mask(text)
    out = []
    for m in _EMBED_RE.finditer(masked):
        line_start = masked.rfind("\n", 0, m.start()) + 1
        line_end = masked.find("\n", m.start())
        if heading_of(masked[line_start : line_end if line_end >= 0 else len(masked)]):
            continue
        out.append((m.start(), m.end()))
    return out


def source_span(
    written: str,
    expanded: str,
    regions: Sequence[tuple[int, int, tuple[str, ...]]],
    span: tuple[int, int],
) -> tuple[int, int]:
    """`span` in `expanded` (ParsedNote.body of a parse with embeds, whose `embed_regions`
    are `regions`) as a span in `written` (the body of a parse without them). Text that came
    through an embed maps onto the `![[embed]]` that brought it."""
    # (written start, written end, expanded start, expanded end) of every embed, in order
    pieces: list[tuple[int, int, int, int]] = []
    starts = {r[0]: r[1] for r in regions}
    delta = 0  # expanded position minus written position, outside embeds
    for ws, we in _embeds(written):
        es = ws + delta
        if es in starts:
            ee = starts[es]
        elif expanded.startswith(written[ws:we], es):
            continue  # left as written (missing target, an image, a cycle)
        else:
            ee = es  # a private note's embed, left out
        pieces.append((ws, we, es, ee))
        delta += (ee - es) - (we - ws)

    def back(pos: int, end: bool) -> int:
        shift = 0  # written position minus expanded position, before the next embed
        for ws, we, es, ee in pieces:
            if pos <= es if end else pos < es:
                break
            if pos <= ee if end else pos < ee:  # inside an embed's text: the whole embed
                return we if end else ws
            shift = we - ee
        return max(0, min(len(written), pos + shift))

    start = back(span[0], end=False)
    return start, max(start, back(span[1], end=True))
