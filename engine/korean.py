"""Keyword tokenizers for mixed Korean/English text, used by the lexical (BM25) index.

Two families, compared on KorQuAD 1.0 in bench/korean_tokenizer.py (numbers in
bench/results/lexical.md):

- ``kiwi``: morphemes from the Kiwi analyser. Particles and endings are dropped, content morphemes
  (nouns, verb/adjective stems, roots, latin words, numbers, hanja) are kept, so "회의록을" and
  "회의록" both give "회의록".
  Two nouns (NNG/NNP) in a row across a space also give the pair as one term ("알렉산더
  헤이그" -> 알렉산더, 헤이그, "알렉산더 헤이그"), so multi-word names match as a unit.
- ``bigram``: overlapping character bigrams inside Hangul/CJK runs, whole words elsewhere. Needs no
  model and tolerates compounds and spelling variants, but makes many more (noisier) terms.
- ``kiwi+bigram``: both streams in one bag; bigrams carry a prefix so that a morpheme and a
  bigram with the same letters stay separate terms.

Latin text is lowercased and split into alphanumeric words with no stemming in every variant, so
English behaves the same whichever tokenizer is chosen. Those words come from a regular
expression, never from Kiwi: Kiwi 0.24 splits some Latin words it should keep whole (a third of
the English help vault's paragraphs had one, e.g. "Obsidian." -> "Obs" + "idian."), and text
without Hangul or CJK skips Kiwi altogether (it was most of the cost of indexing English notes). The index defaults to ``kiwi+bigram``,
which ranked best (engine.lexical.DEFAULT_TOKENIZER says by how much).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

TOKENIZERS = ("kiwi", "bigram", "kiwi+bigram")

# Kiwi part-of-speech tags whose morphemes carry content. NN* also covers NNB (bound nouns such
# as 것/수/년); they are frequent but BM25's IDF weighs them down and they help date-like queries.
_KEEP_PREFIXES = ("NN", "VV", "VA", "XR", "SL", "SN", "SH")
# Kiwi's special tokens (#hashtag, URL, e-mail, ...) are split into their words below.
_WEB_PREFIX = "W_"
# Nouns whose space-separated pairs are also kept as one term (see `morphemes`).
_PAIR_TAGS = frozenset(("NNG", "NNP"))
_BIGRAM_MARK = "\x01"  # prefix of bigram terms in the combined stream

# A few English function words: BM25 would weigh them down anyway, but dropping them keeps the
# longest posting lists (and so query time) short. Korean needs no list: Kiwi drops particles.
STOPWORDS_EN = frozenset(
    "a an and are as at be but by for from has have if in into is it its of on or that the "  # noqa: SIM905
    "their then there these this to was were will with".split()
)

_CJK = "\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7a3\uf900-\ufaff"
_RUN_RE = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
_CJK_RE = re.compile(rf"[{_CJK}]")
_CJK_RUN_RE = re.compile(rf"[{_CJK}]+")
_WORD_RE = re.compile(r"[^\W_]+")

_kiwi: Any = None
_kiwi_lock = threading.Lock()


def get_kiwi() -> Any:
    """The process-wide Kiwi analyser, created on first use (loading takes ~1-2 s).

    Double-checked locking so that concurrent first callers build it once. Analysis does not
    mutate the instance (4 threads tokenising the same paragraphs at once got identical
    results), so it is shared by all threads without a lock.
    """
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                # Without Kiwi's multi-word dictionary (proper nouns such as "알렉산더 헤이그" as
                # one morpheme): it is ~180 MB of Kiwi's ~480 MB. `morphemes` pairs nouns across
                # a space instead, which ranks as well on KorQuAD 1.0 dev (bench/korean_tokenizer.py,
                # kiwi+bigram nDCG@10 0.9544 either way, paired 95% CI of the difference
                # -0.0013..+0.0012; without the pairs 0.9532, CI -0.0020..-0.0005) for ~6% more
                # postings; the Korean help vault's title and heading queries did not move
                # beyond noise (-0.003, +0.003). English text never reaches Kiwi.
                kiwi = Kiwi(load_multi_dict=False)
                kiwi.tokenize("")  # Kiwi finishes loading lazily on the first analysis
                _kiwi = kiwi
    return _kiwi


def _latin(word: str, out: list[str]) -> None:
    for w in _WORD_RE.findall(word.lower()):
        if w not in STOPWORDS_EN:
            out.append(w)


def morphemes(tokens: Iterable[Any]) -> list[str]:
    """Kiwi's content morphemes, except Latin words and numbers (`latin_words` has those),
    plus "a b" for each noun `a` followed by noun `b` after a space (not for one glued word:
    bigrams already cover compounds; nor pairs across any other token)."""
    out: list[str] = []
    prev = ""  # the previous token's form when it was a noun of _PAIR_TAGS
    prev_end = 0
    for tok in tokens:
        tag: str = tok.tag
        if tag.startswith(_WEB_PREFIX):  # "#회의록/2026": its Korean words (Latin ones come below)
            out.extend(w for w in _WORD_RE.findall(tok.form.lower()) if _CJK_RE.search(w))
        elif tag.startswith(_KEEP_PREFIXES) and not tag.startswith(("SL", "SN")):
            form = tok.form.lower()
            out.append(form)
            if tag in _PAIR_TAGS:
                if prev and tok.start > prev_end:
                    out.append(f"{prev} {form}")
                prev, prev_end = form, tok.start + tok.len
                continue
        prev = ""
    return out


def latin_words(text: str) -> list[str]:
    """Lowercased Latin/number words of the runs outside Hangul and CJK ("Node.js" -> node, js;
    "#work/alpha" -> work, alpha; "3일" -> 3)."""
    if not _CJK_RE.search(text):  # the common case in one pass: the runs are just the words
        return [w for w in _WORD_RE.findall(text.lower()) if w not in STOPWORDS_EN]
    out: list[str] = []
    for run in _RUN_RE.findall(text):
        if not _CJK_RE.match(run):
            _latin(run, out)
    return out


def _run_bigrams(run: str, out: list[str]) -> None:
    """Bigrams of one Hangul/CJK run (a 1-character run stays a unigram)."""
    if len(run) == 1:
        out.append(run)
    else:
        out.extend(run[i : i + 2] for i in range(len(run) - 1))


def _cjk_bigrams(text: str) -> list[str]:
    """The Hangul/CJK part of `bigram_tokens`."""
    out: list[str] = []
    for run in _CJK_RUN_RE.findall(text):
        _run_bigrams(run, out)
    return out


def kiwi_tokens(text: str) -> list[str]:
    """Content morphemes of `text` (see module docstring)."""
    if not _CJK_RE.search(text):
        return latin_words(text)
    return morphemes(get_kiwi().tokenize(text)) + latin_words(text)


def bigram_tokens(text: str) -> list[str]:
    """Character bigrams of Hangul/CJK runs (a 1-character run stays a unigram) plus whole
    lowercased latin/number words."""
    out: list[str] = []
    for run in _RUN_RE.findall(text):
        if _CJK_RE.match(run):
            _run_bigrams(run, out)
        else:
            _latin(run, out)
    return out


def _combine(morphs: list[str], text: str) -> list[str]:
    return morphs + [_BIGRAM_MARK + t for t in _cjk_bigrams(text)]


def tokenize(text: str, tokenizer: str = "kiwi") -> list[str]:
    """Terms of `text` for the named tokenizer (one of TOKENIZERS)."""
    if tokenizer == "kiwi":
        return kiwi_tokens(text)
    if tokenizer == "bigram":
        return bigram_tokens(text)
    if tokenizer == "kiwi+bigram":
        return _combine(kiwi_tokens(text), text)
    raise ValueError(f"unknown tokenizer {tokenizer!r}; expected one of {TOKENIZERS}")


def tokenize_many(texts: Sequence[str], tokenizer: str = "kiwi") -> list[list[str]]:
    """Like `tokenize` for many texts; Kiwi analyses a batch on its worker threads (about twice
    the single-call throughput on 2 cores)."""
    if tokenizer == "bigram":
        return [bigram_tokens(t) for t in texts]
    if tokenizer not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; expected one of {TOKENIZERS}")
    if not texts:
        return []
    asian = [i for i, t in enumerate(texts) if _CJK_RE.search(t)]
    morphs = [latin_words(t) for t in texts]
    if asian:
        for i, toks in zip(asian, get_kiwi().tokenize([texts[i] for i in asian]), strict=True):
            morphs[i] = morphemes(toks) + morphs[i]
    if tokenizer == "kiwi":
        return morphs
    return [_combine(m, t) for m, t in zip(morphs, texts, strict=True)]
