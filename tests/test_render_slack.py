"""Block Kit rendering: mrkdwn conversion and escaping, splitting within Slack's limits, the
sources, context and feedback blocks. Every message is also checked by the fake Slack's own
validator (the limits Slack enforces)."""

from __future__ import annotations

import re

import pytest
from fakes.slack_api import check_blocks

from bot.render_slack import (
    ANSWER_BLOCK,
    FEEDBACK_DOWN,
    FEEDBACK_UP,
    answer_blocks,
    answer_messages,
    answer_text_of,
    block_chars,
    escape_mrkdwn,
    progress_text,
    split_mrkdwn,
    to_mrkdwn,
)
from engine.answer import Answer
from engine.citations import Citation


def cite(n: int, path: str, heading: str = "", url: str | None = None, page: int | None = None) -> Citation:
    title = path.rsplit("/", 1)[-1].removesuffix(".md")
    return Citation(n=n, path=path, title=title, heading=heading, page=page, snippet="", score=0.5,
                    uri=f"obsidian://open?vault=v&file={path.removesuffix('.md').replace('/', '%2F')}",
                    url=url, chunk_id=f"c{n}")


def make_answer(text: str, citations: list[Citation] | None = None, **kw) -> Answer:
    cits = citations if citations is not None else [cite(1, "Projects/Launch.md", "Plan > Timeline")]
    kw.setdefault("mode", "llm")
    kw.setdefault("model", "qwen2.5:7b-instruct")
    return Answer(question="q", text=text, citations=cits, sources=cits, **kw)


def sections(blocks: list[dict]) -> list[str]:
    return [b["text"]["text"] for b in blocks if b["type"] == "section"]


def test_escape_and_markdown_conversion() -> None:
    assert escape_mrkdwn("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape_mrkdwn("&amp;") == "&amp;amp;"  # escaping is not idempotent, on purpose
    md = ("# Plan\nThe **launch** is *soon* & <b>not</b> ~~late~~ [1].\n"
          "- one\n* two with `x < y`\n"
          "See [the note](https://notes.example/a?x=1&y=2) or <https://x.example/p>.\n"
          "```python\nif a < b:\n    pass\n```")
    out = to_mrkdwn(md)
    lines = out.split("\n")
    assert lines[0] == "*Plan*"
    assert lines[1] == "The *launch* is _soon_ &amp; &lt;b&gt;not&lt;/b&gt; ~late~ [1]."
    assert lines[2] == "• one"
    assert lines[3] == "• two with `x &lt; y`"
    assert lines[4] == "See <https://notes.example/a?x=1&amp;y=2|the note> or <https://x.example/p>."
    assert lines[5:] == ["```", "if a &lt; b:", "    pass", "```"]  # no language tag
    # Nothing the model writes can become a Slack control sequence (mention, channel ping).
    assert "<!channel>" not in to_mrkdwn("<!channel> hi <@U123>")
    # A link to something that is not a URL stays text.
    assert to_mrkdwn("[x](javascript:alert(1))").startswith("[x]")


def test_split_prefers_boundaries_and_keeps_links_whole() -> None:
    para = " ".join(f"Sentence {i} has words." for i in range(150))
    text = "\n\n".join([para] * 3)
    pieces = split_mrkdwn(text, 1000)
    assert all(len(p) <= 1000 for p in pieces)
    assert all(p.endswith(".") for p in pieces)  # cut at sentence ends, not mid-word
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())

    link = "<https://notes.example/" + "x" * 60 + "|a note>"
    text = ("word " * 30 + link + " ") * 40
    for piece in split_mrkdwn(text, 500):
        assert len(piece) <= 500
        assert piece.count("<") == piece.count(">")  # no link cut in two

    code = "intro\n```\n" + "x = 1  # a line of code\n" * 200 + "```\nafter"
    pieces = split_mrkdwn(code, 700)
    assert len(pieces) > 3
    assert all(p.count("```") % 2 == 0 and len(p) <= 700 for p in pieces)  # fences re-opened


def test_answer_blocks_sources_context_and_feedback() -> None:
    cits = [cite(1, "Projects/Launch.md", "Plan > Timeline"),
            cite(2, "Meetings/Sync & plans.md", "Decisions", url="https://notes.example/m?p=1&h=2"),
            cite(3, "Projects/Launch.md", "Plan > Timeline")]  # same place as [1]: one line
    answer = make_answer("It is on **Dec 4** [1][3], decided in the sync [2].", cits, query_id=42)
    [blocks] = answer_blocks(answer)
    assert check_blocks(blocks) is None
    texts = sections(blocks)
    assert texts[0] == "It is on *Dec 4* [1][3], decided in the sync [2]."
    src = next(b for b in blocks if b["block_id"].startswith("vb_sources"))["text"]["text"]
    assert src.split("\n") == [
        "*Sources*",
        "[1][3] <obsidian://open?vault=v&amp;file=Projects%2FLaunch|Launch › Timeline>",
        "[2] <https://notes.example/m?p=1&amp;h=2|Sync &amp; plans › Decisions>",
    ]
    context = next(b for b in blocks if b["type"] == "context")["elements"][0]["text"]
    assert context == "model: qwen2.5:7b-instruct"
    actions = blocks[-1]
    assert [e["action_id"] for e in actions["elements"]] == [FEEDBACK_UP, FEEDBACK_DOWN]
    assert {e["value"] for e in actions["elements"]} == {"42"}


def test_context_line_flags() -> None:
    answer = make_answer("Nothing supports this.", [], mode="extractive", model=None,
                         cached="answer", unsupported=True, notice="Ollama is not reachable")
    [blocks] = answer_blocks(answer)
    assert not any(b["block_id"].startswith("vb_sources") for b in blocks)
    assert not any(b["type"] == "actions" for b in blocks)  # no query id: nothing to rate
    context = blocks[-1]["elements"][0]["text"]
    assert context.startswith("extractive answer (no LLM) · cached · ")
    assert "unsupported: no note supports this answer" in context
    assert context.endswith("Ollama is not reachable")

    broken = make_answer("Half an answer", error="qwen stopped answering for 30 s", query_id=1)
    [blocks] = answer_blocks(broken)
    assert sections(blocks)[1] == ":warning: qwen stopped answering for 30 s"


@pytest.mark.parametrize("size", [20_000, 70_000])
def test_long_answer_continues_in_further_messages(size: int) -> None:
    para = ("The budget line is described in the plan [1]. " * 40).strip()
    text = "\n\n".join([para] * (size // len(para) + 1))[:size]
    answer = make_answer(text, query_id=7)
    messages = answer_messages(answer)
    assert len(messages) >= 2
    for m in messages:
        assert check_blocks(m.blocks) is None  # ≤50 blocks, sections ≤3,000, total ≤12,000
        assert sum(block_chars(b) for b in m.blocks) <= 10_000
        assert 0 < len(m.text) <= 300
    # The text is all there, in order; the tail is on the last message only.
    body = " ".join(answer_text_of({"blocks": m.blocks}) for m in messages)
    assert " ".join(body.split()) == " ".join(to_mrkdwn(text).split())
    assert messages[-1].blocks[-1]["type"] == "actions"
    assert all(b["type"] == "section" and b["block_id"].startswith(ANSWER_BLOCK)
               for m in messages[:-1] for b in m.blocks)
    assert messages[1].text.startswith(f"(continued 2/{len(messages)})")


def test_many_blocks_respect_block_count() -> None:
    # Tiny sections: the 50-block cap binds before the character budget does.
    answer = make_answer("x", query_id=1)
    pages = answer_blocks(answer, max_section=40, max_blocks=10)
    assert len(pages) == 1
    text = "\n\n".join(f"Point {i}." for i in range(120))
    pages = answer_blocks(make_answer(text, query_id=1), max_section=40, max_blocks=10)
    assert len(pages) >= 4 and all(len(p) <= 10 for p in pages)
    assert sum(len(p) for p in pages) == sum(len(sections(p)) for p in pages) + 2  # + context, buttons
    assert re.fullmatch(r"Point 0\.\s+Point 1\.\s+Point 2\.", sections(pages[0])[0])


def test_progress_text_keeps_head_and_tail() -> None:
    short = progress_text("Hello **there**")
    assert short == "Hello *there* ▍"
    long = progress_text("start " + "word " * 2000 + "the end")
    assert len(long) <= 3600 and long.startswith("start") and long.endswith("the end ▍")


def test_note_page_link_first_and_obsidian_second() -> None:
    """With VAULTBOT_PUBLIC_URL (or serve's address) a citation carries its note page: the page
    is the link teammates open, "Open in Obsidian" follows, and a thread still reads its
    sources back from the obsidian:// link."""
    from dataclasses import replace

    from engine.citations import cited_paths

    page = "https://vault.example.ts.net/n/eyJ2IjoxfQ.sig#cited"
    cits = [replace(cite(1, "Projects/Launch.md", "Plan > Timeline"), page_url=page)]
    [blocks] = answer_blocks(make_answer("It is on Dec 4 [1].", cits))
    src = next(b for b in blocks if b["block_id"].startswith("vb_sources"))["text"]["text"]
    assert src.split("\n")[1] == (
        f"[1] <{page}|Launch › Timeline> · "
        "<obsidian://open?vault=v&amp;file=Projects%2FLaunch|Open in Obsidian>")
    assert cited_paths(src) == ("Projects/Launch.md",)
