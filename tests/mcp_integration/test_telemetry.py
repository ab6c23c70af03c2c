"""MCP calls of an instrumented run carry the trace context of their `execute_tool` span."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cogent import Agent, ScriptedModel, TaskContext, ToolCall
from cogent.telemetry import InstrumentationSettings

from .conftest import Served

pytestmark = pytest.mark.anyio


async def test_the_server_receives_the_traceparent_of_the_calls_span(served: Served) -> None:
    """Each MCP request's `_meta.traceparent` names the trace and the `execute_tool` span of its call."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    agent = Agent(
        name="mcp",
        model=ScriptedModel([[ToolCall("echo", {"text": "a"}, "c1"), ToolCall("echo", {"text": "b"}, "c2")], "done"]),
        tools=[served.server],
        instrument=InstrumentationSettings(tracer_provider=provider),
    )
    await agent.run("go", context=TaskContext())
    spans = {
        (s.attributes or {})["gen_ai.tool.call.id"]: s
        for s in exporter.get_finished_spans()
        if s.name == "execute_tool echo"
    }
    assert (spans["c1"].attributes or {})["gen_ai.tool.type"] == "extension"
    received = {call["params"]["arguments"]["text"]: call["params"]["_meta"] for call in served.record.calls("echo")}
    for text, call_id in (("a", "c1"), ("b", "c2")):
        context = spans[call_id].get_span_context()
        _version, trace_id, span_id, _flags = received[text]["traceparent"].split("-")
        assert (trace_id, span_id) == (format(context.trace_id, "032x"), format(context.span_id, "016x"))
