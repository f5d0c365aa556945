"""Note links as capabilities (vaultbot/web/links.py): signing and verifying (tampered, expired,
rotated key), the key file, and `check()` re-deciding on the current registry of a real synced
vault: a note made private, moved, renamed, deleted, put out of scope, or whose cited chunk holds
text of a note the scope may no longer show is refused."""

from __future__ import annotations

import logging
import multiprocessing
import os
import stat
import threading
import unicodedata
from pathlib import Path

import pytest
from helpers import build

from engine.embedders.hashing import HashingEmbedder
from engine.index import Index
from engine.models import ChunkRecord, Scope
from engine.redact import RedactingFilter
from sync.indexer import Indexer
from vaultbot.settings import Settings
from vaultbot.web import links
from vaultbot.web.links import (
    DAY,
    KEY_FILE,
    Capability,
    DataDirKey,
    LinkExpired,
    LinkSigner,
    LinkTampered,
    check,
    key_secrets,
    load_or_create_key,
    may_show,
    note_url_for,
    rotate_key,
)

KEY = bytes(range(32))
T0 = 1_800_000_000.0
CLIP_TEXT = "The clip says the launch moves to March, kanaria-clip-3e1f."


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _full_scope() -> Scope:
    # Every field set, and names typed decomposed (as macOS stores Korean names).
    return Scope(folders=("Work", unicodedata.normalize("NFD", "회의")), tags=("project",),
                 notes=("Work/Plan.md",), exclude_folders=("Private",), exclude_tags=("hr",),
                 include_private=True, frontmatter=(("status", "active"),))


# ------------------------------------------------------------------------ sign and verify


def test_round_trip_carries_every_field_in_nfc() -> None:
    clock = Clock()
    signer = LinkSigner(KEY, 30, clock=clock)
    scope = _full_scope()
    path = unicodedata.normalize("NFD", "회의/계획.md")
    token = signer.sign(path, "c" * 32, "h" * 64, scope)
    assert all(ch.isalnum() or ch in "-_." for ch in token), "token must be URL-safe"
    cap = signer.verify(token)
    assert cap == Capability(note_path="회의/계획.md", chunk_id="c" * 32, text_hash="h" * 64,
                             scope=scope, issued_at=int(T0), expires_at=int(T0) + 30 * DAY)
    assert cap.scope.folders == ("Work", "회의")  # NFC
    assert cap.scope.frontmatter == (("status", "active"),)
    # A link without a chunk (from a page to another note) round-trips too.
    assert signer.verify(signer.sign("A.md", None, None, Scope())).chunk_id is None


def _flip(token: str, at: int) -> str:
    ch = token[at]
    return token[:at] + ("A" if ch != "A" else "B") + token[at + 1:]


def test_tampered_payload_or_signature_is_refused() -> None:
    signer = LinkSigner(KEY, 30, clock=Clock())
    token = signer.sign("Work/Plan.md", "c" * 32, "h" * 64, Scope(folders=("Work",)))
    payload_end = token.index(".", 1)  # a compressed payload starts with "."
    sig_start = token.rindex(".") + 1
    for at in (payload_end // 2, sig_start + 10):
        with pytest.raises(LinkTampered):
            signer.verify(_flip(token, at))
    with pytest.raises(LinkTampered):
        LinkSigner(bytes(32), 30, clock=Clock()).verify(token)  # another key
    with pytest.raises(LinkTampered):
        signer.verify("not-a-token")


def test_payload_widened_by_hand_is_refused() -> None:
    # A token whose payload was rewritten (a scope without its folder limit) and re-encoded
    # without the key: the signature no longer matches.
    import base64
    import json
    import zlib

    signer = LinkSigner(KEY, 30, clock=Clock())
    token = signer.sign("Work/Plan.md", None, None, Scope(folders=("Work",)))
    body, ts, sig = token.rsplit(".", 2)
    compressed = body.startswith(".") or token.startswith(".")
    raw = base64.urlsafe_b64decode(body.lstrip(".") + "=" * (-len(body.lstrip(".")) % 4))
    data = json.loads(zlib.decompress(raw) if compressed else raw)
    data["s"]["folders"] = []
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(LinkTampered):
        signer.verify(f"{forged}.{ts}.{sig}")


def test_expired_link_is_refused_with_a_fake_clock() -> None:
    clock = Clock()
    signer = LinkSigner(KEY, 30, clock=clock)
    token = signer.sign("Work/Plan.md", None, None, Scope())
    clock.now = T0 + 30 * DAY - 1
    assert signer.verify(token).note_path == "Work/Plan.md"
    clock.now = T0 + 30 * DAY + 1
    with pytest.raises(LinkExpired):
        signer.verify(token)
    # A tampered expired link is tampered (the signature is checked first).
    with pytest.raises(LinkTampered):
        signer.verify(_flip(token, token.rindex(".") + 10))
    # Lowering the lifetime shortens links already out.
    clock.now = T0 + 10 * DAY
    with pytest.raises(LinkExpired):
        LinkSigner(KEY, 7, clock=clock).verify(token)
    assert LinkSigner(KEY, 30, clock=clock).verify(token).expires_at == int(T0) + 30 * DAY


def test_expiry_inside_the_payload_is_enforced() -> None:
    # A related link keeps the expiry of the link that opened the page, even when the verifier
    # would honour a link that old.
    clock = Clock()
    signer = LinkSigner(KEY, 30, clock=clock)
    cap = signer.verify(signer.sign("A.md", "c" * 32, None, Scope(tags=("project",))))
    clock.now = T0 + 20 * DAY
    related = signer.sign_related(cap, "B.md")
    got = signer.verify(related)
    assert (got.note_path, got.chunk_id, got.scope, got.expires_at) == (
        "B.md", None, cap.scope, cap.expires_at)
    clock.now = T0 + 30 * DAY + 1  # the related link is 10 days old: within 30, but its own expiry passed
    with pytest.raises(LinkExpired):
        signer.verify(related)


def test_url_shape() -> None:
    assert note_url_for("https://vault.example.ts.net/", "TOK") == "https://vault.example.ts.net/n/TOK"
    assert note_url_for("http://127.0.0.1:8000", "TOK", cited=True) == "http://127.0.0.1:8000/n/TOK#cited"
    assert note_url_for("https://example.org/vaultbot", "T") == "https://example.org/vaultbot/n/T"
    for bad in ("", "vault.example", "ftp://x", "https://x/?a=1", "javascript:alert(1)"):
        with pytest.raises(ValueError):
            note_url_for(bad, "T")
    settings = Settings(_env_file=None)
    assert (settings.public_url, settings.link_days) == ("", 30)


# ------------------------------------------------------------------------------- the key


def test_key_file_is_private_and_made_once_under_a_concurrent_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    barrier = threading.Barrier(12)
    keys: list[bytes] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            barrier.wait()
            keys.append(load_or_create_key(data))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(keys) == 12 and len(set(keys)) == 1
    assert len(keys[0]) >= 32
    assert stat.S_IMODE((data / KEY_FILE).stat().st_mode) == 0o600
    assert sorted(p.name for p in data.iterdir()) == [KEY_FILE]  # no temp files left

    # Processes racing on a fresh dir end with one key too (forked: they start at once).
    fresh = tmp_path / "fresh"
    ctx = multiprocessing.get_context("fork")
    gate, out = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_start_process, args=(fresh, gate, out)) for _ in range(4)]
    for p in procs:
        p.start()
    got = {out.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert got == {load_or_create_key(fresh).hex()}


def _start_process(data: Path, gate, out) -> None:  # noqa: ANN001 (multiprocessing objects)
    gate.wait()
    out.put(load_or_create_key(data).hex())


def test_a_key_readable_by_others_is_made_owner_only(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    os.chmod(tmp_path / KEY_FILE, 0o644)
    load_or_create_key(tmp_path)
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600


def test_rotation_revokes_every_link_in_a_running_signer(tmp_path: Path) -> None:
    key = DataDirKey(tmp_path)
    signer = LinkSigner(key, 30)
    old = signer.sign("A.md", None, None, Scope())
    assert signer.verify(old).note_path == "A.md"
    rotate_key(tmp_path)
    with pytest.raises(LinkTampered):
        signer.verify(old)
    assert signer.verify(signer.sign("A.md", None, None, Scope())).note_path == "A.md"
    assert stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode) == 0o600
    # A new signer (a restart) refuses it as well.
    with pytest.raises(LinkTampered):
        LinkSigner(DataDirKey(tmp_path), 30).verify(old)


def test_the_rotate_command_revokes_links(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """`vaultbot rotate-link-key` is how an owner revokes every link handed out."""
    from vaultbot.cli import main

    data = tmp_path / "data"
    signer = LinkSigner(DataDirKey(data), 30)
    old = signer.sign("A.md", None, None, Scope())
    monkeypatch.setenv("VAULTBOT_DATA_DIR", str(data))
    assert main(["rotate-link-key"]) == 0
    assert "no longer open" in capsys.readouterr().out
    with pytest.raises(LinkTampered):
        signer.verify(old)
    assert stat.S_IMODE((data / KEY_FILE).stat().st_mode) == 0o600


def test_a_corrupt_key_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_text("short")
    os.chmod(tmp_path / KEY_FILE, 0o600)
    with pytest.raises(links.KeyFileError, match="no valid link key"):
        links._read_key(tmp_path / KEY_FILE, wait=0)


def test_the_key_never_shows(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    key = DataDirKey(tmp_path)
    text = (tmp_path / KEY_FILE).read_text()
    signer = LinkSigner(key, 30)
    assert key_secrets(tmp_path) == {text}
    for shown in (repr(key), repr(signer), str(signer.__dict__.get("_key"))):
        assert text not in shown and key().hex() not in shown
    try:
        signer.verify("x" * 40)
    except LinkTampered as exc:
        assert text not in str(exc)
    # Registered with the redaction filter, it is masked wherever it would be logged.
    redactor = RedactingFilter(key_secrets(tmp_path)).install()
    try:
        with caplog.at_level(logging.INFO):
            logging.getLogger("t").info("oops %s", text)
    finally:
        redactor.uninstall()
    assert text not in caplog.text and "***" in caplog.text


# ---------------------------------------------------------------- check() on a synced vault


@pytest.fixture
def vault(tmp_path: Path) -> tuple[Path, Index, Indexer]:
    v = tmp_path / "vault"
    (v / "Work").mkdir(parents=True)
    (v / "Shared").mkdir()
    (v / "Work" / "Plan.md").write_text(
        "---\ntags: [project]\nstatus: active\n---\n# Plan\n\nShip the beta in May.\n")
    (v / "Work" / "Daily.md").write_text(
        "---\ntags: [project]\n---\n# Daily\n\nStandup notes.\n\n![[Clip]]\n")
    (v / "Shared" / "Clip.md").write_text(f"{CLIP_TEXT}\n")
    index, indexer = build(v, tmp_path / "data", HashingEmbedder(64), keywords=False)
    indexer.sync()
    return v, index, indexer


def _chunk(index: Index, path: str, holding: str = "") -> ChunkRecord:
    chunks = index.registry.chunks_of_notes([path])[path]
    return next(c for c in chunks if holding in c.text)


def _cap(index: Index, path: str, scope: Scope, holding: str = "") -> Capability:
    c = _chunk(index, path, holding)
    signer = LinkSigner(KEY, 30)
    return signer.verify(signer.sign(path, c.id, c.text_hash, scope))


def _page_cap(path: str, scope: Scope) -> Capability:
    """A link without a chunk, as a page's link to another note is."""
    signer = LinkSigner(KEY, 30)
    return signer.verify(signer.sign(path, None, None, scope))


def _edit(vault: Path, path: str, old: str, new: str) -> None:
    p = vault / path
    p.write_text(p.read_text().replace(old, new, 1))


def test_a_visible_note_is_shown_with_its_cited_chunk(vault) -> None:
    v, index, indexer = vault
    cap = _cap(index, "Work/Plan.md", Scope(folders=("Work",)), "beta")
    note = check(cap, index.registry)
    assert note is not None and note.info.path == "Work/Plan.md"
    assert note.cited is not None and "Ship the beta" in note.cited.text
    assert not note.cited_changed
    # Edited after the answer: the note is shown, the passage marked as changed.
    _edit(v, "Work/Plan.md", "Ship the beta in May.", "Ship the beta in June.")
    indexer.sync()
    note = check(cap, index.registry)
    assert note is not None and note.cited is None and note.cited_changed


def test_made_private_after_the_answer_is_refused(vault) -> None:
    v, index, indexer = vault
    cap = _cap(index, "Work/Plan.md", Scope(), "beta")
    page = _page_cap("Work/Plan.md", Scope())
    assert check(cap, index.registry) is not None and check(page, index.registry) is not None
    _edit(v, "Work/Plan.md", "status: active", "status: active\nprivate: true")
    indexer.sync()
    assert check(cap, index.registry) is None
    assert check(page, index.registry) is None
    # A place that may see private notes still may.
    assert check(_page_cap("Work/Plan.md", Scope(include_private=True)), index.registry)


def test_moved_renamed_or_deleted_is_refused(vault) -> None:
    v, index, indexer = vault
    plan = _cap(index, "Work/Plan.md", Scope(), "beta")
    daily = _cap(index, "Work/Daily.md", Scope(), "Standup")
    (v / "Private").mkdir()
    (v / "Work" / "Plan.md").rename(v / "Private" / "Plan.md")  # into a private folder
    (v / "Work" / "Daily.md").unlink()
    indexer.sync()
    assert index.registry.note_info(["Private/Plan.md"])  # the move was seen as a move
    assert check(plan, index.registry) is None
    assert check(daily, index.registry) is None


def test_a_folder_made_private_in_the_access_rules_is_refused(vault) -> None:
    from bot.access import Access

    _, index, _ = vault
    before = Access.from_dict({"private": {"folders": ["Archive"]}}).base_scope()
    after = Access.from_dict({"private": {"folders": ["Work"]}}).base_scope()
    for cap in (_cap(index, "Work/Plan.md", Scope(), "beta"), _page_cap("Work/Plan.md", Scope())):
        assert check(cap, index.registry, rules=before) is not None
        assert check(cap, index.registry, rules=after) is None


def test_out_of_the_links_scope_is_refused(vault) -> None:
    v, index, indexer = vault
    tagged = _cap(index, "Work/Plan.md", Scope(tags=("project",)), "beta")
    tagged_page = _page_cap("Work/Plan.md", Scope(tags=("project",)))
    assert check(tagged, index.registry) is not None
    assert check(tagged_page, index.registry) is not None
    for scope in (Scope(folders=("Shared",)), Scope(exclude_folders=("Work",)),
                  Scope(notes=("Work/Daily.md",)), Scope(exclude_tags=("project",))):
        assert check(_cap(index, "Work/Plan.md", scope, "beta"), index.registry) is None
        assert check(_page_cap("Work/Plan.md", scope), index.registry) is None
    # The note leaves the scope after the answer: its tag is gone.
    _edit(v, "Work/Plan.md", "tags: [project]", "tags: [later]")
    indexer.sync()
    assert check(tagged, index.registry) is None
    assert check(tagged_page, index.registry) is None


def test_a_frontmatter_scope_is_rechecked(vault) -> None:
    v, index, indexer = vault
    cap = _cap(index, "Work/Plan.md", Scope(frontmatter=(("status", "active"),)), "beta")
    assert check(cap, index.registry) is not None
    _edit(v, "Work/Plan.md", "status: active", "status: done")
    indexer.sync()
    assert check(cap, index.registry) is None


def test_the_provenance_rule_decides_for_an_embedding_chunk(vault) -> None:
    v, index, indexer = vault
    chunk = _chunk(index, "Work/Daily.md", "kanaria-clip")
    assert chunk.sources == ("Shared/Clip.md",)
    cap = _cap(index, "Work/Daily.md", Scope(), "kanaria-clip")
    assert check(cap, index.registry) is not None
    # The same chunk, for a place that may not see Shared/: refused although Daily is visible.
    hidden = _cap(index, "Work/Daily.md", Scope(exclude_folders=("Shared",)), "kanaria-clip")
    assert check(hidden, index.registry) is None
    # The embedded note is tagged as private-by-rule after the answer: Daily's chunk keeps its
    # text and id, but the rule now in force refuses it.
    (v / "Shared" / "Clip.md").write_text(f"---\ntags: [hr]\n---\n{CLIP_TEXT}\n")
    indexer.sync()
    assert _chunk(index, "Work/Daily.md", "kanaria-clip").id == chunk.id
    assert check(_cap(index, "Work/Daily.md", Scope(exclude_tags=("hr",)), "kanaria-clip"),
                 index.registry) is None
    assert check(cap, index.registry, rules=Scope(exclude_tags=("hr",))) is None
    assert check(cap, index.registry) is not None  # a scope that allows it still does
    # Made private: the parser leaves its text out of Daily, so the cited passage is gone; the
    # note is shown as it is now, without the private text.
    (v / "Shared" / "Clip.md").write_text(f"---\nprivate: true\n---\n{CLIP_TEXT}\n")
    indexer.sync()
    note = check(cap, index.registry)
    assert note is not None and note.cited is None and note.cited_changed
    texts = [c.text for c in index.registry.chunks_of_notes(["Work/Daily.md"])["Work/Daily.md"]]
    assert not any("kanaria-clip" in t for t in texts)


def test_may_show_names_only_notes_the_scope_may_see(vault) -> None:
    v, index, indexer = vault
    scope = Scope(exclude_folders=("Shared",))
    paths = ["Work/Plan.md", "Work/Daily.md", "Shared/Clip.md", "Missing.md"]
    assert may_show(scope, paths, index.registry) == {"Work/Plan.md", "Work/Daily.md"}
    assert may_show(Scope(tags=("project",)), paths, index.registry,
                    rules=Scope(exclude_folders=("Work",))) == set()
    assert may_show(Scope(frontmatter=(("status", "active"),)), paths, index.registry) == {
        "Work/Plan.md"}


def test_an_unreadable_registry_refuses(vault, caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy import text

    _, index, _ = vault
    cap = _cap(index, "Work/Plan.md", Scope(), "beta")
    with index.registry.engine.begin() as conn:
        conn.execute(text("ALTER TABLE notes RENAME TO notes_gone"))
    with caplog.at_level(logging.WARNING):
        assert check(cap, index.registry) is None
    assert "OperationalError" in caplog.text and "Plan" not in caplog.text
