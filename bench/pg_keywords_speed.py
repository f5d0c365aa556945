"""Keyword search in PostgreSQL (engine/pg_keywords.py) beside the local index, same chunks.

The synthetic chunks and queries of bench/lexical_speed.py (sampled KorQuAD and vault
sentences; 400 KorQuAD questions and 100 English spans, top 20). Each size gets a fresh
PostgreSQL database (created and dropped here) and an in-memory LexicalIndex holding the same
chunks. Every query is timed on both back to back, so both see the same machine load (this
machine is shared: the load average is reported). Each result list is also compared: same
chunks and scores (relative 1e-5) apart from the order of equal scores.

    .venv/bin/python bench/pg_keywords_speed.py [--sizes 10000 100000] [--pg ADMIN_URL]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lexical_speed import Corpus, bench_scopes, mixed_queries, pct, sentence_pool  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

import engine.lexical as lexical  # noqa: E402
import engine.pg_keywords as pg_keywords  # noqa: E402
from engine.korean import tokenize_many  # noqa: E402
from engine.registry import Registry  # noqa: E402

PG_ADMIN = os.environ.get("VAULTBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def same(a: list[tuple[str, float]], b: list[tuple[str, float]]) -> bool:
    """Same scores in order (relative 1e-5: float8 in SQL, float32 locally) and, within each
    run of equal scores, the same ids; the last run may be cut off by k at different members."""
    if len(a) != len(b):
        return False
    close = [abs(x - y) <= 1e-5 * max(abs(x), abs(y)) for (_, x), (_, y) in zip(a, b, strict=True)]
    if not all(close):
        return False
    runs: list[tuple[set[str], set[str]]] = []
    for i, ((ca, sa), (cb, _)) in enumerate(zip(a, b, strict=True)):
        if i and abs(sa - a[i - 1][1]) <= 1e-5 * abs(sa):
            runs[-1][0].add(ca)
            runs[-1][1].add(cb)
        else:
            runs.append(({ca}, {cb}))
    return all(x == y for x, y in runs[:-1])


def bench_size(n: int, corpus: Corpus, queries: list[str], admin_url: str) -> dict[str, Any]:
    docs = corpus.docs(n)
    res: dict[str, Any] = {"n": n, "notes": len({d.note_path for d in docs})}
    local = lexical.LexicalIndex(None)
    t0 = time.perf_counter()
    for i in range(0, n, 1000):
        local.upsert(docs[i : i + 1000])
    local.merge()
    res["local_build_s"] = time.perf_counter() - t0

    name = f"vaultbot_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    try:
        Registry(url).close()  # migrated: the keyword tables
        pg = pg_keywords.PgKeywordIndex(url)
        t0 = time.perf_counter()
        for i in range(0, n, 1000):  # sync commits in batches
            pg.upsert(docs[i : i + 1000])
        res["pg_build_s"] = time.perf_counter() - t0
        # What autovacuum does soon after a sync (0006 lowers its threshold to 1% new rows):
        # without it index-only scans still visit the heap for the new rows.
        t0 = time.perf_counter()
        with create_engine(url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
            res["pg_postings"] = conn.execute(text("SELECT count(*) FROM keyword_postings")).scalar()
            res["pg_size_mb"] = conn.execute(text("SELECT pg_database_size(current_database())")
                                             ).scalar() / 1e6
        res["pg_vacuum_s"] = time.perf_counter() - t0

        scopes = bench_scopes(docs)
        res["search"], res["mismatches"], loads = {}, 0, [os.getloadavg()[0]]
        for label, scope in scopes.items():
            for q in queries[:20]:  # warm-up: connections, prepared statements, scope masks
                local.search(q, 20, scope)
                pg.search(q, 20, scope)
            lat_local, lat_pg = [], []
            for q in queries:
                t0 = time.perf_counter()
                want = local.search(q, 20, scope)
                t1 = time.perf_counter()
                got = pg.search(q, 20, scope)
                t2 = time.perf_counter()
                lat_local.append((t1 - t0) * 1000)
                lat_pg.append((t2 - t1) * 1000)
                res["mismatches"] += not same(got, want)
            loads.append(os.getloadavg()[0])
            res["search"][label] = {
                "local": (pct(lat_local, 50), pct(lat_local, 95)),
                "pg": (pct(lat_pg, 50), pct(lat_pg, 95)),
            }
        res["load"] = (min(loads), max(loads))
        res["compared"] = len(queries) * len(scopes)
        pg.close()
    finally:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = :n"), {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
    local.close()
    return res


def report(results: list[dict[str, Any]], nq: int) -> str:
    head = "| | " + " | ".join(f"{r['n']:,} chunks" for r in results) + " |"
    lines = [head, "| --- | " + " | ".join("---:" for _ in results) + " |"]

    def row(label: str, fmt: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(fmt(r) for r in results) + " |")

    row("postings / database size", lambda r: f"{r['pg_postings'] / 1e6:.2f} M / "
        f"{r['pg_size_mb']:.0f} MB")
    row("build, 1000-chunk batches (tokens given): local / PostgreSQL",
        lambda r: f"{r['local_build_s']:.1f} / {r['pg_build_s']:.1f} s")
    row("VACUUM ANALYZE after the build", lambda r: f"{r['pg_vacuum_s']:.1f} s")
    for label in results[0]["search"]:
        row(f"search p50 / p95, scope {label}: local | PostgreSQL",
            lambda r, k=label: "{:.1f} / {:.1f} \\| {:.1f} / {:.1f} ms".format(
                *r["search"][k]["local"], *r["search"][k]["pg"]))
    row("result lists differing from the local index", lambda r: f"{r['mismatches']} of "
        f"{r['compared']}")
    row("load average (1 min) during the searches", lambda r: f"{r['load'][0]:.1f}-{r['load'][1]:.1f}")
    lines.append(f"\n{nq} queries per scope, top 20, query tokenising included in both.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--pg", default=PG_ADMIN, help="an admin URL: a database is made per size")
    ap.add_argument("--json", type=Path, help="also write the raw figures here")
    args = ap.parse_args()

    sents = sentence_pool()
    tokens = tokenize_many(sents, lexical.DEFAULT_TOKENIZER)
    corpus = Corpus(sents, tokens)
    # Both indexes take the pool's tokens instead of tokenising again (build time = index).
    lexical.tokenize_many = corpus.lookup  # type: ignore[assignment]
    pg_keywords.tokenize_many = corpus.lookup  # type: ignore[assignment]

    ko, en = mixed_queries(sents, args.queries)
    queries = ko + en

    results = []
    for n in args.sizes:
        r = bench_size(n, corpus, queries, args.pg)
        print(json.dumps(r, default=str), file=sys.stderr, flush=True)
        results.append(r)
    print(report(results, len(queries)))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
