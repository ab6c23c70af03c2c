"""The message history: what was said to and by the model.

A conversation is a list of `Message`s. It round-trips through JSON
(`messages_to_json` / `messages_from_json`), so it can be stored and resumed with
`agent.run(..., message_history=...)`. Nothing from the run context is ever part of it.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import Field, TypeAdapter

from ._json import json_text, parse_json
from .usage import Usage

__all__ = [
    "FinishReason",
    "Message",
    "ModelResponse",
    "Reasoning",
    "RetryPrompt",
    "SystemPrompt",
    "ToolCall",
    "ToolReturn",
    "UserPrompt",
    "messages_from_json",
    "messages_to_json",
]


@dataclass(slots=True)
class ToolCall:
    """A request from the model to call a tool.

    Positional use is allowed, as in `ToolCall("lookup_order", {"order_id": 42})`.
    """

    name: str
    """The tool's name."""
    arguments: str | dict[str, Any] = field(default_factory=dict)
    """The arguments: a JSON object as text (as providers send it) or a dict."""
    id: str | None = None
    """The provider's call id; the run assigns one when it is `None`."""

    def arguments_json(self) -> str:
        """Return the arguments as JSON text."""
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(kw_only=True, slots=True)
class SystemPrompt:
    """Instructions for the model (sent first in every request, never stored by the run)."""

    content: str
    """The instructions."""
    kind: Literal["system"] = "system"
    """Discriminator for JSON round trips."""


@dataclass(kw_only=True, slots=True)
class UserPrompt:
    """The user's input (or a delegating agent's task) for one run."""

    content: str
    """The text."""
    kind: Literal["user"] = "user"
    """Discriminator for JSON round trips."""


FinishReason: TypeAlias = Literal["stop", "length", "content_filter", "tool_call", "error"]
"""Why the model stopped, normalized across providers (the values of the OpenTelemetry GenAI
conventions' `gen_ai.response.finish_reasons`): `"length"` means the answer was cut off at the
token limit."""


@dataclass(kw_only=True, slots=True)
class Reasoning:
    """Reasoning ("thinking") a model reported next to its answer; never part of the output.

    Providers that require it (DeepSeek's thinking mode, Anthropic's extended thinking) get it
    back on the assistant message of the next request exactly as it arrived.
    """

    text: str = ""
    """The reasoning text (empty when the provider sent only redacted reasoning)."""
    signature: str | None = None
    """The provider's signature over the text, when it sends one (Anthropic thinking blocks)."""
    redacted: str | None = None
    """Encrypted reasoning the provider sent instead of text (Anthropic `redacted_thinking`)."""
    provider_field: str | None = None
    """Where the provider put it (`"reasoning_content"`, `"reasoning"`, `"thinking"`), so it is sent
    back in the same place."""
    provider_data: dict[str, Any] | None = None
    """The provider's own record of this reasoning when text and signature do not capture it
    (an OpenRouter `reasoning_details` item, a Gemini thought signature with the tool call it
    belongs to), sent back unchanged."""


@dataclass(kw_only=True, slots=True)
class ModelResponse:
    """What the model answered: text, tool calls, or both, and the tokens it took."""

    text: str | None = None
    """The text part, if any."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    """The tool calls, in the order the model made them."""
    usage: Usage = field(default_factory=Usage)
    """Tokens of this response as reported by the model (`requests` is set by the run)."""
    model_name: str | None = None
    """The name of the model that answered, when known."""
    finish_reason: FinishReason | None = None
    """Why the model stopped, when the provider says (`"length"`: cut off at the token limit)."""
    reasoning: list[Reasoning] = field(default_factory=list)
    """The model's reasoning, in the order it came; never mixed into `text`."""
    kind: Literal["response"] = "response"
    """Discriminator for JSON round trips."""

    def with_tool_calls(self, tool_calls: list[ToolCall]) -> ModelResponse:
        """Return a copy of this response with `tool_calls` instead of its own (this one is unchanged).

        Args:
            tool_calls: The calls of the copy.
        """
        # `object.__new__` + `__init__`: a quarter of `dataclasses.replace`'s cost (the run loop
        # and `ScriptedModel` copy responses on every turn).
        copy = object.__new__(ModelResponse)
        ModelResponse.__init__(
            copy,
            text=self.text,
            tool_calls=tool_calls,
            usage=self.usage,
            model_name=self.model_name,
            finish_reason=self.finish_reason,
            reasoning=self.reasoning,
        )
        return copy


@dataclass(kw_only=True, slots=True)
class ToolReturn:
    """The result of one tool call, sent back to the model."""

    tool_name: str
    """The tool that was called."""
    tool_call_id: str
    """The id of the `ToolCall` this answers."""
    content: str
    """The result as text (strings as they are, other values as JSON)."""
    kind: Literal["tool_return"] = "tool_return"
    """Discriminator for JSON round trips."""


@dataclass(kw_only=True, slots=True)
class RetryPrompt:
    """A request to the model to try again: invalid arguments, `ModelRetry`, bad output."""

    content: str
    """What was wrong, for the model."""
    tool_name: str | None = None
    """The tool concerned, or `None` for a retry of the final answer."""
    tool_call_id: str | None = None
    """The id of the `ToolCall` this answers, when it answers one."""
    kind: Literal["retry"] = "retry"
    """Discriminator for JSON round trips."""


Message: TypeAlias = Annotated[
    SystemPrompt | UserPrompt | ModelResponse | ToolReturn | RetryPrompt,
    Field(discriminator="kind"),
]
"""One entry of a message history."""


@functools.cache
def _messages_adapter() -> TypeAdapter[list[Message]]:
    """The history's validator, built on first use rather than at import (`import cogent` stays fast)."""
    return TypeAdapter(list[Message])


def messages_to_json(messages: list[Message]) -> str:
    """Serialize a message history to JSON text.

    Args:
        messages: The history, e.g. `result.messages`.

    Returns:
        JSON text that `messages_from_json` turns back into an equal list.
    """
    return json_text(messages, _messages_adapter())


def messages_from_json(data: str | bytes) -> list[Message]:
    """Parse a message history written by `messages_to_json`.

    Args:
        data: The JSON text.

    Returns:
        The messages.

    Raises:
        pydantic.ValidationError: If `data` is not a valid message history.
    """
    return parse_json(_messages_adapter(), data)
