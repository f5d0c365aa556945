"""The prompt: numbered note excerpts, the rules, earlier turns, within a token budget."""

from __future__ import annotations

from dataclasses import dataclass

from engine.citations import Citation
from engine.language import question_language
from engine.llm.base import Message
from engine.models import Hit, Turn  # Turn lived here; tests still import it from here
from engine.tokens import count_tokens

SYSTEM = """You answer questions about the user's own notes.
Rules:
- Use only the numbered note excerpts below. Do not use outside knowledge.
- After every claim, cite the excerpt it comes from with its number in square brackets, like [1] or [2][3]. Cite only numbers that exist.
- If the excerpts do not contain the answer, say so plainly (in the question's language) instead of guessing.
- {language}
- Be concise. Use Markdown lists when listing steps or items."""

def language_rule(lang: str) -> str:
    if lang == "ko":
        return "Answer in Korean (한국어로 답하세요), even when the excerpts are in English."
    # 'en' means "not Korean": a French or Japanese question must not be answered in English.
    return ("Answer in the language the question is written in (English if unsure), even when "
            "the excerpts are in another language.")


@dataclass(frozen=True)
class Budget:
    context_tokens: int = 16384  # the model's num_ctx
    answer_tokens: int = 1024  # kept free for the answer
    history_tokens: int = 2048  # at most this much of earlier turns


def build_messages(
    question: str,
    hits: list[Hit],
    citations: list[Citation],
    history: list[Turn] | None = None,
    budget: Budget | None = None,
) -> tuple[list[Message], int]:
    """Returns the messages and how many sources fitted in the budget (the first n)."""
    budget = budget or Budget()
    lang = question_language(question)
    system = SYSTEM.format(language=language_rule(lang))
    used = count_tokens(system) + count_tokens(question) + 64
    # Earlier turns, newest first until the history budget is spent.
    turns: list[Message] = []
    spent = 0
    for turn in reversed(history or []):
        cost = count_tokens(turn.question) + count_tokens(turn.answer)
        if spent + cost > budget.history_tokens:
            break
        turns[:0] = [Message("user", turn.question), Message("assistant", turn.answer)]
        spent += cost
    used += spent
    room = budget.context_tokens - budget.answer_tokens - used
    blocks: list[str] = []
    for hit, cite in zip(hits, citations, strict=True):
        where = cite.title + (f" › {cite.heading}" if cite.heading else "")
        where += f" (page {cite.page})" if cite.page else ""
        block = f"[{cite.n}] {where}\n{hit.text.strip()}"
        cost = count_tokens(block)
        if cost > room:
            break
        blocks.append(block)
        room -= cost
    excerpts = "\n\n".join(blocks) if blocks else "(no excerpts matched)"
    user = f"Note excerpts:\n\n{excerpts}\n\nQuestion: {question}"
    return [Message("system", system), *turns, Message("user", user)], len(blocks)
