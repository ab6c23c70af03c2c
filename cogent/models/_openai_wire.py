"""The Chat Completions wire format as OpenAI-compatible servers speak it.

Requests: the cogent history becomes Chat Completions messages, with each model response's
reasoning sent back in the field it came in (DeepSeek's `reasoning_content` must come back
after tool calls, or the next request is refused).

Responses, plain or streamed, become a `ModelResponse`, tolerating what real servers send:
empty tool-call ids (Gemini), tool-call fragments without an index, reasoning as
`reasoning_content` (DeepSeek, vLLM), `reasoning` (Cerebras, Groq, OpenRouter, Ollama) or
`reasoning_details` items (OpenRouter), Gemini thought signatures in `extra_content`, and
usage under `x_groq` (Groq). Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionMessage,
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionToolUnionParam,
)
from openai.types.completion_usage import CompletionUsage

from .._json import utf8_safe
from ..exceptions import UserError
from ..messages import (
    FinishReason,
    Message,
    ModelResponse,
    Reasoning,
    RetryPrompt,
    SystemPrompt,
    ToolCall,
    ToolReturn,
    UserPrompt,
)
from ..tools import ToolDefinition
from ..usage import Usage
from ._base import ReasoningDelta, TextDelta

__all__ = [
    "ChunkAssembler",
    "error_details",
    "finish_reason",
    "map_messages",
    "map_tool",
    "parse_message",
    "parse_usage",
]

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "eos": "stop",
    "eos_token": "stop",
    "stop_sequence": "stop",
    "end_turn": "stop",
    "length": "length",
    "max_tokens": "length",
    "model_length": "length",
    "content_filter": "content_filter",
    "safety": "content_filter",
    "refusal": "content_filter",
    "tool_calls": "tool_call",
    "function_call": "tool_call",
    "tool_use": "tool_call",
    "error": "error",
}
"""Finish reasons as servers spell them -> the normalized `FinishReason`."""

_TEXT_FIELDS = ("reasoning_content", "reasoning")
"""Message fields that carry reasoning as plain text, in order of preference."""

_DETAILS = "reasoning_details"
_EXTRA = "extra_content"


def finish_reason(raw: str | None) -> FinishReason | None:
    """Normalize a server's finish reason; `None` when it sent none or one we do not know."""
    return _FINISH_REASONS.get(raw.lower()) if isinstance(raw, str) else None


def _extras(obj: Any) -> dict[str, Any]:
    """The fields a server sent beyond the OpenAI schema (the SDK keeps them)."""
    extra = getattr(obj, "model_extra", None)
    return extra if isinstance(extra, dict) else {}


def error_details(body: object) -> tuple[str | None, str | None, str | None]:
    """Return `(message, code, type)` of an error body as servers send it.

    Accepts `{"message", "code", "type"}` (OpenAI, vLLM, OpenRouter), the same wrapped in
    `{"error": ...}`, and `{"error": "text", "error_type": ...}` (Hugging Face TGI).
    """
    if isinstance(body, str):
        return body, None, None
    if not isinstance(body, dict):
        return None, None, None
    inner = body.get("error")
    if isinstance(inner, dict):
        body = inner
    elif isinstance(inner, str):
        kind = body.get("error_type")
        return inner, None, kind if isinstance(kind, str) else None
    message, code, kind = body.get("message"), body.get("code"), body.get("type")
    return (
        message if isinstance(message, str) else None,
        str(code) if code is not None else None,
        kind if isinstance(kind, str) else None,
    )


def parse_usage(usage: CompletionUsage | None, extra_holder: Any = None) -> Usage:
    """Token usage from `usage`, or from Groq's `x_groq.usage` when only that was sent."""
    if usage is None:
        groq = _extras(extra_holder).get("x_groq")
        raw = groq.get("usage") if isinstance(groq, dict) else None
        if not isinstance(raw, dict):
            return Usage()
        return Usage(input_tokens=raw.get("prompt_tokens") or 0, output_tokens=raw.get("completion_tokens") or 0)
    return Usage(input_tokens=usage.prompt_tokens or 0, output_tokens=usage.completion_tokens or 0)


def _detail(item: dict[str, Any]) -> Reasoning:
    """One OpenRouter `reasoning_details` item as a `Reasoning` (the item kept to send back)."""
    kind = item.get("type")
    text = item.get("summary") if kind == "reasoning.summary" else item.get("text")
    data = item.get("data") if kind == "reasoning.encrypted" else None
    signature = item.get("signature")
    return Reasoning(
        text=text if isinstance(text, str) else "",
        signature=signature if isinstance(signature, str) else None,
        redacted=data if isinstance(data, str) else None,
        provider_field=_DETAILS,
        provider_data=item,
    )


def _signature(extra_content: object, tool_call_index: int | None) -> Reasoning:
    """A Gemini thought signature (`extra_content.google.thought_signature`) as a `Reasoning`."""
    google = extra_content.get("google") if isinstance(extra_content, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return Reasoning(
        signature=signature if isinstance(signature, str) else None,
        provider_field=_EXTRA,
        provider_data={"tool_call_index": tool_call_index, _EXTRA: extra_content},
    )


def _message_reasoning(extra: dict[str, Any]) -> list[Reasoning]:
    """The reasoning of a whole message: `reasoning_details` items, else the first text field."""
    details = extra.get(_DETAILS)
    if isinstance(details, list) and details:
        return [_detail(item) for item in details if isinstance(item, dict)]
    for name in _TEXT_FIELDS:
        value = extra.get(name)
        if isinstance(value, str):  # kept even when empty: DeepSeek wants it back after tool calls
            return [Reasoning(text=value, provider_field=name)]
    return []


def parse_message(
    message: ChatCompletionMessage, raw_finish: str | None, usage: Usage, model_name: str
) -> ModelResponse:
    """The `ModelResponse` of one non-streamed choice."""
    extra = _extras(message)
    reasoning = _message_reasoning(extra)
    if extra.get(_EXTRA) is not None:
        reasoning.append(_signature(extra[_EXTRA], None))
    calls: list[ToolCall] = []
    for call in message.tool_calls or ():
        if not isinstance(call, ChatCompletionMessageFunctionToolCall):
            continue
        call_extra = _extras(call).get(_EXTRA)
        if call_extra is not None:
            reasoning.append(_signature(call_extra, len(calls)))
        calls.append(ToolCall(call.function.name, call.function.arguments or "{}", call.id or None))
    return ModelResponse(
        text=message.content or message.refusal or None,
        tool_calls=calls,
        usage=usage,
        model_name=model_name,
        finish_reason=finish_reason(raw_finish),
        reasoning=reasoning,
    )


@dataclass(kw_only=True, slots=True)
class _StreamedCall:
    """A tool call being assembled from streamed fragments."""

    id: str | None = None
    """The call id (the first non-empty one sent)."""
    name: str = ""
    """The tool name (pieces concatenated; a repeated full name is not doubled)."""
    arguments: str = ""
    """The JSON arguments text, concatenated."""
    extra_content: object = None
    """Gemini's `extra_content` (its thought signature), when sent."""


@dataclass(kw_only=True, slots=True)
class ChunkAssembler:
    """Builds a `ModelResponse` from streamed chunks, returning the deltas to yield on the way."""

    model_name: str
    """The model name, replaced by the one the server reports."""
    chunks: int = 0
    """How many chunks arrived."""
    raw_finish: str | None = None
    """The last finish reason the server sent, as sent."""
    usage: Usage = field(default_factory=Usage)
    """The usage (sent in the last chunk when `include_usage` was requested)."""
    _text: list[str] = field(default_factory=list)
    _calls: dict[int, _StreamedCall] = field(default_factory=dict)
    _fields: dict[str, list[str]] = field(default_factory=dict)
    _details: dict[int, dict[str, Any]] = field(default_factory=dict)
    _extra_content: object = None

    def add(self, chunk: ChatCompletionChunk) -> list[TextDelta | ReasoningDelta]:
        """Take in one chunk; return its reasoning and text deltas, in that order."""
        self.chunks += 1
        self.model_name = chunk.model or self.model_name
        if chunk.usage is not None or "x_groq" in _extras(chunk):
            usage = parse_usage(chunk.usage, chunk)
            if usage != Usage():
                self.usage = usage
        deltas: list[TextDelta | ReasoningDelta] = []
        for choice in chunk.choices or ():
            if choice.index not in (0, None):
                continue
            self.raw_finish = choice.finish_reason or self.raw_finish
            delta = choice.delta
            if delta is None:
                continue
            extra = _extras(delta)
            piece = self._add_reasoning(extra)
            if piece:
                deltas.append(ReasoningDelta(piece))
            if extra.get(_EXTRA) is not None:
                self._extra_content = extra[_EXTRA]
            for fragment in delta.tool_calls or ():
                self._add_fragment(fragment)
            if delta.content:
                self._text.append(delta.content)
                deltas.append(TextDelta(delta.content))
        return deltas

    def _add_reasoning(self, extra: dict[str, Any]) -> str:
        """Record a chunk's reasoning pieces; return the text to show (one field's, not each)."""
        shown: str | None = None
        details = extra.get(_DETAILS)
        if isinstance(details, list):
            for item in details:
                if not isinstance(item, dict):
                    continue
                merged = self._details.setdefault(item.get("index", 0), {})
                for key, value in item.items():
                    if key in ("text", "summary", "data") and isinstance(value, str):
                        merged[key] = merged.get(key, "") + value
                    elif value is not None:
                        merged[key] = value
                piece = item.get("text") or item.get("summary")
                if isinstance(piece, str):
                    shown = (shown or "") + piece
        for name in _TEXT_FIELDS:
            value = extra.get(name)
            if isinstance(value, str):
                self._fields.setdefault(name, []).append(value)
                shown = value if shown is None else shown
        return shown or ""

    def _add_fragment(self, fragment: Any) -> None:
        """Merge one tool-call fragment (by index; a fragment without one and with a name starts a call)."""
        function = fragment.function
        name = (function.name if function is not None else None) or ""
        index = fragment.index
        if not isinstance(index, int):
            last = max(self._calls, default=-1)
            index = last + 1 if (name or fragment.id) or last < 0 else last
        call = self._calls.setdefault(index, _StreamedCall())
        call.id = call.id or fragment.id or None
        if name and name != call.name:
            call.name += name
        if function is not None and function.arguments:
            call.arguments += function.arguments
        extra_content = _extras(fragment).get(_EXTRA)
        if extra_content is not None:
            call.extra_content = extra_content

    def response(self) -> ModelResponse:
        """The complete response of the chunks taken in so far."""
        if self._details:
            reasoning = [_detail(item) for _, item in sorted(self._details.items())]
        else:
            present = [name for name in _TEXT_FIELDS if name in self._fields]
            reasoning = [Reasoning(text="".join(self._fields[n]), provider_field=n) for n in present[:1]]
        if self._extra_content is not None:
            reasoning.append(_signature(self._extra_content, None))
        calls = [call for _, call in sorted(self._calls.items())]
        reasoning += [_signature(c.extra_content, i) for i, c in enumerate(calls) if c.extra_content is not None]
        return ModelResponse(
            text="".join(self._text) or None,
            tool_calls=[ToolCall(c.name, c.arguments or "{}", c.id) for c in calls],
            usage=self.usage,
            model_name=self.model_name,
            finish_reason=finish_reason(self.raw_finish),
            reasoning=reasoning,
        )


def map_tool(definition: ToolDefinition) -> ChatCompletionToolUnionParam:
    """A tool definition as a Chat Completions function tool."""
    return {
        "type": "function",
        "function": {
            "name": definition.name,
            "description": definition.description,
            "parameters": definition.parameters_json_schema,
        },
    }


def _assistant(response: ModelResponse, send_reasoning: bool) -> dict[str, Any]:
    """A model response as an assistant message, with its reasoning where it came from."""
    calls: list[dict[str, Any]] = []
    for call in response.tool_calls:
        if call.id is None:
            raise UserError(
                f"A tool call to {call.name!r} in the message history has no id, so its result cannot be "
                "matched to it; give every ToolCall in a hand-built history the id its ToolReturn answers."
            )
        function = {"name": call.name, "arguments": call.arguments_json()}
        calls.append({"id": call.id, "type": "function", "function": function})
    message: dict[str, Any] = {"role": "assistant", "content": response.text if calls else response.text or ""}
    if calls:
        message["tool_calls"] = calls
    if not send_reasoning:
        return message
    for item in response.reasoning:
        where = item.provider_field
        if where in _TEXT_FIELDS:
            message[where] = message.get(where, "") + item.text
        elif where == _DETAILS and item.provider_data is not None:
            message.setdefault(_DETAILS, []).append(item.provider_data)
        elif where == _EXTRA and item.provider_data is not None:
            index = item.provider_data.get("tool_call_index")
            if index is None:
                message[_EXTRA] = item.provider_data.get(_EXTRA)
            elif isinstance(index, int) and 0 <= index < len(calls):
                calls[index][_EXTRA] = item.provider_data.get(_EXTRA)
    return message


def map_messages(messages: list[Message], instructions: str | None, *, send_reasoning: bool) -> list[dict[str, Any]]:
    """Map a cogent history (plus the instructions) to Chat Completions messages (lone
    surrogates, which UTF-8 cannot encode, become U+FFFD).

    Raises:
        UserError: If a tool call in the history has no id.
    """
    mapped: list[dict[str, Any]] = []
    if instructions:
        mapped.append({"role": "system", "content": instructions})
    for m in messages:
        if isinstance(m, SystemPrompt):
            mapped.append({"role": "system", "content": m.content})
        elif isinstance(m, UserPrompt):
            mapped.append({"role": "user", "content": m.content})
        elif isinstance(m, ModelResponse):
            mapped.append(_assistant(m, send_reasoning))
        elif isinstance(m, ToolReturn | RetryPrompt) and m.tool_call_id is not None:
            mapped.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        else:
            mapped.append({"role": "user", "content": m.content})
    return utf8_safe(mapped)  # type: ignore[no-any-return]  # a lone surrogate anywhere would fail the request
