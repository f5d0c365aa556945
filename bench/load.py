"""Load test on loopback: concurrent asks through the generation queue, and concurrent searches.

    .venv/bin/python bench/load.py [--asks 50] [--distinct 10] [--searches 200] [--token-delay 0.02]
                                   [--fast-cap 2] [--timeout 120] [--write]

Everything is local and bounded: the fake Ollama (tests/fakes/ollama_server.py) on 127.0.0.1,
the example vault, the meaning-free hashing embedder (the figures measure the queue and the
pipeline, not a model), at most --asks asks and --searches searches, and a wall-clock limit.
It checks that every ask is answered, that Ollama saw at most one generation per distinct
question and never more at once than the cap, then prints a Markdown table; --write puts it in
docs/benchmarks.md as the "Load" section, before `<!-- defaults:end -->`."""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakes.ollama_server import FakeOllama  # noqa: E402
from helpers import build  # noqa: E402

from engine.answer import Asker, AskOptions, Queued, Token  # noqa: E402
from engine.embedders.hashing import HashingEmbedder  # noqa: E402
from engine.llm.ollama import OllamaGenerator  # noqa: E402
from engine.llm.queue import GenerationQueue  # noqa: E402
from engine.retrieve import Retriever  # noqa: E402

FAST = "qwen2.5:7b-instruct"
TOPICS = ["the vaultbot launch", "the sourdough bread", "the weekly meeting", "the budget",
          "the Slack app", "the Discord review", "the documentation", "the starter",
          "the oven temperature", "the project status"]
HEADING = "## Load (generation queue)"


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _peak_overlap(fake: FakeOllama) -> int:
    spans = [(r.started, r.sent[-1][0]) for r in fake.requests_to("/api/chat") if r.sent]
    return max((sum(1 for s, e in spans if s <= t < e) for t, _ in spans), default=0)


async def _ask(asker: Asker, question: str) -> tuple[float | None, bool, bool]:
    start = time.perf_counter()
    first: float | None = None
    queued = False
    answer = None
    async for event in asker.stream(question, AskOptions(use_cache=False)):
        if isinstance(event, Token) and first is None:
            first = time.perf_counter() - start
        elif isinstance(event, Queued):
            queued = True
        elif hasattr(event, "answer"):
            answer = event.answer
    ok = answer is not None and answer.mode == "llm" and not answer.error and bool(answer.text)
    return first, ok, queued


async def run(args: argparse.Namespace) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory() as tmp, FakeOllama(token_delay=args.token_delay) as fake:
        fake.responder = lambda model, messages, options: (
            "The notes cover this: see the launch note [1] and the recipe [2] for details.")
        vault = ROOT / "examples" / "vault"
        index, indexer = build(vault, Path(tmp) / "data", HashingEmbedder(dim=256))
        indexer.sync()
        queue = GenerationQueue({FAST: args.fast_cap})
        asker = Asker(Retriever(index), OllamaGenerator(fake.url), queue=queue)
        questions = [f"What do the notes say about {TOPICS[i % args.distinct]}?"
                     for i in range(args.asks)]
        rss_before = _rss_mb()
        t0 = time.perf_counter()
        async with asyncio.timeout(args.timeout):
            results = await asyncio.gather(*(_ask(asker, q) for q in questions))
        asks_wall = time.perf_counter() - t0
        rss_after = _rss_mb()
        firsts = [f for f, _, _ in results if f is not None]

        retriever = Retriever(index)

        async def search(i: int) -> float:
            start = time.perf_counter()
            await asyncio.to_thread(retriever.search, f"{TOPICS[i % len(TOPICS)]} {i}", 6,
                                    use_cache=False)
            return time.perf_counter() - start

        async with asyncio.timeout(args.timeout):
            searches = await asyncio.gather(*(search(i) for i in range(args.searches)))
        index.registry.close()
        return {
            "asks": args.asks, "distinct": args.distinct, "cap": args.fast_cap,
            "answered": sum(ok for _, ok, _ in results), "queued": sum(q for _, _, q in results),
            "generations": len(fake.requests_to("/api/chat")), "peak": _peak_overlap(fake),
            "ttft_p50": _pct(firsts, 0.5) * 1000, "ttft_p95": _pct(firsts, 0.95) * 1000,
            "asks_wall": asks_wall, "rss_before": rss_before, "rss_after": rss_after,
            "searches": args.searches, "search_p50": _pct(searches, 0.5) * 1000,
            "search_p95": _pct(searches, 0.95) * 1000,
        }


def table(r: dict[str, float | int], token_delay: float) -> str:
    return "\n".join([
        HEADING, "",
        f"`bench/load.py`: {r['asks']} concurrent asks ({r['distinct']} distinct questions) through "
        f"the generation queue (fast-model cap {r['cap']}) against the fake Ollama on loopback "
        f"({token_delay * 1000:g} ms a piece), hashing embedder, example vault; then "
        f"{r['searches']} concurrent searches. Time to first token includes the wait in line.",
        "",
        "| measure | value |", "| --- | --- |",
        f"| asks answered | {r['answered']} / {r['asks']} |",
        f"| generations sent to Ollama (distinct questions) | {r['generations']} ({r['distinct']}) |",
        f"| peak concurrent generations (cap) | {r['peak']} ({r['cap']}) |",
        f"| asks told their queue position | {r['queued']} |",
        f"| time to first token p50 / p95 | {r['ttft_p50']:.0f} / {r['ttft_p95']:.0f} ms |",
        f"| all asks done | {r['asks_wall']:.2f} s |",
        f"| RSS before / after the asks | {r['rss_before']:.0f} / {r['rss_after']:.0f} MB |",
        f"| {r['searches']} concurrent searches p50 / p95 | "
        f"{r['search_p50']:.1f} / {r['search_p95']:.1f} ms |",
        "",
    ])


def write(section: str) -> None:
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text()
    if HEADING in text:  # replace an earlier run's section (it ends at the next heading/marker)
        start = text.index(HEADING)
        rest = text[start + len(HEADING):]
        ends = [i for i in (rest.find("\n## "), rest.find("\n<!-- defaults:end -->")) if i >= 0]
        text = text[:start] + rest[min(ends) + 1:] if ends else text[:start]
    marker = "<!-- defaults:end -->"
    if marker in text:
        before, after = text.split(marker, 1)
        text = f"{before.rstrip(chr(10))}\n\n{section}\n{marker}{after}"
    else:
        text = text.rstrip("\n") + f"\n\n{section}"
    doc.write_text(text)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--asks", type=int, default=50)
    p.add_argument("--distinct", type=int, default=10)
    p.add_argument("--searches", type=int, default=200)
    p.add_argument("--token-delay", type=float, default=0.02)
    p.add_argument("--fast-cap", type=int, default=2)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--write", action="store_true")
    args = p.parse_args()
    if not (1 <= args.distinct <= len(TOPICS)) or not (1 <= args.asks <= 500) or not (
            0 <= args.searches <= 2000):
        p.error(f"--distinct 1..{len(TOPICS)}, --asks 1..500, --searches 0..2000")
    r = asyncio.run(run(args))
    section = table(r, args.token_delay)
    print(section)
    failed = [name for name, bad in (
        ("not every ask was answered", r["answered"] != r["asks"]),
        ("more generations than distinct questions", r["generations"] > r["distinct"]),
        ("more generations at once than the cap", r["peak"] > r["cap"]),
    ) if bad]
    for problem in failed:
        print(f"FAILED: {problem}", file=sys.stderr)
    if args.write and not failed:
        write(section)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
