"""How a step ended is on its span: errors (type only), retries, approvals, interceptor results, refusals."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from cogent import (
    Agent,
    DeadlineExceeded,
    DelegationContext,
    ExecutionContext,
    FunctionModel,
    InterceptResult,
    ModelAPIError,
    ModelRetry,
    Phase,
    RunContext,
    ScriptedModel,
    StopExecution,
    TimedContext,
    ToolApprovalItem,
    ToolCall,
    interceptor,
    tool,
)
from cogent.core import now_utc
from cogent.interceptors import InterceptContext
from cogent.messages import Message
from cogent.models import ModelRequestParameters
from cogent.telemetry import InstrumentationSettings

from ._support import Spans, assert_tree_matches

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """An application error whose message quotes a value."""


def attributes(span: ReadableSpan) -> dict[str, Any]:
    """The span's attributes as a plain dict."""
    return dict(span.attributes or {})


def call_span(spans: Spans, call_id: str) -> ReadableSpan:
    """The execute_tool span of one call."""
    (span,) = [s for s in spans.by_operation("execute_tool") if attributes(s)["gen_ai.tool.call.id"] == call_id]
    return span


def assert_failed(span: ReadableSpan, error_type: str) -> None:
    """The span has ERROR status without a description, and `error.type`."""
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is None
    assert attributes(span)["error.type"] == error_type


@tool
def explode(what: str) -> str:
    """Fail."""
    raise Boom(f"could not reach {what}")


@tool
async def slow(seconds: float) -> str:
    """Sleep."""
    await anyio.sleep(seconds)
    return "slept"


async def test_a_failing_tool_is_an_error_span_with_its_type_and_no_message(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """The call's span has error.type (the exception's qualified class) and an exception event without message."""
    agent = Agent(
        name="a",
        model=ScriptedModel([ToolCall("explode", {"what": "db-7"}, "c1"), "sorry"]),
        tools=[explode],
        instrument=settings,
    )
    result = await agent.run("go")
    span = call_span(spans, "c1")
    assert_failed(span, f"{Boom.__module__}.Boom")
    ((name, event_attributes),) = [(e.name, dict(e.attributes or {})) for e in span.events]
    assert name == "exception" and event_attributes == {"exception.type": f"{Boom.__module__}.Boom"}
    assert "db-7" not in span.to_json()
    assert "gen_ai.tool.call.result" not in attributes(span)
    (agent_span,) = spans.by_operation("invoke_agent")
    assert agent_span.status.status_code is StatusCode.UNSET and attributes(agent_span)["cogent.outcome"] == "finished"
    assert assert_tree_matches(spans.index(), agent_span, "a", result.trace) == len(spans.all)


async def test_an_error_raised_out_of_the_run_fails_every_span_it_crosses(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """With tool_errors="raise" the tool's, the subagent's and the top agent's spans fail; siblings are cancelled."""
    sub = Agent(
        name="sub",
        model=ScriptedModel([[ToolCall("explode", {"what": "x"}, "s1"), ToolCall("slow", {"seconds": 5}, "s2")]]),
        tools=[explode, slow],
        tool_errors="raise",
    )
    top = Agent(
        name="top",
        model=ScriptedModel([ToolCall("sub", {"task": "t"}, "t1")]),
        subagents=[sub],
        tool_errors="raise",
        instrument=settings,
    )
    with pytest.raises(Boom):
        await top.run("go")
    boom = f"{Boom.__module__}.Boom"
    assert_failed(call_span(spans, "s1"), boom)
    assert_failed(call_span(spans, "s2"), "cancelled")
    assert not [e for e in call_span(spans, "s2").events if e.name == "exception"]
    assert_failed(call_span(spans, "t1"), boom)
    for span in spans.by_operation("invoke_agent"):
        assert_failed(span, boom)
        assert attributes(span)["cogent.outcome"] == "error"


async def test_retries_and_unknown_tools_are_failed_calls_with_a_retry_event(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """ModelRetry, invalid arguments and an unknown tool: error.type tool_retry, a cogent.retry event, outcome retry."""
    attempts: list[int] = []

    @tool
    def picky(n: int) -> str:
        """Accept only the second attempt."""
        attempts.append(n)
        if len(attempts) == 1:
            raise ModelRetry("try again with another number")
        return "fine"

    agent = Agent(
        name="a",
        model=ScriptedModel(
            [
                [ToolCall("picky", {"n": 1}, "c1"), ToolCall("picky", {"n": "x"}, "c2"), ToolCall("nope", {}, "c3")],
                ToolCall("picky", {"n": 2}, "c4"),
                "done",
            ]
        ),
        tools=[picky],
        tool_retries=3,
        instrument=settings,
    )
    await agent.run("go")
    for call_id in ("c1", "c2", "c3"):
        span = call_span(spans, call_id)
        assert_failed(span, "tool_retry")
        assert [e.name for e in span.events] == ["cogent.retry"]
        assert not span.events[0].attributes  # the retry's text is content
        assert attributes(span)["cogent.outcome"] == "retry"
    assert "gen_ai.tool.type" not in attributes(call_span(spans, "c3"))
    assert call_span(spans, "c4").status.status_code is StatusCode.UNSET


async def test_a_failed_model_request_fails_its_chat_span(settings: InstrumentationSettings, spans: Spans) -> None:
    """An exception from the model is the chat span's error, and the agent span's."""

    def broken(messages: list[Message], info: ModelRequestParameters) -> str:
        raise ModelAPIError("upstream said 503 for key sk-123")

    agent = Agent(name="a", model=FunctionModel(broken), instrument=settings)
    with pytest.raises(ModelAPIError):
        await agent.run("go")
    (chat,) = spans.by_operation("chat")
    assert_failed(chat, "cogent.exceptions.ModelAPIError")
    assert all("sk-123" not in s.to_json() for s in spans.all)


async def test_a_passed_deadline_fails_the_agent_span_and_cancels_the_call(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """DeadlineExceeded is the agent span's error; the call it cut short is cancelled."""
    agent = Agent(
        name="a", model=ScriptedModel([ToolCall("slow", {"seconds": 5}, "c1")]), tools=[slow], instrument=settings
    )
    with pytest.raises(DeadlineExceeded):
        # A wide deadline: the call has started before it passes, even on a loaded machine.
        await agent.run("go", context=TimedContext(deadline=now_utc() + timedelta(seconds=1)))
    assert_failed(call_span(spans, "c1"), "cancelled")
    (agent_span,) = spans.by_operation("invoke_agent")
    assert_failed(agent_span, "cogent.exceptions.DeadlineExceeded")


@tool(requires_approval=True)
def refund(order_id: int) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


async def test_approval_decisions_are_events_of_the_call(settings: InstrumentationSettings, spans: Spans) -> None:
    """A handler's approval and rejection: a cogent.approval event and attribute with the decision."""

    def handler(item: ToolApprovalItem) -> bool:
        return bool(json.loads(item.arguments)["order_id"] == 1)

    agent = Agent(
        name="a",
        model=ScriptedModel(
            [[ToolCall("refund", {"order_id": 1}, "c1"), ToolCall("refund", {"order_id": 2}, "c2")], "x"]
        ),
        tools=[refund],
        instrument=settings,
    )
    await agent.run("go", approval_handler=handler)
    for call_id, decision in (("c1", "approved"), ("c2", "rejected")):
        span = call_span(spans, call_id)
        assert attributes(span)["cogent.tool.requires_approval"] is True
        assert attributes(span)["cogent.approval.decision"] == decision
        assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
            ("cogent.approval", {"cogent.approval.decision": decision})
        ]
        assert span.status.status_code is StatusCode.UNSET


async def test_an_interrupted_run_and_its_resumption_are_on_the_spans(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """Without a handler the call is pending and the executions interrupted; the resumed run's call is approved."""
    sub = Agent(
        name="sub", model=ScriptedModel([ToolCall("refund", {"order_id": 9}, "s1"), "sub done"]), tools=[refund]
    )
    top = Agent(
        name="top",
        model=ScriptedModel([ToolCall("sub", {"task": "refund 9"}, "t1"), "top done"]),
        subagents=[sub],
        instrument=settings,
    )
    ctx = ExecutionContext()
    paused = await top.run("go", context=ctx)
    assert paused.state is not None
    pending = call_span(spans, "s1")
    assert attributes(pending)["cogent.approval.decision"] == "pending"
    assert attributes(pending)["cogent.outcome"] == attributes(call_span(spans, "t1"))["cogent.outcome"] == "pending"
    agents = spans.by_operation("invoke_agent")
    assert {attributes(s)["cogent.outcome"] for s in agents} == {"interrupted"}
    assert {attributes(s)["cogent.approvals.pending"] for s in agents} == {1}
    assert_tree_matches(spans.index(), spans.roots()[0], "top", paused.trace)

    before = len(spans.all)
    paused.context.approve_tool(paused.interruptions[0])
    done = await top.run(paused.state, context=paused.context)
    assert done.output == "top done"
    resumed = spans.all[before:]
    (root,) = [s for s in resumed if s.parent is None]
    assert attributes(root)["cogent.run_id"] == attributes(agents[0])["cogent.run_id"]  # one run across the resume
    approved = [s for s in resumed if attributes(s).get("cogent.approval.decision") == "approved"]
    assert [attributes(s)["gen_ai.tool.call.id"] for s in approved] == ["s1"]


async def test_interceptor_results_and_stops_are_span_events(settings: InstrumentationSettings, spans: Spans) -> None:
    """A PRE_ACT skip is a cogent.interceptor.skip event; a stop that ends the execution is a cogent.stop event."""

    @interceptor(Phase.PRE_ACT)
    def no_refunds(call: InterceptContext) -> InterceptResult:
        return InterceptResult.skip("refunds are closed") if call.tool_name == "refund" else InterceptResult.ok()

    @tool
    def finish(answer: str) -> str:
        """Stop the agent with an answer."""
        raise StopExecution(answer)

    agent = Agent(
        name="a",
        model=ScriptedModel(
            [[ToolCall("refund", {"order_id": 1}, "c1")], [ToolCall("finish", {"answer": "ok"}, "c2")]]
        ),
        tools=[refund, finish],
        interceptors=[no_refunds],
        instrument=settings,
    )
    result = await agent.run("go")
    assert result.output == "ok"
    assert [e.name for e in call_span(spans, "c1").events] == ["cogent.interceptor.skip"]
    stopped = call_span(spans, "c2")
    assert [e.name for e in stopped.events] == ["cogent.stop"] and attributes(stopped)["cogent.outcome"] == "ended"


async def test_a_refused_delegation_is_a_failed_call_without_a_subagent_span(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """A DelegationContext at its max_depth: the call's span has a cogent.delegation.refused event, no invoke_agent."""
    sub = Agent(name="sub", model=ScriptedModel(["never"]))
    top = Agent(
        name="top",
        model=ScriptedModel([ToolCall("sub", {"task": "t"}, "c1"), "x"]),
        subagents=[sub],
        instrument=settings,
    )
    result = await top.run("go", context=DelegationContext(max_depth=0))
    span = call_span(spans, "c1")
    assert_failed(span, "delegation_refused")
    assert [e.name for e in span.events] == ["cogent.delegation.refused"]
    assert spans.children(span) == []
    assert_tree_matches(spans.index(), spans.roots()[0], "top", result.trace)


async def test_a_call_to_a_tool_removed_from_the_offer_is_a_failed_call(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """A call to a tool an interceptor took out of this turn's offer is refused: error.type tool_error."""

    @interceptor(Phase.PRE_THINK)
    def nothing_offered(call: InterceptContext) -> InterceptResult:
        return InterceptResult.modify_tools([])

    agent = Agent(
        name="a",
        model=ScriptedModel([ToolCall("slow", {"seconds": 0}, "c1"), "x"]),
        tools=[slow],
        interceptors=[nothing_offered],
        instrument=settings,
    )
    await agent.run("go", context=RunContext())
    assert_failed(call_span(spans, "c1"), "tool_error")
