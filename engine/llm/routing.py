"""Pick the fast or the deep model for a question.

The rule, in order (the first that applies wins):

1. `deep=True` (the user asked for it, e.g. `/deep`) -> deep model.
2. A long question: more than LONG_QUESTION_WORDS words or about LONG_QUESTION_TOKENS tokens.
3. Several questions in one (two or more question marks).
4. A cue that the answer needs synthesis rather than lookup:
   compare ("compare", "versus", "difference between", "pros and cons", "비교", "차이",
   "장단점"), summarise ("summarize", "summary", "overview", "요약", "정리해"), or explain a
   cause ("why", "explain how", "이유", "왜").
5. A lot of retrieved context to read (more than LARGE_CONTEXT_TOKENS tokens).
Otherwise the fast model.
"""

from __future__ import annotations

import math
import re

LONG_QUESTION_WORDS = 60
LONG_QUESTION_TOKENS = 150
LARGE_CONTEXT_TOKENS = 6000

_EN_CUES = re.compile(
    r"\b(?:compar(?:e|es|ed|ing|ison|isons)|contrast|versus|vs\.?"
    r"|differen(?:ce|ces|t)\s+between|pros\s+and\s+cons|trade-?offs?"
    r"|summari[sz](?:e|es|ed|ing)|summary|summaries|overview|recap"
    r"|why|explain\s+(?:how|why)|reasons?\s+(?:for|why))\b",
    re.IGNORECASE,
)
_KO_CUES = ("비교", "차이", "장단점", "대조", "요약", "정리해", "종합", "왜", "이유")


def estimate_tokens(text: str) -> int:
    """A rough token count: ~4 ASCII characters per token, one per other character
    (Hangul syllables and CJK characters are usually one token or more each)."""
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    other = sum(1 for ch in text if ord(ch) >= 128 and not ch.isspace())
    return math.ceil(ascii_chars / 4) + other


def routing_reason(
    question: str, *, deep: bool = False, context_tokens: int | None = None
) -> str | None:
    """Why the deep model should answer, or None for the fast one."""
    if deep:
        return "asked for the deep model"
    words = len(question.split())
    if words > LONG_QUESTION_WORDS:
        return f"long question ({words} words)"
    tokens = estimate_tokens(question)
    if tokens > LONG_QUESTION_TOKENS:
        return f"long question (~{tokens} tokens)"
    if question.count("?") + question.count("？") >= 2:
        return "several questions"
    match = _EN_CUES.search(question)
    if match:
        return f"needs synthesis ({match.group(0).lower()!r})"
    for cue in _KO_CUES:
        if cue in question:
            return f"needs synthesis ({cue!r})"
    if context_tokens is not None and context_tokens > LARGE_CONTEXT_TOKENS:
        return f"large context ({context_tokens} tokens)"
    return None


def choose_model(
    question: str,
    *,
    deep: bool,
    fast_model: str,
    deep_model: str,
    context_tokens: int | None = None,
) -> str:
    """The model to answer `question` with; see the module docstring for the rule."""
    reason = routing_reason(question, deep=deep, context_tokens=context_tokens)
    return deep_model if reason is not None else fast_model
