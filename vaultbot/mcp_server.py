"""vaultbot as an MCP server (the official `mcp` SDK): tools `search_notes`, `ask`, `get_note`
and `recent_changes`, and every note as a resource `note://{+path}`, all under the scope of the
access file's `mcp` place (its `default` rule when absent; private notes never).

Two transports share `build_server`: stdio (`vaultbot mcp`, `run_stdio`), for desktop clients
that start the server themselves, and streamable HTTP at `/mcp` under `serve`
(vaultbot/api/mcp_mount.py, behind the API token).

Errors: a tool that cannot answer (a bad argument, an unknown or hidden note, a refused place)
returns an MCP tool error (`isError`, the message says why), as the SDK does for arguments of the
wrong type; reading a resource that cannot be shown is a JSON-RPC error (INVALID_PARAMS). An
unknown note and a note outside the scope get the same message, so a client cannot tell
whether a hidden note exists."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from pydantic import Field
from sqlalchemy import select

from engine import schema as t
from engine.answer import Answer, Asker, AskOptions, Done, Failed, Sources, Token
from engine.citations import note_url, obsidian_uri
from engine.llm.queue import Queued
from engine.mask import default_masker
from engine.models import Scope
from engine.names import nfc
from engine.provenance import note_visible, visible
from engine.registry import Registry
from engine.retrieve import Retriever

if TYPE_CHECKING:
    from vaultbot.app import App
    from vaultbot.metrics import Metrics

PLACE = "mcp"
PROGRESS_EVERY = 25  # tokens between two progress notifications while an answer streams
RECENT_DEFAULT = timedelta(days=7)
RECENT_LIMIT = 200

INSTRUCTIONS = (
    "vaultbot answers from the user's Obsidian vault. Use `ask` for a cited answer, "
    "`search_notes` for the matching passages, `get_note` (or the note://{+path} resource) for "
    "one note's text and `recent_changes` for what changed lately. Cite the links it returns."
)


class Refused(ValueError):
    """The access file does not let this place ask (or shows it nothing)."""


@dataclass
class VaultTools:
    """What the tools need; `scope()` is the place's scope, read per call so an access file
    reloaded by the host applies at once, and raises when the place may not ask."""

    asker: Asker
    retriever: Retriever
    registry: Registry
    scope: Callable[[], Scope]
    mask: bool = True
    metrics: Metrics | None = None

    def place_scope(self) -> Scope:
        try:
            return self.scope()
        except Exception as exc:  # AccessDenied (bot.access) and a broken rule alike: refuse
            raise Refused(str(exc) or "this place may not ask vaultbot") from exc

    def link(self, path: str, heading: str = "") -> str:
        return note_url(self.asker.note_url, path, heading) or obsidian_uri(
            self.asker.vault_name, path)

    # ---------------------------------------------------------------- search
    def search(self, query: str, k: int, folder: str | None, tag: str | None) -> list[dict[str, Any]]:
        scope = self.place_scope()
        if folder or tag:
            narrowed = scope.narrowed((folder,) if folder else (), (tag,) if tag else ())
            if narrowed is None:
                raise ToolError("that folder or tag is outside what this place may show")
            scope = narrowed
        hits = self.retriever.search(query, k, scope=scope, mode="hybrid")
        if self.mask:
            hits = default_masker().mask_hits(hits)
        return [
            {"path": h.note_path, "title": h.title, "heading": " > ".join(h.heading_path),
             "page": h.page, "score": round(h.score, 4), "text": h.text,
             "link": self.link(h.note_path, " > ".join(h.heading_path))}
            for h in hits
        ]

    # ------------------------------------------------------------------ note
    def note_text(self, path: str) -> str:
        """The note's indexed text, chunk by chunk, under the scope; a chunk that holds text
        embedded from a note the scope may not show is left out (engine/provenance.py).
        LookupError when the note is unknown or hidden (one message for both)."""
        scope = self.place_scope()
        path = nfc(path.strip().lstrip("/"))
        info = self.registry.note_info([path]).get(path)
        if not note_visible(scope, info):
            raise LookupError(f"no note {path!r} that this place may see")
        assert info is not None
        chunks = sorted(self.registry.chunks_of_notes([path]).get(path, []),
                        key=lambda c: c.ordinal)
        shown = visible(scope, chunks, self.registry, {path: info})
        parts = [c.text for c in chunks if c.id in shown]
        text = "\n\n".join(parts)
        if self.mask:
            text = default_masker().mask(text)
        left_out = len(chunks) - len(parts)
        if left_out:
            text += (f"\n\n[{left_out} part(s) left out: they hold text embedded from notes "
                     "this place may not see]")
        return f"# {info.title}\n\n{text}" if not text.lstrip().startswith("#") else text

    # -------------------------------------------------------------- changes
    def recent(self, since: str | None) -> dict[str, Any]:
        scope = self.place_scope()
        start = parse_since(since)
        with self.registry.engine.connect() as conn:
            rows = conn.execute(
                select(t.notes.c.path, t.notes.c.version, t.notes.c.indexed_at)
                .where(t.notes.c.indexed_at >= start.timestamp())
                .order_by(t.notes.c.indexed_at.desc()).limit(RECENT_LIMIT)
            ).all()
        infos = self.registry.note_info(r.path for r in rows)
        added, changed = [], []
        for r in rows:
            if not note_visible(scope, infos.get(r.path)):
                continue
            item = {"path": r.path, "title": infos[r.path].title,
                    "at": datetime.fromtimestamp(r.indexed_at, UTC).isoformat(timespec="seconds"),
                    "link": self.link(r.path)}
            (added if r.version == 1 else changed).append(item)
        moved, deleted = self._moved_and_deleted(scope, start.timestamp())
        return {
            "since": start.isoformat(timespec="seconds"),
            "added": added,
            "changed": changed,
            "moved": moved,
            "deleted": deleted,
            # Kept for older clients: now the counts of the events listed, not of the vault.
            "moved_count": len(moved),
            "deleted_count": len(deleted),
            "truncated": len(rows) == RECENT_LIMIT,
        }

    def _moved_and_deleted(self, scope: Scope, since: float
                           ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Moves and deletions (note_events) as this place may see them: each side of a move
        only if the note was (old path) or is (new path) visible to it, judged on the note as
        it was then; a side that cannot be judged is hidden, and an event with no visible side
        is left out."""
        moved: list[dict[str, Any]] = []
        deleted: list[dict[str, Any]] = []
        events = self.registry.note_events(since, limit=RECENT_LIMIT)
        # A note still at a move's new path is judged as it is now too (made private since:
        # its path is no longer named).
        current = self.registry.note_info(e.new_path for e in events if e.new_path)
        for ev in events:
            at = datetime.fromtimestamp(ev.at, UTC).isoformat(timespec="seconds")
            was = ev.path if note_visible(scope, ev.before) else None
            if ev.kind == "deleted":
                if was:
                    deleted.append({"path": was, "at": at})
                continue
            if ev.kind != "moved":  # a kind this code does not know: judged by nothing, hidden
                continue
            now = ev.new_path if note_visible(scope, ev.after) and (
                ev.new_path not in current or note_visible(scope, current[ev.new_path])) else None
            if was or now:
                moved.append({"from": was, "to": now, "at": at,
                              "link": self.link(now) if now else None})
        return moved, deleted


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(since: str | None, now: datetime | None = None) -> datetime:
    """`since`: an ISO 8601 date or time (UTC when it has no offset) or a span back from now
    (`30m`, `24h`, `7d`, `2w`); None: the last 7 days. ToolError when it is neither."""
    now = now or datetime.now(UTC)
    if since is None or not since.strip():
        return now - RECENT_DEFAULT
    m = _DURATION.match(since)
    if m:
        return now - timedelta(**{_UNITS[m.group(2).lower()]: float(m.group(1))})
    try:
        when = datetime.fromisoformat(since.strip())
    except ValueError:
        raise ToolError(f"since must be an ISO 8601 date or time, or a span like 24h or 7d; "
                        f"got {since!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def answer_markdown(answer: Answer) -> str:
    """The answer's text with its citations as a Markdown list of links at the end."""
    from vaultbot.api.openai import sources_markdown

    return answer.text.rstrip() + sources_markdown(answer)


def build_server(tools: VaultTools) -> MCPServer:
    """The MCP server over `tools`; the transport is the caller's."""
    # The SDK's constructor calls logging.basicConfig: with a handler in place that is a no-op,
    # so vaultbot's own logging (redacting, on stderr) stays the only configuration.
    root, guard = logging.getLogger(), logging.NullHandler()
    root.addHandler(guard)
    try:
        server: MCPServer = MCPServer("vaultbot", instructions=INSTRUCTIONS)
    finally:
        root.removeHandler(guard)

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except Refused as exc:
            raise ToolError(str(exc)) from None
        except LookupError as exc:
            raise ToolError(str(exc.args[0])) from None

    @server.tool(description="Search the vault: the passages nearest to `query` (keyword and "
                             "meaning), each with its note's path and a link.")
    async def search_notes(
        query: Annotated[str, Field(min_length=1, max_length=2000)],
        k: Annotated[int, Field(ge=1, le=50)] = 8,
        folder: str | None = None,
        tag: str | None = None,
    ) -> dict[str, Any]:
        return {"results": await call(tools.search, query, k, folder, tag)}

    @server.tool(description="Answer a question from the vault's notes, with numbered "
                             "citations and links to the notes. `deep` uses the larger model.")
    async def ask(
        question: Annotated[str, Field(min_length=1, max_length=4000)],
        ctx: Context,
        deep: bool = False,
    ) -> str:
        try:
            scope = tools.place_scope()
        except Refused as exc:
            raise ToolError(str(exc)) from None
        opts = AskOptions(scope=scope, deep=deep, channel=PLACE, mask=tools.mask)
        answer, tokens, step = None, 0, 0

        async def progress(message: str) -> None:
            nonlocal step
            step += 1
            await ctx.report_progress(step, None, message)

        async for event in tools.asker.stream(question, opts):
            if isinstance(event, Sources):
                await progress(f"found {len(event.citations)} passages")
            elif isinstance(event, Queued):
                await progress(event.message)
            elif isinstance(event, Token):
                tokens += 1
                if tokens == 1:
                    await progress("writing the answer")
                elif tokens % PROGRESS_EVERY == 0:
                    await progress(f"writing the answer ({tokens} pieces)")
            elif isinstance(event, Failed):
                await progress(event.message)
            elif isinstance(event, Done):
                answer = event.answer
        assert answer is not None
        if tools.metrics is not None:
            tools.metrics.observe(answer, PLACE)
        return answer_markdown(answer)

    @server.tool(description="The text of one note (its vault path, e.g. `Work/Plan.md`), as "
                             "indexed; parts embedded from notes this client may not see are "
                             "left out.")
    async def get_note(path: Annotated[str, Field(min_length=1, max_length=1024)]) -> str:
        return await call(tools.note_text, path)

    @server.tool(description="Notes added, changed, moved (from, to) or deleted since `since` "
                             "(ISO 8601 date or time, or a span like 24h or 7d; default 7d), "
                             "newest first. A moved note's old or new path is null when this "
                             "client may not see the note there.")
    async def recent_changes(since: str | None = None) -> dict[str, Any]:
        return await call(tools.recent, since)

    @server.resource("note://{+path}", name="note", mime_type="text/markdown",
                     description="A note of the vault by its path, e.g. note://Work/Plan.md")
    async def note(path: str) -> str:
        try:
            return await asyncio.to_thread(tools.note_text, path)
        except (Refused, LookupError) as exc:
            raise MCPError(code=INVALID_PARAMS, message=str(exc.args[0]),
                           data={"uri": f"note://{path}"}) from None

    return server


def tools_from_app(app: App) -> VaultTools:
    """The tools over the App's parts, under the access file's `mcp` place."""
    return VaultTools(
        asker=app.asker, retriever=app.retriever, registry=app.index.registry,
        scope=lambda: app.access.place_scope(PLACE), mask=app.settings.mask_for(PLACE),
    )


def run_stdio(app: App) -> int:
    """`vaultbot mcp`: serve MCP on stdin/stdout until the client closes it. The SDK points
    fd 1 at stderr while it runs, so nothing printed can corrupt the protocol."""
    tools = tools_from_app(app)
    tools.place_scope()  # a refused place or a bad access file fails here, with its message
    server = build_server(tools)
    anyio.run(server.run_stdio_async)
    return 0
