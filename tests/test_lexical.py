"""The keyword index: tokenizers, BM25 ranking, updates, scope filtering, persistence."""

from __future__ import annotations

import math
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

import engine.lexical as lexical
from engine.korean import bigram_tokens, get_kiwi, tokenize, tokenize_many
from engine.lexical import LexDoc, LexicalIndex
from engine.models import Scope


@pytest.fixture(scope="module", autouse=True)
def kiwi() -> object:
    """Load Kiwi once for the module (about 1-2 s); the tokenizer shares it process-wide."""
    return get_kiwi()


def ids(results: list[tuple[str, float]]) -> list[str]:
    return [cid for cid, _ in results]


# ---------------------------------------------------------------- tokenizers


def test_kiwi_keeps_content_morphemes_and_drops_particles() -> None:
    assert tokenize("회의록을 작성하는 방법", "kiwi") == ["회의록", "작성", "방법"]
    mixed = tokenize("Obsidian에서 Node.js 3.14 버전을 #project/alpha 태그로", "kiwi")
    assert {"obsidian", "node", "js", "3", "14", "버전", "태그", "project", "alpha"} <= set(mixed)
    assert not {"에서", "을", "로"} & set(mixed)
    assert "회의록" in tokenize("#회의록/2026 정리", "kiwi")  # a Korean hashtag keeps its word


def test_latin_words_are_whole_whatever_kiwi_does() -> None:
    """Kiwi 0.24 cuts "Obsidian." into "Obs" + "idian."; Latin words never come from it."""
    text = "Find support resources and learn how to contribute to Obsidian."
    assert tokenize(text, "kiwi") == ["find", "support", "resources", "learn", "how",
                                      "contribute", "obsidian"]
    assert tokenize(text, "kiwi") == tokenize(text, "bigram") == tokenize(text, "kiwi+bigram")
    korean = "설정에서 Obsidian.을 고른다"
    assert "obsidian" in tokenize(korean, "kiwi") and "obs" not in tokenize(korean, "kiwi")
    assert tokenize_many([text, korean], "kiwi+bigram") == [tokenize(text, "kiwi+bigram"),
                                                          tokenize(korean, "kiwi+bigram")]


def test_nouns_across_a_space_also_give_the_pair() -> None:
    """Kiwi runs without its multi-word dictionary (~180 MB); two nouns in a row across a space
    add their pair instead, so a multi-word name still matches as a unit. No pair inside a glued
    compound (국무장관: bigrams cover it) nor across a particle (헤이그는 미국)."""
    assert tokenize("알렉산더 헤이그는 미국의 국무장관이었다", "kiwi") == [
        "알렉산더", "헤이그", "알렉산더 헤이그", "미국", "국무", "장관"]
    ix = LexicalIndex(None)
    ix.upsert([LexDoc("name", "오스트리아 출신 마리 앙투아네트의 어린 시절과 결혼", "a.md"),
               LexDoc("apart", "마리는 앙투아네트를 만났다", "b.md")])  # shorter: wins on words
    assert ids(ix.search("마리 앙투아네트")) == ["name", "apart"]


def test_bigrams_cover_hangul_runs_and_keep_latin_words() -> None:
    assert bigram_tokens("회의록을 Meeting-Notes 가") == [
        "회의",
        "의록",
        "록을",
        "meeting",
        "notes",
        "가",
    ]


def test_combined_stream_keeps_morphemes_and_bigrams_apart() -> None:
    toks = tokenize("회의록 작성", "kiwi+bigram")
    assert "회의록" in toks and "작성" in toks
    # the bigram "작성" must not be counted as the morpheme "작성"
    assert toks.count("작성") == 1 and sum(t.endswith("회의") for t in toks) == 1


def test_unknown_tokenizer_is_refused() -> None:
    with pytest.raises(ValueError):
        LexicalIndex(None, "whitespace")


# ---------------------------------------------------------------- ranking


@pytest.mark.parametrize("tokenizer", ["kiwi", "bigram", "kiwi+bigram"])
def test_korean_query_finds_doc_by_morphemes(tokenizer: str) -> None:
    ix = LexicalIndex(None, tokenizer)
    ix.upsert(
        [
            LexDoc("minutes", "주간 회의록 작성 요령: 결정 사항을 먼저 적는다", "Work/a.md"),
            LexDoc("lunch", "점심 메뉴 추천과 맛집 목록", "Home/b.md"),
            LexDoc("trip", "여행 준비물: 여권, 충전기, 우산", "Home/c.md"),
        ]
    )
    assert ids(ix.search("회의록을 작성하는 방법"))[0] == "minutes"
    assert ids(ix.search("맛집은 어디에 있나요")) == ["lunch"]


def test_default_tokenizer_matches_part_of_a_compound() -> None:
    ix = LexicalIndex(None)  # the default adds bigrams to the morphemes
    ix.upsert([LexDoc("m", "주간 회의록 정리", "a.md"), LexDoc("o", "주간 일정 정리", "b.md")])
    assert ids(ix.search("회의")) == ["m"]  # Kiwi alone keeps 회의록 whole: no match
    kiwi_only = LexicalIndex(None, "kiwi")
    kiwi_only.upsert([LexDoc("m", "주간 회의록 정리", "a.md")])
    assert kiwi_only.search("회의") == []


def test_english_matches_words_case_insensitively_without_stemming() -> None:
    ix = LexicalIndex(None)
    ix.upsert(
        [
            LexDoc("m", "Meeting notes from the Monday sync", "a.md"),
            LexDoc("r", "Recipes for a rainy day", "b.md"),
        ]
    )
    assert ids(ix.search("MEETING")) == ["m"]
    assert ids(ix.search("monday Notes")) == ["m"]
    assert ix.search("meetings") == []  # no stemming: "meetings" is another word
    assert ix.search("the for a") == []  # stopwords only


def test_more_matching_terms_rank_higher() -> None:
    ix = LexicalIndex(None)
    ix.upsert(
        [
            LexDoc("one", "apple filler filler", "1.md"),
            LexDoc("three", "apple banana cherry", "3.md"),
            LexDoc("two", "apple banana filler", "2.md"),
            LexDoc("none", "durian filler filler", "0.md"),
        ]
    )
    assert ids(ix.search("apple banana cherry")) == ["three", "two", "one"]


def test_scores_are_bm25() -> None:
    docs = {"d1": "sun sun moon", "d2": "sun star", "d3": "comet"}
    ix = LexicalIndex(None, k1=1.2, b=0.75)
    ix.upsert(LexDoc(k, v, f"{k}.md") for k, v in docs.items())
    n, avgdl = 3, (3 + 2 + 1) / 3

    def bm25(term: str, doc: str) -> float:
        words = docs[doc].split()
        df = sum(term in v.split() for v in docs.values())
        tf = words.count(term)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * len(words) / avgdl))

    got = dict(ix.search("sun moon"))
    assert got.keys() == {"d1", "d2"}
    assert got["d1"] == pytest.approx(bm25("sun", "d1") + bm25("moon", "d1"), rel=1e-5)
    assert got["d2"] == pytest.approx(bm25("sun", "d2"), rel=1e-5)


# ---------------------------------------------------------------- updates


def test_upsert_replaces_and_delete_removes() -> None:
    ix = LexicalIndex(None)
    ix.upsert([LexDoc("x", "zebra stripes", "a/x.md"), LexDoc("y", "zebra crossing", "a/y.md")])
    g = ix.generation
    ix.upsert([LexDoc("x", "giraffe neck", "a/x.md")])
    assert ix.generation > g
    assert ids(ix.search("zebra")) == ["y"]
    assert ids(ix.search("giraffe")) == ["x"]
    assert len(ix) == 2 and ix.ids() == {"x", "y"}

    g = ix.generation
    assert ix.delete(["y", "unknown"]) == 1
    assert ix.generation > g
    assert ix.search("zebra") == []
    g = ix.generation
    assert ix.delete(["y"]) == 0
    assert ix.generation == g  # nothing changed, nothing to invalidate
    assert ix.ids() == {"x"}


def test_delete_note_removes_all_its_chunks() -> None:
    ix = LexicalIndex(None)
    ix.upsert(
        [
            LexDoc("a1", "alpha one", "n/a.md"),
            LexDoc("a2", "alpha two", "n/a.md", ("t",)),
            LexDoc("b1", "alpha three", "n/b.md"),
        ]
    )
    assert ix.delete_note("n/a.md") == 2
    assert ids(ix.search("alpha")) == ["b1"]


def test_merging_the_delta_changes_nothing_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    """Incremental updates (delta postings, dead slots, automatic merges) must rank exactly
    like an index built in one go from the final documents."""
    monkeypatch.setattr(lexical, "_MERGE_MIN_POSTINGS", 10)
    monkeypatch.setattr(lexical, "_MERGE_MIN_DEAD", 3)
    words = [
        "alpha",
        "beta",
        "gamma",
        "delta",
        "epsilon",
        "zeta",
        "eta",
        "theta",
        "iota",
        "kappa",
        "lambda",
    ]
    final: dict[str, LexDoc] = {}
    ix = LexicalIndex(None)
    for i in range(60):
        text = " ".join(words[(i * j) % len(words)] for j in range(1, 2 + i % 7))
        doc = LexDoc(f"d{i % 25}", text, f"f{i % 3}/n{i % 25}.md", (f"t{i % 2}",))
        ix.upsert([doc])
        final[doc.chunk_id] = doc
        if i % 9 == 0:
            ix.delete([f"d{(i + 5) % 25}"])
            final.pop(f"d{(i + 5) % 25}", None)
    fresh = LexicalIndex(None)
    fresh.upsert(final.values())
    assert ix.ids() == fresh.ids()
    for q in ["alpha beta", "gamma", "kappa lambda iota", "zeta eta"]:
        for scope in (None, Scope(folders=("f1",)), Scope(tags=("t0",))):
            got, want = ix.search(q, 50, scope), fresh.search(q, 50, scope)
            assert ids(got) and sorted(ids(got)) == sorted(ids(want))
            assert dict(got) == pytest.approx(dict(want), rel=1e-5)


# ---------------------------------------------------------------- scope


@pytest.fixture(scope="module")
def scoped() -> LexicalIndex:
    """'report' docs everywhere; the Home ones mention it more, so they outrank Work ones."""
    ix = LexicalIndex(None)
    docs = []
    for i in range(10):
        docs.append(LexDoc(f"home{i}", "report report report notes", f"Home/h{i}.md", ("misc",)))
        docs.append(
            LexDoc(f"work{i}", f"report draft {i}", f"Work/Team/w{i}.md", ("project/alpha",))
        )
    docs.append(LexDoc("secret", "report report report report", "Work/s.md", (), True))
    ix.upsert(docs)
    return ix


def test_scope_folder_filters_before_top_k(scoped: LexicalIndex) -> None:
    assert all(c.startswith("home") or c == "secret" for c in ids(scoped.search("report", 5)))
    got = ids(scoped.search("report", 5, Scope(folders=("Work",))))
    assert len(got) == 5 and all(c.startswith("work") for c in got)
    got = ids(scoped.search("report", 50, Scope(exclude_folders=("Home",))))
    assert sorted(got) == sorted(f"work{i}" for i in range(10))


def test_scope_tags_match_nested_tags(scoped: LexicalIndex) -> None:
    got = ids(scoped.search("report", 5, Scope(tags=("project",))))
    assert len(got) == 5 and all(c.startswith("work") for c in got)
    got = ids(scoped.search("report", 50, Scope(exclude_tags=("project/alpha",))))
    assert sorted(got) == sorted(f"home{i}" for i in range(10))


def test_scope_private_and_notes(scoped: LexicalIndex) -> None:
    assert "secret" not in ids(scoped.search("report", 50, Scope()))
    assert ids(scoped.search("report", 1, Scope(include_private=True))) == ["secret"]
    assert ids(scoped.search("report", 1)) == ["secret"]  # None: no filter at all
    got = ids(scoped.search("report", 5, Scope(notes=("Work/Team/w3.md", "Home/h1.md"))))
    assert sorted(got) == ["home1", "work3"]


# ---------------------------------------------------------------- persistence


def test_second_instance_sees_docs_and_later_commits(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    writer = LexicalIndex(path)
    writer.upsert(
        [
            LexDoc("a", "회의록 작성 요령", "Work/a.md", ("meeting",)),
            LexDoc("b", "점심 메뉴 추천", "Home/b.md", (), True),
        ]
    )
    reader = LexicalIndex(path)
    assert reader.ids() == {"a", "b"}
    assert reader.generation == writer.generation
    assert reader.search("회의록을 작성하는 방법") == writer.search("회의록을 작성하는 방법")
    assert reader.search("점심", scope=Scope()) == []  # metadata survives the round trip
    assert ids(reader.search("메뉴", scope=Scope(include_private=True))) == ["b"]

    writer.upsert([LexDoc("c", "저녁 메뉴 추천", "Home/c.md")])
    writer.upsert([LexDoc("b", "점심 약속 취소", "Home/b.md")])
    writer.delete(["a"])
    assert ids(reader.search("메뉴", scope=Scope(include_private=True))) == ["c"]
    assert reader.ids() == {"b", "c"} and reader.generation == writer.generation
    assert ids(reader.search("취소", scope=Scope(tags=("meeting",)))) == []
    # and the other way round: the reader writes, the first instance catches up
    reader.delete_note("Home/c.md")
    assert writer.ids() == {"b"} and len(writer) == 1
    writer.close()
    reader.close()
    assert LexicalIndex(path).ids() == {"b"}


def test_failed_batch_leaves_old_state(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    ix = LexicalIndex(path)
    ix.upsert([LexDoc("a", "old text", "a.md")])
    g = ix.generation
    bad = LexDoc("c", "broken", None)  # type: ignore[arg-type]  # NOT NULL fails mid-batch
    with pytest.raises(sqlite3.IntegrityError):
        ix.upsert([LexDoc("a", "new text", "a.md"), LexDoc("b", "more text", "b.md"), bad])
    assert ix.generation == g and ix.ids() == {"a"} and ids(ix.search("old")) == ["a"]
    assert ix.search("new") == []
    again = LexicalIndex(path)
    assert again.ids() == {"a"} and again.search("new") == [] and again.generation == g
    ix.upsert([LexDoc("b", "more text", "b.md")])  # still writable afterwards
    assert again.ids() == {"a", "b"}


def test_other_tokenizer_on_disk_starts_empty(tmp_path: Path) -> None:
    path = tmp_path / "kw.sqlite3"
    first = LexicalIndex(path, "kiwi")
    first.upsert([LexDoc("a", "회의록", "a.md")])
    other = LexicalIndex(path, "bigram")
    assert len(other) == 0  # term ids of another tokenizer are useless; repair re-adds
    other.upsert([LexDoc("a", "회의록", "a.md")])
    assert ids(LexicalIndex(path, "bigram").search("회의")) == ["a"]
    with pytest.raises(RuntimeError, match="tokenizer"):
        first.search("회의록")  # must not mix term ids of two tokenizers
    first.close()
    with pytest.raises(RuntimeError, match="closed"):
        first.upsert([LexDoc("b", "text", "b.md")])


def test_upsert_chunks_adapter_indexes_title_and_note_metadata() -> None:
    @dataclass
    class Chunk:
        id: str
        note_path: str
        embed_text: str

    @dataclass
    class Note:
        title: str
        tags: tuple[str, ...]
        private: bool
        suspect: tuple[str, ...] = ()

    ix = LexicalIndex(None)
    ix.upsert_chunks(
        [Chunk("c1", "p/Roadmap.md", "Plans > Q3\n\nship the thing")],
        {"p/Roadmap.md": Note("Roadmap", ("plan",), True)},
    )
    assert ids(ix.search("roadmap q3", scope=Scope(include_private=True, tags=("plan",)))) == ["c1"]
    assert ix.search("roadmap", scope=Scope()) == []


def test_search_while_writing_from_another_thread(tmp_path: Path) -> None:
    ix = LexicalIndex(tmp_path / "kw.sqlite3")
    ix.upsert([LexDoc(f"s{i}", f"stable word{i}", "s.md") for i in range(50)])
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                assert len(ix.search("stable", 100)) == 50
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(150):
        ix.upsert([LexDoc(f"v{i}", f"volatile number{i}", "v.md")])
        if i % 3 == 0:
            ix.delete([f"v{i - 1}"])
        if i % 50 == 0:
            ix.merge()
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert len(ix.search("volatile", 500)) == len(ix) - 50 == 150 - 49


# ---------------------------------------------------------------- other processes

_CHILD = """
import os, sys
sys.path.insert(0, {root!r})
from engine.lexical import LexDoc, LexicalIndex

ix = LexicalIndex({path!r}, "bigram")
ix.upsert([LexDoc("child1", "sunflower field", "c/1.md", ("garden",))])
if {crash!r}:
    real = ix._db

    class Dying:  # dies inside the batch, after its rows are written, before COMMIT
        calls = 0

        def __getattr__(self, name):
            return getattr(real, name)

        def executemany(self, *args):
            Dying.calls += 1
            if Dying.calls == 4:  # meta, vocab, docs written; tombstones next
                os._exit(3)
            return real.executemany(*args)

    ix._db = Dying()
    ix.upsert([LexDoc("child2", "tulip bulbs", "c/2.md"), LexDoc("child1", "gone", "c/1.md")])
"""


@pytest.mark.parametrize("crash", [False, True])
def test_another_process_writes_or_crashes_mid_batch(tmp_path: Path, crash: bool) -> None:
    import subprocess
    import sys

    path = tmp_path / "kw.sqlite3"
    ix = LexicalIndex(path, "bigram")
    ix.upsert([LexDoc("mine", "rose garden", "m.md")])
    root = str(Path(__file__).resolve().parents[1])
    code = _CHILD.format(root=root, path=str(path), crash=crash)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == (3 if crash else 0), proc.stderr
    # the committed batch is visible without reopening; the crashed one left no trace
    assert ix.ids() == {"mine", "child1"}
    assert ids(ix.search("sunflower", scope=Scope(tags=("garden",)))) == ["child1"]
    assert ix.search("tulip") == [] and ix.search("gone") == []
    assert ix.generation == 2
    ix.upsert([LexDoc("after", "tulip vase", "a.md")])  # the dead writer's lock is gone
    assert ids(LexicalIndex(path, "bigram").search("tulip")) == ["after"]
