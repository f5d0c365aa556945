"""The design card's layering rules: `engine` imports neither `sync` nor `bot` (sync writes
through engine's stores; engine must stay usable without them); in `bot`, the conversation
spine knows no chat platform and the platform adapters do not know each other."""

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


def _imported_modules(path: Path) -> set[str]:
    """Every module a file imports, in full (`from bot import slack` counts as `bot.slack`)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _offending(path: Path, banned: set[str]) -> list[str]:
    """The imports of `path` that are, or are inside, a banned module (`bot.render_`, ending
    in "_", bans every module whose name starts so)."""
    def hit(m: str, b: str) -> bool:
        return m.startswith(b) if b.endswith("_") else m == b or m.startswith(b + ".")
    return sorted(m for m in _imported_modules(path) if any(hit(m, b) for b in banned))


SLACK = {"slack_bolt", "slack_sdk", "bot.slack", "bot.render_slack"}
DISCORD = {"discord", "bot.discord_bot", "bot.render_discord"}


def test_the_conversation_spine_imports_no_chat_platform() -> None:
    spine = ROOT / "bot" / "conversation.py"
    assert _offending(spine, SLACK | DISCORD | {"bot.render_"}) == []


def test_bot_adapters_do_not_import_each_other() -> None:
    slack = [ROOT / "bot" / "slack.py", ROOT / "bot" / "render_slack.py"]
    discord = [ROOT / "bot" / "discord_bot.py", ROOT / "bot" / "render_discord.py"]
    assert {str(f.name): _offending(f, DISCORD) for f in slack} == {f.name: [] for f in slack}
    assert {str(f.name): _offending(f, SLACK) for f in discord} == {f.name: [] for f in discord}
    # Both adapters are built on the spine.
    assert all("bot.conversation" in _imported_modules(f) for f in (slack[0], discord[0]))


def test_the_module_check_sees_every_form(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("from bot import slack\nimport discord.ext\n"
                 "def f():\n    from bot.render_discord import answer_messages\n")
    assert _offending(f, {"bot.slack"}) == ["bot.slack"]
    assert _offending(f, {"discord"}) == ["discord.ext"]
    assert _offending(f, {"bot.render_"}) == ["bot.render_discord", "bot.render_discord.answer_messages"]
