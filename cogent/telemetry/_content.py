"""Message content in the OpenTelemetry GenAI conventions' JSON form (recorded only when
`InstrumentationSettings(include_content=True)`).

The conventions' input and output message schemas: a message is `{"role", "parts"}`, a part
is `{"type": "text", "content"}`, `{"type": "tool_call", "id", "name", "arguments"}`,
`{"type": "tool_call_response", "id", "response"}` or `{"type": "reasoning", "content"}`;
an output message also has its `finish_reason`. Span attributes hold them as JSON text.
Nothing here reads a run context: messages never contain one.
"""

from __future__ import annotations

import json
from typing import Any

from .._run.results import to_text
from ..messages import Message, ModelResponse, RetryPrompt, SystemPrompt, ToolReturn, UserPrompt

__all__ = ["input_messages", "instructions", "output_messages", "result_messages", "task_messages"]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _text(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": content}]}


def _arguments(arguments: str | dict[str, Any]) -> Any:
    """The call's arguments as an object when they are JSON text of one, else as they came."""
    if isinstance(arguments, dict):
        return arguments
    try:
        return json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments


def _response_parts(response: ModelResponse) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "reasoning", "content": r.text} for r in response.reasoning if r.text]
    if response.text:
        parts.append({"type": "text", "content": response.text})
    parts.extend(
        {"type": "tool_call", "id": c.id, "name": c.name, "arguments": _arguments(c.arguments)}
        for c in response.tool_calls
    )
    return parts


def _message(message: Message) -> dict[str, Any]:
    if isinstance(message, UserPrompt):
        return _text("user", message.content)
    if isinstance(message, SystemPrompt):
        return _text("system", message.content)
    if isinstance(message, ModelResponse):
        return {"role": "assistant", "parts": _response_parts(message)}
    if isinstance(message, ToolReturn | RetryPrompt) and message.tool_call_id is not None:
        response = {"type": "tool_call_response", "id": message.tool_call_id, "response": message.content}
        return {"role": "tool", "parts": [response]}
    return _text("user", message.content)  # a retry prompt that answers no call


def input_messages(messages: list[Message]) -> str:
    """Return `gen_ai.input.messages`: the history sent in one model request."""
    return _dumps([_message(m) for m in messages])


def output_messages(response: ModelResponse) -> str:
    """Return `gen_ai.output.messages`: one model response."""
    return _dumps(
        [{"role": "assistant", "parts": _response_parts(response), "finish_reason": response.finish_reason or "stop"}]
    )


def instructions(text: str) -> str:
    """Return `gen_ai.system_instructions`."""
    return _dumps([{"type": "text", "content": text}])


def task_messages(task: str) -> str:
    """Return an agent execution's `gen_ai.input.messages`: its task."""
    return _dumps([_text("user", task)])


def result_messages(output: Any) -> str:
    """Return an agent execution's `gen_ai.output.messages`: its output as the text a delegating model gets."""
    return _dumps([{**_text("assistant", to_text(output)), "finish_reason": "stop"}])
