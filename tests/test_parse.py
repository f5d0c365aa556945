"""sync.parse and sync.links on the real help vaults and on small hand-written notes."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from corpus import CORPUS

from engine.models import Link
from sync.links import LinkResolver
from sync.parse import code_mask, fenced_lines, parse_markdown, split_frontmatter

VAULTS = CORPUS / "vaults"


class Vault:
    """A read-only corpus vault: its file list, a resolver and a reader, as the sync uses."""

    def __init__(self, name: str) -> None:
        self.root = VAULTS / name
        if not self.root.is_dir():
            pytest.skip(f"shared corpus not found at {CORPUS}")
        self.files = sorted(
            p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
        )
        self.notes = [p for p in self.files if p.endswith(".md")]
        self.resolver = LinkResolver(self.files)

    def read(self, path: str) -> str | None:
        try:
            return (self.root / path).read_text(encoding="utf-8")
        except OSError:
            return None

    def parse(self, path: str, **kw):
        return parse_markdown(path, self.read(path), self.resolver, self.read, **kw)


@pytest.fixture(scope="module")
def en() -> Vault:
    return Vault("obsidian-help-en")


@pytest.fixture(scope="module")
def ko() -> Vault:
    return Vault("obsidian-help-ko")


def memory_reader(files: dict[str, str]):
    return LinkResolver(files), files.get


# ---------------------------------------------------------------------------------------------
# Whole vaults
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["obsidian-help-en", "obsidian-help-ko"])
def test_every_help_note_parses(name: str) -> None:
    vault = Vault(name)
    assert len(vault.notes) == 173
    for path in vault.notes:
        note = vault.parse(path)
        assert note.kind == "md" and note.path == path
        assert note.title == path.rsplit("/", 1)[-1][:-3]  # no `title` property in these vaults
        assert note.body.strip(), path
        assert not note.body.startswith("---"), path  # frontmatter never leaks into the body
        assert "permalink" in note.frontmatter, path  # every help note has frontmatter
        assert not [w for w in note.warnings if "YAML" in w or "frontmatter" in w], path
        assert path not in note.embedded  # a note never includes itself


def test_help_vault_links_resolve(en: Vault) -> None:
    links = [(path, link) for path in en.notes for link in en.parse(path).links]
    assert len(links) > 1400
    unresolved = {
        link.target for path, link in links if en.resolver.resolve(link.target, path) is None
    }
    # The only dangling targets in the English help vault: documentation examples and a video
    # that is not shipped with it.
    assert unresolved == {"Example", "Example.md", "obsidian-cli.mp4"}


def test_kepano_vault_templates_with_bad_yaml_still_index() -> None:
    vault = Vault("kepano-obsidian")
    note = vault.parse("Templates/Evergreen Template.md")
    # `created: {{date}}` breaks the block; the entries that parse alone are kept, and the
    # note is judged on the raw text (no private key named, so it stays public).
    assert note.frontmatter == {"tags": ["0🌲"]}
    assert note.frontmatter_error is not None and not note.private
    assert any("invalid YAML" in w for w in note.warnings)
    assert not note.body.startswith("---")
    good = vault.parse("Templates/Video Game Genre Template.md")
    assert "games/genres" in good.tags  # nested tag from a YAML list


# ---------------------------------------------------------------------------------------------
# Known notes
# ---------------------------------------------------------------------------------------------


def test_embed_files_note(en: Vault) -> None:
    note = en.parse("Linking notes and files/Embed files.md")
    assert note.title == "Embed files"
    assert note.aliases == ["How to/Embed files", "Linking notes and files/Embedding files"]
    assert note.frontmatter["permalink"] == "embeds"
    assert note.embedded == ["Linking notes and files/Internal links.md", "Plugins/Search.md"]
    assert note.missing_embeds == [] and note.warnings == []

    # ![[Internal links#^b15695]] -> just that paragraph, without its block id
    assert (
        "The text below is an example of an embedded block:\n\nLearn how to link to notes, "
        in note.body
    )
    assert "By linking notes, you can create a network of knowledge.\n" in note.body
    assert "network of knowledge. ^b15695" not in note.body  # block id dropped
    # examples inside code fences stay literal and are not links
    assert "```md\n![[Internal links]]\n```" in note.body
    assert "```md\n![[Internal links#^b15695]]\n```" in note.body
    # ![[Search#Embed search results in a note]] -> that section, its heading made bold
    assert (
        "**Embed search results in a note**\n\nTo embed search results in a note, add a `query` code block"
        in note.body
    )
    assert "\n## Embed search results in a note" not in note.body
    # images and other files are left as the embeds they are
    assert "![[Engelbart.jpg#outline]]" in note.body
    assert "![[Excerpt from Mother of All Demos (1968).ogg]]" in note.body

    assert Link("Internal links", alias="Internal link") in note.links
    assert (
        Link("Internal links", heading="Link to a heading in a note", alias="headings")
        in note.links
    )
    assert Link("Internal links", block="b15695", embed=True) in note.links
    assert Link("Engelbart.jpg", heading="outline", alias="100", embed=True) in note.links
    assert not any(link.target == "Document.pdf" for link in note.links)  # only in code
    assert not any(link.target == "My note" for link in note.links)


def test_callouts_kept_intact_and_code_links_ignored(en: Vault) -> None:
    note = en.parse("Editing and formatting/Callouts.md")
    assert (
        "> [!info] Here's a callout title\n> Here's a callout block.\n"
        "> It supports **Markdown**, [[Internal links|Wikilinks]] and [[Embed files|embeds]]!\n"
        "> ![[Engelbart.jpg]]"
    ) in note.body
    assert Link("Internal links", alias="Wikilinks") in note.links
    assert Link("Internal link", alias="Wikilinks") not in note.links  # that one is in a fence
    assert Link(note.path, heading="Supported types") in note.links  # [[#Supported types]]


def test_nested_heading_embed(en: Vault) -> None:
    note = en.parse("Obsidian Sync/Local and remote vaults.md")
    assert "Obsidian Sync/Sync settings and selective syncing.md" in note.embedded
    assert (
        "**Exclude a folder from syncing**\n\nBy default, Obsidian syncs all files and folders"
        in note.body
    )
    # the section ends where the next heading of its level starts
    assert "Updating your synced vault settings" not in note.body
    assert "![[Sync settings and selective syncing#" not in note.body


def test_block_embed_inside_and_of_a_callout(en: Vault) -> None:
    note = en.parse("Obsidian Sync/Set up Obsidian Sync.md")
    assert "Obsidian Sync/Security and privacy.md" in note.embedded
    assert "**Oceania**: Sydney, Australia" in note.body
    assert "![[Obsidian Sync/Security and privacy#^sync-geo-regions]]" not in note.body


def test_self_embeds_are_cut(en: Vault) -> None:
    note = en.parse("Obsidian Sync/Set up Obsidian Sync.md")
    cycles = [w for w in note.warnings if "cycle" in w]
    assert len(cycles) == 4
    assert "![[Set up Obsidian Sync#Enable Obsidian Sync]]" in note.body  # left as written
    assert note.path not in note.embedded


def test_missing_embed_targets(en: Vault) -> None:
    note = en.parse("Extending Obsidian/Obsidian CLI.md")
    assert note.missing_embeds == ["obsidian-cli.mp4"]
    assert any("obsidian-cli.mp4" in w for w in note.warnings)


def test_korean_heading_embed_and_mismatch(ko: Vault) -> None:
    note = ko.parse("노트 및 파일 링크/파일 임베드.md")
    assert "노트 및 파일 링크/내부 링크.md" in note.embedded
    # The Korean translation renamed this heading, so the embed really is dangling.
    assert note.missing_embeds == ["검색#노트에 검색 결과 임베드하기"]
    assert "플러그인/검색.md" in note.embedded  # the note exists: a later fix must re-index


def test_tags_note_inline_tags(en: Vault, ko: Vault) -> None:
    note = en.parse("Editing and formatting/Tags.md")
    # `#meeting`, `#inbox/to-read` are in inline code, #1984 is numeric, #TAG == #tag
    assert note.tags == ["y1984", "tag", "camelCase", "PascalCase", "snake_case", "kebab-case"]
    ko_note = ko.parse("편집 및 서식/태그.md")
    assert {"camelCase", "kebab-case", "y1984는", "tag와"} <= set(ko_note.tags)
    assert "meeting" not in ko_note.tags and "inbox/to-read" not in ko_note.tags


# ---------------------------------------------------------------------------------------------
# Hand-written notes
# ---------------------------------------------------------------------------------------------

TAGGED = """---
tags: "project #review"
aliases: Single alias
---
# Heading is not a tag
#회의 notes about #project/alpha and #project/alpha again, #123 is no tag, #y2024 is.
See http://example.com/page#fragment and [link](Other.md#Section) and [[Note#Heading]].
Colour: #fff; issue #42; mid#word; (#paren) #Project
`#inline-code` should not count.

```python
# comment
x = "#not-a-tag"
```

> ```
> #quoted-code
> ```
> #in-callout

%% #hidden-comment %%
- [ ] task #할일/오늘
"""


def test_tags_inline_nested_korean_and_code() -> None:
    note = parse_markdown("Notes/Tagged.md", TAGGED)
    assert note.tags == [
        "project",
        "review",
        "회의",
        "project/alpha",
        "y2024",
        "fff",
        "in-callout",
        "할일/오늘",
    ]
    assert note.aliases == ["Single alias"]
    assert note.title == "Tagged"


def test_bad_yaml_from_a_file(tmp_path: Path) -> None:
    f = tmp_path / "Broken.md"
    f.write_text("---\ntitle: [unclosed\ntags: x\n---\nBody with #tag here.\n", encoding="utf-8")
    note = parse_markdown("Broken.md", f.read_text(encoding="utf-8"))
    assert note.frontmatter == {"tags": "x"}  # the entry that parses on its own is kept
    assert note.body == "Body with #tag here."
    assert note.tags == ["x", "tag"]
    assert note.title == "Broken"
    assert len(note.warnings) == 1 and note.warnings[0].startswith("invalid YAML frontmatter")


def test_non_mapping_yaml_and_unclosed_frontmatter() -> None:
    note = parse_markdown("L.md", "---\n- a\n- b\n---\ntext\n")
    assert note.frontmatter == {} and note.body == "text"
    assert note.warnings == ["frontmatter ignored: expected a mapping, got list"]
    unclosed = parse_markdown("U.md", "---\ntitle: x\nno closing fence\n")
    assert unclosed.frontmatter == {} and unclosed.body.startswith("---\ntitle: x")
    assert split_frontmatter("no frontmatter") == (None, 0)


def test_frontmatter_values() -> None:
    text = (
        "\ufeff---\r\ntitle: My Title\r\ncreated: 2024-05-01\r\nprivate: true\r\n"
        "alias: [A, B]\r\ntags:\r\n  - '#x'\r\n  - y/z\r\n---\r\nbody\r\n"
    )
    note = parse_markdown("f/n.md", text)
    assert note.title == "My Title"
    assert note.frontmatter["created"] == "2024-05-01"  # dates as ISO text (JSON-safe)
    assert note.private is True
    assert note.aliases == ["A", "B"]
    assert note.tags == ["x", "y/z"]
    assert note.body == "body"


def test_link_forms() -> None:
    text = (
        "[[Note]] [[Note#Head|shown]] [[Note#^blk]] [[#Local]] ![[img.png|100]]\n"
        "| a | [[Table note\\|alias]] |\n"
        "[md](My%20Note.md) [rel](../Other/Deep.md#Part) ![pic](pics/a.png) "
        "[web](https://x.org/a.md) [mail](mailto:a@b.c) [anchor](#Top) [wrapped](<Spaced Name.md>)\n"
    )
    note = parse_markdown("Dir/Sub/This.md", text)
    assert note.links == [
        Link("Note"),
        Link("Note", heading="Head", alias="shown"),
        Link("Note", block="blk"),
        Link("Dir/Sub/This.md", heading="Local"),
        Link("img.png", alias="100", embed=True),
        Link("Table note", alias="alias"),
        Link("My Note.md", alias="md"),
        Link("Dir/Other/Deep.md", heading="Part", alias="rel"),
        Link("pics/a.png", alias="pic", embed=True),
        Link("Dir/Sub/This.md", heading="Top", alias="anchor"),
        Link("Spaced Name.md", alias="wrapped"),
    ]


def test_embed_sections_blocks_and_list_items() -> None:
    files = {
        "Host.md": (
            "Intro\n\n![[Src#Part two]]\n\n> [!note] Quote\n> ![[Src#^para]]\n\n"
            "- item ![[Src#^li]]\n\nEnd\n"
        ),
        "Src.md": (
            "---\ntags: [s]\n---\n# Top\n\n## Part one\n\nOne.\n\n## Part two\n\nTwo a.\n\n"
            "### Deeper\n\nTwo b.\n\n## Part three\n\nThree.\n\n"
            "First line of para\nsecond line ^para\n\n- a ^li\n  - child\n- b\n"
        ),
    }
    resolver, read = memory_reader(files)
    note = parse_markdown("Host.md", files["Host.md"], resolver, read)
    assert note.embedded == ["Src.md"]
    assert note.body == (
        "Intro\n\n**Part two**\n\nTwo a.\n\n**Deeper**\n\nTwo b.\n\n"
        "> [!note] Quote\n> First line of para\n> second line\n\n"
        "- item - a\n  - child\n\nEnd"
    )
    assert note.tags == []  # the embedded note's tags are its own


def test_embed_cycle_and_depth() -> None:
    files = {
        "A.md": "A text\n\n![[B]]\n",
        "B.md": "B text\n\n![[A]]\n",
        "C1.md": "c1\n![[C2]]",
        "C2.md": "c2\n![[C3]]",
        "C3.md": "c3\n![[C4]]",
        "C4.md": "c4\n![[C5]]",
        "C5.md": "c5",
    }
    resolver, read = memory_reader(files)
    a = parse_markdown("A.md", files["A.md"], resolver, read)
    assert a.body == "A text\n\nB text\n\n![[A]]"
    assert a.embedded == ["B.md"]
    assert any("cycle" in w for w in a.warnings)

    deep = parse_markdown("C1.md", files["C1.md"], resolver, read, max_embed_depth=3)
    assert deep.body == "c1\nc2\nc3\nc4\n![[C5]]"
    assert deep.embedded == ["C2.md", "C3.md", "C4.md"]
    flat = parse_markdown("C1.md", files["C1.md"], resolver, read, max_embed_depth=0)
    assert flat.body == "c1\n![[C2]]" and flat.embedded == []


def test_missing_targets_headings_and_files() -> None:
    files = {
        "Host.md": "![[Nope]]\n![[Real#No such heading]]\n![[photo.png]]\n![[gone.png]]\n",
        "Real.md": "## Other\ntext",
        "photo.png": "",
    }
    resolver, read = memory_reader(files)
    note = parse_markdown("Host.md", files["Host.md"], resolver, read)
    assert note.missing_embeds == ["Nope", "Real#No such heading", "gone.png"]
    assert note.embedded == ["Real.md"]  # it exists: when it gains the heading, re-index
    assert len(note.warnings) == 3
    assert note.body == files["Host.md"].strip()  # nothing could be expanded


def test_code_mask_keeps_offsets() -> None:
    text = "a `#x` b\n```\n[[L]]\n```\n~~~~\n~~~\n#y\n~~~~\nz %%[[c]]%% <!--\n#q -->"
    masked = code_mask(text)
    assert len(masked) == len(text) and masked.count("\n") == text.count("\n")
    assert "#x" not in masked and "[[L]]" not in masked and "#y" not in masked
    assert "[[c]]" not in masked and "#q" not in masked
    assert masked.startswith("a ") and " b\n" in masked
    assert fenced_lines(text.split("\n")) == [
        False,
        True,
        True,
        True,
        True,
        True,
        True,
        True,
        False,
        False,
    ]


# ---------------------------------------------------------------------------------------------
# LinkResolver
# ---------------------------------------------------------------------------------------------

PATHS = [
    "Home.md",
    "Notes/Alpha.md",
    "Archive/Old/Alpha.md",
    "Projects/Beta/Plan.md",
    "Other/Plan.md",
    "Attachments/diagram.png",
    "Papers/paper.pdf",
    "Notes/Same.md",
    "Deep/A/B/Same.md",
    unicodedata.normalize("NFD", "회의/주간 회의.md"),
]


def test_resolver_rules() -> None:
    r = LinkResolver(PATHS)
    assert r.resolve("Home") == "Home.md"
    assert r.resolve("Home.md") == "Home.md"
    assert r.resolve("home") == "Home.md"  # case-insensitive
    assert r.resolve("Notes/Alpha") == "Notes/Alpha.md"  # exact path
    assert r.resolve("Alpha") == "Notes/Alpha.md"  # by name: shortest path wins
    assert r.resolve("Old/Alpha") == "Archive/Old/Alpha.md"  # path suffix
    assert r.resolve("Beta/Plan") == "Projects/Beta/Plan.md"
    assert r.resolve("Plan") == "Other/Plan.md"  # shorter than Projects/Beta/Plan.md
    assert r.resolve("diagram.png") == "Attachments/diagram.png"
    assert r.resolve("paper.pdf") == "Papers/paper.pdf"
    assert r.resolve("diagram") is None  # non-notes need their extension
    assert r.resolve("Same") == "Notes/Same.md"
    assert r.resolve("Same", source="Deep/A/B/Note.md") == "Deep/A/B/Same.md"  # same folder first
    assert r.resolve("./Same", source="Notes/X.md") == "Notes/Same.md"
    assert r.resolve("../Home", source="Notes/X.md") == "Home.md"
    assert r.resolve("../../Home", source="Notes/X.md") is None  # outside the vault
    assert r.resolve("주간 회의") == unicodedata.normalize("NFC", "회의/주간 회의.md")
    assert r.resolve("Missing") is None
    assert r.resolve("lpha") is None  # suffixes match whole names only
    assert r.resolve("") is None
    assert "Home.md" in r and len(r) == len(PATHS)


def test_resolver_accepts_dict_of_files() -> None:
    r = LinkResolver({"a/B.md": (1, 2), "c.pdf": (3, 4)})
    assert r.resolve("b") == "a/B.md" and r.resolve("c.pdf") == "c.pdf"


# ---------------------------------------------------------------------------------------------
# Frontmatter is untrusted: python-frontmatter's YAML handler, pinned to a safe loader
# ---------------------------------------------------------------------------------------------


def _python_tag(marker: Path) -> str:
    return f'!!python/object/apply:os.system ["touch {marker}"]'


def test_python_yaml_tag_builds_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"---\ntitle: Kept\nhook: {_python_tag(marker)}\ntags: [a, b]\n---\nBody #c\n"
    note = parse_markdown("Hook.md", text)
    assert not marker.exists()  # os.system was never called
    # a tag a safe loader refuses makes the block bad YAML: the rest is salvaged entry by entry
    assert note.frontmatter == {"title": "Kept", "tags": ["a", "b"]}
    assert note.frontmatter_error is not None and not note.private
    assert any(w.startswith("invalid YAML frontmatter") for w in note.warnings)
    assert note.title == "Kept" and note.tags == ["a", "b", "c"] and note.body == "Body #c"
    # a whole block that is one such object: nothing built either
    whole = parse_markdown("W.md", f"---\n{_python_tag(marker)}\n---\nbody\n")
    assert not marker.exists() and whole.frontmatter == {} and whole.body == "body"
    assert whole.frontmatter_error is not None


def test_the_yaml_handler_stays_safe_whatever_loader_is_asked_for(tmp_path: Path) -> None:
    import yaml

    from sync.parse import _YAML

    marker = tmp_path / "ran"
    with pytest.raises(yaml.YAMLError):
        _YAML.load(f"x: {_python_tag(marker)}", Loader=yaml.UnsafeLoader)
    assert not marker.exists()


def test_python_yaml_tag_in_a_private_note_keeps_it_private(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    text = f"---\nprivate: true\nx: {_python_tag(marker)}\n---\nSalary kanaria-7f3a\n"
    note = parse_markdown("Pay.md", text)
    assert not marker.exists()
    assert note.private and note.frontmatter_error is not None
    # embedded in a public note, its text is left out (the embed is judged the same way)
    files = {"Pay.md": text, "Public.md": "Intro\n\n![[Pay]]\n"}
    resolver, read = memory_reader(files)
    public = parse_markdown("Public.md", files["Public.md"], resolver, read)
    assert "kanaria-7f3a" not in public.body and public.private_embeds == ["Pay.md"]
    assert not marker.exists()


def test_bad_yaml_and_private_frontmatter_still_behave() -> None:
    # broken YAML that names the private key: private (fail closed), still indexed
    broken = parse_markdown("B.md", "---\ntitle: Pay: 2026\nprivate: [true\ntags: [hr]\n---\nb\n")
    assert broken.private and broken.body == "b" and broken.tags == ["hr"]
    assert {"private", "true", "hr"} <= set(broken.suspect_tags)
    # valid YAML: a date as ISO text, a BOM and CRLF
    ok = parse_markdown("O.md", "\ufeff---\r\ncreated: 2024-05-01\r\nprivate: no\r\n---\r\nx\r\n")
    assert ok.frontmatter == {"created": "2024-05-01", "private": False} and not ok.private
    assert ok.frontmatter_error is None and ok.warnings == [] and ok.body == "x"
