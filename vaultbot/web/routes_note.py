"""`GET /n/<token>`: the note a signed link names, as a page; `GET /n/<token>/page.png`: the
cited page of a PDF.

No bearer token: the link is the capability (a Slack teammate has no API token). Every request
verifies the signature and expiry, then re-checks the registry and today's access rules
(`links.check`); any refusal is the one generic page, so a refusal tells nothing about the
note. The note is read from the vault file (the page shows it as it is now) and rendered with
links and embeds only to the notes this link may show (`links.may_show`)."""

from __future__ import annotations

import asyncio
import html
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response

from engine.citations import obsidian_uri
from engine.models import Scope
from sync.decode import decode_note
from sync.links import LinkResolver
from sync.parse import parse_markdown
from vaultbot.api.state import ApiState
from vaultbot.web.links import Capability, LinkError, Note, check, may_show
from vaultbot.web.page import note_page, unavailable_page
from vaultbot.web.source import embed_piece, source_span
from vaultbot.web.style import CSP, CSS, SECURITY_HEADERS, csp

log = logging.getLogger(__name__)

router = APIRouter()

MAX_NOTE_BYTES = 8 * 1024 * 1024  # larger files are not rendered (sync skips them too)
_PDF_CSS = "figure{margin:0 0 1em}figure img{width:100%;height:auto;border:1px solid var(--line)}"
# The PDF page adds one rule to the stylesheet: the document's <style> is CSS + this.
_PDF_CSP = csp(CSS + _PDF_CSS)

PAGE_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


def _unavailable() -> Response:
    return Response(unavailable_page(), status_code=404, media_type="text/html; charset=utf-8",
                    headers=PAGE_HEADERS)


def _html(body: str, policy: str = CSP) -> Response:
    return Response(body, media_type="text/html; charset=utf-8",
                    headers={**PAGE_HEADERS, "Content-Security-Policy": policy})


def _opened(request: Request, token: str) -> tuple[ApiState, Capability, Note, Scope] | None:
    """The state, capability and note a request may see now; None: refuse."""
    s: ApiState = request.app.state.api
    if s.signer is None or s.vault is None:
        return None
    try:
        cap = s.signer.verify(token)
    except LinkError as exc:
        log.info("note link refused: %s", type(exc).__name__)
        return None
    try:
        rules = s.rules() if s.rules is not None else s.base
    except Exception as exc:  # the access file cannot be read now: refuse
        log.warning("note link refused: access rules unreadable (%s)", type(exc).__name__)
        return None
    note = check(cap, s.index.registry, rules)
    if note is None:
        log.info("note link refused: not visible now")
        return None
    return s, cap, note, rules


def _read(vault: Path, path: str) -> str | None:
    file = vault / path
    try:
        # Inside the vault only (a symlink may point within it, never out of it, as sync walks).
        if not file.resolve().is_relative_to(vault.resolve()):
            return None
        if not file.is_file() or file.stat().st_size > MAX_NOTE_BYTES:
            return None
        return decode_note(file.read_bytes())
    except Exception:  # unreadable, binary: not shown
        return None


class _NoteLinks:
    """Links and embeds from one page: only to notes the page's link may show (the rest are
    plain text, unnamed), each a link with the same scope and expiry (`sign_related`)."""

    def __init__(self, s: ApiState, cap: Capability, source: str, rules: Scope) -> None:
        self.s, self.cap, self.source, self.rules = s, cap, source, rules
        registry = s.index.registry
        self.resolver = LinkResolver(registry.note_states().keys())
        self._allowed: dict[str, bool] = {}

    def _may(self, path: str) -> bool:
        if path not in self._allowed:
            shown = may_show(self.cap.scope, [path], self.s.index.registry, self.rules)
            self._allowed[path] = path in shown
        return self._allowed[path]

    def _resolve(self, target: str) -> str | None:
        path = self.resolver.resolve(target, self.source)
        return path if path is not None and self._may(path) else None

    def link_for(self, target: str) -> str | None:
        path = self._resolve(target)
        if path is None:
            return None
        # Relative to /n/<token>: the sibling /n/<other>, behind any path prefix of a proxy.
        return self.s.signer.sign_related(self.cap, path)

    def embed_for(self, target: str) -> str | None:
        name, _, sub = target.partition("#")
        path = self._resolve(name)
        if path is None or not path.lower().endswith((".md", ".markdown")):
            return None
        text = _read(self.s.vault, path)  # type: ignore[arg-type]
        return None if text is None else embed_piece(text, sub)

    def read_any(self, path: str) -> str | None:
        """For the second parse only (offsets, as the indexer expanded embeds): never shown."""
        return _read(self.s.vault, path)  # type: ignore[arg-type]


def _markdown_page(s: ApiState, cap: Capability, note: Note, rules: Scope, text: str) -> str:
    path = note.info.path
    links = _NoteLinks(s, cap, path, rules)
    written = parse_markdown(path, text)
    highlight = None
    if note.cited is not None:
        span = tuple(note.cited.span)
        if "![[" in text:  # the chunk's span counts the embed-expanded body: map it back
            expanded = parse_markdown(path, text, links.resolver, links.read_any)
            span = source_span(written.body, expanded.body, expanded.embed_regions, span)
        highlight = (int(span[0]), int(span[1]))
    cited_then = None
    if note.cited_changed:
        cited_then = _cited_then(s, cap, rules) or "(the text as cited is no longer kept)"
    modified = (s.vault / path).stat().st_mtime  # type: ignore[operator]
    return note_page(
        title=note.info.title, body=written.body, frontmatter=written.frontmatter,
        link_for=links.link_for, embed_for=links.embed_for,
        highlight=highlight,
        heading_path=note.cited.heading_path if note.cited is not None else (),
        modified=modified, obsidian_url=obsidian_uri(getattr(s.asker, "vault_name", "vault"), path),
        cited_then=cited_then,
    )


def _cited_then(s: ApiState, cap: Capability, rules: Scope) -> str | None:
    """The passage as the answer cited it, when the registry still keeps that version and
    every note its text came from may be shown now (the provenance rule, applied today)."""
    registry = s.index.registry
    old = getattr(registry, "chunk_version", None)
    if old is None or cap.chunk_id is None:
        return None
    try:
        kept = old(cap.chunk_id)
    except Exception:
        log.warning("could not read a kept chunk version", exc_info=True)
        return None
    if kept is None:
        return None
    paths = {kept.note_path, *(kept.sources or ())}
    shown = may_show(cap.scope, paths, registry, rules)
    return kept.text if paths <= shown else None


def _pdf_page(s: ApiState, token: str, note: Note, cap: Capability, rules: Scope) -> str:
    page = note.cited.page if note.cited is not None and note.cited.page else 1
    body = note_page(
        title=note.info.title, body="",
        heading_path=note.cited.heading_path if note.cited is not None else (),
        modified=(s.vault / note.info.path).stat().st_mtime,  # type: ignore[operator]
        obsidian_url=obsidian_uri(getattr(s.asker, "vault_name", "vault"), note.info.path),
        cited_then=((_cited_then(s, cap, rules) or "(the text as cited is no longer kept)")
                    if note.cited_changed else None),
    )
    esc = html.escape
    figure = (
        f'<figure id="cited"><img src="{esc(token)}/page.png" alt="Page {page} of '
        f'{esc(note.info.title)}, the cited text highlighted"><figcaption>Page {page}'
        "</figcaption></figure>"
    )
    if note.cited is not None:
        figure += f'<blockquote class="cited"><p>{esc(note.cited.text)}</p></blockquote>'
    body = body.replace(f"<style>{CSS}</style>", f"<style>{CSS}{_PDF_CSS}</style>", 1)
    return body.replace('<article class="note">', f'<article class="note">{figure}', 1)


@lru_cache(maxsize=1)
def _default_cache() -> Any:
    from vaultbot.web.pdf_page import PageCache

    return PageCache()


@router.get("/n/{token}")
async def note(token: str, request: Request) -> Response:
    opened = await asyncio.to_thread(_opened, request, token)
    if opened is None:
        return _unavailable()
    s, cap, found, rules = opened
    try:
        if found.info.kind == "pdf" or found.info.path.lower().endswith(".pdf"):
            return _html(await asyncio.to_thread(_pdf_page, s, token, found, cap, rules),
                         _PDF_CSP)
        text = await asyncio.to_thread(_read, s.vault, found.info.path)  # type: ignore[arg-type]
        if text is None:  # deleted (or unreadable) before the next sync noticed: refused too
            return _unavailable()
        return _html(await asyncio.to_thread(_markdown_page, s, cap, found, rules, text))
    except OSError:
        return _unavailable()


@router.get("/n/{token}/page.png")
async def pdf_page(token: str, request: Request) -> Response:
    from vaultbot.web.pdf_page import PdfPageError

    opened = await asyncio.to_thread(_opened, request, token)
    if opened is None:
        return _unavailable()
    s, _, found, _ = opened
    if found.info.kind != "pdf" and not found.info.path.lower().endswith(".pdf"):
        return _unavailable()
    page = found.cited.page if found.cited is not None and found.cited.page else 1
    cited = found.cited.text if found.cited is not None else None
    cache = s.pages if s.pages is not None else _default_cache()
    try:
        image = await asyncio.to_thread(cache.get, s.vault / found.info.path, page, cited)  # type: ignore[operator]
    except PdfPageError as exc:
        log.info("PDF page not shown: %s", exc.reason)
        return _unavailable()
    return Response(image.png, media_type="image/png", headers=PAGE_HEADERS)
