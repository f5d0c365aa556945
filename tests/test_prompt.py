"""The prompt: the answer-language rule, the context budget and the history budget."""

from __future__ import annotations

from engine.citations import make_citations
from engine.models import Hit
from engine.prompt import Budget, Turn, build_messages
from engine.tokens import count_tokens


def _hits(n: int, words: int) -> list[Hit]:
    return [Hit(f"c{i}", f"Note {i}.md", f"Note {i}", ("Part",), None,
                " ".join(f"word{i}x{j}" for j in range(words)), 1.0 / (i + 1)) for i in range(n)]


def test_answer_language_follows_the_question() -> None:
    hits = _hits(1, 10)
    cites = make_citations(hits, "vault")
    korean = build_messages("출시일이 언제야?", hits, cites)[0][0].content
    assert "한국어" in korean
    for question in ("When is the launch?", "Quand est le lancement ?", "発売日はいつですか?"):
        system = build_messages(question, hits, cites)[0][0].content
        assert "language the question is written in" in system and "Answer in English," not in system


def test_context_budget_keeps_the_best_excerpts_that_fit() -> None:
    hits = _hits(8, 300)
    cites = make_citations(hits, "vault")
    messages, fitted = build_messages("what?", hits, cites)
    assert fitted == 8 and "[8] Note 7 › Part" in messages[-1].content
    small = Budget(context_tokens=3000, answer_tokens=500, history_tokens=200)
    messages, fitted = build_messages("what?", hits, cites, budget=small)
    assert 0 < fitted < 8
    user = messages[-1].content
    assert f"[{fitted}] Note {fitted - 1}" in user and f"[{fitted + 1}]" not in user  # best first
    total = sum(count_tokens(m.content) for m in messages)
    assert total <= small.context_tokens - small.answer_tokens


def test_history_keeps_the_newest_turns_within_its_budget() -> None:
    hits = _hits(1, 10)
    cites = make_citations(hits, "vault")
    history = [Turn(f"question {i} " + "filler " * 40, f"answer {i} " + "filler " * 40) for i in range(10)]
    messages, _ = build_messages("and then?", hits, cites, history=history,
                                 budget=Budget(history_tokens=300))
    turns = messages[1:-1]
    assert turns and len(turns) % 2 == 0 and len(turns) < 20
    assert turns[-1].content.startswith("answer 9") and turns[-2].content.startswith("question 9")
    assert [m.role for m in turns[:2]] == ["user", "assistant"]
    assert sum(count_tokens(m.content) for m in turns) <= 300
