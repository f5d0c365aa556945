"""Where the shared corpus and the sample vault are, and how tests get writable copies."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
VAULTS = CORPUS / "vaults"
PDFS = CORPUS / "pdfs"
EXAMPLE_VAULT = ROOT / "examples" / "vault"
PG_ADMIN_URL = os.environ.get("VAULTBOT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def need_corpus() -> None:
    """Skip a test that needs the shared corpus when it is absent, except under CI (`CI` set to
    anything but empty/0/false), where a missing corpus is a failure: a skip there would hide
    that the tests which need it never ran."""
    if not VAULTS.is_dir():
        if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
            pytest.fail(f"shared corpus not found at {CORPUS} (CI must have it)")
        pytest.skip(f"shared corpus not found at {CORPUS}")


def copy_vault(name: str, dest: Path) -> Path:
    """A writable copy of a corpus vault (or `example`) under dest."""
    src = EXAMPLE_VAULT if name == "example" else VAULTS / name
    if name != "example":
        need_corpus()
    target = dest / name
    shutil.copytree(src, target, symlinks=True)
    return target
