"""Embeddings from a local Ollama server (`POST /api/embed`) through the official client."""

from __future__ import annotations

import functools
import ssl

import httpx
import numpy as np
import ollama

from engine.redact import redact_url

from .base import EmbedderError, normalize

MXBAI_QUERY = "Represent this sentence for searching relevant passages: "

# Model base name (no namespace, no `:tag`, lower case) -> (query prefix, passage prefix).
# A model matches the longest key equal to or starting its base name; models not listed
# (bge-m3, all-minilm, granite-embedding, ...) take no prefixes.
PREFIXES: dict[str, tuple[str, str]] = {
    "nomic-embed-text": ("search_query: ", "search_document: "),
    "mxbai-embed-large": (MXBAI_QUERY, ""),
    "snowflake-arctic-embed": (MXBAI_QUERY, ""),
    "snowflake-arctic-embed2": ("query: ", ""),
    "e5-small": ("query: ", "passage: "),
    "e5-base": ("query: ", "passage: "),
    "e5-large": ("query: ", "passage: "),
    "multilingual-e5": ("query: ", "passage: "),
    "bge-m3": ("", ""),
}

_PROBE_TEXT = "dimension probe"


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One certificate store for all clients (httpx builds a new one per client, ~30 ms)."""
    return httpx.create_ssl_context()


def model_base_name(model: str) -> str:
    """`jeffh/intfloat-multilingual-e5-large:f16` -> `multilingual-e5-large`."""
    base = model.strip().rsplit("/", 1)[-1].split(":", 1)[0].lower()
    return base.removeprefix("intfloat-")


def prefixes_for(model: str) -> tuple[str, str]:
    """(query prefix, passage prefix) for an Ollama embedding model name."""
    base = model_base_name(model)
    best = ""
    for key in PREFIXES:
        if (base == key or base.startswith(key)) and len(key) > len(best):
            best = key
    return PREFIXES[best] if best else ("", "")


class OllamaEmbedder:
    """The Embedder protocol over Ollama. `dim` is learnt from the first answer (or a probe)."""

    def __init__(
        self,
        model: str,
        host: str = "http://127.0.0.1:11434",
        batch_size: int = 64,
        timeout: float = 60.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.model = model
        self.host = host
        self.batch_size = batch_size
        self.timeout = timeout
        self.name = f"ollama:{model}"
        self.query_prefix, self.passage_prefix = prefixes_for(model)
        self._dim: int | None = None
        self._client: ollama.Client | None = None

    def __repr__(self) -> str:
        return f"OllamaEmbedder(model={self.model!r}, host={redact_url(self.host)!r})"

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._embed([_PROBE_TEXT])
        assert self._dim is not None
        return self._dim

    def embed_passages(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        prefixed = [self.passage_prefix + t for t in texts]
        parts = [
            self._embed(prefixed[i : i + self.batch_size])
            for i in range(0, len(prefixed), self.batch_size)
        ]
        return np.concatenate(parts, axis=0)

    def embed_query(self, text: str) -> np.ndarray:
        return self._embed([self.query_prefix + text])[0]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # ---- internals

    def _get_client(self) -> ollama.Client:
        if self._client is None:
            self._client = ollama.Client(
                host=self.host, timeout=self.timeout, verify=_ssl_context()
            )
        return self._client

    def _embed(self, texts: list[str]) -> np.ndarray:
        try:
            response = self._get_client().embed(model=self.model, input=texts)
        except ollama.ResponseError as exc:
            raise self._response_error(exc) from exc
        except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise EmbedderError(
                f"Ollama is not reachable at {redact_url(self.host)}: start it with `ollama serve` "
                f"(and check the Ollama host setting)"
            ) from exc
        except httpx.TimeoutException as exc:
            raise EmbedderError(
                f"Ollama at {redact_url(self.host)} did not answer within {self.timeout:g} s while embedding "
                f"with {self.model}: check `ollama ps`, or raise the timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise EmbedderError(
                f"the connection to Ollama at {redact_url(self.host)} failed while embedding with "
                f"{self.model} ({type(exc).__name__}): check that `ollama serve` is running"
            ) from exc
        vectors = np.asarray(response.embeddings, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts) or vectors.shape[1] == 0:
            raise EmbedderError(
                f"Ollama returned {vectors.shape[0] if vectors.ndim else 0} embeddings for "
                f"{len(texts)} texts from {self.model}: is it an embedding model? "
                f"Try `ollama show {self.model}`"
            )
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise EmbedderError(
                f"{self.model} returned {vectors.shape[1]}-dimensional vectors, expected "
                f"{self._dim}: the model changed under the same name; re-index the vault"
            )
        return normalize(vectors)

    def _response_error(self, exc: ollama.ResponseError) -> EmbedderError:
        if exc.status_code == 404:
            return EmbedderError(
                f"the embedding model {self.model} is not available in Ollama at {redact_url(self.host)}: "
                f"run `ollama pull {self.model}`"
            )
        return EmbedderError(
            f"Ollama could not embed with {self.model} (HTTP {exc.status_code}): {exc.error}"
        )
