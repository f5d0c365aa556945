"""One settings object, read from the environment and `.env`. Every entry is documented in
`.env.example` and `docs/configuration.md`; keep the three in step. `vaultbot/fast_settings.py`
reads the same sources without pydantic-settings for `ask`/`search` through serve: a new field
goes into its FIELDS too (tests/test_fast_settings.py fails until it does)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # env_ignore_empty: `KEY=` (as .env.example writes every optional entry) means unset, so
    # the default applies instead of "" (an empty path is ".", the current directory).
    model_config = SettingsConfigDict(
        env_prefix="VAULTBOT_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        env_ignore_empty=True,
    )

    # --- where things live
    vault: Path | None = Field(None, description="Path of the Obsidian vault to index.")
    data_dir: Path = Field(Path("~/.vaultbot"), description="Registry, vectors and caches.")
    database_url: str = Field(
        "", description="SQLAlchemy URL of the registry; empty: SQLite in the data dir."
    )
    chroma_url: str = Field(
        "", description="Empty: embedded ChromaDB in the data dir; set: a Chroma server URL."
    )

    index: str = Field(
        "chroma", description="chroma (default) or binary: 1-bit first stage + exact rescoring."
    )
    keywords: str = Field(
        "local", description="local (SQLite in the data dir) or postgres: the keyword index in "
        "the PostgreSQL registry, shared by every process using it."
    )

    # --- embedding
    embedder: str = Field("usem3", description="usem3, e5-small, or ollama:<model>.")
    ollama_url: str = Field("http://127.0.0.1:11434", description="Ollama's base URL.")
    embed_batch: int = Field(64, ge=1, description="Chunks per embedding call.")

    # --- chunking
    chunk_tokens: int = Field(400, ge=50, description="Largest chunk, in tokens.")

    # --- sync
    debounce_seconds: float = Field(0.5, ge=0.0, description="Watcher quiet time before a batch.")
    reconcile_minutes: float = Field(
        15.0, ge=0.0, description="Full reconcile period in `watch`/`serve`; 0 turns it off."
    )
    watch_events: bool = Field(
        True, description="Follow file events; false: reconcile only (network shares without events)."
    )
    max_note_mb: float = Field(
        10.0, gt=0, description="Larger files are skipped, unread, with their reason."
    )

    # --- generation (engine issue)
    llm: str = Field("ollama", description="`ollama` or `none` (extractive answers only).")
    llm_fast: str = Field("qwen2.5:7b-instruct", description="Model for most questions.")
    llm_deep: str = Field("qwen2.5:32b-instruct", description="Model for long or --deep questions.")
    llm_num_ctx: int = Field(16384, ge=2048, description="Context window (Ollama num_ctx).")
    llm_num_thread: int = Field(8, ge=1, description="CPU threads for Ollama (M1 Max: 8).")
    llm_keep_alive: str = Field("30m", description="How long Ollama keeps the model loaded.")
    llm_first_token_timeout: float = Field(
        120.0, gt=0, description="Seconds to wait for the first token (model load included)."
    )
    llm_idle_timeout: float = Field(30.0, gt=0, description="Seconds a stream may stall.")
    llm_concurrency: str = Field(
        "fast=2,deep=1", description="Generations at once per model: fast=N,deep=M, or one N."
    )

    # --- retrieval and cache
    top_k: int = Field(6, ge=1, le=50, description="Note excerpts given to the model.")
    rerank: str = Field(
        "", description="Optional rerank stage: empty (off) or ollama:<model>."
    )
    neighbours: int = Field(
        0, ge=0, le=3, description="Widen each excerpt with this many chunks on each side."
    )
    cache_threshold: float = Field(
        0.93, ge=0.5, le=1.0, description="Cosine similarity for a semantic answer-cache hit."
    )
    cache_ttl_hours: float = Field(168.0, gt=0, description="Answer-cache entry lifetime.")
    cache_max_entries: int = Field(5000, ge=10, description="Answer-cache size bound.")
    querylog_days: float = Field(
        30.0, ge=0.0, description="Days a question stays in the query log; 0: never logged."
    )
    keep_versions_days: int = Field(
        14, ge=0, le=3650, description="Days the text of a superseded chunk is kept for the note "
        "pages of older answers (purged hourly by serve and watch); 0: kept until the next purge."
    )

    # --- links in citations
    note_url: str = Field(
        "", description="Template for an http link to a note, e.g. https://notes.example/{path}."
    )
    public_url: str = Field(
        "", description="Address the note pages are reached at (e.g. https://vault.tailnet.ts.net); "
        "empty: serve's own address."
    )
    link_days: int = Field(30, ge=1, le=3650, description="Days a signed note link stays valid.")

    # --- masking what leaves through a front end
    mask: bool | None = Field(
        None, description="Mask secrets and personal data: empty = bots and API yes, CLI no; "
        "true/false = everywhere.",
    )

    # --- API
    api_token: SecretStr = Field(
        SecretStr(""), description="Bearer token; required when serving beyond localhost."
    )

    # --- bots (issue: Slack and Discord). Token names are the platforms' usual ones.
    max_turns: int = Field(
        10, ge=0, le=100, description="Earlier turns of a bot thread given to the model as history."
    )
    slack_bot_token: SecretStr = Field(
        SecretStr(""), validation_alias=AliasChoices("SLACK_BOT_TOKEN", "VAULTBOT_SLACK_BOT_TOKEN"),
        description="Slack bot token (xoxb-...).",
    )
    slack_app_token: SecretStr = Field(
        SecretStr(""), validation_alias=AliasChoices("SLACK_APP_TOKEN", "VAULTBOT_SLACK_APP_TOKEN"),
        description="Slack app-level token (xapp-...) for Socket Mode.",
    )
    slack_signing_secret: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "VAULTBOT_SLACK_SIGNING_SECRET"),
        description="Verifies Slack's HTTP requests (HTTP mode).",
    )
    slack_mode: str = Field("socket", description="socket (default) or http.")
    slack_api_url: str = Field("", description="Slack Web API base URL override (tests).")
    discord_bot_token: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("DISCORD_BOT_TOKEN", "VAULTBOT_DISCORD_BOT_TOKEN"),
        description="Discord bot token.",
    )
    discord_api_url: str = Field("", description="Overrides discord.http.Route.BASE (tests).")
    discord_gateway_url: str = Field("", description="Overrides the Discord gateway URL (tests).")
    discord_guild: str = Field(
        "", description="Sync /ask to this guild only (instant, for development); empty: global."
    )
    access_file: Path | None = Field(
        None, description="YAML mapping channels, guilds and users to what they may see."
    )

    @field_validator("vault", "data_dir", "access_file", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("embedder")
    @classmethod
    def _check_embedder(cls, value: str) -> str:
        if value in {"usem3", "e5-small"} or (value.startswith("ollama:") and len(value) > 7):
            return value
        raise ValueError("must be usem3, e5-small or ollama:<model> (e.g. ollama:bge-m3)")

    @field_validator("index")
    @classmethod
    def _check_index(cls, value: str) -> str:
        if value not in {"chroma", "binary"}:
            raise ValueError("must be chroma or binary")
        return value

    @field_validator("keywords")
    @classmethod
    def _check_keywords(cls, value: str) -> str:
        if value not in {"local", "postgres"}:
            raise ValueError("must be local or postgres")
        return value

    @field_validator("slack_mode")
    @classmethod
    def _check_slack_mode(cls, value: str) -> str:
        if value not in {"socket", "http"}:
            raise ValueError("must be socket or http")
        return value

    @field_validator("llm")
    @classmethod
    def _check_llm(cls, value: str) -> str:
        if value not in {"ollama", "none"}:
            raise ValueError("must be ollama or none")
        return value

    @field_validator("llm_concurrency")
    @classmethod
    def _check_llm_concurrency(cls, value: str) -> str:
        from engine.llm.queue import parse_limits

        parse_limits(value, fast_model="fast", deep_model="deep")  # raises ValueError
        return value

    @field_validator("mask", mode="before")
    @classmethod
    def _empty_mask(cls, value: object) -> object:
        return None if isinstance(value, str) and value.strip().lower() in {"", "auto"} else value

    def mask_for(self, front_end: str) -> bool:
        """Whether `front_end` ("cli", "api", "slack", "discord") masks: VAULTBOT_MASK when set,
        else everywhere but the owner's own CLI."""
        return self.mask if self.mask is not None else front_end != "cli"

    @property
    def registry_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'registry.sqlite3'}"
