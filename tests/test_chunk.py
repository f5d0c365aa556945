"""sync.chunk on the real help vaults (English and Korean), PDFs and hand-made notes."""

from __future__ import annotations

import random
import re
import statistics
import time

import pytest
from corpus import CORPUS, PDFS, VAULTS

from engine.models import ParsedNote
from engine.tokens import count_tokens, default_counter
from sync.chunk import MAX_TOKENS, MIN_TOKENS, chunk_note
from sync.links import LinkResolver
from sync.parse import fence_regions, parse_markdown, quote_depth
from sync.pdf import parse_pdf


def load_vault(name: str) -> list[ParsedNote]:
    root = VAULTS / name
    if not root.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    texts = {p: (root / p).read_text(encoding="utf-8") for p in files if p.endswith(".md")}
    resolver = LinkResolver(files)
    return [parse_markdown(p, texts[p], resolver, texts.get) for p in sorted(texts)]


@pytest.fixture(scope="module")
def en_notes() -> list[ParsedNote]:
    return load_vault("obsidian-help-en")


@pytest.fixture(scope="module")
def ko_notes() -> list[ParsedNote]:
    return load_vault("obsidian-help-ko")


def md(body: str, path: str = "T.md") -> ParsedNote:
    return ParsedNote(path=path, kind="md", title="T", body=body)


def para(i: int, words: int = 60) -> str:
    return " ".join(f"p{i}w{j}" for j in range(words)) + "."


# ---------------------------------------------------------------------------------------------
# Invariants on whole vaults
# ---------------------------------------------------------------------------------------------


_RULE = re.compile(r"^\|?( *:?-+:? *\|)+ *:?-*:? *\|?$")


def check_invariants(note: ParsedNote, max_tokens: int = MAX_TOKENS) -> list:
    chunks = chunk_note(note, max_tokens=max_tokens)
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    prev_end = 0
    for c in chunks:
        assert c.text.strip() and c.text == c.text.strip()
        own = note.body[c.span[0] : c.span[1]]
        if c.text != own:  # a long table's later part: its header and rule line, then its rows
            header, rows = c.text[: len(c.text) - len(own) - 1], own
            assert c.text == header + "\n" + rows and header.count("\n") == 1, c.text[:200]
            assert header in note.body and _RULE.match(header.split("\n")[1]), header
        assert c.span[0] >= prev_end  # in order, no overlap by default
        prev_end = c.span[1]
        assert c.tokens == count_tokens(c.text)  # exact, not an estimate
        assert c.tokens <= max_tokens, (note.path, c.tokens)
        assert c.page is None
        for h in c.heading_path:
            assert h and not re.search(r"\[\[|\]\]|\*\*|`", h), h
    return chunks


@pytest.mark.parametrize("fixture", ["en_notes", "ko_notes"])
def test_vault_chunk_invariants(fixture: str, request: pytest.FixtureRequest) -> None:
    notes = request.getfixturevalue(fixture)
    total = 0
    for note in notes:
        chunks = check_invariants(note)
        assert chunks, note.path
        total += len(chunks)
    assert total > 1000


def test_kepano_vault_chunk_invariants() -> None:
    notes = load_vault("kepano-obsidian")
    chunked = 0
    for note in notes:
        chunks = check_invariants(note)
        chunked += bool(chunks)
        if not chunks:  # frontmatter-only notes (categories, templates) have nothing to chunk
            assert not [ln for ln in note.body.split("\n") if ln.strip() and not ln.startswith("#")]
    assert chunked > 50


def _layout(note: ParsedNote) -> tuple[list[tuple[int, int]], list[str], list[int], list[int]]:
    """Chunk spans, body lines, their fence regions, and each line's start offset."""
    lines = note.body.split("\n")
    offs = [0]
    for line in lines:
        offs.append(offs[-1] + len(line) + 1)
    return [c.span for c in chunk_note(note)], lines, fence_regions(lines), offs


@pytest.mark.parametrize("fixture", ["en_notes", "ko_notes"])
def test_fences_and_callouts_never_split(fixture: str, request: pytest.FixtureRequest) -> None:
    """Every top-level code fence and every callout/quote lies inside one chunk, unless it is
    itself longer than max_tokens (then it must be cut by lines)."""
    notes = request.getfixturevalue(fixture)
    checked = 0
    for note in notes:
        spans, lines, regions, offs = _layout(note)
        units: list[tuple[int, int]] = []
        i = 0
        while i < len(lines):
            j = i
            if regions[i] and quote_depth(lines[i]) == 0:
                while j + 1 < len(lines) and regions[j + 1] == regions[i]:
                    j += 1
            elif quote_depth(lines[i]) > 0:
                while j + 1 < len(lines) and quote_depth(lines[j + 1]) > 0:
                    j += 1
            else:
                i += 1
                continue
            end = offs[j] + len(lines[j].rstrip())  # chunk texts are stripped
            units.append((offs[i], end))
            i = j + 1
        for s, e in units:
            if count_tokens(note.body[s:e]) > MAX_TOKENS:
                continue
            assert any(cs <= s and e <= ce for cs, ce in spans), (note.path, note.body[s:e][:80])
            checked += 1
    assert checked > 300


@pytest.mark.parametrize("fixture", ["en_notes", "ko_notes"])
def test_tables_never_split(fixture: str, request: pytest.FixtureRequest) -> None:
    """Every Markdown table (a run of `|` lines outside code) lies inside one chunk unless it is
    itself longer than max_tokens."""
    notes = request.getfixturevalue(fixture)
    checked = 0
    for note in notes:
        spans, lines, regions, offs = _layout(note)
        i = 0
        while i < len(lines):
            if regions[i] or not lines[i].lstrip().startswith("|"):
                i += 1
                continue
            j = i
            while j + 1 < len(lines) and not regions[j + 1] and lines[j + 1].lstrip().startswith("|"):
                j += 1
            s, e = offs[i], offs[j] + len(lines[j].rstrip())
            if j > i and count_tokens(note.body[s:e]) <= MAX_TOKENS:
                assert any(cs <= s and e <= ce for cs, ce in spans), (note.path, note.body[s:e][:80])
                checked += 1
            i = j + 1
    assert checked > 20


def test_a_table_in_a_long_section_stays_whole() -> None:
    rows = "\n".join(f"| item {i} | {i * 7} g | stored in jar number {i} |" for i in range(15))
    prose = " ".join(f"Sentence {i} explains one more step of the long method in detail." for i in range(60))
    body = f"# Pantry\n\n{prose}\n\n| item | weight | where |\n| --- | --- | --- |\n{rows}\n\n{prose}\n"
    note = parse_markdown("Pantry.md", body)
    chunks = chunk_note(note, max_tokens=400)
    assert len(chunks) >= 3
    holding = [c for c in chunks if "| item 0 |" in c.text]
    assert len(holding) == 1 and "| item 14 |" in holding[0].text and "| --- |" in holding[0].text


def test_a_long_table_repeats_its_header() -> None:
    """A table longer than a chunk is cut between rows; every later part starts with the header
    and rule line again, within the size limit, and every row is in exactly one chunk."""
    rows = [f"| item {i} | {i * 7} g | stored in jar number {i} on shelf {i % 5} |" for i in range(120)]
    header = "| item | weight | where |\n| :--- | ---: | --- |"
    body = "# Pantry\n\nWhat is where:\n\n" + header + "\n" + "\n".join(rows) + "\n\nThat is all.\n"
    note = parse_markdown("Pantry.md", body)
    chunks = check_invariants(note, max_tokens=200)
    holding = [c for c in chunks if "| item 0 |" in c.text]
    assert len(holding) == 1 and holding[0].text.count("| item | weight |") == 1
    later = [c for c in chunks if c.ordinal > holding[0].ordinal]
    assert len(later) >= 5
    for c in later:
        assert c.text.startswith(header + "\n| item "), c.text[:120]
        assert c.tokens <= 200
    found = [r for r in rows for c in chunks if r in note.body[c.span[0] : c.span[1]]]
    assert found == rows  # each row once, in order
    assert "That is all." in chunks[-1].text


def test_korean_chunk_sizes(ko_notes: list[ParsedNote], en_notes: list[ParsedNote]) -> None:
    ko = [c.tokens for n in ko_notes for c in chunk_note(n)]
    en = [c.tokens for n in en_notes for c in chunk_note(n)]
    assert max(ko) <= MAX_TOKENS
    assert 80 <= statistics.median(ko) <= 250
    assert 80 <= statistics.median(en) <= 250
    # Korean is not undercounted: the twin vault has fewer characters but more tokens
    assert sum(ko) > sum(en)
    small = sum(1 for t in ko if t < MIN_TOKENS)
    assert small / len(ko) < 0.08


def test_chunking_is_deterministic(en_notes: list[ParsedNote]) -> None:
    for note in en_notes[:40]:
        assert chunk_note(note) == chunk_note(note)


# ---------------------------------------------------------------------------------------------
# Headings
# ---------------------------------------------------------------------------------------------


def test_heading_paths_on_a_real_note(en_notes: list[ParsedNote]) -> None:
    note = next(
        n for n in en_notes if n.path == "Obsidian Sync/Sync settings and selective syncing.md"
    )
    chunks = chunk_note(note)
    exclude = next(c for c in chunks if "To exclude a specific folder from syncing" in c.text)
    assert exclude.heading_path == ("Selective syncing", "Exclude a folder from syncing")
    assert not exclude.text.startswith("###")  # the heading is in the path, not repeated
    assert exclude.embed_text.startswith("Selective syncing > Exclude a folder from syncing\n\n")
    # H5 siblings "Hidden files and folders" (~100 tokens) and "Sync settings" (~20) merge
    # under their H4 parent; the merged text keeps both heading lines.
    hidden = next(c for c in chunks if "treated as hidden and excluded" in c.text)
    assert hidden.heading_path == (
        "Selective syncing",
        "Exclude a folder from syncing",
        "Always excluded from sync",
    )
    assert hidden.text.startswith("##### Hidden files and folders\n")
    assert "\n##### Sync settings\n\nSync settings do not sync across devices." in hidden.text


def test_heading_text_is_cleaned(en_notes: list[ParsedNote]) -> None:
    note = next(n for n in en_notes if n.path == "Obsidian Sync/Headless Sync.md")
    paths = {c.heading_path for c in chunk_note(note)}
    assert any(p and p[-1] == "ob sync-setup" for p in paths), paths


def test_heading_path_hierarchy_and_cleaning() -> None:
    body = (
        "# Guide\n\n"
        + para(0)
        + "\n\n## Setup with [[Install|installer]]\n\n"
        + para(1)
        + "\n\n### **Linux** `apt`\n\n"
        + para(2)
        + "\n\n## Use\n\n"
        + para(3)
        + "\n\n```python\n# not a heading\nx = 1\n```\n"
    )
    chunks = chunk_note(md(body))
    assert [c.heading_path for c in chunks] == [
        ("Guide",),
        ("Guide", "Setup with installer"),
        ("Guide", "Setup with installer", "Linux apt"),
        ("Guide", "Use"),
    ]
    assert chunks[3].text.endswith("x = 1\n```")  # the fence's comment did not open a section


# ---------------------------------------------------------------------------------------------
# Splitting and merging
# ---------------------------------------------------------------------------------------------


def test_small_sibling_sections_merge_under_parent() -> None:
    body = (
        "## Parent\n\n### A\n\nShort a.\n\n### B\n\nShort b.\n\n### C\n\n"
        + para(9)
        + "\n\n## Next\n\n"
        + para(8)
    )
    chunks = chunk_note(md(body))
    assert chunks[0].heading_path == ("Parent",)
    assert chunks[0].text.startswith("### A\n\nShort a.\n\n### B\n\nShort b.")
    assert chunks[0].tokens == count_tokens(chunks[0].text)
    # the big siblings stay on their own with their full path
    assert [c.heading_path for c in chunks[1:]] == [("Parent", "C"), ("Next",)]


def test_small_sections_do_not_merge_across_branches() -> None:
    body = (
        "## A\n\n### A1\n\n"
        + para(1)
        + "\n\n## B\n\n### B1\n\ntiny\n\n## C\n\n### C1\n\n"
        + para(2)
    )
    chunks = chunk_note(md(body))
    tiny = next(c for c in chunks if "tiny" in c.text)
    assert tiny.text == "tiny" and tiny.heading_path == ("B", "B1")


def test_long_section_splits_at_paragraphs() -> None:
    paras = [para(i) for i in range(14)]
    body = "## Long\n\n" + "\n\n".join(paras)
    chunks = chunk_note(md(body), max_tokens=400)
    assert len(chunks) >= 3
    for c in chunks:
        assert c.heading_path == ("Long",)
        assert c.tokens <= 400
        assert c.text.startswith("p") and c.text.endswith(".")  # whole paragraphs only
    assert "\n\n".join(c.text for c in chunks) == "\n\n".join(paras)


def test_lead_in_stays_with_what_it_introduces() -> None:
    blocks = [para(i, 50) for i in range(5)]
    blocks.insert(3, "Run this:")
    blocks.insert(4, "```sh\nmake all\n```")
    body = "## S\n\n" + "\n\n".join(blocks)
    for c in chunk_note(md(body), max_tokens=200):
        assert not c.text.endswith("Run this:")


def test_oversized_code_block_splits_by_lines() -> None:
    code = (
        "```python\n"
        + "\n".join(f"value_{i} = compute({i}, 'x' * {i})" for i in range(200))
        + "\n```"
    )
    body = "## Code\n\nIntro line.\n\n" + code + "\n\nOutro line."
    chunks = chunk_note(md(body), max_tokens=300)
    assert len(chunks) >= 5
    assert all(c.tokens <= 300 for c in chunks)
    for c in chunks:  # cut at line boundaries only
        assert c.span[0] == 0 or body[c.span[0] - 1] == "\n"
        assert c.span[1] == len(body) or body[c.span[1]] == "\n"
    assert chunks[0].text.startswith("Intro line.\n\n```python\nvalue_0 = ")
    assert chunks[-1].text.endswith("```\n\nOutro line.")


def test_unbroken_korean_text_uses_token_windows() -> None:
    blob = "가나다라마바사아자차카타파하" * 200  # one "word", no punctuation
    chunks = chunk_note(md("## 긴 글\n\n" + blob), max_tokens=128)
    assert len(chunks) > 3
    assert all(c.tokens <= 128 and c.tokens == count_tokens(c.text) for c in chunks)
    assert "".join(c.text for c in chunks) == blob


def test_korean_sentences_split_when_a_paragraph_is_too_long() -> None:
    sentence = "옵시디언 볼트의 노트가 변경되면 자동으로 다시 색인한다. "
    body = "## 회의\n\n" + sentence * 80
    chunks = chunk_note(md(body), max_tokens=100)
    assert len(chunks) > 4
    for c in chunks:
        assert c.tokens <= 100
        assert c.text.endswith("색인한다.")  # whole sentences
        assert c.heading_path == ("회의",)


def test_overlap_repeats_the_tail_of_the_previous_chunk() -> None:
    sentences = [f"Sentence number {i} talks about topic {i % 7}." for i in range(120)]
    body = "## S\n\n" + "\n\n".join(" ".join(sentences[i : i + 6]) for i in range(0, 120, 6))
    plain = chunk_note(md(body), max_tokens=200)
    over = chunk_note(md(body), max_tokens=200, overlap_tokens=40)
    assert len(over) == len(plain) >= 5
    assert over[0] == plain[0]
    for a, b, p in zip(over, over[1:], plain[1:], strict=False):
        assert b.span[0] < a.span[1]  # overlapping spans
        assert b.span[1] == p.span[1] and b.text.endswith(p.text)
        assert b.text.startswith("Sentence number ")  # starts at a sentence
        assert b.tokens == count_tokens(b.text) <= 200
        assert 0 < b.tokens - p.tokens <= 40


def test_mid_word_pieces_are_never_merged_back() -> None:
    # "$_^i" + "d" are windows of one word: the tiny tail must not be merged back, because
    # counts of mid-word pieces do not add up ("$_^i" 4 + "d" 1 != "$_^id" 4).
    body = "|]]\t]##x.md회의_1. ^!![[N3$$_^id"
    chunks = chunk_note(md(body), max_tokens=5, min_tokens=5)
    assert chunks[-1].text == "d"
    for c in chunks:
        assert c.tokens == count_tokens(c.text) <= 5


def test_random_markdown_never_breaks_invariants() -> None:
    """Seeded garbage made of Markdown syntax: parse and chunk never raise, spans and counts
    stay exact, no chunk exceeds max_tokens (even a tiny one), overlap or not."""
    rng = random.Random(7)
    alphabet = [
        "#",
        "## ",
        " ",
        "\n",
        "\n\n",
        "`",
        "```",
        "~~~",
        "> ",
        "> [!note]",
        "[[",
        "]]",
        "![[",
        "|",
        "^id",
        "---",
        "- ",
        "1. ",
        "%%",
        "<!--",
        "-->",
        "word",
        "회의",
        "(",
        ")",
        "\\",
        ":",
        "*",
        "\t",
        "\r\n",
        "\ufeff",
        "\u200b",
        "#tag",
        "x.md",
        "$$",
        ". ",
    ]
    files = {f"N{i}.md": "".join(rng.choice(alphabet) for _ in range(150)) for i in range(4)}
    resolver = LinkResolver(files)
    for trial in range(250):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 250)))
        text = text.replace("[[", f"![[N{trial % 4}", 1)
        note = parse_markdown(f"F{trial}.md", text, resolver, files.get)
        for max_tokens, overlap in ((400, 0), (12, 4), (5, 0)):
            for c in chunk_note(note, max_tokens, min(40, max_tokens), overlap):
                assert note.body[c.span[0] : c.span[1]] == c.text and c.text.strip()
                assert c.tokens == count_tokens(c.text) <= max_tokens


def test_empty_and_blank_bodies() -> None:
    assert chunk_note(md("")) == []
    assert chunk_note(md("\n\n   \n")) == []
    assert chunk_note(md("## Only a heading\n\n### And another")) == []


# ---------------------------------------------------------------------------------------------
# Stability under edits
# ---------------------------------------------------------------------------------------------

ADDED = " This sentence was added to check that chunking stays local when a paragraph grows."


def edited_chunks(note: ParsedNote, old: str, new: str) -> set[str]:
    assert note.body.count(old) == 1
    changed = ParsedNote(
        path=note.path, kind="md", title=note.title, body=note.body.replace(old, new)
    )
    return {c.embed_text for c in chunk_note(changed)}


def test_editing_one_paragraph_changes_at_most_two_chunks(en_notes: list[ParsedNote]) -> None:
    note = next(n for n in en_notes if n.path == "Linking notes and files/Internal links.md")
    before = {c.embed_text for c in chunk_note(note)}
    assert len(before) >= 8
    target = (
        "A block is a unit of text in your note, such as a paragraph, block quote, or list item."
    )
    if target not in note.body:  # guard against corpus drift with a clear message
        pytest.fail("expected paragraph not found in Internal links.md")
    after = edited_chunks(note, target, target + ADDED)
    assert 1 <= len(after - before) <= 2
    after = edited_chunks(note, target, "")
    assert 1 <= len(after - before) <= 2


@pytest.mark.parametrize("fixture", ["en_notes", "ko_notes"])
def test_edit_sweep_over_long_notes(fixture: str, request: pytest.FixtureRequest) -> None:
    """Grow or shrink every 4th prose line of every note with 8+ chunks. Nearly every edit
    yields 1-2 new chunks; a cut point can move when an edit pushes it across the balance
    window, which costs one more chunk, never a cascade."""
    changed: list[int] = []
    for note in request.getfixturevalue(fixture):
        chunks = chunk_note(note)
        if len(chunks) < 8:
            continue
        before = {c.embed_text for c in chunks}
        lines = note.body.split("\n")
        prose = [
            ln for ln in lines if len(ln) > 60 and ln[0].isalpha() and note.body.count(ln) == 1
        ]
        for line in prose[::4]:
            for new in (line + ADDED, line[: len(line) // 2]):
                changed.append(len(edited_chunks(note, line, new) - before))
    assert len(changed) > 150
    assert min(changed) >= 1 and max(changed) <= 3
    assert sum(1 for n in changed if n > 2) <= len(changed) // 200  # at most 0.5%


# ---------------------------------------------------------------------------------------------
# PDFs
# ---------------------------------------------------------------------------------------------


def need_pdfs() -> None:
    if not PDFS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")


def test_pdf_chunks_per_page() -> None:
    need_pdfs()
    note = parse_pdf("meet.pdf", PDFS / "korean-meeting-notes-embedded-font.pdf")
    chunks = chunk_note(note)
    assert [c.page for c in chunks] == [1, 2, 3]
    for c in chunks:
        page_text = dict(note.pages)[c.page]
        assert page_text[c.span[0] : c.span[1]] == c.text
        assert c.text.startswith(f"{c.page}쪽")
        assert c.heading_path == ()
        assert c.tokens == count_tokens(c.text) <= MAX_TOKENS


def test_long_pdf_pages_split_within_the_page() -> None:
    need_pdfs()
    note = parse_pdf("english-50-pages.pdf", PDFS / "english-50-pages.pdf")
    chunks = chunk_note(note, max_tokens=100)
    assert {c.page for c in chunks} == set(range(1, 51))
    assert len(chunks) > 150
    pages = dict(note.pages)
    for c in chunks:
        assert c.tokens <= 100 and c.tokens == count_tokens(c.text)
        assert pages[c.page][c.span[0] : c.span[1]] == c.text
    # every page's first chunk starts at the page's first line, in order
    firsts = [c for c in chunks if c.span[0] == 0]
    assert [c.page for c in firsts] == list(range(1, 51))


# ---------------------------------------------------------------------------------------------
# Speed
# ---------------------------------------------------------------------------------------------


def test_whole_english_vault_parses_and_chunks_fast() -> None:
    root = VAULTS / "obsidian-help-en"
    if not root.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    default_counter().load()  # the ~0.5 s model load is a one-off per process, not per sync
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    texts = {p: (root / p).read_text(encoding="utf-8") for p in files if p.endswith(".md")}
    start = time.perf_counter()
    resolver = LinkResolver(files)
    n = 0
    for path in sorted(texts):
        n += len(chunk_note(parse_markdown(path, texts[path], resolver, texts.get)))
    elapsed = time.perf_counter() - start
    assert n > 1000
    assert elapsed < 2.0, f"parse+chunk of 173 notes took {elapsed:.2f}s"
