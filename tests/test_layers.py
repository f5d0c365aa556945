"""The design card's one layering rule: `engine` imports neither `sync` nor `bot` (sync writes
through engine's stores; engine must stay usable without them)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_engine_imports_neither_sync_nor_bot() -> None:
    files = sorted((ROOT / "engine").rglob("*.py"))
    assert files
    offenders = {str(f.relative_to(ROOT)): sorted(_imported_packages(f) & {"sync", "bot", "vaultbot"})
                 for f in files}
    assert {f: pk for f, pk in offenders.items() if pk} == {}


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def build():\n    from sync.indexer import Indexer\n    import bot.slack\n")
    assert {"sync", "bot"} <= _imported_packages(f)
