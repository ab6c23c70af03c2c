"""The Anthropic Messages API wire format: cogent history in, `ModelResponse` out.

Requests: the instructions and system prompts become `system`; tool results (and retry
prompts that answer a call) become `tool_result` blocks of one user turn, as the API requires
for parallel calls; each earlier response's thinking goes back as the `thinking` (with its
signature) or `redacted_thinking` block it came in, before its text and `tool_use` blocks.

Responses, plain or streamed (`content_block_*` and `message_*` events, tool input as
`input_json_delta` fragments), become a `ModelResponse`. Nothing here does I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from anthropic.types import Message as AnthropicMessage
from anthropic.types import RawMessageStreamEvent

from .._json import utf8_safe, valid_utf8
from ..exceptions import UserError
from ..messages import (
    FinishReason,
    Message,
    ModelResponse,
    Reasoning,
    SystemPrompt,
    ToolCall,
    ToolReturn,
    UserPrompt,
)
from ..tools import ToolDefinition
from ..usage import Usage
from ._base import ReasoningDelta, TextDelta

__all__ = ["EventAssembler", "finish_reason", "map_messages", "map_tool", "parse_message"]

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_call",
    "refusal": "content_filter",
}
"""Anthropic stop reasons -> the normalized `FinishReason` (`pause_turn` has none)."""

THINKING = "thinking"
REDACTED = "redacted_thinking"


def finish_reason(raw: str | None) -> FinishReason | None:
    """Normalize an Anthropic stop reason; `None` when there is none or it has no equivalent."""
    return _FINISH_REASONS.get(raw) if raw is not None else None


def usage_of(raw: Any) -> Usage:
    """Token usage; input counts every prompt token, cached (read or written) or not."""
    if raw is None:
        return Usage()
    prompt = (
        (raw.input_tokens or 0)
        + (getattr(raw, "cache_creation_input_tokens", None) or 0)
        + (getattr(raw, "cache_read_input_tokens", None) or 0)
    )
    return Usage(input_tokens=prompt, output_tokens=raw.output_tokens or 0)


def parse_message(message: AnthropicMessage, model_name: str) -> ModelResponse:
    """The `ModelResponse` of a non-streamed Messages API answer."""
    text: list[str] = []
    calls: list[ToolCall] = []
    reasoning: list[Reasoning] = []
    for block in message.content:
        if block.type == "text":
            text.append(block.text)
        elif block.type == "thinking":
            reasoning.append(Reasoning(text=block.thinking, signature=block.signature, provider_field=THINKING))
        elif block.type == "redacted_thinking":
            reasoning.append(Reasoning(redacted=block.data, provider_field=REDACTED))
        elif block.type == "tool_use":
            calls.append(ToolCall(block.name, json.dumps(block.input), block.id or None))
    return ModelResponse(
        text="".join(text) or None,
        tool_calls=calls,
        usage=usage_of(message.usage),
        model_name=message.model or model_name,
        finish_reason=finish_reason(message.stop_reason),
        reasoning=reasoning,
    )


@dataclass(kw_only=True, slots=True)
class _Block:
    """A content block being assembled from stream events."""

    type: str
    text: str = ""
    """Text, thinking text, or the tool input's JSON fragments, concatenated."""
    signature: str | None = None
    data: str | None = None
    id: str | None = None
    name: str = ""


@dataclass(kw_only=True, slots=True)
class EventAssembler:
    """Builds a `ModelResponse` from stream events, returning the deltas to yield on the way."""

    model_name: str
    """The model name, replaced by the one the server reports."""
    raw_finish: str | None = None
    """The stop reason, once `message_delta` sent it."""
    events: int = 0
    """How many events arrived."""
    _usage: Any = None
    _output_tokens: int = 0
    _blocks: dict[int, _Block] = field(default_factory=dict)

    def add(self, event: RawMessageStreamEvent) -> list[TextDelta | ReasoningDelta]:
        """Take in one event; return the text or reasoning delta it carries."""
        self.events += 1
        if event.type == "message_start":
            self.model_name = event.message.model or self.model_name
            self._usage = event.message.usage
        elif event.type == "content_block_start":
            block = event.content_block
            new = _Block(type=block.type)
            if block.type == "tool_use":
                new.id, new.name = block.id or None, block.name
            elif block.type == "redacted_thinking":
                new.data = block.data
            elif block.type == "text" and block.text:
                new.text = block.text
            self._blocks[event.index] = new
        elif event.type == "content_block_delta":
            return self._delta(event.index, event.delta)
        elif event.type == "message_delta":
            self.raw_finish = event.delta.stop_reason or self.raw_finish
            self._output_tokens = event.usage.output_tokens or self._output_tokens
            if event.usage.input_tokens is not None:
                self._usage = event.usage
        return []

    def _delta(self, index: int, delta: Any) -> list[TextDelta | ReasoningDelta]:
        block = self._blocks.setdefault(index, _Block(type="text"))
        if delta.type == "text_delta":
            block.text += delta.text
            return [TextDelta(delta.text)] if delta.text else []
        if delta.type == "thinking_delta":
            block.text += delta.thinking
            return [ReasoningDelta(delta.thinking)] if delta.thinking else []
        if delta.type == "signature_delta":
            block.signature = (block.signature or "") + delta.signature
        elif delta.type == "input_json_delta":
            block.text += delta.partial_json
        return []

    def response(self) -> ModelResponse:
        """The complete response of the events taken in so far."""
        blocks = [b for _, b in sorted(self._blocks.items())]
        usage = usage_of(self._usage)
        return ModelResponse(
            text="".join(b.text for b in blocks if b.type == "text") or None,
            tool_calls=[ToolCall(b.name, b.text or "{}", b.id) for b in blocks if b.type == "tool_use"],
            usage=Usage(input_tokens=usage.input_tokens, output_tokens=self._output_tokens or usage.output_tokens),
            model_name=self.model_name,
            finish_reason=finish_reason(self.raw_finish),
            reasoning=[
                Reasoning(text=b.text, signature=b.signature, provider_field=THINKING)
                if b.type == "thinking"
                else Reasoning(redacted=b.data, provider_field=REDACTED)
                for b in blocks
                if b.type in (THINKING, REDACTED)
            ],
        )


def map_tool(definition: ToolDefinition) -> dict[str, Any]:
    """A tool definition as an Anthropic custom tool."""
    return {
        "name": definition.name,
        "description": definition.description,
        "input_schema": definition.parameters_json_schema,
    }


def _input(call: ToolCall) -> dict[str, Any]:
    """A tool call's arguments as the JSON object `tool_use.input` must be (`{}` if they are not one)."""
    if isinstance(call.arguments, dict):
        return call.arguments
    try:
        value = json.loads(call.arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _assistant(response: ModelResponse) -> list[dict[str, Any]]:
    """A model response as assistant content blocks: thinking first, then text, then tool uses."""
    blocks: list[dict[str, Any]] = []
    for item in response.reasoning:
        if item.provider_field == THINKING and item.signature is not None:
            blocks.append({"type": "thinking", "thinking": item.text, "signature": item.signature})
        elif item.provider_field == REDACTED and item.redacted is not None:
            blocks.append({"type": "redacted_thinking", "data": item.redacted})
    if response.text:
        blocks.append({"type": "text", "text": response.text})
    for call in response.tool_calls:
        if call.id is None:
            raise UserError(
                f"A tool call to {call.name!r} in the message history has no id, so its result cannot be "
                "matched to it; give every ToolCall in a hand-built history the id its ToolReturn answers."
            )
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call)})
    return blocks


def map_messages(messages: list[Message], instructions: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    """Map a cogent history (plus the instructions) to the `system` text and the Messages API turns
    (lone surrogates, which UTF-8 cannot encode, become U+FFFD).

    Consecutive user-side entries (tool results, retry prompts, user text) form one user turn,
    tool results first, as the API requires after parallel tool calls.

    Raises:
        UserError: If a tool call in the history has no id.
    """
    system = [instructions] if instructions else []
    turns: list[dict[str, Any]] = []

    def user(block: dict[str, Any]) -> None:
        if turns and turns[-1]["role"] == "user":
            turns[-1]["content"].append(block)
        else:
            turns.append({"role": "user", "content": [block]})

    for m in messages:
        if isinstance(m, SystemPrompt):
            system.append(m.content)
        elif isinstance(m, UserPrompt):
            user({"type": "text", "text": m.content})
        elif isinstance(m, ModelResponse):
            content = _assistant(m)
            if content:  # the API refuses an empty assistant turn
                turns.append({"role": "assistant", "content": content})
        elif isinstance(m, ToolReturn):
            user({"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content})
        elif m.tool_call_id is not None:
            user({"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content, "is_error": True})
        else:
            user({"type": "text", "text": m.content})
    # A lone surrogate anywhere would fail the request (it must be UTF-8): it becomes U+FFFD.
    return (valid_utf8("\n\n".join(system)) or None), utf8_safe(turns)
