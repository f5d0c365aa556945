"""Time to first byte and first token through each HTTP front end of one `serve` app: the native
`POST /ask` (SSE), `/v1/chat/completions` (OpenAI-compatible, streamed) and the MCP tool `ask`
over streamable HTTP at `/mcp` (the SDK's client; the answer arrives whole, so its first
streamed signs are progress notifications).

    .venv/bin/python bench/frontends_ttfb.py [--n 30] [--token-delay 0] [--write]

The fake Ollama (tests/fakes/ollama_server.py) answers on loopback, the hashing embedder stands
in for a model, the example vault is indexed in a temp dir, every question is distinct (no
answer or retrieval cache hit) and requests run one at a time, so the figures are vaultbot's
own overhead per front end. --write puts the table in docs/benchmarks.md before
`<!-- defaults:end -->`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import httpx  # noqa: E402
import httpx2  # noqa: E402
from corpus import copy_vault  # noqa: E402
from fakes.ollama_server import FakeOllama  # noqa: E402
from helpers import Server, build, close_index  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from engine.answer import Asker  # noqa: E402
from engine.embedders.hashing import HashingEmbedder  # noqa: E402
from engine.llm.ollama import OllamaGenerator  # noqa: E402
from engine.querylog import QueryLog  # noqa: E402
from engine.retrieve import Retriever  # noqa: E402
from vaultbot.api import create_app  # noqa: E402

TOKEN = "bench-token"
ANSWER = ("The launch is on December 4 [1], moved from November 27 because the Discord review "
          "took longer [2]. The sourdough starter is fed twice a day [3].")
TOPICS = ["the vaultbot launch", "the sourdough bread", "the weekly meeting", "the budget",
          "the Slack app", "the Discord review", "the documentation", "the starter"]
HEADING = "## Front ends: time to first byte (`bench/frontends_ttfb.py`)"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _question(i: int) -> str:
    return f"What changed about {TOPICS[i % len(TOPICS)]}, case {i}?"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def native(http: httpx.Client, q: str) -> dict[str, float]:
    t0 = time.perf_counter()
    out: dict[str, float] = {}
    with http.stream("POST", "/ask", json={"question": q}) as r:
        for line in r.iter_lines():
            out.setdefault("byte", time.perf_counter() - t0)
            if line == "event: token":
                out.setdefault("token", time.perf_counter() - t0)
    out["done"] = time.perf_counter() - t0
    return out


def openai_stream(http: httpx.Client, q: str) -> dict[str, float]:
    t0 = time.perf_counter()
    out: dict[str, float] = {}
    body = {"model": "vaultbot", "stream": True, "messages": [{"role": "user", "content": q}]}
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        for line in r.iter_lines():
            out.setdefault("byte", time.perf_counter() - t0)
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get(
                    "content"):
                out.setdefault("token", time.perf_counter() - t0)
    out["done"] = time.perf_counter() - t0
    return out


async def mcp_ask(client: Client, q: str) -> dict[str, float]:
    t0 = time.perf_counter()
    out: dict[str, float] = {}

    async def progress(value: float, total: float | None, message: str | None) -> None:
        out.setdefault("byte", time.perf_counter() - t0)
        if message == "writing the answer":
            out.setdefault("token", time.perf_counter() - t0)

    result = await client.call_tool("ask", {"question": q}, progress_callback=progress)
    assert not result.is_error, result
    out["done"] = time.perf_counter() - t0
    return out


NATIVE, OPENAI, MCP = ("native `POST /ask` (SSE)", "`/v1/chat/completions`, stream",
                       "MCP `ask`, streamable HTTP")


async def rounds(url: str, n: int) -> dict[str, list[dict[str, float]]]:
    """`n` rounds of one question per front end, interleaved, so a change in the machine's
    load hits all three alike. (The plain httpx calls block the loop: nothing else runs.)"""
    runs: dict[str, list[dict[str, float]]] = {NATIVE: [], OPENAI: [], MCP: []}
    # One connection per client, reused: a new httpx client per request spends more time
    # building its TLS context than vaultbot spends answering.
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as http:
        async with httpx2.AsyncClient(headers=AUTH, timeout=60) as h2, \
                Client(streamable_http_client(f"{url}/mcp", http_client=h2)) as client:
            # first-request costs (imports, connections) aside
            native(http, "warm up"), openai_stream(http, "warm up too")
            await mcp_ask(client, "warm up, third")
            for i in range(n):
                runs[NATIVE].append(native(http, _question(3 * i)))
                runs[OPENAI].append(openai_stream(http, _question(3 * i + 1)))
                runs[MCP].append(await mcp_ask(client, _question(3 * i + 2)))
    return runs


def measure(n: int, token_delay: float) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp, FakeOllama(responder=lambda *a: ANSWER) as fake:
        fake.token_delay = token_delay
        index, indexer = build(copy_vault("example", Path(tmp)), Path(tmp) / "data",
                               HashingEmbedder(dim=64))
        indexer.sync()
        retriever = Retriever(index)
        asker = Asker(retriever, OllamaGenerator(fake.url), querylog=QueryLog(index.registry))
        app = create_app(asker=asker, retriever=retriever, index=index,
                         querylog=asker.querylog, token=TOKEN)  # type: ignore[arg-type]
        try:
            with Server(app) as srv:
                runs = asyncio.run(rounds(srv.url, n))
        finally:
            close_index(index)
        return {name: {f"{k}_{q}": _pct([r[k] for r in rs], p) * 1000
                       for k in ("byte", "token", "done")
                       for q, p in (("p50", 0.5), ("p95", 0.95))}
                for name, rs in runs.items()}


def table(results: dict[str, dict[str, float]], n: int, token_delay: float,
          load: float) -> str:
    lines = [
        HEADING, "",
        f"One app, a real uvicorn on loopback, the fake Ollama ({token_delay * 1000:g} ms a "
        f"piece, a {len(ANSWER.split())}-word answer), hashing embedder, example vault; {n} "
        "distinct questions per front end, one at a time, the three front ends in turn, no cache hits. *First byte*: the "
        "first line of the response (for `/v1`, the assistant-role chunk OpenAI's format opens "
        "with, sent before retrieval; for MCP, its first progress notification, sent once the "
        "passages are found); *first token*: the first answer text (for MCP, the progress "
        "notification sent with the first token: MCP returns the answer whole, at *done*). "
        f"Load average during the run: {load:.1f} on {os.cpu_count()} cores, so compare the "
        "rows with each other rather than with other sections.",
        "",
        "| p50 / p95 ms | first byte | first token | done |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {r['byte_p50']:.1f} / {r['byte_p95']:.1f} | "
                     f"{r['token_p50']:.1f} / {r['token_p95']:.1f} | "
                     f"{r['done_p50']:.1f} / {r['done_p95']:.1f} |")
    return "\n".join(lines) + "\n"


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
    p.add_argument("--n", type=int, default=30, help="questions per front end")
    p.add_argument("--token-delay", type=float, default=0.0, help="fake Ollama, s a piece")
    p.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = p.parse_args()
    results = measure(args.n, args.token_delay)
    section = table(results, args.n, args.token_delay, os.getloadavg()[0])
    print(section)
    if args.write:
        write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
