"""VaultFilter: which files vaultbot indexes, on real vaults from the shared corpus."""

from __future__ import annotations

import logging
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from corpus import VAULTS

from sync.ignore import VaultFilter

KEPANO = VAULTS / "kepano-obsidian"
HELP_EN = VAULTS / "obsidian-help-en"
KEPANO_MD_COUNT = 103  # every .md outside .obsidian/ (its .obsidian/ holds only .json)

needs_corpus = pytest.mark.skipif(not KEPANO.is_dir(), reason="shared corpus not available")


def _touch(root: Path, rel: str, text: str = "x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _walked(f: VaultFilter) -> dict[str, os.stat_result]:
    result: dict[str, os.stat_result] = {}
    for rel, st in f.walk():
        assert rel not in result, f"walk yielded {rel} twice"
        result[rel] = st
    return result


def _all_files(root: Path) -> set[str]:
    """Every file and symlink below root, hidden ones included (the oracle's input)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            out.add(name if rel_dir == "." else f"{rel_dir}/{name}".replace(os.sep, "/"))
    return out


@pytest.fixture
def kepano(tmp_path: Path) -> Path:
    """A writable copy of the kepano vault (the corpus copy is read-only)."""
    vault = tmp_path / "vault"
    shutil.copytree(KEPANO, vault, copy_function=shutil.copyfile)
    for dirpath, _dirs, _files in os.walk(vault):
        os.chmod(dirpath, 0o755)  # copytree copied the read-only dir modes
    return vault


@needs_corpus
def test_help_vault_yields_its_173_notes() -> None:
    walked = _walked(VaultFilter(HELP_EN))
    assert len([p for p in walked if p.endswith(".md")]) == 173
    assert len(walked) == 173  # no PDFs there, and no images or other files sneak in


@needs_corpus
def test_kepano_hidden_dirs_skipped(kepano: Path) -> None:
    for rel in (
        ".obsidian/plugins/p/README.md",
        ".trash/Old note.md",
        ".git/objects/readme.md",
        "Notes/.hidden.md",
        "Notes/.drafts/Draft.md",
        ".DS_Store",
        ".#Notes.md",
    ):
        _touch(kepano, rel)
    walked = _walked(VaultFilter(kepano))
    assert len(walked) == KEPANO_MD_COUNT
    assert all(p.endswith(".md") for p in walked)
    assert not [p for p in walked if any(part.startswith(".") for part in p.split("/"))]
    assert "Readme.md" in walked and "References/Kyoto.md" in walked
    assert "Templates/Bases/Books.base" not in walked and "LICENSE" not in walked
    st = walked["Readme.md"]
    assert st.st_size == (kepano / "Readme.md").stat().st_size


@needs_corpus
def test_temp_editor_files_skipped_and_other_formats_kept(kepano: Path) -> None:
    junk = [
        "Notes/Kyoto.md.swp",
        "Notes/Kyoto.md.swx",
        "Notes/Kyoto.md~",
        "Notes/4913",
        "Notes/Kyoto.md.tmp",
        "Notes/Paper.pdf.crdownload",
        "Notes/.Kyoto.md.swp",
    ]
    wanted = ["Notes/Paper.pdf", "Notes/Long.markdown", "Notes/Shouting.MD"]
    for rel in junk + wanted:
        _touch(kepano, rel)
    f = VaultFilter(kepano)
    walked = _walked(f)
    assert set(wanted) <= walked.keys()
    assert not set(junk) & walked.keys()
    assert len(walked) == KEPANO_MD_COUNT + len(wanted)
    assert not any(f.is_candidate(p) for p in junk)


@needs_corpus
def test_icloud_placeholders_skipped(kepano: Path) -> None:
    placeholders = [".Idea.md.icloud", "Notes/.Far away.md.icloud", "Notes/Visible.md.icloud"]
    for rel in placeholders:
        _touch(kepano, rel)
    f = VaultFilter(kepano)
    walked = _walked(f)
    assert not set(placeholders) & walked.keys()
    assert len(walked) == KEPANO_MD_COUNT
    assert not any(f.is_candidate(p) for p in placeholders)


@needs_corpus
def test_vaultbotignore_globs(kepano: Path) -> None:
    _touch(kepano, "Notes/Readme.md")  # not the root one: "/Readme.md" is anchored
    _touch(kepano, "Notes/Deep/Secret plans.md")
    _touch(kepano, "Secret.md")
    _touch(kepano, "Notes/Scan.pdf")
    (kepano / ".vaultbotignore").write_text(
        "# keep templates and journals out\n"
        "\n"
        "Templates/\n"
        "/Readme.md\n"
        "Daily/**\n"
        "   **/Secret*.md   \n"
        "*.pdf\n"
        "Clippings/B*.md\n",
        encoding="utf-8",
    )
    baseline = _all_files(kepano)
    expected = {
        p
        for p in baseline
        if p.endswith(".md")
        and not p.startswith((".obsidian/", "Templates/", "Daily/"))
        and p != "Readme.md"
        and not p.split("/")[-1].startswith("Secret")
        and p != "Clippings/Buy wisely.md"
    }
    f = VaultFilter(kepano)
    assert len(f.patterns) == 6
    walked = _walked(f)
    assert set(walked) == expected
    assert "Notes/Readme.md" in walked
    assert "Clippings/In good hands.md" in walked
    assert "Templates/Book Template.md" not in walked
    assert "Daily/2023-09-12.md" not in walked
    assert "Notes/Scan.pdf" not in walked


@needs_corpus
def test_is_candidate_agrees_with_walk(kepano: Path, tmp_path: Path) -> None:
    for rel in (".obsidian/x.md", "Notes/a.md~", "Private/p.md", "Notes/Private/q.md", "x.pdf"):
        _touch(kepano, rel)
    outside = _touch(tmp_path / "outside", "leak.md")
    (kepano / "Leak.md").symlink_to(outside)
    (kepano / "Alias.md").symlink_to(kepano / "Readme.md")
    (kepano / ".vaultbotignore").write_text("Private/\nTemplates/Bases/\n", encoding="utf-8")
    f = VaultFilter(kepano)
    walked = set(_walked(f))
    everything = _all_files(kepano)
    assert walked == {p for p in everything if f.is_candidate(p)}
    assert walked < everything


def test_symlinks_never_leave_the_vault(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    outside = tmp_path / "outside"
    _touch(vault, "Real.md", "real note")
    _touch(vault, "Notes/Inner.md")
    _touch(outside, "secret.md", "outside secret")
    (vault / "Leak.md").symlink_to(outside / "secret.md")
    (vault / "LeakDir").symlink_to(outside, target_is_directory=True)
    (vault / "Notes" / "Loop").symlink_to(vault, target_is_directory=True)
    (vault / "Notes" / "InnerLink").symlink_to(vault / "Notes", target_is_directory=True)
    (vault / "Alias.md").symlink_to(vault / "Real.md")
    (vault / "Broken.md").symlink_to(vault / "missing.md")
    (vault / "DirNamed.md").symlink_to(vault / "Notes", target_is_directory=True)
    f = VaultFilter(vault)
    walked = _walked(f)
    assert set(walked) == {"Real.md", "Notes/Inner.md", "Alias.md"}
    assert walked["Alias.md"].st_size == len("real note")  # the target's stat
    assert not f.is_candidate("Leak.md")
    assert not f.is_candidate("LeakDir/secret.md")
    assert not f.is_candidate("Notes/Loop/Real.md")
    assert not f.is_candidate("Broken.md")
    assert not f.is_candidate_dir("LeakDir")
    assert not f.is_candidate_dir("Notes/InnerLink")
    assert f.is_candidate("Alias.md")
    assert f.is_candidate_dir("Notes")


def test_symlinked_vault_root_is_resolved(tmp_path: Path) -> None:
    _touch(tmp_path / "real", "a.md")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    f = VaultFilter(tmp_path / "link")
    assert set(_walked(f)) == {"a.md"}
    assert f.is_candidate("a.md")


@pytest.mark.parametrize(
    ("pattern", "rel", "candidate"),
    [
        ("Private/", "Private/a.md", False),
        ("Private/", "Notes/Private/a.md", False),
        ("Drafts.md/", "Drafts.md", True),  # dir-only pattern, and this is a file
        ("Private", "Notes/Private/a.md", False),  # no slash: a name at any depth
        ("*.pdf", "a/b/c.pdf", False),
        ("*.pdf", "a/b/c.md", True),
        ("/Readme.md", "Readme.md", False),
        ("/Readme.md", "Notes/Readme.md", True),
        ("Daily/2023-*.md", "Daily/2023-09-12.md", False),
        ("Daily/2023-*.md", "Daily/2024-01-01.md", True),
        ("Daily/2023-*.md", "Old/Daily/2023-09-12.md", True),  # anchored at the root
        ("Daily/*.md", "Daily/sub/x.md", True),  # '*' does not cross '/'
        ("**/Secret.md", "Secret.md", False),
        ("**/Secret.md", "a/b/Secret.md", False),
        ("Archive/**", "Archive/a/b.md", False),
        ("Archive/**", "x/Archive/a.md", True),
        ("a/**/b.md", "a/b.md", False),
        ("a/**/b.md", "a/x/y/b.md", False),
        ("a/**/b.md", "c/a/b.md", True),
        ("Note?.md", "Note1.md", False),
        ("Note?.md", "Note10.md", True),
        ("[Dd]raft*.md", "draft 1.md", False),
        ("[!Dd]raft*.md", "draft 1.md", True),
        ("[!Dd]raft*.md", "xraft.md", False),
        ("\\#hash.md", "#hash.md", False),
        ("#hash.md", "#hash.md", True),  # a comment line
        ("!Keep.md", "Keep.md", True),  # a lone negation: nothing was ignored
        ("[z-a].md", "[z-a].md", False),  # invalid class: matched literally
        ("Note (1).md", "Note (1).md", False),  # regex metacharacters are literal
        ("Note (1).md", "Note 1.md", True),
    ],
)
def test_ignore_pattern_semantics(tmp_path: Path, pattern: str, rel: str, candidate: bool) -> None:
    (tmp_path / ".vaultbotignore").write_text(pattern + "\n", encoding="utf-8")
    assert VaultFilter(tmp_path).is_candidate(rel) is candidate


@pytest.mark.parametrize("rel", ["", "/abs.md", "../x.md", "a/../b.md", "a//b.md", "./a.md", "a/"])
def test_malformed_relative_paths_rejected(tmp_path: Path, rel: str) -> None:
    assert not VaultFilter(tmp_path).is_candidate(rel)


def test_reload_picks_up_changes_and_fails_closed(tmp_path: Path) -> None:
    _touch(tmp_path, "Private/p.md")
    _touch(tmp_path, "Public/q.md")
    f = VaultFilter(tmp_path)
    assert f.is_candidate("Private/p.md")
    ignore = tmp_path / ".vaultbotignore"
    ignore.write_text("Private/\n", encoding="utf-8")
    assert f.is_candidate("Private/p.md")  # not until reload()
    f.reload()
    assert set(_walked(f)) == {"Public/q.md"}
    # An unreadable ignore file keeps the old rules rather than exposing Private/.
    ignore.unlink()
    ignore.mkdir()
    f.reload()
    assert f.patterns == ("Private/",)
    assert not f.is_candidate("Private/p.md")
    with pytest.raises(OSError):
        VaultFilter(tmp_path)
    # A deleted ignore file means no patterns.
    ignore.rmdir()
    f.reload()
    assert f.patterns == ()
    assert f.is_candidate("Private/p.md")


def test_walk_10k_files_is_fast(tmp_path: Path) -> None:
    # Creating 10k files on a busy disk takes seconds; tmpfs keeps the test quick. The
    # walk itself is timed with a warm dentry cache, as it would be on a second scan.
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else tmp_path) as tmp:
        root = Path(tmp)
        for d in range(100):
            folder = root / f"folder {d:03}"
            folder.mkdir()
            for n in range(100):
                os.close(os.open(folder / f"note {n:03}.md", os.O_CREAT | os.O_WRONLY, 0o644))
            (folder / "image.png").write_bytes(b"x")
        f = VaultFilter(root)
        list(f.walk())
        start = time.perf_counter()
        walked = list(f.walk())
        elapsed = time.perf_counter() - start
    assert len(walked) == 10_000
    assert walked[0][0] == "folder 000/note 000.md"  # sorted, depth first
    assert elapsed < 0.5, f"walk took {elapsed:.3f}s"  # ~0.05 s measured; generous for CI


# ------------------------------------------------------------------------------------------
# Negation and the rest of gitignore, checked against git itself
# ------------------------------------------------------------------------------------------


def _git_ignored(root: Path, files: list[str], patterns: str) -> set[str]:
    """What `git check-ignore` says of `files` in a scratch repo holding the same tree, with
    `patterns` as its .gitignore: the oracle for .vaultbotignore."""
    repo = root / "git"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text(patterns, encoding="utf-8")
    for rel in files:
        _touch(repo, rel)
    out = subprocess.run(
        ["git", "-C", str(repo), "-c", "core.ignorecase=false", "check-ignore", "--stdin"],
        input="\n".join(files), capture_output=True, text=True, check=False,
    )
    assert out.returncode in (0, 1), out.stderr  # 1: nothing ignored
    return set(out.stdout.splitlines())


def _kept_by_vaultbot(root: Path, files: list[str], patterns: str) -> set[str]:
    """The files VaultFilter keeps, asserting that walk and is_candidate agree."""
    vault = root / "vault"
    for rel in files:
        _touch(vault, rel)
    (vault / ".vaultbotignore").write_text(patterns, encoding="utf-8")
    f = VaultFilter(vault)
    walked = set(_walked(f))
    assert walked == {rel for rel in files if f.is_candidate(rel)}
    return walked


@pytest.mark.parametrize(
    ("patterns", "files", "kept"),
    [
        pytest.param(
            "*.md\n!keep.md\n",
            ["keep.md", "a.md", "d/keep.md", "d/a.md", "d/scan.pdf"],
            {"keep.md", "d/keep.md", "d/scan.pdf"},
            id="negation-reincludes",
        ),
        pytest.param(
            "drafts/\n!drafts/x.md\n",
            ["drafts/x.md", "drafts/y.md", "n/drafts/x.md", "x.md"],
            {"x.md"},  # a file under an excluded directory cannot be re-included
            id="excluded-parent-wins",
        ),
        pytest.param(
            "Archive/**\n!Archive/keep.md\n",
            ["Archive/keep.md", "Archive/a.md", "Archive/s/keep.md", "keep.md"],
            {"Archive/keep.md", "keep.md"},  # `a/**` ignores what is inside, not `a` itself
            id="inside-dir-then-negation",
        ),
        pytest.param(
            "**/secret/**\n",
            ["secret/a.md", "a/secret/b.md", "a/secret/c/d.md", "secret.md", "a/secrets/e.md"],
            {"secret.md", "a/secrets/e.md"},
            id="double-star-both-sides",
        ),
        pytest.param(
            "/top.md\n",
            ["top.md", "a/top.md", "a/b/top.md"],
            {"a/top.md", "a/b/top.md"},
            id="anchored",
        ),
        pytest.param(
            "/*\n!/keep/\n!/root.md\n",
            ["keep/a.md", "keep/b/c.md", "other/a.md", "root.md", "gone.md"],
            {"keep/a.md", "keep/b/c.md", "root.md"},
            id="allow-list",
        ),
        pytest.param(
            "foo\n!foo/\n",
            ["foo/bar.md", "x/foo/bar.md", "foo.md"],
            {"foo/bar.md", "x/foo/bar.md", "foo.md"},  # a parent's match is not the file's
            id="negated-directory",
        ),
        pytest.param(
            "keep/**/\n",
            ["keep/a.md", "keep/sub/b.md", "keep/sub/deep/c.md", "other/sub/d.md"],
            {"keep/a.md", "other/sub/d.md"},  # the directories inside keep/, not keep/
            id="dirs-inside",
        ),
    ],
)
def test_gitignore_semantics_match_git(
    tmp_path: Path, patterns: str, files: list[str], kept: set[str]
) -> None:
    assert set(files) - _git_ignored(tmp_path, files, patterns) == kept
    assert _kept_by_vaultbot(tmp_path, files, patterns) == kept


def test_random_ignore_files_match_git(tmp_path: Path) -> None:
    """Random pattern sets (negations, anchors, `**`, directory-only) over random trees: the
    files vaultbot keeps are exactly those git does not ignore."""
    rng = random.Random(20261201)
    atoms = ["a", "b", "secret", "drafts", "k*", "*", "**", "x.md", "*.md", "?.md", "[ab]"]
    dirs, names = ["a", "b", "secret", "drafts", "keep"], ["x.md", "keep.md", "a.md"]
    for trial in range(25):
        lines = []
        for _ in range(rng.randint(1, 4)):
            pat = "/".join(rng.choice(atoms) for _ in range(rng.randint(1, 3)))
            pat = ("/" if rng.random() < 0.2 else "") + pat + ("/" if rng.random() < 0.25 else "")
            lines.append(("!" if rng.random() < 0.35 else "") + pat)
        files = {
            "/".join([*(rng.choice(dirs) for _ in range(rng.randint(0, 3))), rng.choice(names)])
            for _ in range(12)
        }
        parents = {f.rsplit("/", 1)[0] for f in files if "/" in f}
        parents |= {p.rsplit("/", 1)[0] for p in list(parents) if "/" in p}
        tree = sorted(files - parents)  # a name is a file or a directory, not both
        patterns = "\n".join(lines) + "\n"
        root = tmp_path / str(trial)
        expected = set(tree) - _git_ignored(root, tree, patterns)
        assert _kept_by_vaultbot(root, tree, patterns) == expected, patterns


def test_negation_lines_are_kept_without_warning(tmp_path: Path, caplog) -> None:
    (tmp_path / ".vaultbotignore").write_text("Private/\n*.md\n!Public.md\n", encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="sync.ignore"):
        f = VaultFilter(tmp_path)
    assert f.patterns == ("Private/", "*.md", "!Public.md")
    assert not caplog.records
    assert f.is_candidate("Public.md") and f.is_candidate("Notes/Public.md")
    assert not f.is_candidate("Private/Public.md") and not f.is_candidate("Other.md")
