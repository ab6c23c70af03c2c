"""The message history: what a model may answer, unique call ids, well-formed pairs."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from operator import attrgetter
from typing import Any

from ..exceptions import UnexpectedModelBehavior, UserError
from ..messages import Message, ModelResponse, RetryPrompt, SystemPrompt, ToolCall, ToolReturn, UserPrompt
from ..models import Model
from ..usage import Usage

__all__ = ["check_history", "check_response", "repair_pairing", "unique_call_ids"]

_MESSAGE_TYPES = (SystemPrompt, UserPrompt, ModelResponse, ToolReturn, RetryPrompt)


def check_history(history: Any, owner: str) -> list[Message]:
    """Return `history` as a new list after checking that it holds cogent messages.

    Raises:
        UserError: If it is a string, or holds anything but cogent message objects (e.g.
            provider-style dicts).
    """
    if isinstance(history, str | bytes) or not isinstance(history, Sequence):
        raise UserError(
            f"{owner} got message_history={type(history).__qualname__}; pass a list of cogent messages, "
            "e.g. result.messages (or messages_from_json(...) for a saved history)."
        )
    for i, m in enumerate(history):
        if not isinstance(m, _MESSAGE_TYPES):
            raise UserError(
                f"{owner} got message_history[{i}] = {type(m).__qualname__}; pass cogent messages "
                "(UserPrompt, ModelResponse, ToolReturn, ...), e.g. result.messages; provider-style dicts "
                "are not accepted."
            )
    return list(history)


_CALL_TYPES = frozenset({ToolCall})
_NAME_TYPES = frozenset({str})
_ARGUMENT_TYPES = frozenset({str, dict})
_ID_TYPES = frozenset({str, type(None)})
_name, _arguments, _id = attrgetter("name"), attrgetter("arguments"), attrgetter("id")


def check_response(model: Model, response: Any) -> ModelResponse:
    """Return `response` if it is a well-formed `ModelResponse`.

    Raises:
        UnexpectedModelBehavior: Otherwise.
    """
    if isinstance(response, ModelResponse):
        text = response.text
        if (text is None or type(text) is str) and type(response.usage) is Usage:
            calls = response.tool_calls
            # Type checks of every call in C (map over attribute getters), not a Python loop.
            if not calls or (
                type(calls) is list
                and set(map(type, calls)) <= _CALL_TYPES
                and set(map(type, map(_name, calls))) <= _NAME_TYPES
                and set(map(type, map(_arguments, calls))) <= _ARGUMENT_TYPES
                and set(map(type, map(_id, calls))) <= _ID_TYPES
            ):
                return response
            problem = "returned tool calls that are not ToolCall(name: str, arguments: str | dict, id: str | None)"
        else:
            problem = "returned a ModelResponse whose text is not a str or None, or whose usage is not a Usage"
    else:
        problem = f"returned a {type(response).__qualname__} instead of a ModelResponse"
    raise UnexpectedModelBehavior(
        f"Model {getattr(model, 'name', model)!r} {problem}; fix the model so that request() returns a valid "
        "ModelResponse."
    )


def unique_call_ids(response: ModelResponse, history: Sequence[Message]) -> ModelResponse:
    """Give every call of `response` an id no call of `history` (the execution's messages so
    far) and no other call of the response has.

    Missing, empty and duplicate ids (twice in the response, or used by an earlier call of
    the history) are replaced by run-assigned ones; the history and the provider then use
    exactly the assigned id. Assigned ids (`call_<n>`) depend only on the history, so a run
    replayed from recorded responses assigns the same ones. The model's own object is never
    modified (it may be shared).
    """
    calls = response.tool_calls
    ids = [c.id for c in calls]
    seen = {c.id for m in history if isinstance(m, ModelResponse) for c in m.tool_calls}
    if all(ids) and len(set(ids)) == len(ids) and seen.isdisjoint(ids):
        return response
    fresh: list[ToolCall] = []
    for c in calls:
        if not c.id or c.id in seen:
            number = len(seen)
            while f"call_{number}" in seen:
                number += 1
            c = ToolCall(c.name, c.arguments, f"call_{number}")
        seen.add(c.id)
        fresh.append(c)
    return response.with_tool_calls(fresh)


def repair_pairing(messages: list[Message]) -> list[Message]:
    """Drop tool returns without their call and tool calls without their return."""
    returned = {m.tool_call_id for m in messages if isinstance(m, ToolReturn | RetryPrompt) and m.tool_call_id}
    called: set[str] = set()
    repaired: list[Message] = []
    for m in messages:
        if isinstance(m, ModelResponse) and m.tool_calls:
            kept = [c for c in m.tool_calls if c.id in returned]
            called.update(c.id for c in kept if c.id)
            if kept != m.tool_calls:
                if not kept and not m.text:
                    continue
                m = copy.copy(m)
                m.tool_calls = kept
        elif isinstance(m, ToolReturn | RetryPrompt) and m.tool_call_id and m.tool_call_id not in called:
            continue
        repaired.append(m)
    return repaired
