"""Citation markers, links and the extractive answer, on hand-made cases."""

from __future__ import annotations

import pytest

from engine.citations import MarkerFilter, clean_markers, note_url, obsidian_uri
from engine.extractive import extractive_answer
from engine.models import Hit


def test_clean_markers_keeps_only_valid_sources() -> None:
    text, cited, removed = clean_markers("A [1]. B [7]. C [2, 9][3]. arr[0] stays? no.", 3)
    assert text == "A [1]. B . C [2][3]. arr stays? no."
    assert cited == {1, 2, 3} and removed == 3


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 7])
def test_marker_filter_streams_exactly_what_clean_markers_gives(cut: int) -> None:
    answer = "Launch is Dec 4 [1][7] and [2, 9]. See [link](x) [3]. Done [4"
    pieces = [answer[i : i + cut] for i in range(0, len(answer), cut)]
    f = MarkerFilter(3)
    streamed = "".join(f.feed(p) for p in pieces) + f.flush()
    expected, cited, removed = clean_markers(answer, 3)
    assert streamed == expected
    assert (f.cited, f.removed) == (cited, removed)


def test_links() -> None:
    assert obsidian_uri("My Vault", "Work/Plan A.md") == "obsidian://open?vault=My%20Vault&file=Work%2FPlan%20A"
    assert note_url("https://n.example/{path_noext}#{heading}", "Work/Plan A.md", "Top > Risks") == (
        "https://n.example/Work/Plan%20A#Risks"
    )
    assert note_url("", "x.md") is None


def _hit(path: str, text: str, n: int = 0) -> Hit:
    return Hit(f"c{n}", path, path, (), None, text, 1.0)


def test_extractive_answer_picks_matching_sentences_and_cites_them() -> None:
    hits = [
        _hit("a.md", "Intro line that says nothing.\n\nThe launch moved to December 4 because of review.", 1),
        _hit("b.md", "- [ ] buy milk ^task1\n- The budget is 3,000 dollars.\n| a | b |\n| launch | table |", 2),
    ]
    text, cited = extractive_answer("Why was the launch moved?", hits, max_sentences=1)
    assert text == "- The launch moved to December 4 because of review. [1]"
    assert cited == {1}
    text, cited = extractive_answer("budget dollars", hits)
    assert "The budget is 3,000 dollars. [2]" in text and "^task1" not in text and "table" not in text
    assert extractive_answer("zebra", hits) == ("", set())
