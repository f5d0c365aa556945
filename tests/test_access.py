"""Access rules: who may ask where, and what each place may see."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.access import Access, AccessDenied

RULES = """
private:
  folders: [HR]
  tags: [secret]
default:
  folders: []
slack:
  channels:
    CWORK: {folders: [Work]}
    CTEAM: {folders: [Work/Team], users: [U1]}
    COFF: {allow: false}
  users:
    UBAD: {allow: false}
discord:
  guilds:
    "10": {folders: [Work]}
  channels:
    "20": {tags: [public]}
"""


@pytest.fixture
def access(tmp_path: Path) -> Access:
    path = tmp_path / "access.yaml"
    path.write_text(RULES)
    return Access.load(path)


def test_most_specific_place_wins(access: Access) -> None:
    work = access.scope_for("slack", user="U7", channel="CWORK")
    assert work.folders == ("Work",) and work.exclude_folders == ("HR",) and work.exclude_tags == ("secret",)
    assert not work.include_private
    anywhere = access.scope_for("slack", user="U7", channel="COTHER")
    assert anywhere.folders == () and anywhere.exclude_folders == ("HR",)
    guild = access.scope_for("discord", user="5", channel="99", guild="10")
    assert guild.folders == ("Work",)
    channel = access.scope_for("discord", user="5", channel="20", guild="10")
    assert channel.tags == ("public",) and channel.folders == ()


def test_denials(access: Access) -> None:
    with pytest.raises(AccessDenied):
        access.scope_for("slack", user="UBAD", channel="CWORK")
    with pytest.raises(AccessDenied):
        access.scope_for("slack", user="U7", channel="COFF")
    with pytest.raises(AccessDenied):
        access.scope_for("slack", user="U2", channel="CTEAM")
    assert access.scope_for("slack", user="U1", channel="CTEAM").folders == ("Work/Team",)


def test_scope_semantics_match_obsidian_paths_and_nested_tags(access: Access) -> None:
    work = access.scope_for("slack", user="U7", channel="CWORK")
    assert work.allows("Work/plan.md", [], False)
    assert work.allows("Work/Team/x.md", [], False)
    assert not work.allows("Workshop/x.md", [], False)  # a prefix of the name is not the folder
    assert not work.allows("Personal/x.md", [], False)
    assert not work.allows("Work/private.md", [], True)  # private: true frontmatter
    anywhere = access.scope_for("slack", user="U7", channel="X")
    assert not anywhere.allows("HR/salaries.md", [], False)
    assert not anywhere.allows("Notes/x.md", ["secret/level2"], False)  # nested tag of a private tag


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "a.yaml"
    bad.write_text("slack:\n  channels:\n    C1: {folder: [Work]}\n")
    with pytest.raises(ValueError, match="unknown keys"):
        Access.load(bad)
    bad.write_text("slack: [\n")
    with pytest.raises(ValueError, match="cannot read access file"):
        Access.load(bad)
    assert Access.load(None).scope_for("slack", user="U", channel="C").folders == ()


def test_user_rules_narrow_what_the_place_shows() -> None:
    access = Access.from_dict({
        "slack": {
            "channels": {"CWORK": {"folders": ["Work"]}, "CHOME": {"folders": ["Home"]},
                         "CTAGS": {"tags": ["project"]}},
            "users": {"UTEAM": {"folders": ["Work/Team"], "tags": ["project/alpha"]},
                      "UWIDE": {"folders": ["Work", "Home"]}},
        },
        "discord": {"users": {"7": {"folders": ["Shared"]}}},
    })
    team = access.scope_for("slack", user="UTEAM", channel="CWORK")
    assert team.folders == ("Work/Team",) and team.tags == ("project/alpha",)
    assert team.allows("Work/Team/plan.md", ["project/alpha"], False)
    assert not team.allows("Work/budget.md", ["project/alpha"], False)
    # A user allowed more than the channel shows still sees only the channel's part.
    assert access.scope_for("slack", user="UWIDE", channel="CWORK").folders == ("Work",)
    # Nested tags narrow to the deeper one; anywhere else the user's own folders apply.
    assert access.scope_for("slack", user="UTEAM", channel="CTAGS").tags == ("project/alpha",)
    assert access.scope_for("slack", user="UTEAM", channel="CELSE").folders == ("Work/Team",)
    assert access.scope_for("discord", user="7", channel="1").folders == ("Shared",)
    with pytest.raises(AccessDenied):  # nothing in common
        access.scope_for("slack", user="UTEAM", channel="CHOME")
    # People without a rule get the place's scope.
    assert access.scope_for("slack", user="UOTHER", channel="CHOME").folders == ("Home",)


def test_the_api_base_scope_hides_private_folders_and_tags(access: Access) -> None:
    base = access.base_scope()
    assert not base.allows("HR/pay.md", [], False)
    assert not base.allows("Notes/x.md", ["secret/deep"], False)
    assert base.allows("Notes/x.md", ["public"], False) and not base.allows("Notes/x.md", [], True)


def test_mcp_and_openai_places_default_to_the_default_rule() -> None:
    access = Access.from_dict({"private": {"folders": ["HR"]}, "default": {"folders": ["Work"]}})
    for place in ("mcp", "openai"):
        scope = access.place_scope(place)
        assert scope.folders == ("Work",) and scope.exclude_folders == ("HR",)
        assert not scope.include_private and not scope.allows("Work/x.md", [], True)


def test_mcp_and_openai_places_narrow_refuse_and_never_show_private_notes() -> None:
    access = Access.from_dict({
        "private": {"tags": ["secret"]},
        "mcp": {"folders": ["Work"], "tags": ["shared"]},
        "openai": {"allow": False},
    })
    mcp = access.place_scope("mcp")
    assert mcp.folders == ("Work",) and mcp.tags == ("shared",)
    assert mcp.allows("Work/a.md", ["shared"], False)
    assert not mcp.allows("Work/a.md", ["shared", "secret"], False)
    assert not mcp.allows("Work/a.md", ["shared"], True)  # private: true
    with pytest.raises(AccessDenied, match="openai"):
        access.place_scope("openai")
    with pytest.raises(AccessDenied):  # not a place: fail closed
        access.place_scope("teams")
    # A place has no people to match, and no key shows private notes: both are errors.
    for bad in ({"mcp": {"users": ["U1"]}}, {"openai": {"private": True}},
                {"mcp": {"include_private": True}}):
        with pytest.raises(ValueError, match="access file"):
            Access.from_dict(bad)


def test_access_file_follows_its_file_and_keeps_the_rules_when_it_breaks(tmp_path: Path) -> None:
    import os

    from bot.access_file import AccessFile

    path = tmp_path / "access.yaml"
    path.write_text("slack:\n  channels:\n    C1: {folders: [Work]}\n")
    access = AccessFile(path)
    assert access.scope_for("slack", user="U1", channel="C1").folders == ("Work",)

    def rewrite(text: str) -> None:
        mtime = path.stat().st_mtime_ns + 1_000_000_000
        path.write_text(text)
        os.utime(path, ns=(mtime, mtime))

    rewrite("slack:\n  channels:\n    C1: {allow: false, respond_to: mentions}\n")
    with pytest.raises(AccessDenied):
        access.scope_for("slack", user="U1", channel="C1")
    assert access.respond_to("slack", "C1") == "mentions"
    for broken in ("slack: [\n", "slack:\n  channels:\n    C1: {respond_to: always}\n"):
        rewrite(broken)  # does not load: the rules in force stay
        with pytest.raises(AccessDenied):
            access.scope_for("slack", user="U1", channel="C1")
    path.unlink()  # gone: the same
    assert access.respond_to("slack", "C1") == "mentions"
