"""serve warms the models and graphs a first question would load (App.warm), beside the
server: the first users of a fresh process then meet warm figures."""

from __future__ import annotations

import shutil
from pathlib import Path

import engine.korean as korean
import vaultbot.app
from engine.embedders.hashing import HashingEmbedder
from vaultbot.app import App
from vaultbot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_warm_loads_embedder_tokenizer_and_vectors(tmp_path: Path, monkeypatch) -> None:
    vault = tmp_path / "vault"
    shutil.copytree(ROOT / "examples" / "vault", vault)
    for name in [n for n in __import__("os").environ if n.startswith("VAULTBOT_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(vaultbot.app, "make_embedder", lambda spec, **kw: HashingEmbedder(dim=64))
    app = App(Settings(vault=vault, data_dir=tmp_path / "data", llm="none", _env_file=None))
    try:
        app.indexer.sync()
        queried: list[int] = []
        searched: list[str] = []
        real_search = app.index.keywords.search
        monkeypatch.setattr(app.index.keywords, "search",
                            lambda q, k=20, scope=None: searched.append(q) or real_search(q, k, scope))
        real_query = app.index.vectors.query
        monkeypatch.setattr(app.index.vectors, "query",
                            lambda v, n, scope=None: queried.append(n) or real_query(v, n, scope))
        registry = app.index.registry
        notes = len(registry.note_states())
        took = app.warm()
        assert set(took) == {"embedder", "keywords", "vectors", "notes"}
        # The keyword index tokenised a Korean query (Kiwi's model loads then) ...
        assert len(searched) == 1 and any("\uac00" <= ch <= "\ud7a3" for ch in searched[0])
        assert korean._kiwi is not None
        assert queried == [1]  # the vector store answered once (Chroma loads its graph then)
        assert app.retriever.query_vectors.get((app.index.model, "warm up")) is not None
        # ... and every note's info is in the registry's cache: a question reads none of it.
        cache = registry._note_cache
        misses = cache.misses
        assert len(registry.note_info(registry.note_states())) == notes > 0
        assert cache.misses == misses
    finally:
        app.close()
