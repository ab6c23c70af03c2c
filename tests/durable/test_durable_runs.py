"""Durable runs in-process (SQLite system database): what a user relies on, misuse, the context split.

The crash, approval-across-processes and two-worker tests run real processes; these run
DBOS in the test process (launched in the test's asyncio loop, destroyed after it).
"""

from __future__ import annotations

import asyncio
import importlib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest
from dbos import DBOS

from cogent import Agent, ExecutionContext, RunContext, tool
from cogent.context import Resource, ToolApprovalItem
from cogent.durable import DurableAgent, StepError, durable_config
from cogent.exceptions import ModelRetry, UsageLimitExceeded, UserError
from cogent.interceptors import StopExecution
from cogent.messages import ToolCall
from cogent.models import ScriptedModel
from cogent.usage import UsageLimits

pytestmark = pytest.mark.anyio

executed: list[str] = []


@pytest.fixture
def anyio_backend() -> str:
    """Durable runs are asyncio-only (DBOS)."""
    return "asyncio"


@pytest.fixture
def dbos_url(fast_path: Path) -> Iterator[str]:
    """A DBOS instance on a SQLite file (the test launches it in its loop); destroyed after the test."""
    url = f"sqlite:///{fast_path / 'dbos.sqlite'}"
    DBOS(config=durable_config("cogent-durable-runs", url, log_level="WARNING",
                               notification_listener_polling_interval_sec=0.05))  # fmt: skip
    executed.clear()
    yield url
    DBOS.destroy()


@dataclass
class Shop(ExecutionContext):
    """State (`user_id`, `visits`) and a resource (a live database connection)."""

    user_id: str = ""
    visits: list[str] = field(default_factory=list)
    db: Annotated[sqlite3.Connection | None, Resource] = None


@dataclass
class Leaky(RunContext):
    """A context whose connection is not marked as a resource."""

    conn: sqlite3.Connection | None = None


@dataclass
class Needs(RunContext):
    """A context with a required resource."""

    handle: Annotated[sqlite3.Connection, Resource]


class Broken(Exception):
    """An application's own exception."""


@tool
def visit(ctx: Shop, place: str) -> str:
    """Record a visit, with the connection the call got."""
    assert ctx.db is not None
    executed.append(f"visit {place} {id(ctx.db)}")
    ctx.visits.append(place)
    return f"visited {place}"


@tool(requires_approval=True)
def pay(ctx: Shop, amount: int) -> str:
    """Pay (needs approval)."""
    executed.append(f"pay {amount}")
    return f"paid {amount}"


@tool
def fail(kind: str) -> str:
    """Fail in the way asked."""
    executed.append(f"fail {kind}")
    if kind == "retry":
        raise ModelRetry("try 7 instead")
    if kind == "stop":
        raise StopExecution({"stopped": True})
    if kind == "value":
        raise ValueError("bad value")
    raise Broken("the printer is on fire")


def _agent(name: str, script: list[Any], **kwargs: Any) -> Agent[Shop, str]:
    return Agent(name=name, model=ScriptedModel(script), tools=[visit, pay, fail], context_type=Shop, **kwargs)


def _factory(made: list[sqlite3.Connection]) -> Any:
    def resources(state: Any) -> dict[str, Any]:
        assert state["user_id"] == "u-1"  # from the checkpointed state
        made.append(sqlite3.connect(":memory:"))
        return {"db": made[-1]}

    return resources


async def test_a_durable_run_gives_the_result_of_a_plain_run(dbos_url: str) -> None:
    """Output, usage, messages, context state and trace (timings aside) equal a plain run's."""
    DBOS.launch()
    clerk = _agent("clerk", [ToolCall("visit", {"place": "archive"}), "filed"])
    desk = _agent("desk", [ToolCall("visit", {"place": "front"}), ToolCall("clerk", {"task": "file"}), "done"])
    desk.add_subagents(clerk)
    db = sqlite3.connect(":memory:")
    durable = DurableAgent(desk, name="same-as-plain")
    result = await durable.run("go", context=Shop(user_id="u-1", task_id="t", db=db), run_id="r-plain")
    plain = await desk.run("go", context=Shop(user_id="u-1", task_id="t", db=db))

    assert (result.output, result.usage, result.messages) == (plain.output, plain.usage, plain.messages)
    # A subagent's context state is its own copy; a plain run's shallow child copy shares the list.
    assert (result.context.visits, plain.context.visits) == (["front"], ["front", "archive"])
    assert result.context.db is db  # the run used the caller's connection

    def shape(events: Any) -> list[Any]:
        return [(e.kind, e.agent, e.tool_name, e.call_id, e.detail, e.usage, shape(e.children)) for e in events]

    assert shape(result.trace) == shape(plain.trace)
    [delegation] = [e for e in result.trace if e.kind == "delegation"]
    assert delegation.task_id == "r-plain/2/call_1" and delegation.parent_task_id == "t"  # the child workflow's id
    assert {e.task_id for e in delegation.children} == {"r-plain/2/call_1"}
    assert (await DBOS.get_workflow_status_async("r-plain/2/call_1")).parent_workflow_id == "r-plain"  # type: ignore[union-attr]


async def test_a_run_id_runs_once(dbos_url: str) -> None:
    """Running again with a finished run's id returns its result; no tool runs again."""
    DBOS.launch()
    durable = DurableAgent(_agent("desk", [ToolCall("visit", {"place": "a"}), "done"]), name="once")
    first = await durable.run("go", context=Shop(user_id="u-1", db=sqlite3.connect(":memory:")), run_id="r-once")
    again = await durable.run("other", context=Shop(user_id="u-9", db=sqlite3.connect(":memory:")), run_id="r-once")
    assert len(executed) == 1 and again.output == first.output and again.context.user_id == "u-1"


async def test_a_started_run_gets_fresh_resources_and_the_same_state(dbos_url: str) -> None:
    """start() + result(): the factory gets the restored state and gives the tools a new connection."""
    DBOS.launch()
    made: list[sqlite3.Connection] = []
    released: list[Any] = []
    durable = DurableAgent(
        _agent("desk", [ToolCall("visit", {"place": "a"}), "done"]),
        name="fresh",
        resources=_factory(made),
        release=released.append,
    )
    mine = sqlite3.connect(":memory:")
    run_id = await durable.start("go", context=Shop(user_id="u-1", visits=["before"], db=mine))
    result = await durable.result(run_id)
    assert result.context.visits == ["before", "a"] and result.context.user_id == "u-1"
    assert made[0] is not mine
    assert executed == [f"visit a {id(made[0])}"]
    assert released == [{"db": made[0]}]  # the run's own connection, released when it ended
    assert result.context.db is made[1]  # the result's context gets its own


async def test_a_call_waits_for_a_decision_bound_to_it(dbos_url: str) -> None:
    """A pending call resumes only with its own item's decision; a rejection reaches the model; `always` is recorded."""
    DBOS.launch()
    script = [ToolCall("pay", {"amount": 5}), ToolCall("pay", {"amount": 6}), ToolCall("pay", {"amount": 7}), "done"]
    durable = DurableAgent(_agent("desk", script), name="waiting", resources=_factory([]))
    run_id = await durable.start("go", context=Shop(user_id="u-1"))

    async def waiting(*decided: Any) -> Any:
        for _ in range(600):
            if items := [i for i in await durable.pending_approvals(run_id) if i not in decided]:
                return items
            await asyncio.sleep(0.02)
        raise AssertionError("no call waits")

    [first] = await waiting()
    with pytest.raises(UserError, match="ToolApprovalItem"):
        await durable.approve(run_id, "pay")  # type: ignore[arg-type]
    await durable.reject(run_id, first)
    [second] = await waiting(first)  # until the run took the decision and went on
    assert second.approval_id != first.approval_id and second.arguments == '{"amount":6}'
    await durable.approve(run_id, second, always=True)
    result = await durable.result(run_id)  # the third call needs no decision: `always` was recorded
    assert executed == ["pay 6", "pay 7"]
    assert [e.decision for e in result.trace if e.kind == "approval"] == ["rejected", "approved", "approved"]
    assert "was rejected" in result.messages[2].content  # type: ignore[union-attr]
    assert result.context.is_tool_approved("pay", "any call") is True


async def test_tool_failures_are_rebuilt_the_same_way_live_and_on_replay(dbos_url: str) -> None:
    """ModelRetry, StopExecution, built-in and application errors come back as the loop expects them."""
    DBOS.launch()
    script = [ToolCall("fail", {"kind": "retry"}), ToolCall("fail", {"kind": "value"}),
              ToolCall("fail", {"kind": "own"}), ToolCall("fail", {"kind": "stop"})]  # fmt: skip
    durable = DurableAgent(_agent("desk", script, tool_retries=2), name="failing")
    result = await durable.run("go", context=Shop(user_id="u-1", db=sqlite3.connect(":memory:")), run_id="r-fail")
    assert result.output == {"stopped": True}
    errors = [e.error for e in result.trace if e.kind == "tool_error"]
    assert [type(e) for e in errors] == [ValueError, StepError]
    assert str(errors[0]) == "bad value" and str(errors[1]) == "the printer is on fire"
    assert isinstance(errors[1], StepError) and errors[1].type_name.endswith(".Broken")
    assert [m.content for m in result.messages if getattr(m, "tool_name", None) == "fail"] == [
        "try 7 instead",
        "Error: bad value",
        "Error: the printer is on fire",
    ]


async def test_a_limit_hit_in_a_subagent_fails_the_run_with_its_own_error(dbos_url: str) -> None:
    """The subagent's child workflow counts against the run's limits; the error keeps its class."""
    DBOS.launch()
    clerk = _agent("clerk", [ToolCall("visit", {"place": "x"}), ToolCall("visit", {"place": "y"}), "filed"])
    desk = _agent("desk", [ToolCall("clerk", {"task": "file"}), "done"])
    desk.add_subagents(clerk)
    durable = DurableAgent(desk, name="limited")
    with pytest.raises(UsageLimitExceeded, match="tool_calls_limit=2"):
        await durable.run(
            "go",
            context=Shop(user_id="u-1", db=sqlite3.connect(":memory:")),
            usage_limits=UsageLimits(tool_calls_limit=2),
        )
    assert [call.split()[:2] for call in executed] == [["visit", "x"]]  # the delegation and one visit were counted


def test_an_unserializable_state_field_is_refused_at_construction() -> None:
    """A connection not marked as a resource: the error names the field and the fix."""
    with pytest.raises(UserError, match=r"'conn'.*Resource"):
        DurableAgent(Agent(name="a", model="test", context_type=Leaky))


async def test_misuse_is_refused_before_a_run_starts() -> None:
    """Bad arguments, an unserializable context, a context class defined in a function."""

    @dataclass
    class Local(RunContext):
        note: str = ""

    durable = DurableAgent(Agent(name="misuse", model="test"), name="misuse")
    with pytest.raises(UserError, match=r"'conn'.*Resource"):
        await durable.run("go", context=Leaky(conn=sqlite3.connect(":memory:")))
    with pytest.raises(UserError, match="module level"):
        await durable.run("go", context=Local())
    with pytest.raises(UserError, match="run_id"):
        await durable.run("go", run_id="")
    with pytest.raises(UserError, match="max_requests"):
        await durable.run("go", max_requests=0)
    with pytest.raises(UserError, match="already exists"):
        DurableAgent(Agent(name="misuse", model="test"))
    with pytest.raises(UserError, match="approval_timeout"):
        DurableAgent(Agent(name="x", model="test"), name="x", approval_timeout=0)
    with pytest.raises(UserError, match="needs an Agent"):
        DurableAgent("agent")  # type: ignore[arg-type]


def test_import_cogent_does_not_import_dbos() -> None:
    """A fresh interpreter's `import cogent` leaves `dbos` and `cogent.durable` unimported."""
    code = "import sys, cogent; print(sorted(m for m in ('dbos', 'cogent.durable') if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"


def test_missing_extra_raises_an_import_error_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without DBOS, importing cogent.durable says `pip install "cogent-context[dbos]"`."""
    monkeypatch.setitem(sys.modules, "dbos", None)
    for name in [m for m in sys.modules if m == "cogent.durable" or m.startswith("cogent.durable.")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ImportError, match=r'pip install "cogent-context\[dbos\]"'):
        importlib.import_module("cogent.durable")


async def _first_pending(durable: DurableAgent[Any, Any], run_id: str) -> Any:
    for _ in range(600):
        if items := await durable.pending_approvals(run_id):
            return items[0]
        await asyncio.sleep(0.02)
    raise AssertionError("no call waits")


async def test_a_subagents_call_waits_in_its_child_workflow_and_is_found_from_the_run_id(dbos_url: str) -> None:
    """pending_approvals(run id) lists a subagent's waiting call; approving it resumes the child, then the run."""
    DBOS.launch()
    clerk = _agent("clerk", [ToolCall("pay", {"amount": 3}), "paid"])
    desk = _agent("desk", [ToolCall("clerk", {"task": "pay 3"}), "done"])
    desk.add_subagents(clerk)
    durable = DurableAgent(desk, name="nested-wait", resources=_factory([]))
    run_id = await durable.start("go", context=Shop(user_id="u-1"), run_id="r-nested")
    item = await _first_pending(durable, run_id)
    assert (item.agent_name, item.tool_name) == ("clerk", "pay")
    await durable.approve(run_id, item)
    result = await durable.result(run_id)
    assert result.output == "done" and executed == ["pay 3"]


async def test_an_unanswered_call_counts_as_rejected_after_the_approval_timeout(dbos_url: str) -> None:
    """No decision within approval_timeout seconds: the call does not run; the model gets a rejection."""
    DBOS.launch()
    durable = DurableAgent(
        _agent("desk", [ToolCall("pay", {"amount": 5}), "done"]), name="timeout", approval_timeout=0.2
    )
    result = await durable.run("go", context=Shop(user_id="u-1"))
    assert executed == [] and [e.decision for e in result.trace if e.kind == "approval"] == ["rejected"]


async def test_permanent_decisions_on_the_callers_context_are_checkpointed_with_the_run(dbos_url: str) -> None:
    """`always_approve` recorded before the run applies in it (from its input) and is in the result's context."""
    DBOS.launch()
    await DBOS.register_queue_async("in-process", polling_interval_sec=0.1)
    script = ["(the history's answer)", ToolCall("pay", {"amount": 5}), "done"]  # steps count the history's
    durable = DurableAgent(_agent("desk", script), name="always")
    ctx = Shop(user_id="u-1")
    ctx.approve_tool(ToolApprovalItem(tool_name="pay", call_id="c", arguments="{}", agent_name="desk"), True)
    history = (await Agent(name="h", model=ScriptedModel(["hi"])).run("hello")).messages
    run_id = await durable.enqueue("go", queue="in-process", context=ctx, message_history=history)
    result = await durable.result(run_id)
    assert executed == ["pay 5"] and result.context.is_tool_approved("pay", "other") is True
    assert result.messages[:2] == history and result.new_messages()[0].content == "go"  # type: ignore[union-attr]


def test_a_required_resource_needs_a_factory() -> None:
    """A resource field without a default and no factory: a recovered run could not rebuild the context."""
    with pytest.raises(UserError, match=r"'?handle'?.*resources="):
        DurableAgent(Agent(name="needs", model="test", context_type=Needs))


async def test_an_instrumented_durable_run_exports_its_spans(dbos_url: str) -> None:
    """With `instrument=` on the top-level agent, each execution (the child workflow too) opens its spans."""
    sdk = pytest.importorskip("opentelemetry.sdk.trace")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from cogent.telemetry import InstrumentationSettings

    exporter = InMemorySpanExporter()
    provider = sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    DBOS.launch()
    clerk = _agent("clerk", [ToolCall("visit", {"place": "archive"}), "filed"])
    settings = InstrumentationSettings(tracer_provider=provider)
    desk = _agent("desk", [ToolCall("clerk", {"task": "file"}), "done"], instrument=settings)
    desk.add_subagents(clerk)
    await DurableAgent(desk, name="instrumented").run("go", context=Shop(user_id="u-1", db=sqlite3.connect(":memory:")))
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert {"invoke_agent desk", "invoke_agent clerk", "execute_tool clerk", "execute_tool visit"} <= set(spans)
    delegating = spans["execute_tool clerk"].context
    assert spans["invoke_agent clerk"].parent is not None and delegating is not None
    assert spans["invoke_agent clerk"].parent.span_id == delegating.span_id  # the child workflow nests under its call
