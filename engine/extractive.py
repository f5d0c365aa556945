"""An answer without an LLM: the note sentences that best match the question, each cited.

Used when generation is off (`VAULTBOT_LLM=none`) or Ollama cannot answer; always labelled,
so nobody mistakes quoted sentences for a written answer."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np

from engine.korean import tokenize
from engine.models import Hit

# Sentence ends: Latin punctuation, CJK full stops, Korean declarative endings, or line breaks.
_SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|(?<=다\.)\s*|\n+")
_MARKUP = re.compile(
    r"^\s*(?:[#>*\-+]+|\d+[.)]|\|)\s*(?:\[[ xX]\]\s*)?"  # list, quote, heading, task box
    r"|\s\^[\w-]+\s*$|^\^[\w-]+$"  # block ids
    r"|\[!\w+\][-+]?|[*_`]"
)


_WIKILINK = re.compile(r"!?\[\[([^\]|#]*)(?:#[^\]|]*)?(?:\|([^\]]*))?\]\]")
_BLOCK_START = re.compile(r"^\s*(?:[#>|]|[-*+]\s|\d+[.)]\s)")
_STOP = frozenset(
    "a an the and or but if of to in on at for with by from as is are was were be been being do "
    "does did how what when where which who whom why whose can could should would will shall may "
    "might must i you he she it we they me my your our their this that these those there here "
    "not no yes about into than then so such".split()
)


def _lines(text: str) -> list[str]:
    """Logical lines: soft-wrapped paragraph lines joined, list items and quotes kept apart,
    code fences and table rules dropped."""
    out: list[str] = []
    in_fence = False
    joinable = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith(("```", "~~~")):
            in_fence = not in_fence
            joinable = False
            continue
        if in_fence or not line or line.startswith("|"):  # tables read badly as sentences
            joinable = False
            continue
        if joinable and not _BLOCK_START.match(raw):
            out[-1] += " " + line
        else:
            out.append(line)
        joinable = not line.startswith(("#", "|"))
    return out


def _sentences(text: str) -> list[str]:
    out = []
    for line in _lines(text):
        for part in _SENTENCE.split(line):
            part = _WIKILINK.sub(lambda m: m.group(2) or m.group(1).rsplit("/", 1)[-1], part)
            clean = _MARKUP.sub("", part).strip(" |")
            if len(clean) >= 12:
                out.append(clean)
    return out


def _terms(text: str) -> set[str]:
    """Content terms, with a light English suffix strip so "moved" meets "move"."""
    out = set()
    for t in tokenize(text):
        if t in _STOP:
            continue
        if t.isascii() and len(t) > 3:  # move, moved, moves, moving -> mov
            stem = re.sub(r"(?:ing|ed|es|s)$", "", t)
            t = (stem if len(stem) >= 3 else t).rstrip("e") or t
        out.add(t)
    return out


def extractive_answer(
    question: str,
    hits: list[Hit],
    max_sentences: int = 3,
    *,
    query_vector: np.ndarray | None = None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> tuple[str, set[int]]:
    """Pick the sentences closest to the question: shared terms, plus embedding similarity
    when an embedder is given (it catches "why did it move" vs "moved because").
    Returns the answer text with [n] markers and the source numbers it cites."""
    q_terms = _terms(question)
    candidates: list[tuple[int, int, str, float]] = []  # source n, position, sentence, overlap
    for n, hit in enumerate(hits, start=1):
        for i, sentence in enumerate(_sentences(hit.text)):
            overlap = len(q_terms & _terms(sentence)) / (len(q_terms) or 1)
            candidates.append((n, i, sentence, overlap))
    if not candidates:
        return "", set()
    similarity = np.zeros(len(candidates), dtype=np.float32)
    if embed is not None and query_vector is not None:
        similarity = embed([c[2] for c in candidates]) @ np.asarray(query_vector, dtype=np.float32)
    scored = []
    for (n, i, sentence, overlap), sim in zip(candidates, similarity, strict=True):
        if overlap == 0 and sim < 0.25:
            continue
        # Meaning and shared words weigh most; the source's rank and position break ties.
        score = 0.6 * float(sim) + 0.4 * overlap + 0.03 / n - 0.001 * i
        scored.append((score, n, i, sentence))
    if not scored:
        return "", set()
    best, seen = [], set()
    for item in sorted(scored, key=lambda s: s[0], reverse=True):
        key = " ".join(item[3].lower().split())
        if key not in seen:  # an embedded note repeats its source's sentences
            seen.add(key)
            best.append(item)
        if len(best) == max_sentences:
            break
    best.sort(key=lambda s: (s[1], s[2]))  # read in source order
    lines = [f"- {sentence} [{n}]" for _, n, _, sentence in best]
    return "\n".join(lines), {n for _, n, _, _ in best}
