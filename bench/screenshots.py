"""Screenshots of the web front end for docs/img/: the note page (English and Korean, phone and
desktop) and the ask page, from the help vaults in ../shared/corpus.

    .venv/bin/python bench/screenshots.py [--out docs/img]

What it serves is what `vaultbot serve` serves (create_app with a link signer), from a vault
synced into a temp dir; the answer comes from the fake Ollama of tests/fakes, so the pictures
do not depend on a model. Needs Debian's chromium (/usr/bin/chromium) and Playwright."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

CORPUS = ROOT.parent / "shared" / "corpus" / "vaults"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
ANSWER = ("Start a blockquote with [!type] on its first line: `> [!tip]` makes a tip callout, "
          "and text after the type identifier becomes its title [1]. Add + or - after the type "
          "to make it foldable [2].")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    args = parser.parse_args()

    from fakes.ollama_server import FakeOllama
    from helpers import Server, build, close_index
    from playwright.sync_api import sync_playwright

    from engine.answer import Asker
    from engine.embedders.hashing import HashingEmbedder
    from engine.llm.ollama import OllamaGenerator
    from engine.models import Scope
    from engine.querylog import QueryLog
    from engine.retrieve import Retriever
    from vaultbot.api import create_app
    from vaultbot.web.links import LinkSigner, note_url_for

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        vault = Path(tmp) / "vault"
        shutil.copytree(CORPUS / "obsidian-help-en" / "Editing and formatting", vault / "en")
        shutil.copytree(CORPUS / "obsidian-help-ko" / "편집 및 서식", vault / "ko")
        index, indexer = build(vault, Path(tmp) / "data", HashingEmbedder())
        indexer.sync()
        signer = LinkSigner(b"screenshots-key-" * 2)
        base: dict[str, str] = {}

        def page_link(c, scope: Scope) -> str:  # noqa: ANN001
            chunk = index.registry.chunks_by_id([c.chunk_id]).get(c.chunk_id)
            return note_url_for(base["url"], signer.sign(
                c.path, c.chunk_id, chunk.text_hash if chunk else None, scope), cited=True)

        def link(path: str, contains: str) -> str:
            chunk = next(c for c in index.registry.chunks_of_notes([path])[path]
                         if contains in c.text)
            return note_url_for(base["url"], signer.sign(path, chunk.id, chunk.text_hash,
                                                         Scope()), cited=True)

        with FakeOllama() as ollama:
            ollama.responder = lambda *a: ANSWER
            retriever = Retriever(index)
            asker = Asker(retriever, OllamaGenerator(ollama.url), vault_name="Obsidian Help",
                          page_link=page_link)
            app = create_app(asker=asker, retriever=retriever, index=index,
                             querylog=QueryLog(index.registry), vault=vault, signer=signer)
            with Server(app) as srv, sync_playwright() as p:
                base["url"] = srv.url
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                shots = [
                    ("note-en-desktop", link("en/Callouts.md", "callout foldable"), DESKTOP, "light"),
                    ("note-en-phone", link("en/Callouts.md", "callout foldable"), PHONE, "dark"),
                    ("note-ko-desktop", link("ko/콜아웃.md", "이것처럼요"), DESKTOP, "light"),
                    ("note-ko-phone", link("ko/콜아웃.md", "이것처럼요"), PHONE, "dark"),
                ]
                for name, url, viewport, scheme in shots:
                    ctx = browser.new_context(viewport=viewport, color_scheme=scheme,
                                              device_scale_factor=1)
                    page = ctx.new_page()
                    page.goto(url)
                    page.wait_for_timeout(200)
                    page.screenshot(path=str(args.out / f"{name}.png"))
                    ctx.close()
                for name, viewport, scheme in (("ask-desktop", DESKTOP, "light"),
                                               ("ask-phone", PHONE, "dark")):
                    ctx = browser.new_context(viewport=viewport, color_scheme=scheme)
                    page = ctx.new_page()
                    page.goto(srv.url + "/")
                    page.fill("#q", "How do I make a callout with a custom title?")
                    page.click("#ask button[type=submit]")
                    page.wait_for_selector(".turn[data-done]")
                    page.mouse.move(0, 0)
                    page.screenshot(path=str(args.out / f"{name}.png"))
                    ctx.close()
                browser.close()
        close_index(index)
    for f in sorted(args.out.glob("*.png")):
        print(f"{f.relative_to(ROOT)}  {f.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    t0 = time.monotonic()
    code = main()
    print(f"({time.monotonic() - t0:.0f} s)")
    sys.exit(code)
