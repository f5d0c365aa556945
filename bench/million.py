"""Hybrid retrieval at a million chunks (issue #15): the binary store and the keyword index.

The index is built as bench/retrieval_bench.py builds its 100k one (same synthetic chunks of
real sentences, clustered synthetic 512-d vectors, registry with its embedding cache, keyword
index through its own write path), but Chroma is left out: at this size the vectors are served
by the binary first stage (engine/binary.py, `VAULTBOT_INDEX=binary`), which a serve process
builds from the registry's embedding cache at start-up. The measurement runs in a fresh process,
as serve would: open (build the binary store from the registry), warm up as `App.warm` does,
then --runs passes of the same 300 questions (hybrid, no result cache, default scope, k=8). The
first pass is what the first users of a fresh process meet; the others are warm. RSS is read
after each stage.

    .venv/bin/python bench/million.py [--chunks 1000000] [--data DIR] [--json out.json]

--data keeps the built index in DIR and reuses it on the next run (the build takes ~15 min
here); without it a temp dir is used and removed.
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import emit  # noqa: E402

MEASURE = """
import json, pickle, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from pathlib import Path
import numpy as np
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024)
    return 0
from engine.binary import BinaryVectorStore
from engine.index import Index
from engine.lexical import LexicalIndex
from engine.memory import release_free_memory
from engine.registry import Registry
from engine.retrieve import Retriever
from retrieval_bench import TableEmbedder
data = Path({data!r})
embedder = TableEmbedder()
queries = pickle.loads((data / "queries.pkl").read_bytes())
embedder.table.update(queries)
out = {{"rss_imports_mb": rss()}}
t = time.perf_counter()
registry = Registry("sqlite:///" + str(data / "registry.sqlite3"))
keywords = LexicalIndex(data / "keywords.sqlite3")
len(keywords)
out["keywords_open_s"] = round(time.perf_counter() - t, 1)
t = time.perf_counter()
store = BinaryVectorStore.from_registry(registry, embedder.name, embedder.dim, path=data / "binary")
out["binary_build_s"] = round(time.perf_counter() - t, 1)
index = Index(registry, store, embedder, keywords)
out["rss_open_mb"] = rss()
ret = Retriever(index)
t = time.perf_counter()
for mode in ("dense", "lexical", "hybrid"):
    ret.search("회의록 출시 일정 meeting notes", 8, mode=mode, use_cache=False)
registry.warm()
release_free_memory()
out["warm_s"] = round(time.perf_counter() - t, 1)
out["rss_after_warm_mb"] = rss()
passes = []
for r in range({runs}):
    lat = []
    for q in queries:
        t = time.perf_counter()
        ret.search(q, 8, mode="hybrid", use_cache=False)
        lat.append((time.perf_counter() - t) * 1000)
    passes.append({{"p50": round(float(np.percentile(lat, 50)), 2),
                    "p95": round(float(np.percentile(lat, 95)), 2)}})
out["hybrid_ms_by_pass"] = passes
for mode in ("dense", "lexical"):
    lat = []
    for q in queries:
        t = time.perf_counter()
        ret.search(q, 8, mode=mode, use_cache=False)
        lat.append((time.perf_counter() - t) * 1000)
    out[mode + "_ms"] = {{"p50": round(float(np.percentile(lat, 50)), 2),
                          "p95": round(float(np.percentile(lat, 95)), 2)}}
out["rss_after_queries_mb"] = rss()
out["binary_memory"] = store.memory().to_json()
print(json.dumps(out))
"""


def build(n: int, data: Path) -> dict:
    import retrieval_bench as rb

    # The same chunks' generator and the same 300 questions as retrieval_bench.py.
    corpus, questions = rb.corpus_and_questions(300)
    embedder = rb.TableEmbedder()
    t0 = time.perf_counter()
    index, res = rb.build(n, data, corpus, embedder, chroma=False)
    res["build_total_s"] = round(time.perf_counter() - t0, 1)
    qs = rb.queries_for(index, embedder, questions, seed=n)
    (data / "queries.pkl").write_bytes(pickle.dumps({q: embedder.table[q] for q in qs}))
    index.keywords.close()  # type: ignore[union-attr]
    index.registry.close()
    (data / "built.json").write_text(json.dumps(res))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chunks", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--data", type=Path, help="keep the index here and reuse it")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tmp = None
    data = args.data
    if data is None:
        tmp = tempfile.mkdtemp(prefix="vaultbot-million-")
        data = Path(tmp)
    try:
        data.mkdir(parents=True, exist_ok=True)
        if (data / "built.json").exists():
            built = json.loads((data / "built.json").read_text())
            if built["chunks"] != args.chunks:
                raise SystemExit(f"{data} holds {built['chunks']:,} chunks, not {args.chunks:,}")
        else:
            built = build(args.chunks, data)
        print(json.dumps(built), file=sys.stderr)
        code = MEASURE.format(root=str(ROOT), bench=str(Path(__file__).resolve().parent),
                              data=str(data), runs=args.runs)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        result = {"million": {**built, **measured}}
        print(json.dumps(result), file=sys.stderr)
        emit(result, args.json)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
