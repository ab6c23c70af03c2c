"""The spans of a run: one tree per run that equals `result.trace`, named and attributed per the GenAI conventions."""

from __future__ import annotations

import importlib
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from cogent import (
    Agent,
    ExecutionContext,
    FunctionModel,
    RunContext,
    ScriptedModel,
    TaskContext,
    ToolCall,
    UserError,
    tool,
)
from cogent.core import now_utc
from cogent.messages import Message, ModelResponse, ToolReturn
from cogent.models import ModelRequestParameters
from cogent.telemetry import InstrumentationSettings, instrument_all
from cogent.usage import Usage

from ._support import Spans, assert_tree_matches

ROOT = Path(__file__).resolve().parents[2]


@tool
async def lookup(order_id: int) -> str:
    """Look up an order."""
    await anyio.lowlevel.checkpoint()
    return f"order {order_id}"


def three_levels(settings: InstrumentationSettings | None) -> Agent[Any, str]:
    """top delegates to mid while looking up an order; mid delegates to leaf twice while looking up two."""
    leaf = Agent(
        name="leaf",
        model=ScriptedModel([[ToolCall("lookup", {"order_id": 3}), ToolCall("lookup", {"order_id": 4})], "leaf done"]),
        tools=[lookup],
    )
    mid = Agent(
        name="mid",
        model=ScriptedModel(
            [
                [
                    ToolCall("leaf", {"task": "first"}),
                    ToolCall("lookup", {"order_id": 2}),
                    ToolCall("leaf", {"task": "second"}),
                ],
                "mid done",
            ]
        ),
        tools=[lookup],
        subagents=[leaf],
    )
    return Agent(
        name="top",
        model=ScriptedModel([[ToolCall("mid", {"task": "go"}), ToolCall("lookup", {"order_id": 1})], "top done"]),
        tools=[lookup],
        subagents=[mid],
        instrument=settings,
    )


@pytest.mark.anyio
async def test_a_three_level_delegation_with_parallel_calls_is_one_tree_equal_to_the_trace(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """Every execution, request and call is one span, nested as result.trace nests (parallel calls included)."""
    result = await three_levels(settings).run("start", context=ExecutionContext())
    (root,) = spans.roots()
    assert assert_tree_matches(spans.index(), root, "top", result.trace) == len(spans.all) == 21
    assert len({s.context.trace_id for s in spans.all if s.context is not None}) == 1
    leaves = [s for s in spans.by_operation("invoke_agent") if s.name == "invoke_agent leaf"]
    assert len(leaves) == 2 and {(s.attributes or {})["cogent.depth"] for s in leaves} == {2}


@pytest.mark.anyio
async def test_chat_spans_carry_the_request_and_response_attributes(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """A chat span: CLIENT kind, `chat {model}`, provider, request and response model, tokens, finish reasons."""

    def respond(messages: list[Message], info: ModelRequestParameters) -> ModelResponse:
        return ModelResponse(
            text="hello", usage=Usage(input_tokens=12, output_tokens=5), model_name="m-2024", finish_reason="stop"
        )

    agent = Agent(name="greeter", model=FunctionModel(respond, name="m"), instrument=settings)
    await agent.run("hi")
    (chat,) = spans.by_operation("chat")
    assert chat.name == "chat m" and chat.kind is SpanKind.CLIENT
    assert dict(chat.attributes or {}) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "cogent",
        "gen_ai.request.model": "m",
        "gen_ai.response.model": "m-2024",
        "gen_ai.usage.input_tokens": 12,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.response.finish_reasons": ("stop",),
    }
    (agent_span,) = spans.by_operation("invoke_agent")
    assert agent_span.kind is SpanKind.INTERNAL
    assert (agent_span.attributes or {})["cogent.usage.input_tokens"] == 12
    assert (agent_span.attributes or {})["cogent.outcome"] == "finished"


@pytest.mark.anyio
async def test_tool_spans_carry_the_tool_attributes(settings: InstrumentationSettings, spans: Spans) -> None:
    """An execute_tool span: INTERNAL, `execute_tool {tool}`, tool name, call id, type (function or agent)."""
    sub = Agent(name="helper", model=ScriptedModel(["ok"]), description="Helps.")
    agent = Agent(
        name="main",
        model=ScriptedModel(
            [[ToolCall("lookup", {"order_id": 7}, "c1"), ToolCall("helper", {"task": "t"}, "c2")], "x"]
        ),
        tools=[lookup],
        subagents=[sub],
        instrument=settings,
    )
    await agent.run("go")
    tools = {(s.attributes or {})["gen_ai.tool.call.id"]: s for s in spans.by_operation("execute_tool")}
    assert tools["c1"].name == "execute_tool lookup" and tools["c1"].kind is SpanKind.INTERNAL
    assert dict(tools["c1"].attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "lookup",
        "gen_ai.tool.call.id": "c1",
        "gen_ai.tool.type": "function",
        "gen_ai.tool.description": "Look up an order.",
        "cogent.outcome": "returned",
    }
    assert (tools["c2"].attributes or {})["gen_ai.tool.type"] == "agent"
    helper = spans.children(tools["c2"])[0]
    assert (helper.attributes or {})["gen_ai.agent.description"] == "Helps."


@pytest.mark.anyio
async def test_lineage_and_the_deadline_are_attributes_of_each_agent_span(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """task id, parent task id, depth and the deadline's remaining seconds (at the span's start) per execution."""
    deadline = now_utc() + timedelta(seconds=60)
    ctx = ExecutionContext(task_id="root-task", deadline=deadline)
    result = await three_levels(settings).run("start", context=ctx)
    agents = spans.by_operation("invoke_agent")
    by_task = {(s.attributes or {})["cogent.task.id"]: s for s in agents}
    assert len(by_task) == 4 and "root-task" in by_task
    assert "cogent.task.parent_id" not in (by_task["root-task"].attributes or {})
    for event in result.trace:
        if event.kind == "delegation":
            attributes = by_task[str(event.task_id)].attributes or {}
            assert attributes["cogent.task.parent_id"] == event.parent_task_id
            assert attributes["cogent.depth"] == event.depth == 1
    for span in agents:
        remaining = (span.attributes or {})["cogent.deadline.remaining_seconds"]
        assert isinstance(remaining, float) and 0 < remaining <= 60


@pytest.mark.anyio
async def test_a_context_without_lineage_gives_no_lineage_attributes(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """A plain RunContext has no task ids or deadline: the agent span has the depth only."""
    await Agent(name="a", model=ScriptedModel(["x"]), instrument=settings).run("go")
    (span,) = spans.by_operation("invoke_agent")
    keys = set(span.attributes or {})
    assert "cogent.depth" in keys
    assert not {k for k in keys if k.startswith(("cogent.task.", "cogent.deadline."))}


@pytest.mark.anyio
async def test_a_run_started_inside_a_span_is_its_child(
    provider: TracerProvider, settings: InstrumentationSettings, spans: Spans
) -> None:
    """A run inside the application's span (a web request's) is a child of it, in the same trace."""
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("GET /orders") as request:
        await Agent(name="a", model=ScriptedModel(["x"]), instrument=settings).run("go")
    (agent_span,) = spans.by_operation("invoke_agent")
    assert agent_span.parent is not None
    assert agent_span.parent.span_id == request.get_span_context().span_id
    assert agent_span.context is not None and agent_span.context.trace_id == request.get_span_context().trace_id


@pytest.mark.anyio
async def test_spans_a_tool_opens_nest_under_its_execute_tool_span_also_in_worker_threads(
    provider: TracerProvider, settings: InstrumentationSettings, spans: Spans
) -> None:
    """The application's own spans inside a tool (sync in a worker thread, or async) are children of the call."""
    tracer = provider.get_tracer("app")

    @tool
    def query_db(sql: str) -> str:
        """Run a query (sync: in a worker thread)."""
        with tracer.start_as_current_span("db.query"):
            return "rows"

    @tool
    async def fetch(url: str) -> str:
        """Fetch a URL."""
        with tracer.start_as_current_span("http.get"):
            return "page"

    agent = Agent(
        name="a",
        model=ScriptedModel([[ToolCall("query_db", {"sql": "select 1"}), ToolCall("fetch", {"url": "u"})], "done"]),
        tools=[query_db, fetch],
        instrument=settings,
    )
    await agent.run("go")
    for span in spans.by_operation("execute_tool"):
        (inner,) = spans.children(span)
        assert inner.name == {"query_db": "db.query", "fetch": "http.get"}[(span.attributes or {})["gen_ai.tool.name"]]


@pytest.mark.anyio
async def test_a_run_started_inside_a_tool_is_traced_under_that_call(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """A nested agent.run() inside an instrumented run's tool is instrumented too, under the tool's span."""
    inner = Agent(name="inner", model=ScriptedModel(["inner done"]))

    @tool
    async def ask_inner(question: str) -> str:
        """Ask another agent."""
        return (await inner.run(question)).output

    outer = Agent(
        name="outer",
        model=ScriptedModel([ToolCall("ask_inner", {"question": "q"}), "done"]),
        tools=[ask_inner],
        instrument=settings,
    )
    await outer.run("go")
    (call,) = spans.by_operation("execute_tool")
    (nested,) = spans.children(call)
    assert nested.name == "invoke_agent inner"
    assert (nested.attributes or {})["cogent.depth"] == 1
    assert (nested.attributes or {})["cogent.usage.requests"] == 1  # the nested run's own tree


@pytest.mark.anyio
async def test_streamed_runs_have_the_same_spans(settings: InstrumentationSettings, spans: Spans) -> None:
    """run_stream() produces the same span tree as run()."""
    agent = three_levels(settings)
    async with agent.run_stream("start", context=TaskContext()) as events:
        async for event in events:
            result = getattr(event, "result", None)
    assert result is not None
    (root,) = spans.roots()
    assert assert_tree_matches(spans.index(), root, "top", result.trace) == len(spans.all)


@pytest.mark.anyio
async def test_without_instrumentation_nothing_is_traced(provider: TracerProvider, spans: Spans) -> None:
    """By default no span is made, even inside an application span; instrument=False wins over instrument_all()."""
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("request"):
        await three_levels(None).run("start")
    instrument_all(InstrumentationSettings(tracer_provider=provider))
    agent = Agent(name="quiet", model=ScriptedModel(["x"]), instrument=False)
    await agent.run("go")
    assert [s.name for s in spans.all] == ["request"]


@pytest.mark.anyio
async def test_instrument_all_instruments_agents_that_say_nothing(provider: TracerProvider, spans: Spans) -> None:
    """instrument_all(settings) traces every agent created with the default instrument=None, until turned off."""
    agent = Agent(name="a", model=ScriptedModel(["x"]))
    instrument_all(InstrumentationSettings(tracer_provider=provider))
    await agent.run("go")
    instrument_all(False)
    await agent.run("go")
    assert [s.name for s in spans.all] == ["chat scripted", "invoke_agent a"]


@pytest.mark.anyio
async def test_the_top_level_agents_setting_decides_for_its_subagents(provider: TracerProvider, spans: Spans) -> None:
    """A subagent's own instrument= does not apply inside a run of an uninstrumented parent, nor the reverse."""
    loud = Agent(name="loud", model=ScriptedModel(["x"]), instrument=InstrumentationSettings(tracer_provider=provider))
    quiet = Agent(name="quiet", model=ScriptedModel([ToolCall("loud", {"task": "t"}), "y"]), subagents=[loud])
    await quiet.run("go")
    assert spans.all == []
    parent = Agent(
        name="parent",
        model=ScriptedModel([ToolCall("child", {"task": "t"}), "y"]),
        subagents=[Agent(name="child", model=ScriptedModel(["x"]), instrument=False)],
        instrument=InstrumentationSettings(tracer_provider=provider),
    )
    await parent.run("go")
    assert "invoke_agent child" in [s.name for s in spans.all]


def test_instrument_true_uses_the_global_provider_and_default_settings() -> None:
    """instrument=True is InstrumentationSettings() without content, on the global tracer provider."""
    agent = Agent(name="a", model="test", instrument=True)
    assert isinstance(agent.instrument, InstrumentationSettings)
    assert agent.instrument.tracer_provider is None and agent.instrument.include_content is False


@pytest.mark.parametrize("value", ["yes", 1, object(), InstrumentationSettings])
def test_instrument_must_be_a_bool_none_or_settings(value: Any) -> None:
    """Agent(instrument=...) with anything else, or assigned later, is a UserError naming the choices."""
    with pytest.raises(UserError, match=r"instrument=.*pass True, False, None or cogent.telemetry"):
        Agent(name="a", model="test", instrument=value)
    agent = Agent(name="a", model="test")
    with pytest.raises(UserError, match=r"Agent 'a' has instrument="):
        agent.instrument = value
    assert agent.instrument is None


def test_assigning_instrument_later_is_checked_like_the_argument() -> None:
    """`agent.instrument = True` reads back as InstrumentationSettings(); False and None as themselves."""
    agent = Agent(name="a", model="test")
    agent.instrument = True
    assert isinstance(agent.instrument, InstrumentationSettings)
    agent.instrument = False
    assert agent.instrument is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tracer_provider": object()}, "pass an OpenTelemetry TracerProvider"),
        ({"include_content": "yes"}, "include_content='yes'; pass True or False"),
        ({"include_content": 1}, "include_content=1; pass True or False"),
    ],
)
def test_settings_refuse_what_cannot_work(kwargs: dict[str, Any], message: str) -> None:
    """InstrumentationSettings checks its arguments when made, not when the first span starts."""
    with pytest.raises(UserError, match=message):
        InstrumentationSettings(**kwargs)


def test_instrument_all_refuses_what_is_not_a_setting() -> None:
    """instrument_all(None) or a string is a UserError (False turns it off)."""
    for value in (None, "on"):
        with pytest.raises(UserError, match="instrument_all"):
            instrument_all(value)  # type: ignore[arg-type]


def test_import_cogent_loads_no_opentelemetry() -> None:
    """`import cogent` and an uninstrumented agent never import opentelemetry (it is an extra)."""
    code = (
        "import sys, cogent\n"
        "cogent.Agent(name='a', model='test', instrument=False).run_sync('hi')\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'cogent.telemetry'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@dataclass
class Shop(RunContext):
    """A context with no helper fields."""

    shop: str = "s"


@pytest.mark.anyio
async def test_the_model_sees_no_difference_when_instrumented(settings: InstrumentationSettings) -> None:
    """The messages of an instrumented run equal those of an uninstrumented one."""
    first = await three_levels(None).run("start", context=Shop())
    second = await three_levels(settings).run("start", context=Shop())
    assert first.messages == second.messages
    assert [m.content for m in second.messages if isinstance(m, ToolReturn)] == ["mid done", "order 1"]


def test_without_the_extra_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without opentelemetry, cogent.telemetry and Agent(instrument=True) raise an ImportError naming the extra."""
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # makes `import opentelemetry...` fail
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)
    for name in [m for m in sys.modules if m == "cogent.telemetry" or m.startswith("cogent.telemetry.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=r'pip install "cogent-context\[otel\]"'):
        importlib.import_module("cogent.telemetry")
    with pytest.raises(ImportError, match=r'pip install "cogent-context\[otel\]"'):
        Agent(name="a", model="test", instrument=True)
