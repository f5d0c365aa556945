"""Optional rerank stage (off by default): reorders the fused candidates before the top k.

`VAULTBOT_RERANK=ollama:<model>` scores each candidate with a local model through Ollama's
`/api/chat` (a pointwise 0-10 relevance grade). It costs one short model call per candidate,
so it is for setups where answer quality matters more than latency."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Protocol

from engine.models import Hit

log = logging.getLogger(__name__)


class Reranker(Protocol):
    # Part of the retrieval cache key (engine/retrieve.py): results reranked by one model are
    # never served for another.
    name: str

    def __call__(self, query: str, hits: list[Hit]) -> list[Hit]:
        """The same hits, best first, with `score` set to the reranker's score."""
        ...


PROMPT = """Rate how well the passage answers the question, from 0 (unrelated) to 10 (answers it fully).
Reply with the number only.

Question: {query}

Passage ({title}):
{text}"""


class OllamaReranker:
    def __init__(self, model: str, host: str = "http://127.0.0.1:11434", *, timeout: float = 30.0,
                 parallel: int = 4, max_chars: int = 2000) -> None:
        # Imported here: rerank is off by default, and every search process imports this module.
        import httpx
        import ollama

        self.name = f"ollama:{model}"
        self.model = model
        self.client = ollama.Client(host=host, timeout=httpx.Timeout(timeout, connect=5.0))
        self.failures = (ollama.ResponseError, httpx.HTTPError, ConnectionError)
        self.parallel = parallel
        self.max_chars = max_chars

    def score(self, query: str, hit: Hit) -> float:
        prompt = PROMPT.format(query=query, title=hit.title, text=hit.text[: self.max_chars])
        try:
            reply = self.client.chat(
                model=self.model, messages=[{"role": "user", "content": prompt}], stream=False,
                options={"temperature": 0, "num_predict": 4}, keep_alive="30m",
            )
        except self.failures as exc:
            # Rerank is a refinement: without it the fused order stands.
            log.warning("rerank unavailable (%s); keeping the fused order", type(exc).__name__)
            raise
        m = re.search(r"\d+(?:\.\d+)?", reply.message.content or "")
        return min(10.0, float(m.group(0))) if m else 0.0

    def __call__(self, query: str, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return hits
        try:
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                scores = list(pool.map(lambda h: self.score(query, h), hits))
        except self.failures:
            return hits
        # Ties keep the fused order (sorted is stable).
        order = sorted(range(len(hits)), key=lambda i: -scores[i])
        return [replace(hits[i], score=scores[i]) for i in order]


def make_reranker(spec: str, *, ollama_url: str) -> Reranker | None:
    if not spec or spec == "none":
        return None
    if spec.startswith("ollama:") and len(spec) > 7:
        return OllamaReranker(spec.split(":", 1)[1], host=ollama_url)
    raise ValueError(f"unknown reranker {spec!r}: use none or ollama:<model>")
