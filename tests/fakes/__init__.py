"""Stand-ins for outside services, speaking their real wire protocols over real sockets."""

from .ollama_server import (
    FakeModel,
    FakeOllama,
    RecordedRequest,
    fake_embedding,
    fake_ollama,
    unused_url,
)

__all__ = [
    "FakeModel",
    "FakeOllama",
    "RecordedRequest",
    "fake_embedding",
    "fake_ollama",
    "unused_url",
]
