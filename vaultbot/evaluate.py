"""Retrieval evaluation: metrics, dataset loaders and the runner behind `vaultbot eval`.

Metrics are computed at the document level. A dataset's document becomes one note in a
temporary vault (so the real parser, chunker, Indexer, Chroma and keyword index are what is
measured); a note may be cut into several chunks, and a document counts as retrieved at rank r
if any of its chunks is (duplicates dropped, best rank kept).

Definitions (the usual trec_eval / BEIR ones):

- Recall@k = |relevant in the top k| / |relevant|;
- MRR@10 = 1 / rank of the first relevant document in the top 10 (0 if none);
- nDCG@10 with linear gain: DCG = sum rel_i / log2(i + 1), divided by the DCG of the ideal order
  of all judged-relevant documents.

A query that has judgments but no ranking counts as 0 everywhere; a query without any positive
judgment is not a query (skipped), as in trec_eval.

Datasets (converted in memory; KorQuAD's licence forbids keeping modified copies, so its
paragraphs only ever touch a temporary directory that is deleted afterwards):

- KorQuAD 1.0 JSON: paragraphs are documents, questions are queries, the gold document is the
  question's paragraph; the answer texts are kept for the answer-level check.
- BEIR directory: `corpus.jsonl`, `queries.jsonl`, `qrels/<split>.tsv`.
- Parallel vaults (the Korean and English Obsidian help): both vaults are indexed together;
  every note's title and headings in one language are queries whose gold is the note with the
  same `permalink` frontmatter in the other language. Queries are scoped to the other vault's
  folder, so what is measured is cross-lingual retrieval, not "the note's own title finds the
  note itself".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import re
import shutil
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine.embedders.base import Embedder
from engine.index import Index
from engine.lexical import LexicalIndex
from engine.models import Hit, Scope
from engine.retrieve import RetrievalConfig, Retriever, normalize_query
from engine.versions import EVAL_CACHE_VERSION

Qrels = dict[str, dict[str, int]]
Run = dict[str, list[str]]

KS = (1, 5, 10)
METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")


# ---------------------------------------------------------------------------- metrics


def _relevant(rel: Mapping[str, int]) -> dict[str, int]:
    return {d: g for d, g in rel.items() if g > 0}


def recall_at(ranked: Sequence[str], rel: Mapping[str, int], k: int) -> float:
    good = _relevant(rel)
    if not good:
        return 0.0
    return len(set(ranked[:k]) & good.keys()) / len(good)


def mrr_at(ranked: Sequence[str], rel: Mapping[str, int], k: int = 10) -> float:
    good = _relevant(rel)
    for i, doc in enumerate(ranked[:k], start=1):
        if doc in good:
            return 1.0 / i
    return 0.0


def ndcg_at(ranked: Sequence[str], rel: Mapping[str, int], k: int = 10) -> float:
    good = _relevant(rel)
    if not good:
        return 0.0
    dcg = sum(good.get(doc, 0) / math.log2(i + 1) for i, doc in enumerate(ranked[:k], start=1))
    ideal = sorted(good.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 1) for i, g in enumerate(ideal, start=1))
    return dcg / idcg


def query_metrics(ranked: Sequence[str], rel: Mapping[str, int]) -> dict[str, float]:
    """Every metric in METRICS for one query."""
    ranked = list(dict.fromkeys(ranked))  # a document counts once, at its best rank
    out = {f"recall@{k}": recall_at(ranked, rel, k) for k in KS}
    out["mrr@10"] = mrr_at(ranked, rel, 10)
    out["ndcg@10"] = ndcg_at(ranked, rel, 10)
    return out


def per_query(run: Run, qrels: Qrels) -> dict[str, dict[str, float]]:
    """Metrics per judged query; a judged query missing from the run scores 0."""
    return {
        qid: query_metrics(run.get(qid, []), rel)
        for qid, rel in qrels.items()
        if _relevant(rel)
    }


def evaluate_run(run: Run, qrels: Qrels) -> dict[str, float]:
    """Mean of every metric over the judged queries (those with a positive judgment)."""
    scores = per_query(run, qrels)
    if not scores:
        return {m: 0.0 for m in METRICS}
    return {m: statistics.fmean(s[m] for s in scores.values()) for m in METRICS}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), 0 for no values."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if len(values) else 0.0


def paired_bootstrap(
    a: Sequence[float], b: Sequence[float], *, n: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of a - b over paired queries, with a 95% bootstrap interval."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.size == 0:
        return 0.0, 0.0, 0.0
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(n, diff.size))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def doc_ranking(hits: Iterable[Hit], doc_of_path: Mapping[str, str]) -> list[str]:
    """Hits (chunks) -> documents, best rank kept; chunks of notes that are no document of the
    dataset are skipped."""
    out: dict[str, None] = {}
    for h in hits:
        doc = doc_of_path.get(h.note_path)
        if doc is not None:
            out.setdefault(doc, None)
    return list(out)


# --------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Doc:
    id: str
    text: str
    title: str = ""


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    answers: tuple[str, ...] = ()  # gold answer strings (KorQuAD), for the answer-level check
    scope: Scope | None = None


@dataclass
class Dataset:
    """Queries and judgments over either `docs` (written as notes) or `vaults` (copied as they
    are, doc id = the note's path in the merged vault, e.g. `en/Sync/Intro.md`)."""

    name: str
    queries: list[Query]
    qrels: Qrels
    docs: list[Doc] = field(default_factory=list)
    vaults: dict[str, Path] = field(default_factory=dict)

    def corpus_key(self) -> tuple[Any, ...]:
        """Datasets with the same key share one index (the two directions of parallel vaults)."""
        return (tuple(d.id for d in self.docs), tuple(sorted((k, str(v)) for k, v in self.vaults.items())))


def load_korquad(path: Path) -> Dataset:
    data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    docs: list[Doc] = []
    queries: list[Query] = []
    qrels: Qrels = {}
    for article in data:
        for para in article["paragraphs"]:
            doc_id = f"p{len(docs):04d}"
            docs.append(Doc(doc_id, para["context"]))
            for qa in para["qas"]:
                answers = tuple(dict.fromkeys(a["text"] for a in qa.get("answers", [])))
                queries.append(Query(str(qa["id"]), qa["question"], answers))
                qrels[str(qa["id"])] = {doc_id: 1}
    return Dataset("korquad", queries, qrels, docs=docs)


def _jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def load_beir(directory: Path, split: str = "test") -> Dataset:
    directory = Path(directory)
    docs = [Doc(str(r["_id"]), r.get("text", ""), r.get("title", "") or "")
            for r in _jsonl(directory / "corpus.jsonl")]
    texts = {str(r["_id"]): r["text"] for r in _jsonl(directory / "queries.jsonl")}
    qrels: Qrels = {}
    with (directory / "qrels" / f"{split}.tsv").open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 3 or (i == 0 and not parts[2].lstrip("-").isdigit()):
                continue  # the header row, or a blank line
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    queries = [Query(qid, texts[qid]) for qid in qrels if qid in texts]
    qrels = {q.id: qrels[q.id] for q in queries}
    return Dataset(f"beir:{directory.name}", queries, qrels, docs=docs)


_FM = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.S)
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^[ \t]*(```|~~~)")


def _title_and_headings(path: Path) -> tuple[dict[str, Any], str, list[str]]:
    """(frontmatter, title, headings) of a note. Headings are cleaned of links and emphasis."""
    from sync.parse import clean_inline

    text = path.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
    fm: dict[str, Any] = {}
    m = _FM.match(text)
    if m:
        try:
            loaded = yaml.safe_load(m.group(1))
            fm = loaded if isinstance(loaded, dict) else {}
        except yaml.YAMLError:
            fm = {}
        text = text[m.end():]
    title = fm.get("title") if isinstance(fm.get("title"), str) else path.stem
    headings, fenced = [], False
    for line in text.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        h = None if fenced else _HEADING.match(line)
        if h:
            cleaned = clean_inline(h.group(2)).strip()
            if cleaned:
                headings.append(cleaned)
    return fm, str(title), headings


def load_parallel_vaults(ko: Path, en: Path, *, mixed: bool = False) -> list[Dataset]:
    """Two datasets over one merged vault (`ko/...`, `en/...`): ko->en and en->ko, each scoped
    to the target language's folder. `mixed` adds both directions unscoped, as in one vault
    that holds both languages: the twin must then rank against the question's own-language
    notes (which match it best), so Recall@5 says how often the other language shows up; and
    the same questions judged by the note they come from, to see what that costs it."""
    vaults = {"ko": Path(ko), "en": Path(en)}
    notes: dict[str, dict[str, tuple[str, list[str]]]] = {}  # lang -> permalink -> (doc, texts)
    for lang, root in vaults.items():
        found: dict[str, tuple[str, list[str]]] = {}
        for f in sorted(root.rglob("*.md")):
            rel = f.relative_to(root).as_posix()
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            fm, title, headings = _title_and_headings(f)
            link = fm.get("permalink")
            if isinstance(link, str) and link.strip():
                found[link.strip()] = (f"{lang}/{rel}", [title, *headings])
        notes[lang] = found
    out = []
    for src, dst in (("ko", "en"), ("en", "ko")):
        gold: dict[str, set[str]] = {}  # query text -> twin docs (a shared heading has several)
        own: dict[str, set[str]] = {}  # query text -> the notes it comes from
        for link, (doc, texts) in notes[src].items():
            twin = notes[dst].get(link)
            if twin is None:
                continue
            for text in (" ".join(t.split()) for t in texts):
                gold.setdefault(text, set()).add(twin[0])
                own.setdefault(text, set()).add(doc)
        sets = [(Scope(folders=(dst,)), f"{src}->{dst}", gold)]
        if mixed:
            sets += [(Scope(), f"{src}->{dst}, mixed vault", gold),
                     (Scope(), f"{src}->{src}, mixed vault (own note)", own)]
        for scope, name, judged in sets:
            queries, qrels = [], {}
            for i, text in enumerate(sorted(gold)):
                qid = f"{src}{i:05d}"
                queries.append(Query(qid, text, scope=scope))
                qrels[qid] = dict.fromkeys(sorted(judged[text]), 1)
            out.append(Dataset(name, queries, qrels, vaults=vaults))
    return out


def sample_queries(dataset: Dataset, limit: int | None, seed: int = 13) -> Dataset:
    """A seeded sample of the queries (kept in their original order)."""
    if limit is None or limit >= len(dataset.queries):
        return dataset
    picked = sorted(random.Random(seed).sample(range(len(dataset.queries)), limit))
    queries = [dataset.queries[i] for i in picked]
    return replace(dataset, queries=queries, qrels={q.id: dataset.qrels[q.id] for q in queries})


def subset_docs(dataset: Dataset, n: int | None, seed: int = 13) -> Dataset:
    """A seeded sample of n documents; only queries whose relevant documents all stayed are kept.
    For quick runs: fewer documents means fewer distractors, so scores rise."""
    if n is None or not dataset.docs or n >= len(dataset.docs):
        return dataset
    keep = set(random.Random(seed).sample([d.id for d in dataset.docs], n))
    docs = [d for d in dataset.docs if d.id in keep]
    queries = [q for q in dataset.queries if _relevant(dataset.qrels[q.id]).keys() <= keep]
    return replace(dataset, docs=docs, queries=queries,
                   qrels={q.id: dataset.qrels[q.id] for q in queries})


# ---------------------------------------------------------------- embedding cache


class CachedEmbedder:
    """An embedder wrapper with a persistent cache of vectors keyed by (model, query|passage,
    sha256 of the text). Only hashes and vectors are stored, never text, so evaluating KorQuAD
    leaves no copy of it behind; rerunning an evaluation (other weights, other limits) then
    costs no embedding at all, which matters for the slow e5-small."""

    def __init__(self, inner: Embedder, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors(model TEXT, kind TEXT, hash TEXT, "
                         "vector BLOB, PRIMARY KEY(model, kind, hash))")
        # 0: written before the version was stored, the same layout as 1. Another version's
        # vectors are dropped: it is only a cache.
        if self._db.execute("PRAGMA user_version").fetchone()[0] not in (0, EVAL_CACHE_VERSION):
            with self._db:
                self._db.execute("DELETE FROM vectors")
        self._db.execute(f"PRAGMA user_version = {EVAL_CACHE_VERSION}")
        self._lock = threading.Lock()
        self.embedded = 0  # texts the inner embedder was asked for

    @property
    def dim(self) -> int:
        return self.inner.dim

    def _get(self, kind: str, hashes: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        with self._lock:
            for i in range(0, len(hashes), 500):
                part = hashes[i : i + 500]
                rows = self._db.execute(
                    f"SELECT hash, vector FROM vectors WHERE model = ? AND kind = ? AND hash IN "
                    f"({','.join('?' * len(part))})", [self.name, kind, *part]).fetchall()
                out.update((h, np.frombuffer(v, dtype="<f4")) for h, v in rows)
        return out

    def _put(self, kind: str, vectors: dict[str, np.ndarray]) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors(model, kind, hash, vector) VALUES (?, ?, ?, ?)",
                [(self.name, kind, h, np.asarray(v, dtype="<f4").tobytes())
                 for h, v in vectors.items()])

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        found = self._get("p", list(set(hashes)))
        missing = list(dict.fromkeys(h for h in hashes if h not in found))
        if missing:
            first = {h: texts[hashes.index(h)] for h in missing}
            new = self.inner.embed_passages([first[h] for h in missing])
            fresh = {h: new[i] for i, h in enumerate(missing)}
            self._put("p", fresh)
            found.update(fresh)
            self.embedded += len(missing)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([found[h] for h in hashes]).astype(np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        h = hashlib.sha256(text.encode()).hexdigest()
        got = self._get("q", [h])
        if h in got:
            return got[h].astype(np.float32)
        vec = np.asarray(self.inner.embed_query(text), dtype=np.float32)
        self._put("q", {h: vec})
        self.embedded += 1
        return vec

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ----------------------------------------------------------------------- the index


@dataclass
class EvalIndex:
    index: Index
    doc_of_path: dict[str, str]
    notes: int
    chunks: int
    seconds: float  # building the index (embedding included, unless cached)
    embedded: int  # passages the model actually embedded (0 when all were cached)
    # With `keywords_db`: (that database's URL, the scratch schema this index lives in).
    pg_schema: tuple[str, str] | None = None

    def close(self) -> None:
        """Close the index's stores, and drop its scratch PostgreSQL schema if it has one."""
        self.index.registry.close()
        if self.index.keywords is not None:
            self.index.keywords.close()
        if self.pg_schema is not None:
            _drop_pg_schema(*self.pg_schema)


def _pg_schema(url: str) -> tuple[str, str]:
    """A new, empty schema in the PostgreSQL database at `url` and a URL whose connections
    work in it (search_path), so an eval never touches the tables already there."""
    import uuid

    from sqlalchemy import make_url

    schema = f"vaultbot_eval_{uuid.uuid4().hex[:12]}"
    _pg_execute(url, f'CREATE SCHEMA "{schema}"')
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False), schema


def _drop_pg_schema(url: str, schema: str) -> None:
    _pg_execute(url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _pg_execute(url: str, sql: str) -> None:
    """One statement outside a transaction, on a connection of its own."""
    from sqlalchemy import create_engine, text

    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            conn.execute(text(sql))
    finally:
        eng.dispose()


def _note_text(doc: Doc) -> str:
    body = doc.text.strip("\n")
    if body.startswith("---"):
        body = "\n" + body  # never mistaken for frontmatter
    if doc.title:
        return f"# {' '.join(doc.title.split())}\n\n{body}\n"
    return body + "\n"


def build_index(
    dataset: Dataset, work: Path, embedder: Embedder, *, chunk_tokens: int = 400,
    keywords_db: str | None = None,
) -> EvalIndex:
    """Write the dataset's documents (or copy its vaults) into `work/vault`, then index it with
    the real Indexer into `work/data`. Going through files costs a second or two but measures
    exactly what a user's vault goes through (parsing, heading-aware chunking, both stores).
    With `keywords_db` (a PostgreSQL URL) the registry and the keyword index live in a scratch
    schema there, as VAULTBOT_KEYWORDS=postgres keeps them (EvalIndex.close drops it)."""
    from sync.indexer import Indexer

    vault, data = Path(work) / "vault", Path(work) / "data"
    if vault.exists():
        shutil.rmtree(vault)
    vault.mkdir(parents=True)
    doc_of_path: dict[str, str] = {}
    for i, doc in enumerate(dataset.docs):
        rel = f"docs/{i // 1000:03d}/{i:06d}.md"
        (vault / rel).parent.mkdir(parents=True, exist_ok=True)
        (vault / rel).write_text(_note_text(doc), encoding="utf-8")
        doc_of_path[rel] = doc.id
    for name, root in dataset.vaults.items():
        for f in sorted(Path(root).rglob("*.md")):
            rel = f.relative_to(root).as_posix()
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            target = vault / name / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
            doc_of_path[f"{name}/{rel}"] = f"{name}/{rel}"
    data.mkdir(parents=True, exist_ok=True)
    pg_schema = None
    if keywords_db:
        from engine.pg_keywords import PgKeywordIndex

        url, schema = _pg_schema(keywords_db)
        pg_schema = (keywords_db, schema)
        index = Index.open(data_dir=data, registry_url=url, embedder=embedder,
                           keywords=PgKeywordIndex(url))
    else:
        index = Index.open(data_dir=data, registry_url=f"sqlite:///{data / 'registry.sqlite3'}",
                           embedder=embedder, keywords=LexicalIndex(data / "keywords.sqlite3"))
    before = getattr(embedder, "embedded", None)
    t0 = time.perf_counter()
    stats = Indexer(index, vault, chunk_tokens=chunk_tokens).sync()
    seconds = time.perf_counter() - t0
    counts = index.registry.counts()
    # What the model really embedded: a CachedEmbedder answers repeats from its cache.
    embedded = stats.chunks_embedded if before is None else embedder.embedded - before  # type: ignore[attr-defined]
    return EvalIndex(index, doc_of_path, counts["notes"], counts["chunks"], seconds, embedded,
                     pg_schema)


# ------------------------------------------------------------------------ retrieval


@dataclass(frozen=True)
class Variant:
    """One retrieval setting to measure: a mode, a config and optionally a reranker."""

    name: str
    mode: str  # dense, lexical or hybrid
    config: RetrievalConfig = field(default_factory=RetrievalConfig)
    reranker: Callable[[str, list[Hit]], list[Hit]] | None = None
    # None: the Retriever's own fusion (RRF). A float a: an experiment the Retriever does not
    # offer, score fusion a * minmax(cosine) + (1 - a) * minmax(BM25) over the same candidates.
    score_alpha: float | None = None


def standard_variants(
    config: RetrievalConfig | None = None,
    reranker: Callable[[str, list[Hit]], list[Hit]] | None = None,
    fusions: Sequence[tuple[float, float, int]] = (),
    score_alphas: Sequence[float] = (),
) -> list[Variant]:
    """dense, lexical, hybrid (with `config`), rerank (when a reranker is given), one extra
    hybrid per (dense weight, lexical weight, rrf_k) in `fusions`, and one score-fusion
    experiment per alpha in `score_alphas`."""
    config = config or RetrievalConfig()
    # Fixed-weight RRF: the Retriever's per-query weighting (`adaptive`) is turned off for the
    # variants that name their weights.
    out = [Variant(m, m, config) for m in ("dense", "lexical", "hybrid")]
    if config.adaptive:
        out.append(Variant(f"hybrid, fixed RRF {config.dense_weight:g}:{config.lexical_weight:g} "
                           f"k{config.rrf_k}", "hybrid", replace(config, adaptive=False)))
    if reranker is not None:
        out.append(Variant("rerank", "hybrid", config, reranker))
    for dw, lw, k in fusions:
        cfg = replace(config, dense_weight=dw, lexical_weight=lw, rrf_k=k, adaptive=False)
        out.append(Variant(f"hybrid d{dw:g}:l{lw:g} k{k}", "hybrid", cfg))
    for a in score_alphas:
        out.append(Variant(f"score fusion a{a:g}", "hybrid", config, score_alpha=a))
    return out


def _minmax(pairs: Sequence[tuple[str, float]]) -> dict[str, float]:
    if not pairs:
        return {}
    scores = np.array([s for _, s in pairs], dtype=float)
    lo, hi = float(scores.min()), float(scores.max())
    return {cid: (s - lo) / (hi - lo) if hi > lo else 1.0 for cid, s in pairs}


def score_fused(retriever: Retriever, query: Query, k: int, alpha: float) -> list[str]:
    """Chunk ids fused by normalised scores instead of ranks (see Variant.score_alpha)."""
    index, cfg = retriever.index, retriever.config
    scope = query.scope or Scope()
    n = max(cfg.candidates, k * 3)
    dense = _minmax(index.vectors.query(retriever.embed_query(query.text), n, scope))
    lexical = _minmax(index.keywords.search(query.text, n, scope))  # type: ignore[union-attr]
    fused = {c: alpha * dense.get(c, 0.0) + (1 - alpha) * lexical.get(c, 0.0)
             for c in dense.keys() | lexical.keys()}
    return sorted(fused, key=lambda c: -fused[c])


def prime_queries(retriever: Retriever, queries: Sequence[Query]) -> None:
    """Put every query's vector in the retriever's cache, so the latencies measured below are
    the retrieval's own (query embedding is reported separately)."""
    embedder = retriever.index.embedder
    for q in queries:
        key = (retriever.index.model, normalize_query(q.text))
        if retriever.query_vectors.get(key) is None:
            retriever.query_vectors.put(key, embedder.embed_query(q.text))


def run_variant(
    ev: EvalIndex, dataset: Dataset, variant: Variant, *, k: int = 10,
    vectors: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Metrics and latency for one variant. `per_note` is forced to 1, so the k hits are k
    distinct documents, each at the rank of its best chunk in the fused chunk list."""
    cfg = replace(variant.config, per_note=1)
    retriever = Retriever(ev.index, cfg, reranker=variant.reranker,
                          query_cache_size=len(dataset.queries) + 16, result_cache_size=1)
    if vectors is not None:
        for q in dataset.queries:
            retriever.query_vectors.put((ev.index.model, normalize_query(q.text)), vectors[q.text])
    else:
        prime_queries(retriever, dataset.queries)
    run: Run = {}
    latencies: list[float] = []
    for q in dataset.queries:
        t0 = time.perf_counter()
        if variant.score_alpha is not None:
            ids = score_fused(retriever, q, k, variant.score_alpha)
            records = ev.index.registry.chunks_by_id(ids)
            docs = (ev.doc_of_path.get(records[c].note_path) for c in ids if c in records)
            run[q.id] = [d for d in dict.fromkeys(docs) if d is not None][:k]
            latencies.append((time.perf_counter() - t0) * 1000)
            continue
        hits = retriever.search(q.text, k, scope=q.scope, mode=variant.mode,  # type: ignore[arg-type]
                                use_cache=False)
        latencies.append((time.perf_counter() - t0) * 1000)
        run[q.id] = doc_ranking(hits, ev.doc_of_path)
    scores = per_query(run, dataset.qrels)
    out: dict[str, Any] = {m: round(statistics.fmean(s[m] for s in scores.values()), 4)
                           if scores else 0.0 for m in METRICS}
    out["latency_ms"] = {"p50": round(percentile(latencies, 50), 2),
                         "p95": round(percentile(latencies, 95), 2)}
    out["_ndcg"] = [scores[qid]["ndcg@10"] for qid in sorted(scores)]  # for paired comparisons
    return out


def query_embedding_latency(embedder: Embedder, queries: Sequence[Query], n: int = 30) -> dict[str, float]:
    """p50/p95 of embedding one query with the raw model (no cache)."""
    inner = getattr(embedder, "inner", embedder)
    inner.embed_query("warm up")
    times = []
    for q in list(queries)[:n]:
        t0 = time.perf_counter()
        inner.embed_query(q.text)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50": round(percentile(times, 50), 2), "p95": round(percentile(times, 95), 2)}


def evaluate_dataset(
    ev: EvalIndex, dataset: Dataset, variants: Sequence[Variant], *, k: int = 10,
) -> dict[str, Any]:
    """Every variant on one dataset, plus hybrid - max(dense, lexical) on nDCG@10 with a paired
    95% interval (the check that fusion never costs quality)."""
    embedder = ev.index.embedder
    t0 = time.perf_counter()
    vectors = {q.text: embedder.embed_query(q.text) for q in dataset.queries}
    embed_s = time.perf_counter() - t0
    modes = {v.name: run_variant(ev, dataset, v, k=k, vectors=vectors) for v in variants}
    out: dict[str, Any] = {"queries": len(dataset.queries), "query_embed_seconds": round(embed_s, 2)}
    if {"dense", "lexical", "hybrid"} <= modes.keys():
        d, lx, h = (modes[m]["_ndcg"] for m in ("dense", "lexical", "hybrid"))
        best = "dense" if statistics.fmean(d or [0]) >= statistics.fmean(lx or [0]) else "lexical"
        mean, lo, hi = paired_bootstrap(h, modes[best]["_ndcg"])
        out["hybrid_vs_best_single"] = {"best_single": best, "delta_ndcg@10": round(mean, 4),
                                        "ci95": [round(lo, 4), round(hi, 4)]}
    for m in modes.values():
        m.pop("_ndcg")
    out["modes"] = modes
    return out


# -------------------------------------------------------------------------- answers

_CITE = re.compile(r"\[(\d{1,3})\]")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


async def _answers(asker: Any, queries: Sequence[Query]) -> list[Any]:
    from engine.answer import AskOptions

    out = []
    for q in queries:
        opts = AskOptions(scope=q.scope or Scope(), use_cache=False, channel="eval")
        out.append(await asker.ask(q.text, opts))
    return out


def evaluate_answers(
    ev: EvalIndex, dataset: Dataset, generator: Any, *, n: int = 20, seed: int = 13, k: int = 6,
) -> dict[str, Any]:
    """Answer-level numbers over a seeded sample of n queries, through the real Asker.

    - citation_validity: valid `[n]` markers / all markers the model wrote (invalid ones are
      those the pipeline removed because they point at no source);
    - supported: answers with at least one valid citation;
    - cites_gold: answers that cite a relevant document;
    - answer_span (datasets with gold answers): answers that contain a gold answer string
      (case and whitespace ignored)."""
    from engine.answer import Asker

    queries = sample_queries(dataset, n, seed).queries
    asker = Asker(Retriever(ev.index), generator, k=k)
    t0 = time.perf_counter()
    answers = asyncio.run(_answers(asker, queries))
    seconds = time.perf_counter() - t0
    valid = sum(len(_CITE.findall(a.text)) for a in answers)
    invalid = sum(a.invalid_citations for a in answers)
    llm = [a for a in answers if a.mode == "llm"]
    gold_cited = 0
    for q, a in zip(queries, answers, strict=True):
        cited = {ev.doc_of_path.get(c.path) for c in a.citations}
        gold_cited += bool(cited & _relevant(dataset.qrels[q.id]).keys())
    out: dict[str, Any] = {
        "answers": len(answers),
        "llm_answers": len(llm),  # the rest fell back to extractive (the LLM failed)
        "citation_validity": round(valid / (valid + invalid), 4) if valid + invalid else None,
        "supported": round(sum(not a.unsupported for a in answers) / max(1, len(answers)), 4),
        "cites_gold": round(gold_cited / max(1, len(answers)), 4),
        "seconds": round(seconds, 1),
    }
    with_gold = [(q, a) for q, a in zip(queries, answers, strict=True) if q.answers]
    if with_gold:
        found = sum(any(_norm(g) in _norm(a.text) for g in q.answers) for q, a in with_gold)
        out["answer_span"] = round(found / len(with_gold), 4)
    firsts = [a.timings["first_token"] for a in llm if "first_token" in a.timings]
    if firsts:
        out["first_token_ms_p50"] = round(percentile(firsts, 50), 1)
    return out


def _first_line(text: str) -> str:
    return next((line for line in text.splitlines() if line.strip()), "")


def evaluate_extractive(
    ev: EvalIndex, dataset: Dataset, *, n: int = 20, seed: int = 13, k: int = 6,
) -> dict[str, Any]:
    """The no-LLM answer (engine/extractive.py) over a seeded sample of n queries with gold
    answers, through the real Asker: extractive_contains is the share whose answer holds a gold
    answer string (case and whitespace ignored), extractive_first_sentence the share whose
    first quoted sentence does (what a reader sees first)."""
    from engine.answer import Asker

    queries = [q for q in sample_queries(dataset, n, seed).queries if q.answers]
    asker = Asker(Retriever(ev.index), None, k=k)
    t0 = time.perf_counter()
    answers = asyncio.run(_answers(asker, queries))
    seconds = time.perf_counter() - t0
    contains = first = 0
    for q, a in zip(queries, answers, strict=True):
        gold = [_norm(g) for g in q.answers]
        contains += any(g in _norm(a.text) for g in gold)
        first += any(g in _norm(_first_line(a.text)) for g in gold)
    return {
        "answers": len(answers),
        "extractive_contains": round(contains / max(1, len(answers)), 4),
        "extractive_first_sentence": round(first / max(1, len(answers)), 4),
        "seconds": round(seconds, 1),
    }
