"""A one-shot `vaultbot search`/`ask` (no serve) on a small vault reads the vectors from the
registry instead of opening Chroma (App.one_shot): chromadb is never imported, and the output
is the same as through Chroma. Above ONE_SHOT_CHUNKS it opens Chroma as before."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from corpus import ROOT, copy_vault

CHILD = """
import sys
import vaultbot.app
vaultbot.app.ONE_SHOT_CHUNKS = int(sys.argv[1])
from vaultbot.cli import main
code = main(sys.argv[2:])
print("CHROMADB=" + str("chromadb" in sys.modules), file=sys.stderr)
sys.exit(code)
"""
QUERIES = ["launch date", "출시 일정", "who owns the budget?"]


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("one-shot")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VAULTBOT_", "SLACK_", "DISCORD_"))}
    env.update(PYTHONPATH=str(ROOT), VAULTBOT_VAULT=str(copy_vault("example", tmp)),
               VAULTBOT_DATA_DIR=str(tmp / "data"), VAULTBOT_LLM="none")
    subprocess.run([sys.executable, "-m", "vaultbot.cli", "sync"], env=env, cwd=tmp, check=True,
                   capture_output=True)
    env["CWD"] = str(tmp)
    return env


def _search(env: dict[str, str], limit: int, *args: str) -> tuple[str, bool]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(limit), "search", "--local", *args],
                         env=env, cwd=env["CWD"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout, "CHROMADB=True" in out.stderr


@pytest.mark.parametrize("query", QUERIES)
def test_small_vault_skips_chroma_with_the_same_results(synced: dict[str, str], query: str) -> None:
    light, opened_light = _search(synced, 20_000, query, "--json")
    full, opened_full = _search(synced, 0, query, "--json")  # 0: every vault is "large"
    assert not opened_light and opened_full
    assert light == full and light.strip()


def test_private_notes_stay_out_on_the_light_path(synced: dict[str, str]) -> None:
    light, _ = _search(synced, 20_000, "salary review", "--json")
    assert "Salary review.md" not in light  # private: shown only with --private
    assert light == _search(synced, 0, "salary review", "--json")[0]
    owner, _ = _search(synced, 20_000, "salary review", "--private", "--json")
    assert "Salary review.md" in owner
    assert owner == _search(synced, 0, "salary review", "--private", "--json")[0]
