"""Answer generation: the Generator interface, its errors, model routing and the Ollama backend."""

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
from .ollama import OllamaGenerator
from .routing import choose_model, routing_reason

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
