"""Streaming answers from a local Ollama server through the official async client."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import ollama

from engine.redact import redact_url

from .base import (
    GenerationOptions,
    GenerationStats,
    LLMError,
    LLMTimeout,
    LLMUnavailable,
    Message,
    ModelMissing,
)
from .routing import choose_model


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx builds a new certificate store for every client (~30 ms); the clients made per
    call here share one instead."""
    return httpx.create_ssl_context()


def _tagged(name: str) -> str:
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


class OllamaGenerator:
    """Streams chat answers from Ollama (`POST /api/chat`, NDJSON).

    Two timeouts guard the stream, each around one read of the next chunk: `first_token_timeout`
    until the first chunk arrives (Ollama sends nothing, not even headers, while it loads the
    model and reads the prompt) and `idle_timeout` between later chunks (a stalled runner).
    `connect_timeout` bounds opening the connection."""

    name = "ollama"

    def __init__(
        self,
        host: str = "http://127.0.0.1:11434",
        *,
        fast_model: str = "qwen2.5:7b-instruct",
        deep_model: str = "qwen2.5:32b-instruct",
        num_ctx: int = 16384,
        num_thread: int = 8,
        use_mlock: bool = True,
        num_gpu: int = 999,
        keep_alive: str | float = "30m",
        temperature: float = 0.2,
        connect_timeout: float = 5.0,
        first_token_timeout: float = 120.0,
        idle_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.fast_model = fast_model
        self.deep_model = deep_model
        self.options = GenerationOptions(
            num_ctx=num_ctx,
            num_thread=num_thread,
            use_mlock=use_mlock,
            num_gpu=num_gpu,
            temperature=temperature,
            keep_alive=keep_alive,
        )
        self.connect_timeout = connect_timeout
        self.first_token_timeout = first_token_timeout
        self.idle_timeout = idle_timeout
        # Stats of the most recent finished (or failed) call; with concurrent calls on one
        # generator this is whichever finished last.
        self.last_stats: GenerationStats | None = None

    def __repr__(self) -> str:
        return f"OllamaGenerator(host={redact_url(self.host)!r}, fast={self.fast_model!r}, deep={self.deep_model!r})"

    @property
    def model(self) -> str:
        return self.fast_model

    def choose_model(
        self, question: str, *, deep: bool = False, context_tokens: int | None = None
    ) -> str:
        return choose_model(
            question,
            deep=deep,
            fast_model=self.fast_model,
            deep_model=self.deep_model,
            context_tokens=context_tokens,
        )

    def _client(self) -> ollama.AsyncClient:
        # No read timeout in httpx: the per-chunk asyncio timeouts below own that decision.
        timeout = httpx.Timeout(None, connect=self.connect_timeout)
        return ollama.AsyncClient(host=self.host, timeout=timeout, verify=_ssl_context())

    async def stream(
        self, messages: list[Message], *, model: str | None = None
    ) -> AsyncIterator[str]:
        """Yield the answer's text pieces as Ollama produces them."""
        model = model or self.fast_model
        stats = GenerationStats(model=model)
        self.last_stats = stats
        started = time.monotonic()
        client = self._client()
        chunks: AsyncIterator[Any] | None = None
        try:
            chunks = await client.chat(
                model=model,
                messages=[m.to_dict() if isinstance(m, Message) else dict(m) for m in messages],
                stream=True,
                options=self.options.ollama_options(),
                keep_alive=self.options.keep_alive,
            )
            received_any = False
            while True:
                limit = self.idle_timeout if received_any else self.first_token_timeout
                try:
                    async with asyncio.timeout(limit):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    raise LLMError(
                        f"Ollama closed the answer from {model} before it was finished: try again",
                        detail="stream ended without a done chunk",
                    ) from None
                except TimeoutError:
                    raise LLMTimeout(model, limit, stalled=received_any) from None
                except (ValueError, AttributeError, TypeError) as exc:
                    # The client json-decodes each line (JSONDecodeError, pydantic's
                    # ValidationError are ValueErrors; a JSON non-object fails on `.get`): a line
                    # cut off mid-way, or a 200 that is not Ollama's NDJSON at all.
                    raise _unreadable(model, received_any, exc) from exc
                if not received_any:
                    received_any = True
                    stats.first_token_seconds = time.monotonic() - started
                piece = chunk.message.content if chunk.message is not None else None
                if piece:
                    yield piece
                if chunk.done:
                    _record_done(stats, chunk)
                    break
        except LLMError:
            raise
        except ollama.ResponseError as exc:
            raise self._map_response_error(exc, model) from exc
        except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise LLMUnavailable(self.host, detail=type(exc).__name__) from exc
        except httpx.TimeoutException as exc:
            raise LLMTimeout(model, self.connect_timeout, detail=type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise LLMError(
                f"the connection to Ollama broke off while {model} was answering: try again",
                detail=f"{type(exc).__name__}: {exc}",
            ) from exc
        finally:
            stats.wall_seconds = time.monotonic() - started
            if chunks is not None:
                aclose = getattr(chunks, "aclose", None)
                if aclose is not None:
                    # The stream may already be broken; closing it is best effort.
                    with contextlib.suppress(Exception):
                        await aclose()
            await client.close()

    def _map_response_error(self, exc: ollama.ResponseError, model: str) -> LLMError:
        if exc.status_code == 404:
            return ModelMissing(model, detail=exc.error)
        if exc.status_code == -1:  # an {"error": ...} line inside a 200 stream
            return LLMError(
                f"Ollama failed while {model} was answering: {exc.error}", detail="error in stream"
            )
        return LLMError(
            f"Ollama refused the request for {model} (HTTP {exc.status_code}): {exc.error}",
            detail=f"status {exc.status_code}",
        )

    async def complete(self, messages: list[Message], *, model: str | None = None) -> str:
        """The whole answer at once (the stream joined)."""
        return "".join([piece async for piece in self.stream(messages, model=model)])

    async def list_models(self) -> list[str]:
        """Names of the models the server has pulled."""
        client = ollama.AsyncClient(
            host=self.host,
            timeout=httpx.Timeout(self.connect_timeout * 2, connect=self.connect_timeout),
            verify=_ssl_context(),
        )
        try:
            response = await client.list()
        except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise LLMUnavailable(self.host, detail=type(exc).__name__) from exc
        except ollama.ResponseError as exc:
            raise LLMError(
                f"Ollama could not list its models (HTTP {exc.status_code}): {exc.error}"
            ) from exc
        except httpx.HTTPError as exc:
            raise LLMUnavailable(self.host, detail=f"{type(exc).__name__}: {exc}") from exc
        finally:
            await client.close()
        return [m.model for m in response.models if m.model]

    async def health(self) -> dict[str, Any]:
        """`{"reachable", "host", "models", "missing", "error"}`; never raises for a down server.
        `missing` lists the configured fast/deep models the server has not pulled."""
        try:
            models = await self.list_models()
        except LLMError as exc:
            return {
                "reachable": False,
                "host": redact_url(self.host),
                "models": [],
                "missing": [],
                "error": exc.user_message,
            }
        have = {_tagged(m).lower() for m in models}
        wanted = dict.fromkeys([self.fast_model, self.deep_model])
        missing = [m for m in wanted if _tagged(m).lower() not in have]
        error = None
        if missing:
            error = "; ".join(ModelMissing(m).user_message for m in missing)
        return {
            "reachable": True,
            "host": redact_url(self.host),
            "models": models,
            "missing": missing,
            "error": error,
        }


def _unreadable(model: str, received_any: bool, exc: Exception) -> LLMError:
    detail = f"{type(exc).__name__}: {str(exc)[:200]}"
    if received_any:
        return LLMError(
            f"Ollama's answer from {model} was cut off mid-line: try again", detail=detail
        )
    return LLMError(
        f"Ollama's answer from {model} was not valid JSON: check that VAULTBOT_OLLAMA_URL "
        f"points at Ollama",
        detail=detail,
    )


def _record_done(stats: GenerationStats, chunk: Any) -> None:
    stats.done_reason = chunk.done_reason
    stats.eval_count = chunk.eval_count
    stats.prompt_eval_count = chunk.prompt_eval_count
    stats.total_duration = chunk.total_duration
    stats.load_duration = chunk.load_duration
    stats.prompt_eval_duration = chunk.prompt_eval_duration
    stats.eval_duration = chunk.eval_duration
