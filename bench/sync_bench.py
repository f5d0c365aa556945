"""Sync benchmarks: cold index throughput and its overhead over the raw embedder, a no-op resync
of a 10,000-note synthetic vault, and edit-to-searchable latency through the watcher.

    .venv/bin/python bench/sync_bench.py [--runs 3] [--json out.json]

Prints a JSON object; bench/report.py folds it into docs/benchmarks.md."""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import emit  # noqa: E402

from engine.embedders.hashing import HashingEmbedder  # noqa: E402
from engine.embedders.usem3 import Usem3Embedder  # noqa: E402
from engine.index import Index  # noqa: E402
from engine.lexical import LexicalIndex  # noqa: E402
from engine.retrieve import Retriever  # noqa: E402
from sync.indexer import Indexer  # noqa: E402
from sync.service import SyncService  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "vaults"



class TimedEmbedder:
    def __init__(self, inner) -> None:
        self.inner, self.name, self.seconds, self.texts = inner, inner.name, 0.0, []

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_passages(self, texts):
        t = time.perf_counter()
        out = self.inner.embed_passages(texts)
        self.seconds += time.perf_counter() - t
        self.texts += texts
        return out

    def embed_query(self, text):
        return self.inner.embed_query(text)


def open_index(data: Path, embedder) -> Index:
    return Index.open(
        data_dir=data,
        registry_url=f"sqlite:///{data / 'registry.sqlite3'}",
        embedder=embedder,
        keywords=LexicalIndex(data / "keywords.sqlite3"),
    )


def cold_index(runs: int) -> dict:
    """Cold index of the English help vault, `runs` times (median of each figure).

    The embedder's time on a 2-core machine varies by +-10 % from one pass over the same texts
    to the next, as much as the whole overhead, so the overhead is measured within each run:
    the time the sync spends outside the embedder over the time inside it, both from the same
    pass. A separate raw pass (same texts, same batches, nothing else; alternately before and
    after the sync) checks that the sync calls the embedder no slower than that."""
    usem3 = Usem3Embedder()
    usem3.embed_query("warm up")
    results = []
    for run in range(max(runs, 1) + 1):  # run 0 warms the process (token counter, imports)
        with tempfile.TemporaryDirectory() as tmp:
            vault = Path(tmp) / "vault"
            shutil.copytree(CORPUS / "obsidian-help-en", vault)
            emb = TimedEmbedder(usem3)
            index = open_index(Path(tmp) / "data", emb)

            def raw_pass(texts: list[str]) -> float:
                t = time.perf_counter()
                for i in range(0, len(texts), 64):
                    usem3.embed_passages(texts[i : i + 64])
                return time.perf_counter() - t

            raw_before = run % 2 == 1 and bool(results)
            if raw_before:
                raw = raw_pass(results[-1]["texts"])
            t = time.perf_counter()
            stats = Indexer(index, vault).sync()
            total = time.perf_counter() - t
            if not raw_before:
                raw = raw_pass(emb.texts)
            assert not results or emb.texts == results[-1]["texts"], "the sync's texts changed"
            results.append({"seconds": total, "embed_seconds": emb.seconds, "raw_embed_seconds": raw,
                            "chunks": stats.chunks_embedded, "notes": stats.notes_added,
                            "texts": emb.texts})
    results = results[1:]
    med = statistics.median(r["seconds"] for r in results)
    inside = statistics.median(r["embed_seconds"] for r in results)
    raw = statistics.median(r["raw_embed_seconds"] for r in results)
    chunks = results[0]["chunks"]
    overheads = [100 * (r["seconds"] - r["embed_seconds"]) / r["embed_seconds"] for r in results]
    return {
        "vault": "obsidian-help-en",
        "notes": results[0]["notes"],
        "chunks": chunks,
        "seconds": round(med, 2),
        "chunks_per_second": round(chunks / med, 1),
        "embed_seconds": round(inside, 2),
        "outside_embedder_seconds": round(statistics.median(r["seconds"] - r["embed_seconds"] for r in results), 2),
        "raw_embed_seconds": round(raw, 2),
        "raw_chunks_per_second": round(chunks / raw, 1),
        "overhead_pct": round(statistics.median(overheads), 1),
        "overhead_pct_runs": [round(o, 1) for o in overheads],
        "inside_over_raw": round(statistics.median(r["embed_seconds"] / r["raw_embed_seconds"] for r in results), 3),
        "overhead_pct_vs_raw_medians": round(100 * (med - raw) / raw, 1),
        "runs": len(results),
    }


def synthetic_vault(root: Path, notes: int) -> None:
    rng = random.Random(7)
    words = ["note", "vault", "sync", "index", "chunk", "heading", "link", "tag", "embed", "search", "answer", "cite", "model", "local", "회의", "노트", "검색", "출시", "일정", "결정", "사항", "프로젝트", "링크", "태그"]
    for i in range(notes):
        folder = root / f"area{i % 20:02d}" / f"topic{i % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        body = "\n\n".join(
            f"## Section {s}\n\n" + " ".join(rng.choice(words) for _ in range(60)) for s in range(2)
        )
        (folder / f"note {i:05d}.md").write_text(
            f"---\ntags: [t{i % 13}]\n---\n# Note {i}\n\n{body}\n"
        )


def noop_resync(notes: int, runs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        synthetic_vault(vault, notes)
        index = open_index(Path(tmp) / "data", HashingEmbedder(64))
        indexer = Indexer(index, vault)
        t = time.perf_counter()
        first = indexer.sync()
        cold = time.perf_counter() - t
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            stats = indexer.sync()
            times.append(time.perf_counter() - t)
            assert stats.notes_unchanged == notes and stats.chunks_embedded == 0
    return {
        "notes": notes,
        "chunks": first.chunks_embedded,
        "cold_seconds_hash_embedder": round(cold, 2),
        "noop_seconds": round(statistics.median(times), 3),
        "runs": runs,
    }


def edit_to_searchable(runs: int, debounce: float = 0.5) -> dict:
    usem3 = Usem3Embedder()
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        shutil.copytree(CORPUS / "obsidian-help-en", vault)
        index = open_index(Path(tmp) / "data", usem3)
        indexer = Indexer(index, vault)
        indexer.sync()
        retriever = Retriever(index)
        service = SyncService(indexer, debounce=debounce, reconcile_minutes=0)
        service.start()
        latencies = []
        try:
            note = vault / "Linking notes and files" / "Internal links.md"
            for i in range(runs):
                word = f"zqxmarker{i}{random.randint(0, 10**6)}"
                t = time.perf_counter()
                note.write_text(note.read_text() + f"\n\nA fresh paragraph mentions {word}.\n")
                while True:
                    hits = retriever.search(word, k=1, mode="lexical", use_cache=False)
                    if hits and word in hits[0].text:
                        break
                    if time.perf_counter() - t > 30:
                        raise RuntimeError("edit never became searchable")
                    time.sleep(0.01)
                latencies.append(time.perf_counter() - t)
        finally:
            service.stop()
    after = [max(0.0, x - debounce) for x in latencies]
    return {
        "debounce": debounce,
        "total_p50": round(statistics.median(latencies), 3),
        "after_debounce_p50": round(statistics.median(after), 3),
        "after_debounce_max": round(max(after), 3),
        "runs": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--notes", type=int, default=10_000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {
        "cold_index": cold_index(args.runs),
        "noop_resync": noop_resync(args.notes, max(args.runs, 5)),
        "edit_to_searchable": edit_to_searchable(max(args.runs, 5)),
    }
    emit(out, args.json)


if __name__ == "__main__":
    main()
