"""An answer without an LLM: the note sentences that best match the question, each cited.

Used when generation is off (`VAULTBOT_LLM=none`) or Ollama cannot answer; always labelled,
so nobody mistakes quoted sentences for a written answer. Sentences that hold the kind of value
the question asks for (a date for "when", a number for "how many"; engine/qtype.py) rank higher,
and the best sentence comes first. Korean text is split into sentences by Kiwi (the instance
the keyword tokenizer already loaded), which knows where a sentence ends without a full stop
and that a quoted "좋다." does not end one."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

import numpy as np

from engine.korean import get_kiwi, latin_words, morphemes, tokenize
from engine.models import Hit
from engine.qtype import KIND_WORDS, question_kinds, type_match, value_kinds

# Sentence ends outside Korean: Latin punctuation before a space (so "3.5" stays whole), CJK
# full stops; `_english_split` then mends the cuts made after an abbreviation ("Mar. 3").
_SENTENCE = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])\s*")
_HANGUL = re.compile(r"[\uac00-\ud7a3]")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st sr jr vs etc e.g i.e cf approx est dept fig vol pp inc ltd co corp "
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri u.s u.k".split()
)
# Weight of "holds the kind of value asked for" beside 0.6 meaning + 0.4 shared words.
TYPE_WEIGHT = 0.25
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


def _english_split(line: str) -> list[str]:
    """Sentences of a line without Hangul: a cut after an abbreviation or an initial ("Mar. 3",
    "Dr. Kim", "J. Smith"), or before a lower-case word, is joined back."""
    out: list[str] = []
    for part in _SENTENCE.split(line):
        if out and out[-1].strip():
            last = out[-1].rsplit(None, 1)[-1].lower().rstrip(".")
            if (last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha())
                    or part[:1].islower()):
                out[-1] += " " + part
                continue
        out.append(part)
    return out


def _clean(part: str) -> str:
    part = _WIKILINK.sub(lambda m: m.group(2) or m.group(1).rsplit("/", 1)[-1], part)
    return _MARKUP.sub("", part).strip(" |")


def _sentences(text: str) -> list[tuple[str, bool, list[str] | None]]:
    """(sentence, holds a Korean proper noun, its Kiwi content morphemes or None) for every
    sentence of a note's text. Lines with Hangul go to Kiwi in one batch; its tokens come with
    the split, so the NNP check and the sentence's terms need no second analysis (which had
    been half the quick answer's time)."""
    lines = _lines(text)
    korean = [i for i, line in enumerate(lines) if _HANGUL.search(line)]
    split: dict[int, list[tuple[str, bool, list[str] | None]]] = {}
    if korean:
        batches = get_kiwi().split_into_sents([lines[i] for i in korean], return_tokens=True)
        for i, sents in zip(korean, batches, strict=True):
            split[i] = [(s.text, any(t.tag == "NNP" for t in s.tokens or ()),
                         morphemes(s.tokens or ())) for s in sents]
    out = []
    for i, line in enumerate(lines):
        for part, proper, morphs in split.get(i) or [(p, False, None) for p in _english_split(line)]:
            clean = _clean(part)
            if len(clean) >= 12:
                out.append((clean, proper, morphs))
    return out


def _terms(text: str, morphs: list[str] | None = None) -> set[str]:
    """Content terms, with a light English suffix strip so "moved" meets "move". `morphs`:
    the text's Kiwi morphemes when known already."""
    out = set()
    for t in tokenize(text) if morphs is None else morphs + latin_words(text):
        if t in _STOP:
            continue
        if t.isascii() and len(t) > 3:  # move, moved, moves, moving -> mov
            stem = re.sub(r"(?:ing|ed|es|s)$", "", t)
            t = (stem if len(stem) >= 3 else t).rstrip("e") or t
        out.add(t)
    return out


@cache
def _kind_terms() -> frozenset[str]:
    return frozenset(_terms(KIND_WORDS))


def extractive_answer(
    question: str,
    hits: list[Hit],
    max_sentences: int = 3,
    *,
    query_vector: np.ndarray | None = None,
    embed: Callable[[list[str]], np.ndarray] | None = None,
) -> tuple[str, set[int]]:
    """Pick the sentences closest to the question: shared terms, plus embedding similarity
    when an embedder is given (it catches "why did it move" vs "moved because"), plus holding
    the kind of value the question asks for (engine/qtype.py). The most likely answer comes
    first. Returns the answer text with [n] markers and the source numbers it cites."""
    wanted = question_kinds(question)
    q_terms = _terms(question)
    if wanted and q_terms - _kind_terms():  # "when is the launch date": match "launch", want a date
        q_terms -= _kind_terms()
    # source n, position, sentence, overlap, type match
    candidates: list[tuple[int, int, str, float, float]] = []
    for n, hit in enumerate(hits, start=1):
        for i, (sentence, proper, morphs) in enumerate(_sentences(hit.text)):
            overlap = len(q_terms & _terms(sentence, morphs)) / (len(q_terms) or 1)
            fit = type_match(wanted, value_kinds(sentence, proper_noun=proper)) if wanted else 0.0
            candidates.append((n, i, sentence, overlap, fit))
    if not candidates:
        return "", set()
    similarity = np.zeros(len(candidates), dtype=np.float32)
    if embed is not None and query_vector is not None:
        similarity = embed([c[2] for c in candidates]) @ np.asarray(query_vector, dtype=np.float32)
    scored = []
    for (n, i, sentence, overlap, fit), sim in zip(candidates, similarity, strict=True):
        if overlap == 0 and sim < 0.25:
            continue
        # Meaning and shared words weigh most, then the asked-for kind of value; the source's
        # rank and position break ties.
        score = 0.6 * float(sim) + 0.4 * overlap + TYPE_WEIGHT * fit + 0.03 / n - 0.001 * i
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
    lines = [f"- {sentence} [{n}]" for _, n, _, sentence in best]
    return "\n".join(lines), {n for _, n, _, _ in best}
