"""The API's schema viewers behind a token: a browser that got /docs (or /redoc) fetches
nothing more with the bearer header, so the pages carry the schema themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from corpus import copy_vault
from helpers import Server, build

from engine.answer import Asker
from engine.embedders.hashing import HashingEmbedder
from engine.querylog import QueryLog
from engine.retrieve import Retriever
from vaultbot.api import create_app

TOKEN = "docs-test-token"


def test_docs_and_redoc_embed_the_schema(tmp_path: Path) -> None:
    index, _ = build(copy_vault("example", tmp_path), tmp_path / "data", HashingEmbedder(dim=64))
    retriever = Retriever(index)
    log = QueryLog(index.registry)
    app = create_app(asker=Asker(retriever, None, querylog=log), retriever=retriever,
                     index=index, querylog=log, token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with Server(app) as srv, httpx.Client(base_url=srv.url, timeout=10) as c:
        schema = c.get("/openapi.json", headers=auth).json()
        assert "/ask" in schema["paths"]
        for path, pattern in (("/docs", r'"spec": (\{.*?\}),\n'),
                              (r"/redoc", r"Redoc\.init\((\{.*?\}), \{\}")):
            assert c.get(path).status_code == 401
            page = c.get(path, headers=auth)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
            # Nothing left to fetch from this API: the schema is in the page, as served.
            assert "openapi.json" not in page.text, path
            embedded = re.search(pattern, page.text, re.S)
            assert embedded is not None, path
            assert json.loads(embedded.group(1)) == schema
            assert "</script" not in embedded.group(1)
