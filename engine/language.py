"""Which of the vaults' two languages (Korean, English) a text is written in.

Two questions with different answers: the language to answer a question in (the question's
majority script), and the language a note is written in, for adaptive fusion. Korean notes
quote English freely (UI names, code, track lists), so a note counts as Korean from a lower
share of Hangul, each syllable weighed as the 2.5 Latin letters it carries about as much as."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.models import ChunkRecord

_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_LATIN = re.compile(r"[A-Za-z]")
SYLLABLE_LETTERS = 2.5
NOTE_KOREAN_SHARE = 0.3  # bench/fusion_rules.py: 0.3 and 0.45 rank alike; 0.3 misreads fewer notes
NOTE_LANGUAGE_CHUNKS = 50  # a note's language is judged on its first chunks (long PDFs)


def question_language(text: str) -> str:
    """'ko' when the question is mostly Hangul, else 'en'."""
    hangul = len(_HANGUL.findall(text))
    latin = len(_LATIN.findall(text))
    return "ko" if hangul and hangul * 3 >= latin else "en"


def hangul_share(text: str) -> float:
    """Hangul's share of the letters, a syllable counted as SYLLABLE_LETTERS letters."""
    hangul = len(_HANGUL.findall(text)) * SYLLABLE_LETTERS
    latin = len(_LATIN.findall(text))
    return hangul / (hangul + latin) if hangul + latin else 0.0


def note_language(text: str) -> str:
    """'ko' or 'en' for a note's text."""
    return "ko" if hangul_share(text) >= NOTE_KOREAN_SHARE else "en"


def language_of_texts(texts: Iterable[str]) -> str:
    """A note's language from its chunks' texts in order, judged on the first
    NOTE_LANGUAGE_CHUNKS (long PDFs). Sync stores it (notes.language); retrieval computes it
    the same way for a note stored before that column existed."""
    first = [t for _, t in zip(range(NOTE_LANGUAGE_CHUNKS), texts, strict=False)]
    return note_language("\n".join(first))


def language_of_chunks(chunks: Iterable[ChunkRecord]) -> str:
    """A note's language from its chunks, taken in their order in the note: what sync stores
    in notes.language and retrieval judges for a note stored before that column existed."""
    return language_of_texts(c.text for c in sorted(chunks, key=lambda c: c.ordinal))
