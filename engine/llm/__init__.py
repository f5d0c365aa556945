"""Answer generation: the Generator interface, its errors, model routing and the Ollama backend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import (
    GenerationOptions,
    GenerationStats,
    Generator,
    LLMError,
    LLMTimeout,
    LLMUnavailable,
    Message,
    ModelMissing,
)
from .routing import choose_model, routing_reason

if TYPE_CHECKING:
    from .ollama import OllamaGenerator


def __getattr__(name: str) -> Any:
    # The Ollama client (and httpx) load on first use: settings validation and the CLI's
    # path through a running serve import this package without generating anything.
    if name == "OllamaGenerator":
        from .ollama import OllamaGenerator

        return OllamaGenerator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "GenerationOptions",
    "GenerationStats",
    "Generator",
    "LLMError",
    "LLMTimeout",
    "LLMUnavailable",
    "Message",
    "ModelMissing",
    "OllamaGenerator",
    "choose_model",
    "routing_reason",
]
