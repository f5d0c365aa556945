"""Which keyword tokenizer ranks Korean best? BM25 on KorQuAD 1.0 dev, one tokenizer at a time.

Documents are the 964 paragraphs, queries the 5,774 questions, and a question's only relevant
document is its own paragraph. The dataset is read as is and converted in memory (its licence
forbids redistributing modified copies). Runs the real engine.lexical.LexicalIndex in memory.

    .venv/bin/python bench/korean_tokenizer.py [--korquad PATH] [--no-write]

Prints a markdown table and replaces the tokenizer section of bench/results/lexical.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.korean import TOKENIZERS, get_kiwi, tokenize, tokenize_many  # noqa: E402
from engine.lexical import LexDoc, LexicalIndex  # noqa: E402

KORQUAD = ROOT.parent / "shared" / "corpus" / "eval" / "korquad" / "KorQuAD_v1.0_dev.json"
RESULTS = ROOT / "bench" / "results" / "lexical.md"
ENGLISH_VAULT = ROOT.parent / "shared" / "corpus" / "vaults" / "obsidian-help-en"


def load_korquad(path: Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(paragraphs, [(question, index of its paragraph)])."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs: list[str] = []
    questions: list[tuple[str, int]] = []
    for article in data:
        for para in article["paragraphs"]:
            paragraphs.append(para["context"])
            questions.extend((qa["question"], len(paragraphs) - 1) for qa in para["qas"])
    return paragraphs, questions


def evaluate(
    tokenizer: str, paragraphs: list[str], questions: list[tuple[str, int]]
) -> dict[str, float]:
    index = LexicalIndex(None, tokenizer)
    t0 = time.perf_counter()
    index.upsert(LexDoc(str(i), text, f"doc{i}.md") for i, text in enumerate(paragraphs))
    build_s = time.perf_counter() - t0
    ranks = []  # 1-based rank of the gold paragraph in the top 10, 0 if absent
    t0 = time.perf_counter()
    for question, gold in questions:
        ranked = [cid for cid, _ in index.search(question, k=10)]
        ranks.append(ranked.index(str(gold)) + 1 if str(gold) in ranked else 0)
    query_s = time.perf_counter() - t0
    n = len(questions)
    # one relevant document per query, so the ideal DCG is 1
    ndcg = [1.0 / math.log2(r + 1) if r else 0.0 for r in ranks]
    return {
        "R@1": sum(0 < r <= 1 for r in ranks) / n,
        "R@5": sum(0 < r <= 5 for r in ranks) / n,
        "R@10": sum(0 < r <= 10 for r in ranks) / n,
        "MRR@10": sum(1.0 / r for r in ranks if r) / n,
        "nDCG@10": sum(ndcg) / n,
        "ndcg_per_query": ndcg,
        "terms": len(index._vocab),
        "postings": index._mem.base_doc.size + index._mem.delta_count,
        "build_s": build_s,
        "query_ms": query_s / n * 1000,
    }


def paired_bootstrap(
    a: list[float], b: list[float], rounds: int = 2000
) -> tuple[float, float, float]:
    """Mean of b - a over the same queries, with a 95% bootstrap interval."""
    rng = random.Random(0)
    diffs = [y - x for x, y in zip(a, b, strict=True)]
    n = len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(rounds))
    return sum(diffs) / n, means[int(0.025 * rounds)], means[int(0.975 * rounds)]


def throughput(tokenizer: str, texts: list[str]) -> tuple[float, float]:
    """chars/s for one call per text (what search does) and for one batched call (sync)."""
    chars = sum(map(len, texts))
    single = batch = 0.0
    for _ in range(3):  # best of 3: the machine is shared, the slow runs measure the neighbours
        t0 = time.perf_counter()
        for t in texts:
            tokenize(t, tokenizer)
        single = max(single, chars / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        tokenize_many(texts, tokenizer)
        batch = max(batch, chars / (time.perf_counter() - t0))
    return single, batch


def english_texts(limit: int = 2000) -> list[str]:
    texts: list[str] = []
    for f in sorted(ENGLISH_VAULT.rglob("*.md")):
        texts.extend(p for p in re.split(r"\n\s*\n", f.read_text(encoding="utf-8")) if len(p) > 80)
    return texts[:limit]


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the section between `<!-- name:start -->` and `<!-- name:end -->`,
    so each bench script owns its part of the shared results file."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Lexical index benchmarks\n\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1].lstrip("\n")
    else:
        text = text.rstrip() + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def machine() -> str:
    import os

    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--korquad", type=Path, default=KORQUAD)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()

    paragraphs, questions = load_korquad(args.korquad)
    t0 = time.perf_counter()
    get_kiwi()
    kiwi_load = time.perf_counter() - t0
    english = english_texts()

    rows = []
    for tok in TOKENIZERS:
        m = evaluate(tok, paragraphs, questions)
        ko_single, ko_batch = throughput(tok, paragraphs)
        en_single, en_batch = throughput(tok, english)
        rows.append((tok, m, ko_single, ko_batch, en_single, en_batch))
        print(f"{tok}: { {k: v for k, v in m.items() if k != 'ndcg_per_query'} }", file=sys.stderr)

    lines = [
        "## Tokenizer comparison (KorQuAD 1.0 dev)",
        "",
        f"BM25 (k1=1.2, b=0.75) via `engine.lexical.LexicalIndex`; {len(paragraphs)} paragraphs "
        f"as documents, {len(questions)} questions as queries, gold = the question's paragraph. "
        f"Machine: {machine()}. Produced by `bench/korean_tokenizer.py`.",
        "",
        "| tokenizer | Recall@1 | Recall@5 | Recall@10 | MRR@10 | nDCG@10 | ΔnDCG@10 vs kiwi (95% CI) | terms | postings | index build | query |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base = rows[0][1]["ndcg_per_query"]
    for tok, m, *_ in rows:
        if tok == rows[0][0]:
            delta = "-"
        else:
            d, lo, hi = paired_bootstrap(base, m["ndcg_per_query"])
            delta = f"{d:+.4f} ({lo:+.4f} .. {hi:+.4f})"
        lines.append(
            f"| {tok} | {m['R@1']:.4f} | {m['R@5']:.4f} | {m['R@10']:.4f} | {m['MRR@10']:.4f} "
            f"| {m['nDCG@10']:.4f} | {delta} | {m['terms']:,} | {m['postings']:,} "
            f"| {m['build_s']:.2f} s | {m['query_ms']:.2f} ms |"
        )
    lines += [
        "",
        "Index build includes tokenising the 964 paragraphs; query time includes tokenising the "
        "question. The interval is a paired bootstrap over the questions.",
        "",
        f"Tokenizer throughput, best of 3 (Kiwi model load: {kiwi_load:.2f} s, once per process):",
        "",
        "| tokenizer | Korean, one call per text | Korean, batched | English, one call per text | English, batched |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for tok, _m, ko_s, ko_b, en_s, en_b in rows:
        lines.append(
            f"| {tok} | {ko_s:,.0f} chars/s | {ko_b:,.0f} chars/s | {en_s:,.0f} chars/s "
            f"| {en_b:,.0f} chars/s |"
        )
    lines.append("")
    lines.append(
        f"Korean: the {len(paragraphs)} KorQuAD paragraphs; English: {len(english)} paragraphs "
        "of the English Obsidian help vault. Batched = `tokenize_many` (Kiwi's worker threads)."
    )
    table = "\n".join(lines)
    print(table)
    if not args.no_write:
        write_section(RESULTS, "tokenizer", table)
        print(f"\nwrote {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
