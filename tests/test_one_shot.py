"""A one-shot `vaultbot search`/`ask` (no serve) on a small vault reads the vectors from the
registry instead of opening Chroma (App.one_shot): chromadb is never imported, and the output
is the same as through Chroma. Above ONE_SHOT_CHUNKS it opens Chroma as before."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from corpus import ROOT, copy_vault

# One process per path runs every search below in turn (the real CLI's main, as `vaultbot
# search` runs it), then says whether chromadb was ever imported. Searches with --private come
# last: a scope carried over from one search to the next in a process could only fail the
# test (a private note shown without --private), never make it pass.
CHILD = """
import contextlib, io, json, sys
import vaultbot.app
vaultbot.app.ONE_SHOT_CHUNKS = int(sys.argv[1])
from vaultbot.cli import main
outputs = []
for args in json.loads(sys.argv[2]):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["search", "--local", *args])
    assert code == 0, (args, code)
    outputs.append(buf.getvalue())
print(json.dumps({"outputs": outputs, "chromadb": "chromadb" in sys.modules}))
"""
QUERIES = ["launch date", "출시 일정", "who owns the budget?"]
SEARCHES = [[q, "--json"] for q in QUERIES] + [
    ["salary review", "--json"], ["salary review", "--private", "--json"]]


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


def _searches(env: dict[str, str], limit: int) -> tuple[dict[tuple[str, ...], str], bool]:
    """Every search in SEARCHES in one process with ONE_SHOT_CHUNKS = limit: the output of
    each, and whether chromadb was imported."""
    out = subprocess.run([sys.executable, "-c", CHILD, str(limit), json.dumps(SEARCHES)],
                         env=env, cwd=env["CWD"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    said = json.loads(out.stdout.splitlines()[-1])
    return dict(zip(map(tuple, SEARCHES), said["outputs"], strict=True)), said["chromadb"]


@pytest.fixture(scope="module")
def light(synced: dict[str, str]) -> tuple[dict[tuple[str, ...], str], bool]:
    return _searches(synced, 20_000)


@pytest.fixture(scope="module")
def full(synced: dict[str, str]) -> tuple[dict[tuple[str, ...], str], bool]:
    return _searches(synced, 0)  # 0: every vault is "large"


@pytest.mark.parametrize("query", QUERIES)
def test_small_vault_skips_chroma_with_the_same_results(light, full, query: str) -> None:
    (light_out, opened_light), (full_out, opened_full) = light, full
    assert not opened_light and opened_full
    key = (query, "--json")
    assert light_out[key] == full_out[key] and light_out[key].strip()


def test_private_notes_stay_out_on_the_light_path(light, full) -> None:
    (light_out, _), (full_out, _) = light, full
    public, private = ("salary review", "--json"), ("salary review", "--private", "--json")
    assert "Salary review.md" not in light_out[public]  # private: shown only with --private
    assert light_out[public] == full_out[public]
    assert "Salary review.md" in light_out[private]
    assert light_out[private] == full_out[private]
