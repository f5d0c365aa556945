"""False masks and speed of engine.mask.Masker on the shared vaults.

The Obsidian help vaults (en, ko) and the personal vault template hold essentially no private
data, so nearly everything found there is a false mask: every finding is printed with its
context for a human to judge.

    .venv/bin/python bench/mask_bench.py [--vaults DIR ...] [--korquad] [--no-checks] [--runs 5]
                                         [--quiet] [--json out.json]

`--korquad` adds the KorQuAD dev paragraphs (Korean Wikipedia: dates, years, figures, no
private data) as one more "vault". `--no-checks` turns off every check that runs after a
pattern matched (RRN date and checksum, Luhn and issuer digits, e-mail TLD, placeholder and
entropy tests of `password:`-style values, E.164 length), to show what those checks prevent.
Speed is the median of --runs passes of `Masker.mask` over every note, in ms per MB of UTF-8.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import engine.mask as mask  # noqa: E402
from engine.mask import Masker  # noqa: E402

VAULTS = ROOT.parent / "shared" / "corpus" / "vaults"
KORQUAD = ROOT.parent / "shared" / "corpus" / "eval" / "korquad" / "KorQuAD_v1.0_dev.json"


def korquad() -> list[tuple[str, str]]:
    data = json.loads(KORQUAD.read_text())
    return [(f"korquad/{a['title']}#{i}", p["context"])
            for a in data["data"] for i, p in enumerate(a["paragraphs"])]


def no_checks() -> None:
    """Accept every pattern match as it is (the bench's ablation; never used by vaultbot)."""
    def span(m: re.Match[str]) -> tuple[int, int]:
        return m.span()

    mask._token_ok = mask._email_ok = span
    mask._assign_ok = lambda m: m.span("value")
    mask._urlpass_ok = lambda m: m.span("urlpass")
    mask._NUMBER_RULES = tuple((n, p, span) for n, p, _ in mask._NUMBER_RULES)
    mask._NUMBER_ALONE = [(n, p, span) for n, p, _ in mask._NUMBER_ALONE]


def notes(vaults: list[Path]) -> list[tuple[str, str]]:
    out = []
    for vault in vaults:
        for path in sorted(vault.rglob("*.md")):
            if any(part.startswith(".") for part in path.relative_to(vault).parts):
                continue
            out.append((f"{vault.name}/{path.relative_to(vault)}", path.read_text(errors="replace")))
    return out


def context(text: str, start: int, end: int, width: int = 40) -> str:
    left = text[max(0, start - width) : start].replace("\n", "⏎")
    right = text[end : end + width].replace("\n", "⏎")
    return f"{left}[[{text[start:end]}]]{right}"


def run(docs: list[tuple[str, str]], runs: int) -> dict[str, Any]:
    masker = Masker()
    chars = sum(len(t) for _, t in docs)
    size_mb = sum(len(t.encode()) for _, t in docs) / 2**20
    kinds: Counter[str] = Counter()
    listed = []
    for name, text in docs:
        for f in masker.findings(text):
            kinds[f.kind] += 1
            listed.append({"file": name, "kind": f.kind, "at": f.start,
                           "context": context(text, f.start, f.end)})
    passes = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _, text in docs:
            masker.mask(text)
        passes.append(time.perf_counter() - t0)
    ms = statistics.median(passes) * 1000
    return {
        "sources": sorted({name.split("/", 1)[0] for name, _ in docs}), "files": len(docs), "chars": chars,
        "mb": round(size_mb, 3), "findings": dict(sorted(kinds.items())), "total": sum(kinds.values()),
        "ms": round(ms, 1), "ms_per_mb": round(ms / size_mb, 1) if size_mb else None,
        "listed": listed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vaults", nargs="*", type=Path,
                    default=sorted(p for p in VAULTS.iterdir() if p.is_dir()) if VAULTS.is_dir() else [])
    ap.add_argument("--korquad", action="store_true", help="add the KorQuAD dev paragraphs")
    ap.add_argument("--no-checks", action="store_true", help="accept every pattern match")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quiet", action="store_true", help="figures only, no list of findings")
    ap.add_argument("--json", type=Path, help="also write the result here")
    args = ap.parse_args()
    if not args.vaults:
        sys.exit(f"no vaults found under {VAULTS}")
    if args.no_checks:
        no_checks()
    docs = notes(args.vaults) + (korquad() if args.korquad else [])
    result = run(docs, args.runs)
    result["checks"] = not args.no_checks
    if not args.quiet:
        for item in result["listed"]:
            print(f"{item['kind']:7} {item['file']}:{item['at']}  {item['context']}")
        print()
    print(f"sources: {', '.join(result['sources'])}" + ("" if result["checks"] else "  (no checks)"))
    print(f"files: {result['files']}  characters: {result['chars']:,}  ({result['mb']} MB)")
    print(f"findings: {result['total']}  " + "  ".join(f"{k}={v}" for k, v in result["findings"].items()))
    print(f"mask: {result['ms']} ms for all, {result['ms_per_mb']} ms per MB (median of {args.runs})")
    if args.json:
        args.json.write_text(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
