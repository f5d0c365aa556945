"""Discord rendering: every message within Discord's limits, whatever the answer's size, and
nothing of the answer lost on the way."""

from __future__ import annotations

import re

import discord
import pytest

from bot.render_discord import (
    CONTENT_LIMIT,
    DESCRIPTION_LIMIT,
    EXTRACTIVE,
    FIELD_VALUE_LIMIT,
    MESSAGE_TOTAL_LIMIT,
    RELATED_TITLE,
    SOURCES_TITLE,
    answer_embeds,
    answer_messages,
    answer_of_embeds,
    check_message,
    embed_size,
    escape_markdown,
    footer_text,
    pack_messages,
    source_field,
    split_text,
    stream_preview,
)
from engine.answer import Answer
from engine.citations import Citation, obsidian_uri


def cite(n: int, path: str = "Projects/Vaultbot launch.md", *, title: str = "Vaultbot launch",
         heading: str = "Plan > Timeline", url: str | None = None, page: int | None = None) -> Citation:
    return Citation(n=n, path=path, title=title, heading=heading, page=page, snippet="…",
                    score=0.5, uri=obsidian_uri("vault", path), url=url, chunk_id=f"c{n}")


def make_answer(text: str = "The launch is on December 4 [1].", *, citations=None, sources=None,
                **kw) -> Answer:
    citations = [cite(1)] if citations is None else citations
    sources = citations if sources is None else sources
    kw.setdefault("mode", "llm")
    kw.setdefault("model", "qwen2.5:7b-instruct")
    return Answer(question="q", text=text, citations=citations, sources=sources, **kw)


def words(text: str) -> list[str]:
    return text.split()


def assert_sendable(messages: list[list[dict]]) -> None:
    assert messages
    for m in messages:
        assert check_message(m) == [], check_message(m)
        assert sum(embed_size(e) for e in m) <= MESSAGE_TOTAL_LIMIT
        for e in m:  # discord.py takes each one as it is
            back = discord.Embed.from_dict(e).to_dict()
            assert {k: back.get(k) for k in e} == e


def test_short_answer_is_one_message_with_title_sources_and_footer() -> None:
    answer = make_answer(citations=[cite(1), cite(2, "Meetings/Weekly.md", title="Weekly", heading="")])
    messages = answer_messages(answer, "When is the launch?")
    assert_sendable(messages)
    assert len(messages) == 1
    text, sources = messages[0]
    assert text["title"] == "When is the launch?"
    assert text["description"] == "The launch is on December 4 [1]."
    assert sources["title"] == SOURCES_TITLE
    assert [f["name"] for f in sources["fields"]] == ["[1] Vaultbot launch › Timeline", "[2] Weekly"]
    assert "footer" not in text and sources["footer"]["text"] == "qwen2.5:7b-instruct"


def test_obsidian_only_links_show_path_and_uri_in_code() -> None:
    field = source_field(cite(1))
    # Discord only links http(s): the path and the URI are shown ready to copy, not as a link.
    assert field["value"] == ("`Projects/Vaultbot launch.md`\n"
                              "`obsidian://open?vault=vault&file=Projects%2FVaultbot%20launch`")
    assert "](" not in field["value"]


def test_http_links_are_masked_links() -> None:
    field = source_field(cite(1, url="https://notes.example/Projects/Vaultbot%20launch.md"))
    assert field["value"] == "[Projects/Vaultbot launch.md](https://notes.example/Projects/Vaultbot%20launch.md)"


def test_markdown_in_titles_is_escaped() -> None:
    field = source_field(cite(3, "my_notes/a_b.md", title="snake_case *notes*", heading=""))
    assert field["name"] == r"[3] snake\_case \*notes\*"
    assert escape_markdown("[x](y)") == r"\[x\](y)"


def test_page_numbers_in_labels() -> None:
    field = source_field(cite(1, "Papers/paper.pdf", title="paper", heading="", page=3))
    assert field["name"] == "[1] paper (p. 3)"


def test_long_answer_is_split_over_messages_without_losing_words() -> None:
    sentence = "The launch moved to December 4 because the Discord review took longer [1]. "
    paragraphs = ["".join(sentence for _ in range(12)) for _ in range(40)]  # ~36,000 characters
    text = "\n\n".join(p.strip() for p in paragraphs)
    answer = make_answer(text)
    embeds = answer_embeds(answer, "Why did the launch move?")
    messages = pack_messages(embeds)
    assert_sendable(messages)
    assert len(messages) > 1
    assert all(len(e.get("description", "")) <= DESCRIPTION_LIMIT for e in embeds)
    shown = [e["description"] for m in messages for e in m if "description" in e]
    assert words(" ".join(shown)) == words(text)
    # Pieces end at paragraph or sentence boundaries, never inside a marker.
    assert all(p.endswith((".", "[1].")) for p in shown)
    assert messages[-1][-1]["title"] == SOURCES_TITLE and "footer" in messages[-1][-1]


def test_unbreakable_text_is_cut_hard() -> None:
    text = "x" * 10_000
    pieces = split_text(text)
    assert "".join(pieces) == text and all(len(p) <= DESCRIPTION_LIMIT for p in pieces)


def test_code_block_cut_in_two_is_closed_and_reopened() -> None:
    code = "```python\n" + "\n".join(f"print({i})" for i in range(900)) + "\n```"
    pieces = split_text("Run this:\n\n" + code, 2000)
    assert len(pieces) > 2
    for p in pieces:
        assert len(p) <= 2000
        assert p.count("```") % 2 == 0


def test_many_long_sources_stay_within_limits() -> None:
    long_korean = "회의록/" + "아주 긴 제목의 회의 노트 " * 12 + ".md"
    citations = [
        cite(i, long_korean, title="회의 " * 60, heading=" > ".join(["단계"] * 80)) for i in range(1, 51)
    ]
    answer = make_answer("Short [1].", citations=citations)
    messages = answer_messages(answer, "q" * 500)
    assert_sendable(messages)
    fields = [f for m in messages for e in m for f in e.get("fields", [])]
    assert [f["name"].split("]")[0] for f in fields] == [f"[{i}" for i in range(1, 51)]
    assert all(len(f["value"]) <= FIELD_VALUE_LIMIT for f in fields)
    titles = [e.get("title") for m in messages for e in m]
    assert titles[0] == "q" * 255 + "…"
    assert SOURCES_TITLE + " (continued)" in titles


def test_obsidian_uri_dropped_when_it_cannot_fit() -> None:
    path = "회의록/" + "가" * 200 + ".md"  # each Hangul syllable is 9 characters in the URI
    field = source_field(cite(1, path))
    assert field["value"] == f"`{path}`" and len(field["value"]) <= FIELD_VALUE_LIMIT


def test_footer_and_flags() -> None:
    assert footer_text(make_answer(cached="answer")) == "qwen2.5:7b-instruct · cached answer"
    assert footer_text(make_answer(mode="extractive", model=None)) == EXTRACTIVE
    unsupported = make_answer("No idea.", citations=[], sources=[cite(1)], unsupported=True)
    assert footer_text(unsupported) == "qwen2.5:7b-instruct · no cited source"
    embeds = answer_embeds(unsupported, "q")
    assert embeds[-1]["title"] == RELATED_TITLE  # retrieved but not cited: labelled as such
    nothing = make_answer("I could not find anything.", citations=[], sources=[],
                          unsupported=True, model=None)
    assert len(answer_embeds(nothing)) == 1


def test_notice_and_error_are_shown() -> None:
    notice = make_answer("From the notes: December 4 [1].", mode="extractive", model=None,
                         notice="Ollama is not running: start it with `ollama serve`.")
    (embed, _), = answer_messages(notice, "q")
    assert embed["description"].startswith("> ℹ️ Ollama is not running")
    assert embed["description"].endswith("December 4 [1].")
    broken = make_answer("The launch is on", error="Ollama stopped answering: try again")
    (embed, _), = answer_messages(broken, "q")
    assert embed["description"] == "The launch is on\n\n> ⚠️ Ollama stopped answering: try again"
    assert embed["color"] != answer_embeds(make_answer(), "q")[0]["color"]


def test_empty_answer_text_still_renders() -> None:
    embeds = answer_embeds(make_answer("", citations=[], sources=[]))
    assert embeds[0]["description"] and check_message(embeds) == []


def test_pack_messages_limits_embed_count_and_total() -> None:
    small = [{"description": "x" * 10} for _ in range(23)]
    packed = pack_messages(small)
    assert [len(m) for m in packed] == [10, 10, 3]
    big = [{"description": "x" * 4000} for _ in range(3)]
    assert [len(m) for m in pack_messages(big)] == [1, 1, 1]
    with pytest.raises(ValueError):
        pack_messages([{"description": "x" * 4096, "fields": [{"name": "n", "value": "v" * 2000}]}])


def test_check_message_finds_each_broken_limit() -> None:
    assert check_message([{"description": "x" * 4097}])
    assert check_message([{"title": "x" * 257}])
    assert check_message([{"fields": [{"name": "n", "value": "v" * 1025}]}])
    assert check_message([{"fields": [{"name": "n", "value": "v"}] * 26}])
    assert check_message([{"description": "x" * 3000}, {"description": "x" * 3001}])
    assert check_message([{}] * 11)
    assert check_message([], content="x" * 2001)


def test_stream_preview() -> None:
    assert stream_preview("") == "…"
    assert stream_preview("The launch ") == "The launch …"
    long = "word " * 1000
    preview = stream_preview(long)
    assert len(preview) <= CONTENT_LIMIT and preview.endswith("word …") and preview.startswith("…")


def test_answer_read_back_from_embeds() -> None:
    answer = make_answer("Line one [1].\n\nLine two.", notice="Using the notes only.",
                         error="Ollama stopped answering")
    question, text = answer_of_embeds(answer_embeds(answer, "When is it?"))
    assert question == "When is it?" and text == "Line one [1].\n\nLine two."
    long = make_answer("\n\n".join(f"Paragraph {i} " + "word " * 300 for i in range(20)))
    question, text = answer_of_embeds(answer_embeds(long))
    assert question is None and words(text) == words(long.text)
    assert not re.search(r"\[\d+\] Vaultbot", text)  # the source fields are not answer text


def test_note_page_link_is_the_masked_link_with_obsidian_uri_below() -> None:
    """With a note page (VAULTBOT_PUBLIC_URL set), Discord links the page, which it can make
    clickable, and keeps the obsidian:// URI under it for the owner and for read-back."""
    from dataclasses import replace

    from engine.citations import cited_paths

    page = "https://vault.example.ts.net/n/eyJ2IjoxfQ.sig#cited"
    field = source_field(replace(cite(1), page_url=page))
    assert field["value"] == (f"[Projects/Vaultbot launch.md]({page})\n"
                              "`obsidian://open?vault=vault&file=Projects%2FVaultbot%20launch`")
    assert cited_paths(field["value"]) == ("Projects/Vaultbot launch.md",)
