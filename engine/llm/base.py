"""The interface answer generation goes through, and the errors it raises."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from engine.redact import redact_text, redact_url

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class GenerationOptions:
    """Per-request model settings, named as in Ollama's `options` (docs/api.md, Modelfile).

    `num_gpu` is the number of layers to offload to the GPU (999 = all of them); `use_mlock`
    keeps the weights locked in RAM; `keep_alive` is how long the model stays loaded after a
    request (a Go duration such as "30m", or seconds; negative = forever)."""

    num_ctx: int = 16384
    num_thread: int = 8
    use_mlock: bool = True
    num_gpu: int = 999
    temperature: float = 0.2
    keep_alive: str | float = "30m"

    def ollama_options(self) -> dict[str, Any]:
        options = asdict(self)
        options.pop("keep_alive")
        return options


@dataclass
class GenerationStats:
    """What the last call cost, for the query log. Durations from Ollama are nanoseconds."""

    model: str
    done_reason: str | None = None
    eval_count: int | None = None
    prompt_eval_count: int | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_duration: int | None = None
    eval_duration: int | None = None
    first_token_seconds: float | None = None  # measured here, request start -> first piece
    wall_seconds: float | None = None  # measured here, request start -> end of stream

    @property
    def tokens_per_second(self) -> float | None:
        if not self.eval_count or not self.eval_duration:
            return None
        return self.eval_count / (self.eval_duration / 1e9)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tokens_per_second"] = self.tokens_per_second
        return data


class LLMError(Exception):
    """Generation failed. `user_message` is short, safe to show, and names the fix."""

    def __init__(self, user_message: str, *, detail: str | None = None) -> None:
        # Shown to every API and chat user, and logged: never with a URL's credentials.
        user_message = redact_text(user_message)
        detail = redact_text(detail) if detail is not None else None
        super().__init__(user_message if detail is None else f"{user_message} [{detail}]")
        self.user_message = user_message
        self.detail = detail


class LLMUnavailable(LLMError):
    """The server cannot be reached."""

    def __init__(self, host: str, *, detail: str | None = None) -> None:
        self.host = redact_url(host)
        super().__init__(
            f"Ollama is not reachable at {self.host}: start it with `ollama serve`", detail=detail
        )


class ModelMissing(LLMError):
    """The server runs but does not have the model."""

    def __init__(self, model: str, *, detail: str | None = None) -> None:
        super().__init__(f"model {model} is not pulled: run `ollama pull {model}`", detail=detail)
        self.model = model


class LLMTimeout(LLMError):
    """No first piece within the first-token timeout, or a stall longer than the idle one."""

    def __init__(
        self, model: str, seconds: float, *, stalled: bool = False, detail: str | None = None
    ) -> None:
        if stalled:
            message = (
                f"{model} stopped answering for {seconds:g} s: try again, "
                f"or check the server with `ollama ps`"
            )
        else:
            message = (
                f"{model} did not answer within {seconds:g} s (loading a large model can be slow): "
                f"try again, or check the server with `ollama ps`"
            )
        super().__init__(message, detail=detail)
        self.model = model
        self.seconds = seconds
        self.stalled = stalled


@runtime_checkable
class Generator(Protocol):
    """Streams an answer as text pieces; joining the pieces gives the whole answer."""

    name: str

    @property
    def model(self) -> str:
        """The model used when `stream` is not told otherwise."""
        ...

    def stream(self, messages: list[Message], *, model: str | None = None) -> AsyncIterator[str]:
        """`async for piece in gen.stream(messages): ...`; raises LLMError subclasses."""
        ...
