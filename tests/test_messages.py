"""Message histories round-trip through JSON and resume a conversation."""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest

from cogent import Agent, FunctionModel, ModelRetry, ToolCall, Usage, tool
from cogent.messages import (
    Message,
    ModelResponse,
    RetryPrompt,
    SystemPrompt,
    ToolReturn,
    UserPrompt,
    messages_from_json,
    messages_to_json,
)
from cogent.models import ModelRequestParameters

pytestmark = pytest.mark.anyio


def make_agent(requests: list[list[Message]]) -> Agent:
    """An agent that retries once, calls two tools, then answers (at once for later prompts); it records requests."""
    attempts: list[int] = []

    @tool
    def lookup(order_id: int) -> dict[str, Any]:
        """Look up an order."""
        attempts.append(order_id)
        if len(attempts) == 1:
            raise ModelRetry("Order ids start at 100.")
        return {"order_id": order_id, "status": "shipped", "items": ["lamp", "cable"]}

    @tool
    def note(text: str) -> str:
        """Write a note."""
        return f"noted: {text}"

    def respond(messages: list[Message], info: ModelRequestParameters) -> ModelResponse:
        requests.append(list(messages))
        last = messages[-1]
        prompts = [m.content for m in messages if isinstance(m, UserPrompt)]
        usage = Usage(input_tokens=len(messages), output_tokens=2)
        if isinstance(last, UserPrompt) and len(prompts) == 1:
            return ModelResponse(
                text="Let me look.", tool_calls=[ToolCall("lookup", {"order_id": 1}, "call-1")], usage=usage
            )
        if isinstance(last, RetryPrompt):
            return ModelResponse(
                tool_calls=[
                    ToolCall("lookup", '{"order_id": 101}', "call-2"),
                    ToolCall("note", {"text": "ünïcode ✓"}, "call-3"),
                ],
                usage=usage,
            )
        return ModelResponse(text=f"Done with {len(prompts)} question(s).", usage=usage, model_name="fn")

    return Agent(name="support", model=FunctionModel(respond), tools=[lookup, note])


async def test_whole_conversation_round_trips_through_json() -> None:
    """Every message kind of a real run survives `messages_to_json` / `messages_from_json` unchanged."""
    agent = make_agent([])
    result = await agent.run("Where is my order?")
    kinds = {type(m) for m in result.messages}
    assert kinds == {UserPrompt, ModelResponse, RetryPrompt, ToolReturn}
    history: list[Message] = [SystemPrompt(content="Stored system note."), *result.messages]
    text = messages_to_json(history)
    parsed = messages_from_json(text)
    assert parsed == history
    assert [type(m) for m in parsed] == [type(m) for m in history]
    assert messages_to_json(parsed) == text
    assert json.loads(text)[0] == {"content": "Stored system note.", "kind": "system"}
    tool_return = next(m for m in parsed if isinstance(m, ToolReturn) and m.tool_name == "note")
    assert tool_return.content == "noted: ünïcode ✓"


async def test_resume_a_run_from_parsed_history() -> None:
    """A history parsed from JSON continues the conversation exactly as the in-memory one would."""
    requests: list[list[Message]] = []
    agent = make_agent(requests)
    first = await agent.run("Where is my order?")
    stored = messages_to_json(first.messages)

    from_json = await agent.run("Thanks, anything else?", message_history=messages_from_json(stored))
    resumed_request = requests[-1]
    in_memory = await agent.run("Thanks, anything else?", message_history=first.messages)
    assert from_json.output == in_memory.output == "Done with 2 question(s)."
    assert resumed_request[: len(first.messages)] == first.messages
    assert from_json.messages == in_memory.messages
    assert from_json.new_messages() == [UserPrompt(content="Thanks, anything else?"), from_json.messages[-1]]


async def test_invalid_history_json_is_rejected() -> None:
    """Text that is not a message history raises a pydantic ValidationError."""
    with pytest.raises(pydantic.ValidationError):
        messages_from_json('[{"kind": "nonsense", "content": "x"}]')
    with pytest.raises(pydantic.ValidationError):
        messages_from_json("not json")
