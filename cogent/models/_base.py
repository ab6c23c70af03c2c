"""The `Model` interface: requests, streamed deltas, and the model's life cycle."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from ..messages import Message, ModelResponse
from ..tools import ToolDefinition

__all__ = ["Model", "ModelRequestParameters", "ReasoningDelta", "TextDelta"]


@dataclass(kw_only=True, slots=True)
class ModelRequestParameters:
    """Everything about one model request besides the messages."""

    agent_name: str
    """The name of the agent making the request."""
    instructions: str | None = None
    """The system instructions, sent before the messages."""
    tools: list[ToolDefinition] = field(default_factory=list)
    """The tools offered in this request."""
    output_tools: list[ToolDefinition] = field(default_factory=list)
    """Tools that deliver a structured final answer (empty for text output)."""
    allow_text_output: bool = True
    """Whether a plain-text answer ends the run."""
    parallel_tool_calls: bool = True
    """Whether the model may ask for several tool calls in one response."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of streamed text."""

    text: str
    """The new text."""


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of streamed reasoning ("thinking"), never part of the answer."""

    text: str
    """The new reasoning text."""


class Model(ABC):
    """A language model the run loop can ask for responses.

    A model that opens connections (a provider's HTTP client) releases them in `aclose()`;
    `async with model:` calls it on exit. The base class holds nothing, so its `aclose()`
    does nothing. A model stays usable after `aclose()`: the next request opens what it needs.
    """

    name: str = "model"
    """The model's name, as recorded in responses and traces."""
    provider_name: str = "unknown"
    """Who serves the model, as the OpenTelemetry GenAI conventions' `gen_ai.provider.name`
    names it (`"openai"`, `"anthropic"`, ...); telemetry records it on each request's span."""

    @abstractmethod
    async def request(self, messages: list[Message], params: ModelRequestParameters) -> ModelResponse:
        """Return the model's response to `messages`.

        Args:
            messages: The message history for this request (never any run context).
            params: The tools offered, the instructions and the output mode.

        Returns:
            The response, with token usage when the model reports it.
        """

    async def request_stream(
        self, messages: list[Message], params: ModelRequestParameters
    ) -> AsyncIterator[TextDelta | ReasoningDelta | ModelResponse]:
        """Yield text (and reasoning) deltas as they arrive, then the complete response last.

        The default calls `request()` and yields its reasoning and its text as one delta each.

        Args:
            messages: As for `request()`.
            params: As for `request()`.
        """
        response = await self.request(messages, params)
        for reasoning in response.reasoning:
            if reasoning.text:
                yield ReasoningDelta(reasoning.text)
        if response.text:
            yield TextDelta(response.text)
        yield response

    async def aclose(self) -> None:  # noqa: B027 - an optional hook: most models hold nothing
        """Release what the model holds on the running event loop (HTTP clients, sockets).

        The default does nothing. Providers close the clients they created (never a client
        you passed in); the model stays usable, and a later request opens a new client.
        """

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
