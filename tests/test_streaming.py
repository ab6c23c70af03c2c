"""`Agent.run_stream`: the events of a run, in order, with offline models and over SSE."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
from chat_server import ChatServer, Reply

from cogent import Agent, tool
from cogent.context import ExecutionContext
from cogent.events import (
    DelegationEndEvent,
    DelegationStartEvent,
    FinalResultEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
)
from cogent.exceptions import UsageLimitExceeded
from cogent.messages import Message, ModelResponse, ToolCall, UserPrompt
from cogent.models import FunctionModel, ModelRequestParameters, ScriptedModel
from cogent.usage import UsageLimits

pytestmark = pytest.mark.anyio


@tool
def lookup(order_id: int) -> str:
    """Look up an order.

    Args:
        order_id: The order number.
    """
    return f"order {order_id}: shipped"


async def collect(agent: Agent[Any, Any], task: str, **kwargs: Any) -> list[StreamEvent]:
    async with agent.run_stream(task, **kwargs) as stream:
        return [event async for event in stream]


async def test_events_of_a_tool_calling_run_in_order() -> None:
    """A non-streaming model gives one text delta per response, around the tool call and result, then the result."""
    model = ScriptedModel(
        [ModelResponse(text="Let me check.", tool_calls=[ToolCall("lookup", {"order_id": 3}, "c1")]), "Shipped."]
    )
    agent = Agent(name="desk", model=model, tools=[lookup])
    events = await collect(agent, "Order 3?")

    assert events[:-1] == [
        TextDeltaEvent(agent="desk", depth=0, text="Let me check."),
        ToolCallEvent(agent="desk", depth=0, tool_name="lookup", call_id="c1", arguments='{"order_id": 3}'),
        ToolResultEvent(agent="desk", depth=0, tool_name="lookup", call_id="c1", result="order 3: shipped"),
        TextDeltaEvent(agent="desk", depth=0, text="Shipped."),
    ]
    final = events[-1]
    assert isinstance(final, FinalResultEvent)
    assert final.result.output == "Shipped."
    plain = await agent.run("Order 3?")
    assert final.result.messages == plain.messages
    assert final.result.usage == plain.usage


async def test_delegation_events_carry_name_depth_and_task_ids() -> None:
    """Delegation start/end events name the subagent and its parent, with depth and the child's task lineage."""
    clerk = Agent(
        name="clerk",
        description="Looks orders up.",
        model=ScriptedModel([ToolCall("lookup", {"order_id": 9}, "k1"), "Order 9 shipped."]),
        tools=[lookup],
    )
    lead = Agent(
        name="lead",
        model=ScriptedModel([ToolCall("clerk", {"task": "check order 9"}, "d1"), "It shipped."]),
        subagents=[clerk],
    )
    context = ExecutionContext()
    events = await collect(lead, "Check order 9.", context=context)

    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "ToolCallEvent",
        "DelegationStartEvent",
        "ToolCallEvent",
        "ToolResultEvent",
        "TextDeltaEvent",
        "DelegationEndEvent",
        "ToolResultEvent",
        "TextDeltaEvent",
        "FinalResultEvent",
    ]
    start, end = events[1], events[5]
    assert isinstance(start, DelegationStartEvent) and isinstance(end, DelegationEndEvent)
    final = events[-1]
    assert isinstance(final, FinalResultEvent)
    root_task = final.result.context.task_id
    (delegation,) = final.result.trace[1:2]
    assert (start.agent, start.parent, start.depth, start.task) == ("clerk", "lead", 1, "check order 9")
    assert start.parent_task_id == root_task
    assert start.task_id not in (None, root_task)
    assert start.task_id == delegation.task_id
    assert (end.agent, end.parent, end.depth, end.output) == ("clerk", "lead", 1, "Order 9 shipped.")
    assert (end.task_id, end.parent_task_id) == (start.task_id, start.parent_task_id)
    inner_call = events[2]
    assert isinstance(inner_call, ToolCallEvent)
    assert (inner_call.agent, inner_call.depth) == ("clerk", 1)


async def test_parallel_delegations_have_distinct_task_ids() -> None:
    """Two subagents delegated to in one response each get their own task id, opened and closed in order."""
    a = Agent(name="a", description="A.", model=ScriptedModel(["from a"]))
    b = Agent(name="b", description="B.", model=ScriptedModel(["from b"]))
    lead = Agent(
        name="lead",
        model=ScriptedModel([[ToolCall("a", {"task": "x"}), ToolCall("b", {"task": "y"})], "both done"]),
        subagents=[a, b],
    )
    events = await collect(lead, "Go.", context=ExecutionContext())

    starts = {e.agent: e for e in events if isinstance(e, DelegationStartEvent)}
    ends = {e.agent: e for e in events if isinstance(e, DelegationEndEvent)}
    assert set(starts) == set(ends) == {"a", "b"}
    assert starts["a"].task_id != starts["b"].task_id
    assert starts["a"].parent_task_id == starts["b"].parent_task_id
    for name in ("a", "b"):
        assert events.index(starts[name]) < events.index(ends[name])
        assert ends[name].task_id == starts[name].task_id
        assert ends[name].output == f"from {name}"


async def test_leaving_the_block_early_cancels_the_run() -> None:
    """Breaking out of the stream cancels the running tool, and no further model request is made."""
    state = {"requests": 0, "tool_cancelled": False, "tool_finished": False}

    @tool
    async def slow() -> str:
        """Take forever."""
        try:
            await anyio.sleep_forever()
        finally:
            state["tool_cancelled"] = True
        state["tool_finished"] = True  # pragma: no cover - never reached
        return "never"

    def respond(messages: list[Message], info: ModelRequestParameters) -> ToolCall | str:
        state["requests"] += 1
        return ToolCall("slow", {}) if len(messages) == 1 else "done"

    agent = Agent(name="waiter", model=FunctionModel(respond), tools=[slow])
    async with agent.run_stream("Wait.") as stream:
        async for event in stream:
            if isinstance(event, ToolCallEvent):
                break
    assert state == {"requests": 1, "tool_cancelled": True, "tool_finished": False}


async def test_leaving_early_during_an_sse_stream(server: ChatServer) -> None:
    """Breaking out in the middle of a server-sent stream ends the run cleanly; the model still works afterwards."""
    release = threading.Event()
    server.script = [Reply(text="a long answer that never finishes", pause=release), Reply(text="again")]
    agent = Agent(name="talker", model=server.model())
    async with agent.run_stream("Talk.") as stream:
        async for event in stream:
            assert isinstance(event, TextDeltaEvent)
            break
    release.set()
    assert (await agent.run("Again.")).output == "again"


async def test_an_error_in_the_run_is_raised_from_the_iteration() -> None:
    """A tool's exception (with `tool_errors="raise"`) surfaces from the loop as itself, after the earlier events."""

    @tool
    def broken() -> str:
        """Always fails."""
        raise ValueError("the database is down")

    agent = Agent(name="fragile", model=ScriptedModel([ToolCall("broken", {})]), tools=[broken], tool_errors="raise")
    seen: list[StreamEvent] = []
    with pytest.raises(ValueError, match="the database is down"):
        async with agent.run_stream("Go.") as stream:
            async for event in stream:
                seen.append(event)
    assert [type(e) for e in seen] == [ToolCallEvent]


async def test_usage_limits_apply_to_streamed_runs() -> None:
    """A request limit ends a streamed run with `UsageLimitExceeded` raised from the iteration."""
    agent = Agent(name="loop", model=ScriptedModel([ToolCall("lookup", {"order_id": 1})] * 5), tools=[lookup])
    with pytest.raises(UsageLimitExceeded, match="request_limit=2"):
        await collect(agent, "Go.", usage_limits=UsageLimits(request_limit=2))


async def test_streamed_history_is_usable_as_message_history() -> None:
    """The final result's messages continue in a later streamed run like a normal run's messages."""

    def respond(messages: list[Message], info: ModelRequestParameters) -> str:
        prompts = [m.content for m in messages if isinstance(m, UserPrompt)]
        return " / ".join(prompts)

    agent = Agent(name="echo", model=FunctionModel(respond))
    first = await collect(agent, "one")
    assert isinstance(first[-1], FinalResultEvent)
    second = await collect(agent, "two", message_history=first[-1].result.messages)
    assert second[0] == TextDeltaEvent(agent="echo", depth=0, text="one / two")
