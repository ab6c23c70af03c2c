"""The `Model` interface and model-string resolution."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from ..exceptions import UserError
from ..messages import Message, ModelResponse
from ..tools import ToolDefinition

__all__ = ["Model", "ModelRequestParameters", "ReasoningDelta", "TextDelta", "infer_model"]


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
    """A language model the run loop can ask for responses."""

    name: str = "model"
    """The model's name, as recorded in responses and traces."""

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

        The default calls `request()` and yields its text as one delta.

        Args:
            messages: As for `request()`.
            params: As for `request()`.
        """
        response = await self.request(messages, params)
        if response.text:
            yield TextDelta(response.text)
        yield response


def infer_model(model: Model | str) -> Model:
    """Return `model`, or the model a model string names.

    `"test"` gives a `TestModel`; `"openai:<name>"` an `OpenAIModel` configured from
    `OPENAI_API_KEY` / `OPENAI_BASE_URL` as the `openai` SDK reads them.

    Args:
        model: A `Model` or a model string.

    Raises:
        UserError: If the string names no known provider, or `OPENAI_API_KEY` is not set
            for an `"openai:..."` model.
        ImportError: If `"openai:..."` is used without the `openai` extra installed.
    """
    if isinstance(model, Model):
        return model
    if model == "test":
        from ._offline import TestModel

        return TestModel()
    provider, _, name = model.partition(":")
    if provider == "openai" and name:
        from .openai import OpenAIModel  # type: ignore[import-not-found, unused-ignore]

        model_: Model = OpenAIModel(name)
        return model_
    raise UserError(
        f"Unknown model {model!r}; pass a Model instance, 'test', or 'openai:<model name>' (e.g. 'openai:gpt-4o-mini')."
    )
