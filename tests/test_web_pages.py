"""The note pages and the web ask page in a real headless browser (Debian's chromium driven by
Playwright), served by a real uvicorn on loopback from a vault synced from the help vaults
(English and Korean), a PDF and hostile notes; the LLM is the fake Ollama.

One browser and one server for the module: the refusals that change the vault run on notes of
their own, after the tests that read the shared ones."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from corpus import PDFS, VAULTS, need_corpus
from fakes.ollama_server import FakeOllama
from helpers import Server, build, close_index

from engine.answer import Asker
from engine.answer_cache import AnswerCache
from engine.citations import Citation
from engine.embedders.hashing import HashingEmbedder
from engine.index import Index
from engine.llm.ollama import OllamaGenerator
from engine.models import Scope
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from sync.indexer import Indexer
from vaultbot.api import create_app
from vaultbot.api.security import SESSION_COOKIE
from vaultbot.web.links import LinkSigner, note_url_for
from vaultbot.web.page import UNAVAILABLE_PAGE

playwright = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TOKEN = "web-page-test-token-0123456789"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
EN_NOTE = "en/Basic formatting syntax.md"
KO_NOTE = "ko/콜아웃.md"
PDF_NOTE = "docs/korean-meeting-notes.pdf"
ANSWER = "Callouts start with [!info] on the first line of a quote [1]."

HOSTILE = """\
---
title: Hostile note
---
# Hostile

<script>alert("script")</script>
<img src="https://evil.example/pixel.png" onerror="alert('img')">
<svg onload="alert('svg')"><circle r="4"/></svg>
<iframe src="https://evil.example/frame"></iframe>
<object data="https://evil.example/object"></object>
<link rel="stylesheet" href="https://evil.example/style.css">
<style>@import url("https://evil.example/import.css"); body{background:url(https://evil.example/bg.png)}</style>
<meta http-equiv="refresh" content="0;url=https://evil.example/refresh">
<div style="background-image:url(https://evil.example/inline.png)">styled</div>
<form action="https://evil.example/form"><button id="go">go</button></form>
<a id="js" href="javascript:alert('link')">click me</a>
<a id="js2" href="JaVaScRiPt&colon;alert('entity')">entity link</a>
<details open ontoggle="alert('toggle')"><summary>details</summary>x</details>

![remote image](https://evil.example/md.png)
[data link](data:text/html,<script>alert('data')</script>)

The marker sentence of the hostile note is here.
"""


@dataclass
class Site:
    url: str
    vault: Path
    index: Index
    indexer: Indexer
    signer: LinkSigner
    ollama: FakeOllama
    now: list[float]
    rules: list[Scope] = field(default_factory=lambda: [Scope()])

    def chunk(self, path: str, contains: str = "") -> Any:
        chunks = self.index.registry.chunks_of_notes([path])[path]
        return next(c for c in chunks if contains in c.text)

    def link(self, path: str, contains: str | None = "", scope: Scope | None = None) -> str:
        c = self.chunk(path, contains) if contains is not None else None
        token = self.signer.sign(path, c.id if c else None, c.text_hash if c else None,
                                 scope or Scope())
        return note_url_for(self.url, token, cited=c is not None)


def _vault(root: Path) -> Path:
    """Two help-vault folders (English and Korean), a generated PDF, a hostile note, and notes
    the refusal tests change."""
    vault = root / "vault"
    shutil.copytree(VAULTS / "obsidian-help-en" / "Editing and formatting", vault / "en")
    shutil.copytree(VAULTS / "obsidian-help-ko" / "편집 및 서식", vault / "ko")
    (vault / "docs").mkdir()
    shutil.copy(PDFS / "korean-meeting-notes-embedded-font.pdf", vault / PDF_NOTE)
    (vault / "hostile.md").write_text(HOSTILE, encoding="utf-8")
    (vault / "en" / "Linker.md").write_text(
        "# Linker\n\nSee [[Callouts]] and [[hostile|the hostile note]].\n\n![[콜아웃]]\n\n"
        "![[Tags]]\n", encoding="utf-8")
    for name in ("made private", "deleted", "moved", "rules", "versioned"):
        (vault / "later").mkdir(exist_ok=True)
        (vault / f"later/{name}.md").write_text(
            f"# {name}\n\nThe {name} note holds a passage worth citing.\n", encoding="utf-8")
    return vault


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    need_corpus()
    root = tmp_path_factory.mktemp("web")
    vault = _vault(root)
    index, indexer = build(vault, root / "data", HashingEmbedder())
    indexer.sync()
    now = [time.time()]
    signer = LinkSigner(b"k" * 32, max_age_days=30, clock=lambda: now[0])
    with FakeOllama() as ollama:
        ollama.responder = lambda *a: ANSWER
        retriever = Retriever(index)
        holder: dict[str, str] = {}

        def page_link(c: Citation, scope: Scope) -> str | None:
            chunk = index.registry.chunks_by_id([c.chunk_id]).get(c.chunk_id)
            token = signer.sign(c.path, c.chunk_id, chunk.text_hash if chunk else None, scope)
            return note_url_for(holder["url"], token, cited=True)

        asker = Asker(retriever, OllamaGenerator(ollama.url), cache=AnswerCache(index.registry),
                      querylog=QueryLog(index.registry), vault_name="help", page_link=page_link)
        rules = [Scope()]
        app = create_app(asker=asker, retriever=retriever, index=index,
                         querylog=QueryLog(index.registry), token=TOKEN, vault=vault,
                         signer=signer, rules=lambda: rules[0])
        with Server(app) as srv:
            holder["url"] = srv.url
            yield Site(srv.url, vault, index, indexer, signer, ollama, now, rules)
    close_index(index)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


class Watch:
    """A page that records every dialog, every request leaving loopback (blocked) and every
    CSP violation or console error."""

    def __init__(self, browser: Any, viewport: dict[str, int] = DESKTOP) -> None:
        self.context = browser.new_context(viewport=viewport, color_scheme="dark")
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def route(r: Any) -> None:
            host = re.sub(r"^[a-z]+://([^/:]+).*$", r"\1", r.request.url)
            if host in ("127.0.0.1", "localhost") or r.request.url.startswith("data:"):
                r.continue_()
            else:
                self.outside.append(r.request.url)
                r.abort()

        self.context.route("**/*", route)

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.context.close()


def _until(page: Any, js: str, timeout: float = 20.0) -> None:
    """Poll `js` (evaluated like evaluate(), which the page's CSP allows, unlike
    wait_for_function's eval) until it is true."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(js):
        assert time.monotonic() < deadline, f"timed out: {js}"
        page.wait_for_timeout(20)


def _in_viewport(page: Any, selector: str) -> bool:
    return page.evaluate(
        """(sel) => { const r = document.querySelector(sel).getBoundingClientRect();
           return r.height > 0 && r.top >= 0 && r.top < innerHeight && r.left >= 0
                  && r.right <= innerWidth + 1; }""", selector)


# ------------------------------------------------------------------------------- note pages


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_help_note_passage_highlighted_and_in_view(site: Site, browser: Any,
                                                   viewport: dict[str, int]) -> None:
    # A passage far down a long note: it is only in view if the page scrolled to it.
    cited = site.chunk(EN_NOTE, "Footnotes")
    url = site.link(EN_NOTE, "Footnotes")
    with Watch(browser, viewport) as w:
        response = w.page.goto(url)
        assert response.status == 200
        headers = response.headers
        assert "default-src 'none'" in headers["content-security-policy"]
        assert headers["cache-control"] == "no-store" and headers["x-robots-tag"] == "noindex"
        assert w.page.locator("#cited").count() == 1
        assert "cited" in w.page.locator("#cited").get_attribute("class")
        assert w.page.evaluate("scrollY") > 200  # it scrolled
        assert _in_viewport(w.page, "#cited")
        shown = w.page.locator(".cited").first.inner_text()
        assert shown[:15] in " ".join(cited.text.split())
        assert " › ".join(cited.heading_path) in w.page.locator(".trail").inner_text()
        assert w.page.locator(".meta time").count() == 1
        assert w.page.locator("a.open").get_attribute("href").startswith("obsidian://open?")
        # No horizontal scroll on a phone: the page fits its width.
        assert w.page.evaluate("document.documentElement.scrollWidth <= innerWidth + 1")
        assert not (w.dialogs or w.outside or w.errors)


def test_links_to_other_notes_carry_the_scope(site: Site, browser: Any) -> None:
    """A wikilink or embed of a note this link may show is a link that opens it (with the same
    scope) or its text; of a note it may not, plain text that does not say where it is."""
    scope = Scope(folders=("en",))
    with Watch(browser) as w:
        w.page.goto(site.link("en/Linker.md", None, scope))
        links = w.page.locator("article.note > p a.internal")  # not those inside the embed
        assert links.count() == 1 and links.first.inner_text() == "Callouts"
        assert w.page.locator(".unlinked").first.inner_text() == "the hostile note"
        html = w.page.content()
        assert "hostile.md" not in html and "콜아웃" in html  # named, neither linked nor shown
        assert w.page.locator(".embed").count() == 1  # Tags (en) is embedded, 콜아웃 (ko) not
        assert "#tag" in w.page.locator(".embed").inner_text()  # the Tags note's text
        links.first.click()
        w.page.wait_for_load_state()
        assert w.page.url.startswith(site.url + "/n/")
        assert w.page.locator("h1").first.inner_text() == "Callouts"
        # The page it opened carries the same scope: the hostile note is out of it there too.
        token = w.page.url.split("/n/")[1].split("#")[0]
        assert site.signer.verify(token).scope == scope
        assert not (w.dialogs or w.outside or w.errors)


def test_korean_note(site: Site, browser: Any) -> None:
    with Watch(browser, PHONE) as w:
        w.page.goto(site.link(KO_NOTE, "이것처럼요"))
        assert w.page.evaluate("document.documentElement.lang") == "ko"
        assert w.page.locator("h1").first.inner_text() == "콜아웃"
        assert _in_viewport(w.page, "#cited")
        style = w.page.evaluate("getComputedStyle(document.body).wordBreak")
        assert style == "keep-all"  # Korean words are not broken mid-word
        assert w.page.locator(".callout").count() > 3
        assert not (w.dialogs or w.outside or w.errors)


def test_pdf_page_with_the_cited_text(site: Site, browser: Any) -> None:
    cited = site.chunk(PDF_NOTE)
    page_no = cited.page
    later = [c for c in site.index.registry.chunks_of_notes([PDF_NOTE])[PDF_NOTE] if c.page > 1]
    if later:
        cited = later[0]
        page_no = cited.page
    token = site.signer.sign(PDF_NOTE, cited.id, cited.text_hash, Scope())
    with Watch(browser, PHONE) as w:
        w.page.goto(note_url_for(site.url, token, cited=True))
        img = w.page.locator("figure img")
        img.wait_for()
        _until(w.page, "document.querySelector('figure img').complete")
        assert w.page.evaluate("document.querySelector('figure img').naturalWidth") == 1200
        # Fits the phone's width.
        assert w.page.evaluate("document.querySelector('figure img').width") <= PHONE["width"]
        assert f"Page {page_no}" in w.page.locator("figcaption").inner_text()
        assert not (w.dialogs or w.outside or w.errors)
    png = httpx.get(f"{site.url}/n/{token}/page.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert png.headers["cache-control"] == "no-store"


def test_hostile_note_stays_inert(site: Site, browser: Any) -> None:
    with Watch(browser) as w:
        w.page.goto(site.link("hostile.md", "marker sentence"))
        w.page.wait_for_timeout(300)
        for sel in ("#js", "#js2", "#go", "summary"):
            if w.page.locator(sel).count():
                w.page.locator(sel).first.click(timeout=2000)
                w.page.wait_for_timeout(100)
        assert w.page.url.startswith(site.url + "/n/")  # nothing navigated away
        content = w.page.content()
        assert "styled" in content and "marker sentence" in content
        assert w.page.locator("script, iframe, object, img, svg, form, link[href*=evil]").count() == 0
        assert w.dialogs == [] and w.outside == []
    body = httpx.get(site.link("hostile.md", "marker sentence")).text
    assert "evil.example" not in re.sub(r"<pre>.*?</pre>", "", body, flags=re.S) or (
        "href=\"https://evil" not in body)
    for bad in ("onerror", "onload", "ontoggle", "javascript:", "<script>alert"):
        assert bad not in body.lower()


# --------------------------------------------------------------------------------- refusals


def _refused(site: Site, url: str) -> None:
    r = httpx.get(url)
    assert r.status_code == 404
    assert r.text == UNAVAILABLE_PAGE  # one page for every reason
    assert r.headers["cache-control"] == "no-store"


def test_tampered_and_expired_links_refused(site: Site, browser: Any) -> None:
    url = site.link("later/rules.md", "passage")
    assert httpx.get(url).status_code == 200
    token = url.split("/n/")[1].split("#")[0]
    payload, _, sig = token.rpartition(".")
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    _refused(site, f"{site.url}/n/{payload}.{flipped}")
    _refused(site, f"{site.url}/n/{token[:-10]}")
    _refused(site, f"{site.url}/n/{token}/page.png")  # not a PDF
    # Expired: the signer's clock moves past the link's 30 days.
    site.now[0] += 31 * 86400
    try:
        _refused(site, url)
    finally:
        site.now[0] -= 31 * 86400
    with Watch(browser) as w:
        w.page.goto(f"{site.url}/n/{payload}.{flipped}")
        assert "This note is unavailable" in w.page.inner_text("body")


def test_private_moved_deleted_and_ruled_out_after_the_fact(site: Site) -> None:
    links = {name: site.link(f"later/{name}.md", "passage")
             for name in ("made private", "deleted", "moved", "rules")}
    for url in links.values():
        assert httpx.get(url).status_code == 200
    v = site.vault
    (v / "later/made private.md").write_text(
        "---\nprivate: true\n---\n# made private\n\nThe made private note holds a passage "
        "worth citing.\n", encoding="utf-8")
    (v / "later/deleted.md").unlink()
    (v / "elsewhere").mkdir()
    (v / "later/moved.md").rename(v / "elsewhere/moved.md")
    # Refused as soon as the file is gone, before a sync notices.
    _refused(site, links["deleted"])
    site.indexer.sync()
    for name in ("made private", "deleted", "moved"):
        _refused(site, links[name])
    # Today's access rules: a folder made private in the access file after the link went out.
    site.rules[0] = Scope(exclude_folders=("later",))
    try:
        _refused(site, links["rules"])
    finally:
        site.rules[0] = Scope()
    assert httpx.get(links["rules"]).status_code == 200


def test_note_page_needs_no_token_but_host_check_applies(site: Site) -> None:
    """A Slack teammate has no API token: the link alone opens the page (the API still wants
    it). Without a token, serve answers loopback names only (DNS rebinding), plus the host of
    VAULTBOT_PUBLIC_URL."""
    from vaultbot.serve import page_hosts

    url = site.link(EN_NOTE, "Footnotes")
    assert httpx.get(url).status_code == 200
    assert httpx.get(f"{site.url}/search", params={"q": "x"}).status_code == 401
    app = create_app(asker=None, retriever=None, index=site.index, querylog=None,  # type: ignore[arg-type]
                     vault=site.vault, signer=site.signer,
                     allowed_hosts={"127.0.0.1", "localhost"} | page_hosts(
                         "https://vault.tail1234.ts.net/"))
    path = "/n/" + url.split("/n/")[1].split("#")[0]
    with Server(app) as srv:
        assert httpx.get(srv.url + path, headers={"Host": "evil.example"}).status_code == 421
        ok = httpx.get(srv.url + path, headers={"Host": "vault.tail1234.ts.net"})
        assert ok.status_code == 200


# ------------------------------------------------------------------------------ ask page


def _login(site: Site, browser: Any, viewport: dict[str, int] = DESKTOP) -> Watch:
    w = Watch(browser, viewport)
    w.page.goto(site.url + "/")
    w.page.fill("#token", "wrong token")
    w.page.click("button[type=submit]")
    assert "not the API token" in w.page.inner_text("body")
    w.errors.clear()  # the browser logs the 401 of the wrong token
    w.page.fill("#token", TOKEN)
    w.page.click("button[type=submit]")
    w.page.wait_for_selector("#q")
    return w


def test_ask_page_streams_an_answer_with_sources_that_open(site: Site, browser: Any) -> None:
    site.ollama.token_delay = 0.05
    try:
        with _login(site, browser) as w:
            [cookie] = [c for c in w.context.cookies() if c["name"] == SESSION_COOKIE]
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert TOKEN not in cookie["value"]
            w.page.fill("#q", "How do I make a callout?")
            w.page.click("#ask button[type=submit]")
            # Streaming: part of the answer is on the page before the whole of it.
            _until(w.page, "(() => { const a = document.querySelector('.turn .answer');"
                   " return !!a && a.textContent.length > 0"
                   " && !document.querySelector('.turn[data-done]'); })()")
            w.page.wait_for_selector(".turn[data-done]")
            assert w.page.locator(".turn .answer").inner_text() == ANSWER
            sources = w.page.locator(".turn .sources a.src")
            assert sources.count() == 1
            href = sources.first.get_attribute("href")
            assert href.startswith(site.url + "/n/") and href.endswith("#cited")
            assert w.page.locator(".turn .sources a.open").first.get_attribute(
                "href").startswith("obsidian://")
            # A follow-up sends the thread.
            before = len(site.ollama.requests)
            w.page.fill("#q", "And with a custom title?")
            w.page.press("#q", "Enter")
            _until(w.page, "document.querySelectorAll('.turn[data-done]').length == 2")
            chats = [r for r in site.ollama.requests[before:] if r.path == "/api/chat"]
            sent = json.dumps(chats[-1].body, ensure_ascii=False)
            assert "How do I make a callout?" in sent and ANSWER.split(" [")[0] in sent
            # Search.
            w.page.click("details.search summary")
            w.page.fill("#sq", "콜아웃")
            w.page.press("#sq", "Enter")
            w.page.wait_for_selector("#results li")
            # The source opens its note page, the passage in view.
            sources.first.click()
            w.page.wait_for_selector("#cited")
            assert _in_viewport(w.page, "#cited")
            assert not (w.dialogs or w.outside or w.errors)
    finally:
        site.ollama.token_delay = 0.0


def test_cookie_is_accepted_only_from_this_origin(site: Site) -> None:
    """The session cookie stands in for the bearer token only on same-origin requests: a form or
    fetch from another site (CSRF) is refused even if a browser sent the cookie."""
    with httpx.Client(base_url=site.url) as client:
        r = client.post("/login", data={"token": TOKEN}, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403  # no login from another site either
        r = client.post("/login", data={"token": TOKEN}, headers={"Sec-Fetch-Site": "same-origin"})
        assert r.status_code == 303
        set_cookie = r.headers["set-cookie"].lower()
        assert "httponly" in set_cookie and "samesite=strict" in set_cookie
        assert TOKEN.lower() not in set_cookie
        body = {"question": "callout", "stream": False}
        same = {"Sec-Fetch-Site": "same-origin"}
        assert client.get("/search", params={"q": "callout"}, headers=same).status_code == 200
        for bad in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "https://evil.example"}, {}):
            assert client.post("/ask", json=body, headers=bad).status_code == 401, bad
        assert client.get("/search", params={"q": "x"},
                          headers={"Origin": site.url}).status_code == 200
        # A forged cookie is nothing.
        client.cookies.set(SESSION_COOKIE, "forged.value.sig")
        assert client.get("/search", params={"q": "x"}, headers=same).status_code == 401


def test_cached_answers_get_links_signed_at_delivery(site: Site) -> None:
    """A cached answer is served with page links made for the place asking now, and the cache
    holds none (a link carries the scope of the place that asked)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    body = {"question": "What is a callout type identifier?", "stream": False}
    first = httpx.post(f"{site.url}/ask", json=body, headers=headers, timeout=30).json()
    second = httpx.post(f"{site.url}/ask", json=body, headers=headers, timeout=30).json()
    assert second["cached"] == "answer"
    assert first["citations"][0]["page_url"] and second["citations"][0]["page_url"]
    assert second["citations"][0]["page_url"].startswith(site.url + "/n/")
    with site.index.registry.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT answer FROM answer_cache").fetchall()
    assert rows and all("/n/" not in str(r[0]) for r in rows)


def test_changed_passage_is_flagged(site: Site) -> None:
    """The cited chunk changed after the answer: the page says so above the note as it is now.
    (Keeping the passage as cited needs a registry table: open, see the report of issue 12.)"""
    url = site.link("later/versioned.md", "passage")
    assert "changed since the answer" not in httpx.get(url).text
    (site.vault / "later/versioned.md").write_text(
        "# versioned\n\nThe versioned note now says something new.\n", encoding="utf-8")
    site.indexer.sync()
    page = httpx.get(url).text
    assert "changed since the answer" in page and "now says something new" in page
    assert 'id="cited"' not in page  # nothing is marked as the cited passage


def test_app_links_citations_to_the_public_url(tmp_path: Path, usem3: Any) -> None:
    """The composition root: while serve runs (`page_base` set), every citation gets a page at
    VAULTBOT_PUBLIC_URL (else serve's own address) that opens, signed with the data dir's key,
    which the log redaction then knows; the obsidian:// link stays. Without serve, none."""
    import asyncio
    import logging
    from concurrent.futures import ThreadPoolExecutor

    from corpus import copy_vault

    from engine.answer import AskOptions
    from engine.redact import RedactingFilter
    from vaultbot.app import App
    from vaultbot.settings import Settings
    from vaultbot.web.links import key_secrets

    vault = copy_vault("example", tmp_path)
    app = App(Settings(vault=vault, data_dir=tmp_path / "d", llm="none", _env_file=None,
                       public_url="https://vault.example.ts.net/vb"))
    app.__dict__["embedder"] = usem3
    redactor = RedactingFilter().install()
    try:
        app.indexer.sync()
        def ask() -> Any:  # in a thread of its own: Playwright's loop runs in this one
            with ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, app.asker.ask("When is the launch?",
                                                              AskOptions())).result()

        assert all(c.page_url is None for c in ask().citations)
        app.page_base = "http://127.0.0.1:8765"
        answer = ask()
        cited = answer.citations[0]
        assert cited.page_url.startswith("https://vault.example.ts.net/vb/n/")
        assert cited.link == cited.page_url and cited.uri.startswith("obsidian://")
        assert key_secrets(app.data_dir) <= redactor.secrets
        assert (app.data_dir / "link-key").stat().st_mode & 0o777 == 0o600
        # The signature holds with the data dir's key, and the link names the cited chunk.
        token = cited.page_url.split("/n/")[1].split("#")[0]
        cap = app.link_signer.verify(token)
        assert (cap.note_path, cap.chunk_id) == (cited.path, cited.chunk_id)
        app.settings = app.settings.model_copy(update={"public_url": ""})
        assert ask().citations[0].page_url.startswith("http://127.0.0.1:8765/n/")
    finally:
        redactor.uninstall()
        logging.getLogger().removeFilter(redactor)
        app.close()
