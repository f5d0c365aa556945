"""Speed of engine.lexical.LexicalIndex at 10k and 100k synthetic chunks.

Chunks are built by sampling real sentences (KorQuAD paragraphs and the three test vaults,
Korean and English) into ~6-14 sentence chunks spread over notes, folders and tags like a vault.
The sentence pool is tokenised once; building the big indexes then reuses those tokens (the
tokenizer is swapped for a lookup), so "build" measures the index alone. Tokenising cost is
reported separately (chars/s, and the real cost for one chunk).

    .venv/bin/python bench/lexical_speed.py [--sizes 10000 100000] [--tokenizer kiwi] [--fts5]

Writes its section of bench/results/lexical.md (one section per tokenizer).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from korean_tokenizer import KORQUAD, RESULTS, load_korquad, machine, write_section  # noqa: E402

import engine.lexical as lexical  # noqa: E402
from engine.korean import tokenize, tokenize_many  # noqa: E402
from engine.lexical import LexDoc, LexicalIndex  # noqa: E402
from engine.models import Scope  # noqa: E402

VAULTS = ROOT.parent / "shared" / "corpus" / "vaults"
FOLDERS = [
    "Work",
    "Work/Projects",
    "Work/Projects/Alpha",
    "Work/Meetings",
    "Personal",
    "Personal/Journal",
    "Reading",
    "Reading/Papers",
    "Clippings",
    "Daily",
    "Archive",
    "Archive/2023",
]
TAGS = [f"tag{i}" for i in range(20)] + ["project/alpha", "project/beta", "meeting", "idea"]


def sentence_pool() -> list[str]:
    paragraphs, _ = load_korquad(KORQUAD)
    sents = [s for p in paragraphs for s in re.split(r"(?<=[.!?])\s+", p) if len(s) > 10]
    for f in sorted(VAULTS.rglob("*.md")):
        text = f.read_text(encoding="utf-8", errors="replace")
        sents.extend(s for s in re.split(r"(?<=[.!?])\s+|\n+", text) if len(s) > 20)
    return sents


class Corpus:
    """Synthetic chunks whose tokens are known without running the tokenizer again."""

    def __init__(self, sents: list[str], tokens: list[list[str]], seed: int = 7) -> None:
        self.sents, self.tokens = sents, tokens
        self.rng = random.Random(seed)
        self.known: dict[str, list[str]] = {}

    def text(self) -> str:
        idx = [self.rng.randrange(len(self.sents)) for _ in range(self.rng.randint(6, 14))]
        text = " ".join(self.sents[i] for i in idx)
        self.known[text] = [t for i in idx for t in self.tokens[i]]
        return text

    def docs(self, n: int) -> list[LexDoc]:
        out: list[LexDoc] = []
        note = 0
        while len(out) < n:
            folder = self.rng.choice(FOLDERS)
            tags = tuple(self.rng.sample(TAGS, self.rng.randint(0, 3)))
            private = self.rng.random() < 0.03
            path = f"{folder}/note{note}.md"
            for j in range(min(self.rng.randint(1, 20), n - len(out))):
                out.append(LexDoc(f"c{note}-{j}", self.text(), path, tags, private))
            note += 1
        return out

    def lookup(self, texts: Sequence[str], tokenizer: str = "kiwi") -> list[list[str]]:
        return [self.known.get(t) or tokenize(t, tokenizer) for t in texts]


def mixed_queries(sents: list[str], n: int, seed: int = 3) -> tuple[list[str], list[str]]:
    """n queries: 80 % KorQuAD questions, the rest 3-6 word spans of English pool sentences."""
    rng = random.Random(seed)
    _, questions = load_korquad(KORQUAD)
    ko = [q for q, _ in rng.sample(questions, int(n * 0.8))]
    en_sents = [s for s in sents if re.fullmatch(r"[\x00-\x7f]+", s) and len(s.split()) >= 6]
    en = []
    for s in rng.sample(en_sents, n - len(ko)):
        words = s.split()
        start = rng.randrange(0, len(words) - 4)
        en.append(" ".join(words[start : start + rng.randint(3, 6)]))
    return ko, en


def bench_scopes(docs: Sequence[LexDoc]) -> dict[str, Scope | None]:
    """The scopes every keyword search is timed with (this script and pg_keywords_speed.py)."""
    return {
        "none": None,
        "default Scope() (hides private)": Scope(),
        "folder Work/Meetings": Scope(folders=("Work/Meetings",)),
        "tag meeting": Scope(tags=("meeting",)),
        "one note": Scope(notes=(docs[len(docs) // 2].note_path,)),
    }


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def load_in_subprocess(path: Path, tokenizer: str) -> dict[str, float]:
    """Open the index in a fresh process, as `vaultbot search` would."""
    code = f"""
import json, sys, time

def rss_mb():  # current resident set; ru_maxrss would include the parent's peak after exec
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
sys.path.insert(0, {str(ROOT)!r})
t0 = time.perf_counter()
from engine.lexical import LexicalIndex
t1 = time.perf_counter()
rss_import = rss_mb()
ix = LexicalIndex({str(path)!r}, {tokenizer!r})
t2 = time.perf_counter()
rss_load = rss_mb()
n = len(ix)
ix.search("대한민국의 수도는 어디인가")
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "load": t2 - t1, "first_search": t3 - t2, "n": n, "rss_load_mb": rss_load, "rss_import_mb": rss_import,
    "rss_mb": rss_mb()}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def fts5_baseline(docs: list[LexDoc], corpus: Corpus, queries: list[str], tokenizer: str) -> dict:
    """The alternative considered first: FTS5 with bm25() over space-joined tokens."""
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "fts.sqlite3")
        db.execute(
            "CREATE VIRTUAL TABLE f USING fts5(body, tokenize='unicode61 remove_diacritics 0')"
        )
        db.execute("CREATE TABLE m(id INTEGER PRIMARY KEY, folder TEXT)")
        t0 = time.perf_counter()
        with db:
            db.executemany(
                "INSERT INTO f(rowid, body) VALUES (?, ?)",
                ((i, " ".join(corpus.known[d.text])) for i, d in enumerate(docs)),
            )
            db.executemany(
                "INSERT INTO m VALUES (?, ?)",
                ((i, d.note_path.rsplit("/", 1)[0]) for i, d in enumerate(docs)),
            )
        build = time.perf_counter() - t0

        def expr(q: str) -> str:
            return " OR ".join(
                '"' + t.replace('"', '""') + '"' for t in set(tokenize(q, tokenizer))
            )

        exprs = [expr(q) for q in queries if tokenize(q, tokenizer)]
        plain = []
        for e in exprs:
            t0 = time.perf_counter()
            db.execute(
                "SELECT rowid, bm25(f) FROM f WHERE f MATCH ? ORDER BY rank LIMIT 20", (e,)
            ).fetchall()
            plain.append((time.perf_counter() - t0) * 1000)
        scoped = []
        for e in exprs[:20]:
            t0 = time.perf_counter()
            db.execute(
                "SELECT f.rowid, bm25(f) FROM f JOIN m ON m.id = f.rowid WHERE f MATCH ? "
                "AND m.folder = 'Work/Meetings' ORDER BY rank LIMIT 20",
                (e,),
            ).fetchall()
            scoped.append((time.perf_counter() - t0) * 1000)
        upsert = []
        for i in range(50):
            t0 = time.perf_counter()
            with db:
                db.execute("DELETE FROM f WHERE rowid = ?", (i,))
                db.execute(
                    "INSERT INTO f(rowid, body) VALUES (?, ?)",
                    (i, " ".join(corpus.known[docs[i + 1].text])),
                )
            upsert.append((time.perf_counter() - t0) * 1000)
        db.close()
        size = (Path(tmp) / "fts.sqlite3").stat().st_size
    return {
        "build_s": build,
        "p50": pct(plain, 50),
        "p95": pct(plain, 95),
        "scoped_p50": pct(scoped, 50),
        "scoped_p95": pct(scoped, 95),
        "upsert_p50": pct(upsert, 50),
        "size_mb": size / 1e6,
    }


def bench_size(
    n: int, corpus: Corpus, queries: list[str], tokenizer: str, fts5: bool
) -> dict[str, object]:
    docs = corpus.docs(n)
    chars = sum(len(d.text) for d in docs)
    res: dict[str, object] = {"n": n, "notes": len({d.note_path for d in docs}), "chars": chars}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lexical.sqlite3"
        ix = LexicalIndex(path, tokenizer)
        t0 = time.perf_counter()
        for i in range(0, n, 1000):  # sync commits in batches
            ix.upsert(docs[i : i + 1000])
        res["build_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ix.merge()
        res["merge_s"] = time.perf_counter() - t0
        mem = ix._mem
        res["postings"] = int(mem.base_doc.size)
        res["terms"] = len(ix._vocab)
        res["size_mb"] = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 1e6

        scopes = bench_scopes(docs)
        lat: dict[str, list[float]] = {}
        for name, scope in scopes.items():
            for q in queries[:20]:  # warm-up; also fills the scope mask cache
                ix.search(q, 20, scope)
            lat[name] = [timed(lambda q=q, s=scope: ix.search(q, 20, s), 1)[0] for q in queries]
        res["search"] = {k: (pct(v, 50), pct(v, 95), pct(v, 99)) for k, v in lat.items()}
        res["tokenize_query_p50"] = pct(
            [timed(lambda q=q: tokenize(q, tokenizer), 1)[0] for q in queries], 50
        )
        # Cold scope: first query with a never-seen scope evaluates Scope.allows per note.
        cold = []
        for i in range(20):
            s = Scope(folders=(FOLDERS[i % len(FOLDERS)],), exclude_tags=(f"tag{i}",))
            cold.append(timed(lambda s=s, q=queries[i]: ix.search(q, 20, s), 1)[0])
        res["search_cold_scope_p50"] = pct(cold, 50)

        # Single-doc changes, each its own transaction, as the watcher does them.
        reader = LexicalIndex(path, tokenizer)
        replace = [
            LexDoc(d.chunk_id, corpus.text(), d.note_path, d.tags, d.private) for d in docs[:200]
        ]
        up = [timed(lambda d=d: ix.upsert([d]), 1)[0] for d in replace]
        res["upsert_ms"] = (pct(up, 50), pct(up, 95))
        dl = [timed(lambda d=d: ix.delete([d.chunk_id]), 1)[0] for d in docs[200:400]]
        res["delete_ms"] = (pct(dl, 50), pct(dl, 95))
        t0 = time.perf_counter()
        seen = len(reader)  # catches up on the 400 commits above
        res["catch_up_ms"] = (time.perf_counter() - t0) * 1000
        assert seen == n - 200, (seen, n)
        # After those updates the delta is non-empty: search must stay fast there too.
        after = [timed(lambda q=q: ix.search(q, 20, Scope()), 1)[0] for q in queries]
        res["search_after_updates"] = (pct(after, 50), pct(after, 95))
        # Real tokenisation cost of one chunk (not included in upsert_ms above).
        sample = [d.text for d in replace[:100]]
        res["tokenize_chunk_ms"] = pct(
            [timed(lambda t=t: tokenize(t, tokenizer), 1)[0] for t in sample], 50
        )
        ix.close()
        reader.close()
        res["load"] = load_in_subprocess(path, tokenizer)
        if fts5:
            res["fts5"] = fts5_baseline(docs, corpus, queries, tokenizer)
    return res


def report(results: list[dict], tokenizer: str, pool_chars_s: float) -> str:
    lines = [
        f"## Index speed, tokenizer `{tokenizer}`",
        "",
        f"Synthetic chunks (sampled KorQuAD + vault sentences, 6-14 per chunk, ~1-20 chunks per "
        f"note, 12 folders, 24 tags, 3% private notes). {QUERIES_NOTE}. Machine: {machine()} "
        "(shared with other jobs, so timings are noisy). Produced by `bench/lexical_speed.py`.",
        "",
        "| | " + " | ".join(f"{r['n']:,} chunks" for r in results) + " |",
        "| --- | " + " | ".join("---:" for _ in results) + " |",
    ]

    def row(label: str, fmt: Callable[[dict], str]) -> None:
        lines.append(f"| {label} | " + " | ".join(fmt(r) for r in results) + " |")

    row("notes / chars", lambda r: f"{r['notes']:,} / {r['chars'] / 1e6:.1f} M")
    row("terms / postings", lambda r: f"{r['terms']:,} / {r['postings'] / 1e6:.2f} M")
    row("build, 1000-doc batches (tokens given)", lambda r: f"{r['build_s']:.1f} s")
    row(
        "tokenising that text (estimate)",
        lambda r: f"{r['chars'] / pool_chars_s:.0f} s",
    )
    row("full merge", lambda r: f"{r['merge_s'] * 1000:.0f} ms")
    row("on disk (SQLite + WAL)", lambda r: f"{r['size_mb']:.0f} MB")
    row("load in a fresh process", lambda r: f"{r['load']['load'] * 1000:.0f} ms")
    row("  + first search (loads Kiwi)", lambda r: f"{r['load']['first_search'] * 1000:.0f} ms")
    row(
        "  RSS after imports / after load / after first search",
        lambda r: "{rss_import_mb:.0f} / {rss_load_mb:.0f} / {rss_mb:.0f} MB".format(**r["load"]),
    )
    for name in results[0]["search"]:
        row(
            f"search p50 / p95 / p99, scope: {name}",
            lambda r, name=name: "{:.1f} / {:.1f} / {:.1f} ms".format(*r["search"][name]),
        )
    row("  of which tokenising the query (p50)", lambda r: f"{r['tokenize_query_p50']:.2f} ms")
    row(
        "search, first query of a new scope (p50)", lambda r: f"{r['search_cold_scope_p50']:.1f} ms"
    )
    row(
        "search p50 / p95 after 400 single-doc updates",
        lambda r: "{:.1f} / {:.1f} ms".format(*r["search_after_updates"]),
    )
    row(
        "upsert 1 doc, own transaction, p50 / p95 (tokens given)",
        lambda r: "{:.2f} / {:.2f} ms".format(*r["upsert_ms"]),
    )
    row("  + tokenising one chunk (p50)", lambda r: f"{r['tokenize_chunk_ms']:.1f} ms")
    row("delete 1 doc, p50 / p95", lambda r: "{:.2f} / {:.2f} ms".format(*r["delete_ms"]))
    row("second process catches up on those 400 commits", lambda r: f"{r['catch_up_ms']:.0f} ms")
    if "fts5" in results[0]:
        lines += [
            "",
            "Baseline considered first, SQLite FTS5 `bm25()` over the same pre-tokenised text "
            "(OR of the query terms, top 20):",
            "",
            "| | " + " | ".join(f"{r['n']:,} chunks" for r in results) + " |",
            "| --- | " + " | ".join("---:" for _ in results) + " |",
        ]
        row("build", lambda r: f"{r['fts5']['build_s']:.1f} s")
        row("search p50 / p95", lambda r: f"{r['fts5']['p50']:.1f} / {r['fts5']['p95']:.1f} ms")
        row(
            "search p50 / p95, folder scope via JOIN",
            lambda r: f"{r['fts5']['scoped_p50']:.1f} / {r['fts5']['scoped_p95']:.1f} ms",
        )
        row("replace 1 doc p50", lambda r: f"{r['fts5']['upsert_p50']:.1f} ms")
        row("on disk", lambda r: f"{r['fts5']['size_mb']:.0f} MB")
    return "\n".join(lines)


QUERIES_NOTE = ""


def main() -> None:
    global QUERIES_NOTE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--tokenizer", default=lexical.DEFAULT_TOKENIZER)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--fts5", action="store_true", help="also time the FTS5 baseline")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    sents = sentence_pool()
    t0 = time.perf_counter()
    tokens = tokenize_many(sents, args.tokenizer)
    pool_chars_s = sum(map(len, sents)) / (time.perf_counter() - t0)
    print(
        f"pool: {len(sents):,} sentences, tokenised at {pool_chars_s:,.0f} chars/s",
        file=sys.stderr,
    )
    corpus = Corpus(sents, tokens)
    lexical.tokenize_many = corpus.lookup  # type: ignore[assignment]

    ko, en = mixed_queries(sents, args.queries)
    queries = ko + en
    QUERIES_NOTE = (
        f"{len(queries)} queries: {len(ko)} KorQuAD questions and {len(en)} 3-6 word English "
        "spans, top 20; latency includes tokenising the query"
    )

    results = []
    for n in args.sizes:
        r = bench_size(n, corpus, queries, args.tokenizer, args.fts5)
        print(json.dumps(r, default=str), file=sys.stderr)
        results.append(r)
    text = report(results, args.tokenizer, pool_chars_s)
    print(text)
    if not args.no_write:
        write_section(RESULTS, f"speed-{args.tokenizer}", text)
        print(f"\nwrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
