"""Subagents: delegation as a tool, automatic child contexts, usage, traces and cycles."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cogent import (
    Agent,
    DelegationContext,
    DelegationDepthExceeded,
    ExecutionContext,
    FunctionModel,
    RunContext,
    ScriptedModel,
    TaskContext,
    Tool,
    ToolCall,
    UserError,
    current_context,
    tool,
)
from cogent.core import generate_id
from cogent.messages import ModelResponse, ToolReturn
from cogent.usage import Usage

pytestmark = pytest.mark.anyio


@dataclass
class AppContext(RunContext):
    """An application context with a required field and a shared service."""

    user_id: str
    service: dict[str, Any] = field(default_factory=dict)


@dataclass
class ChildCounting(RunContext):
    """A context whose own `create_child_context()` marks and counts the children it builds."""

    generation: int = 0
    built: list[int] = field(default_factory=list)

    def create_child_context(self) -> ChildCounting:
        """Build the child by hand, as a user override would."""
        self.built.append(self.generation)
        return ChildCounting(
            query=self.query, metadata=dict(self.metadata), generation=self.generation + 1, built=self.built
        )


@dataclass
class SharedChild(RunContext):
    """A context whose `create_child_context()` returns the parent object itself."""

    def create_child_context(self) -> SharedChild:
        """Hand the subagent this very object."""
        return self


def delegating_model(*children: str) -> ScriptedModel:
    """A model that first calls `probe` and delegates to every child at once, then answers."""
    calls = [ToolCall("probe", {}), *(ToolCall(c, {"task": f"task for {c}"}) for c in children)]
    return ScriptedModel([calls, "done"])


def recorder(seen: list[RunContext]) -> Tool[Any, Any]:
    """A `probe` tool that records the context it receives."""

    @tool
    def probe(ctx: RunContext) -> str:
        """Record the context."""
        seen.append(ctx)
        return "probed"

    return probe


# --- delegation as a tool -----------------------------------------------------------


def test_subagent_is_offered_as_task_tool() -> None:
    """A subagent appears among the parent's tools, named after it, with one required `task` string."""
    sub = Agent(name="researcher", model=ScriptedModel(["ok"]), description="Researches a topic.")
    parent = Agent(name="lead", model=ScriptedModel(["ok"]), subagents=[sub])
    (definition,) = (t.definition for t in parent.tools)
    assert definition.name == "researcher"
    assert definition.description == "Researches a topic."
    assert definition.parameters_json_schema == {
        "type": "object",
        "properties": {
            "task": {"type": "string", "title": "Task", "description": "The task for the subagent, stated completely."},
        },
        "required": ["task"],
        "additionalProperties": False,
    }
    assert [t.name for t in parent.tools] == ["researcher"]
    assert parent.subagents == (sub,)


def test_as_tool_defaults_and_overrides() -> None:
    """`as_tool()` takes the agent's name and description; `name=`/`description=` replace them."""
    sub = Agent(name="writer", model=ScriptedModel(["ok"]), description="Writes prose.")
    default = sub.as_tool()
    assert (default.name, default.definition.description) == ("writer", "Writes prose.")
    custom = sub.as_tool(name="draft", description="Drafts a paragraph.")
    assert (custom.name, custom.definition.description) == ("draft", "Drafts a paragraph.")
    assert custom.definition.parameters_json_schema["required"] == ["task"]


async def test_as_tool_in_tools_delegates_with_child_context() -> None:
    """`as_tool(name=...)` passed in `tools=` delegates through the framework with a child context."""
    seen: list[RunContext] = []
    sub = Agent(name="writer", model=ScriptedModel([ToolCall("probe", {}), "drafted"]), tools=[recorder(seen)])
    parent = Agent(
        name="lead",
        model=ScriptedModel([ToolCall("draft", {"task": "write it"}), "done"]),
        tools=[sub.as_tool(name="draft")],
    )
    result = await parent.run("go", context=DelegationContext())
    (child,) = seen
    assert isinstance(child, DelegationContext)
    assert child.depth == 1
    assert child.agent is sub
    tool_returns = [m for m in result.messages if isinstance(m, ToolReturn)]
    assert [(m.tool_name, m.content) for m in tool_returns] == [("draft", "drafted")]


async def test_subagent_receives_task_and_output_returns_to_parent() -> None:
    """The subagent's input is the `task` argument and its output is the parent's tool result."""
    received: list[str] = []

    def answer(messages: list[Any], info: Any) -> str:
        received.append(messages[0].content)
        return f"answer to {messages[0].content}"

    sub = Agent(name="expert", model=FunctionModel(answer))
    parent = Agent(name="lead", model=ScriptedModel([ToolCall("expert", {"task": "what is 2+2?"}), "done"]))
    parent.add_subagents(sub)
    result = await parent.run("go")
    assert received == ["what is 2+2?"]
    returns = [m for m in result.messages if isinstance(m, ToolReturn)]
    assert returns[0].content == "answer to what is 2+2?"
    assert result.output == "done"


async def test_child_context_copies_parent() -> None:
    """The subagent runs with a new context of the same class: query kept, metadata copied, agent set."""
    seen: list[RunContext] = []
    service: dict[str, Any] = {"db": "connection"}
    sub = Agent(name="sub", model=ScriptedModel([ToolCall("probe", {}), "ok"]), tools=[recorder(seen)])

    @tool
    async def parent_probe(ctx: AppContext) -> str:
        """Record the parent's context after the child ran."""
        seen.append(ctx)
        return "parent probed"

    parent = Agent(
        name="parent",
        model=ScriptedModel([ToolCall("sub", {"task": "t"}), ToolCall("parent_probe", {}), "done"]),
        tools=[parent_probe],
        subagents=[sub],
    )
    caller = AppContext(user_id="u1", service=service, metadata={"tenant": "acme"})
    result = await parent.run("the question", context=caller)
    child, parent_ctx = seen
    assert type(child) is AppContext
    assert child is not parent_ctx
    assert child.query == "the question"
    assert child.user_id == "u1"
    assert child.service is service  # services are shared by reference
    assert child.metadata == {"tenant": "acme"}
    assert child.metadata is not parent_ctx.metadata
    assert child.agent is sub
    assert parent_ctx is result.context
    assert parent_ctx.agent is parent
    assert caller.agent is None


async def test_child_metadata_writes_never_reach_parent() -> None:
    """Metadata written by a subagent's tool is invisible to the parent and to the caller."""

    @tool
    def write(ctx: RunContext) -> str:
        """Write into the metadata."""
        ctx.metadata["written_by"] = ctx.agent.name if ctx.agent else "?"
        ctx.metadata["tenant"] = "changed"
        return "written"

    sub = Agent(name="sub", model=ScriptedModel([ToolCall("write", {}), "ok"]), tools=[write])
    parent = Agent(name="parent", model=ScriptedModel([ToolCall("sub", {"task": "t"}), "done"]), subagents=[sub])
    caller = RunContext(metadata={"tenant": "acme"})
    result = await parent.run("q", context=caller)
    assert result.context.metadata == {"tenant": "acme"}
    assert caller.metadata == {"tenant": "acme"}


async def test_parallel_delegations_do_not_interfere() -> None:
    """Two subagents delegated in one response each see their own agent and their own metadata."""
    both_wrote = anyio.Event()
    writes = 0
    observed: dict[str, tuple[str | None, Any, bool]] = {}

    @tool
    async def mark(ctx: RunContext) -> str:
        """Write this agent's name into the metadata, wait for the sibling, then read it back."""
        nonlocal writes
        assert ctx.agent is not None
        ctx.metadata["owner"] = ctx.agent.name
        writes += 1
        if writes == 2:
            both_wrote.set()
        with anyio.fail_after(5):
            await both_wrote.wait()
        observed[ctx.agent.name] = (ctx.agent.name, ctx.metadata["owner"], current_context() is ctx)
        return "marked"

    alpha = Agent(name="alpha", model=ScriptedModel([ToolCall("mark", {}), "a"]), tools=[mark])
    beta = Agent(name="beta", model=ScriptedModel([ToolCall("mark", {}), "b"]), tools=[mark])
    parent = Agent(
        name="parent",
        model=ScriptedModel([[ToolCall("alpha", {"task": "x"}), ToolCall("beta", {"task": "y"})], "done"]),
        subagents=[alpha, beta],
    )
    result = await parent.run("q", context={"owner": "caller"})
    assert observed == {"alpha": ("alpha", "alpha", True), "beta": ("beta", "beta", True)}
    assert result.context.metadata == {"owner": "caller"}
    assert result.context.agent is parent


async def test_usage_sums_over_the_tree() -> None:
    """The run's usage adds every subagent's requests, tokens and tool calls to the parent's."""

    def reply(text: str, tokens: int) -> ModelResponse:
        return ModelResponse(text=text, usage=Usage(input_tokens=tokens, output_tokens=tokens // 10))

    leaf_steps: list[Any] = [ToolCall("noop", {}), reply("leaf done", 100)]

    @tool
    def noop() -> str:
        """Do nothing."""
        return "ok"

    leaf = Agent(name="leaf", model=ScriptedModel(leaf_steps), tools=[noop])
    alone = await leaf.run("x")
    mid = Agent(
        name="mid",
        model=ScriptedModel([ToolCall("leaf", {"task": "t"}), reply("mid done", 20)]),
        subagents=[leaf],
    )
    root = Agent(
        name="root",
        model=ScriptedModel(
            [[ToolCall("mid", {"task": "t"}), ToolCall("leaf", {"task": "t"})], reply("root done", 30)]
        ),
        subagents=[mid, leaf],
    )
    result = await root.run("q")
    # root: 2 requests, 2 delegations; mid: 2 requests, 1 delegation; two leaf runs.
    assert result.usage.requests == 2 + 2 + 2 * alone.usage.requests
    assert result.usage.input_tokens == 30 + 20 + 2 * alone.usage.input_tokens
    assert result.usage.output_tokens == 3 + 2 + 2 * alone.usage.output_tokens
    assert result.usage.tool_calls == 2 + 1 + 2 * alone.usage.tool_calls


async def test_trace_nests_subagent_events_under_delegation() -> None:
    """The delegation event of the trace holds the subagent's own events in `children`."""
    seen: list[RunContext] = []
    sub = Agent(name="sub", model=ScriptedModel([ToolCall("probe", {}), "sub done"]), tools=[recorder(seen)])
    parent = Agent(name="parent", model=ScriptedModel([ToolCall("sub", {"task": "t"}), "done"]), subagents=[sub])
    result = await parent.run("q", context=TaskContext())
    kinds = [(e.kind, e.agent, e.depth) for e in result.trace]
    assert kinds == [("model_request", "parent", 0), ("delegation", "sub", 1), ("model_request", "parent", 0)]
    delegation = result.trace[1]
    assert delegation.tool_name == "sub"
    assert delegation.detail == "sub done"
    assert [(e.kind, e.agent, e.depth, e.tool_name) for e in delegation.children] == [
        ("model_request", "sub", 1, None),
        ("tool_call", "sub", 1, "probe"),
        ("model_request", "sub", 1, None),
    ]
    (child,) = seen
    assert isinstance(child, TaskContext)
    assert delegation.task_id == child.task_id
    assert delegation.parent_task_id == result.context.task_id
    assert all(e.task_id == child.task_id for e in delegation.children)


async def test_create_child_context_override_is_called() -> None:
    """A subclass overriding `create_child_context()` gets its children built by its own method."""
    seen: list[RunContext] = []
    leaf = Agent(name="leaf", model=ScriptedModel([ToolCall("probe", {}), "ok"]), tools=[recorder(seen)])
    mid = Agent(name="mid", model=delegating_model("leaf"), tools=[recorder(seen)], subagents=[leaf])
    root = Agent(name="root", model=delegating_model("mid"), tools=[recorder(seen)], subagents=[mid])
    caller = ChildCounting()
    result = await root.run("q", context=caller)
    by_agent: dict[str, Any] = {c.agent.name: c for c in seen if c.agent is not None}
    assert all(isinstance(c, ChildCounting) for c in seen)
    assert {name: c.generation for name, c in by_agent.items()} == {"root": 0, "mid": 1, "leaf": 2}
    assert caller.built == [0, 1]
    assert by_agent["mid"].agent is mid and by_agent["leaf"].agent is leaf
    assert result.context.generation == 0


async def test_override_returning_parent_object_does_not_change_parent() -> None:
    """If `create_child_context()` returns `self`, the framework still leaves the parent's agent and metadata alone."""
    seen: list[RunContext] = []

    @tool
    def write(ctx: RunContext) -> str:
        """Record the context and write into its metadata."""
        seen.append(ctx)
        ctx.metadata["child"] = True
        return "ok"

    sub = Agent(name="sub", model=ScriptedModel([ToolCall("write", {}), "ok"]), tools=[write])
    parent = Agent(name="parent", model=ScriptedModel([ToolCall("sub", {"task": "t"}), "done"]), subagents=[sub])
    result = await parent.run("q", context=SharedChild(metadata={"k": 1}))
    (child,) = seen
    assert child.agent is sub and type(child) is SharedChild
    assert result.context.agent is parent
    assert result.context.metadata == {"k": 1}


# --- cycles and the hard limit --------------------------------------------------------


async def test_self_delegation_stopped_by_default_max_depth() -> None:
    """An agent that delegates to itself stops with `DelegationDepthExceeded` at the default depth 16."""
    depths: list[int] = []

    @tool
    def where(ctx: DelegationContext) -> str:
        """Record the depth."""
        depths.append(ctx.depth)
        return "here"

    looping = Agent(
        name="looping",
        model=ScriptedModel([[ToolCall("where", {}), ToolCall("looping", {"task": "again"})], "never"]),
        tools=[where],
        parallel_tool_calls=False,
    )
    looping.add_subagents(looping)
    with pytest.raises(DelegationDepthExceeded, match="max_depth=16"):
        await looping.run("start", context=DelegationContext(max_depth=1000))
    assert depths == list(range(17))


async def test_mutual_delegation_stopped_by_custom_max_depth() -> None:
    """Two agents delegating to each other stop at `run(max_depth=3)` before a fourth delegation runs."""
    calls: list[str] = []

    @tool
    def where(ctx: RunContext) -> str:
        """Record the agent."""
        calls.append(ctx.agent.name if ctx.agent else "?")
        return "here"

    ping = Agent(name="ping", model=ScriptedModel([ToolCall("where", {}), ToolCall("pong", {"task": "t"}), "x"]))
    pong = Agent(name="pong", model=ScriptedModel([ToolCall("where", {}), ToolCall("ping", {"task": "t"}), "x"]))
    ping.add_tools(where)
    pong.add_tools(where)
    ping.add_subagents(pong)
    pong.add_subagents(ping)
    with pytest.raises(DelegationDepthExceeded) as raised:
        await ping.run("start", max_depth=3)
    assert calls == ["ping", "pong", "ping", "pong"]
    assert "'pong' tried to delegate to 'ping' at depth 4" in str(raised.value)


async def test_max_depth_zero_forbids_delegation() -> None:
    """`run(max_depth=0)` allows no delegation at all: the subagent never runs."""
    seen: list[RunContext] = []
    sub = Agent(name="sub", model=ScriptedModel([ToolCall("probe", {}), "ok"]), tools=[recorder(seen)])
    parent = Agent(name="parent", model=ScriptedModel([ToolCall("sub", {"task": "t"}), "done"]), subagents=[sub])
    with pytest.raises(DelegationDepthExceeded):
        await parent.run("q", max_depth=0)
    assert seen == []


async def test_negative_max_depth_is_a_user_error() -> None:
    """`run(max_depth=-1)` is rejected with a `UserError`."""
    agent = Agent(name="a", model=ScriptedModel(["ok"]))
    with pytest.raises(UserError, match="max_depth"):
        await agent.run("q", max_depth=-1)


# --- run_sync -------------------------------------------------------------------------


@tool
def process_task(ctx: DelegationContext) -> str:
    """Process a task with depth awareness (the spec's "Tracking Delegation Depth" tool)."""
    if ctx.depth >= ctx.max_depth:
        return "Maximum delegation depth reached - handling directly"
    if ctx.depth == 0:
        return "Top-level processing"
    return f"Sub-task processing at depth {ctx.depth}"


@tool
def analyze_lineage(ctx: TaskContext) -> str:
    """Show task lineage information (the spec's "Task Lineage Tracking" tool)."""
    if ctx.is_root_task:
        return f"Root task: {ctx.task_id}"
    chain = " → ".join([*ctx.task_chain, ctx.task_id])
    return f"Task chain ({ctx.depth} deep): {chain}"


specialist = Agent(
    name="specialist",
    model=ScriptedModel([[ToolCall("process_task", {}), ToolCall("analyze_lineage", {})], "specialist done"]),
    tools=[process_task, analyze_lineage],
)


@dataclass
class DepthAndLineage(DelegationContext, TaskContext):
    """Both spec patterns in one context, for the hand-written delegation tools."""


@tool
def delegate_task(task: str, ctx: DepthAndLineage) -> str:
    """Delegate to the specialist by hand with incremented depth and an extended chain (spec pattern)."""
    child = DepthAndLineage(
        query=ctx.query,
        depth=ctx.depth + 1,
        max_depth=ctx.max_depth,
        task_id=generate_id(),
        parent_task_id=ctx.task_id,
        task_chain=[*ctx.task_chain, ctx.task_id],
        metadata=ctx.metadata,
    )
    result = specialist.run_sync(task, context=child)
    returns = [m.content for m in result.messages if isinstance(m, ToolReturn)]
    return " | ".join([*returns, str(result.output)])


async def test_run_sync_inside_sync_tool_delegates_by_hand() -> None:
    """A sync tool (in a worker thread) can run another agent with `run_sync` and a hand-made context."""
    root = Agent(
        name="orchestrator",
        model=ScriptedModel([ToolCall("delegate_task", {"task": "sub-task"}), "all done"]),
        tools=[delegate_task],
    )
    ctx = DepthAndLineage(task_id="root")
    result = await root.run("big task", context=ctx)
    (content,) = [m.content for m in result.messages if isinstance(m, ToolReturn)]
    depth_text, lineage_text, output = content.split(" | ")
    assert depth_text == "Sub-task processing at depth 1"
    assert lineage_text.startswith("Task chain (1 deep): root → ") and lineage_text != "Task chain (1 deep): root → "
    assert output == "specialist done"
    assert result.output == "all done"


def test_run_sync_from_plain_sync_code() -> None:
    """Outside any event loop `run_sync` starts its own loop and returns the result."""
    result = specialist.run_sync("work", context=DepthAndLineage())
    assert result.output == "specialist done"
    assert result.context.depth == 0


async def test_run_sync_on_event_loop_thread_is_a_user_error() -> None:
    """`run_sync` called from async code on the loop's thread raises a `UserError` that says to await `run()`."""
    with pytest.raises(UserError, match=r"await agent\.run"):
        specialist.run_sync("work")


# --- property: random trees run concurrently ------------------------------------------

Shape = tuple["Shape", ...]
_agent_counter = itertools.count()


def shapes(level: int = 0, max_level: int = 4) -> st.SearchStrategy[Shape]:
    """Trees of children tuples: fan-out at most 3, no node deeper than `max_level`."""
    if level == max_level:
        return st.just(())
    return st.lists(st.deferred(lambda: shapes(level + 1, max_level)), max_size=3).map(tuple)


def build_tree(
    shape: Shape, path: tuple[int, ...], records: dict[tuple[int, tuple[int, ...]], dict[str, Any]]
) -> Agent[Any, Any]:
    """Build the agent for `path`: its first response calls `probe` and every child at once."""
    name = f"n{next(_agent_counter)}"
    children = [build_tree(sub, (*path, i), records) for i, sub in enumerate(shape)]

    @tool
    async def probe(ctx: ExecutionContext) -> str:
        """Record what this position sees, with a checkpoint in between to interleave runs."""
        ctx.metadata["path"] = path
        await anyio.lowlevel.checkpoint()
        key = (ctx.metadata["run"], path)
        assert key not in records, f"position {key} probed twice"
        records[key] = {
            "depth": ctx.depth,
            "task_id": ctx.task_id,
            "parent_task_id": ctx.parent_task_id,
            "task_chain": list(ctx.task_chain),
            "agent": ctx.agent,
            "current": current_context() is ctx,
            "path": ctx.metadata["path"],
        }
        return "probed"

    return Agent(
        name=name,
        model=ScriptedModel([[ToolCall("probe", {}), *(ToolCall(c.name, {"task": "go"}) for c in children)], "ok"]),
        tools=[probe],
        subagents=children,
    )


def count_nodes(shape: Shape) -> int:
    """The number of agents in a shape."""
    return 1 + sum(count_nodes(s) for s in shape)


def all_paths(shape: Shape, path: tuple[int, ...] = ()) -> list[tuple[int, ...]]:
    """Every position of a shape, parents before children."""
    return [path, *(p for i, s in enumerate(shape) for p in all_paths(s, (*path, i)))]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=shapes(), runs=st.integers(min_value=2, max_value=4))
async def test_random_trees_see_their_own_position(shape: Shape, runs: int) -> None:
    """In concurrent runs of random agent trees, every tool sees its own depth, lineage, agent and run."""
    records: dict[tuple[int, tuple[int, ...]], dict[str, Any]] = {}
    agents: dict[tuple[int, ...], Agent[Any, Any]] = {}
    root = build_tree(shape, (), records)

    def index(agent: Agent[Any, Any], path: tuple[int, ...]) -> None:
        agents[path] = agent
        for i, child in enumerate(agent.subagents):
            index(child, (*path, i))

    index(root, ())
    results: dict[int, Any] = {}

    async def one(run: int) -> None:
        results[run] = await root.run(f"run {run}", context=ExecutionContext(max_depth=4, metadata={"run": run}))

    async with anyio.create_task_group() as tg:
        for run in range(runs):
            tg.start_soon(one, run)

    nodes = count_nodes(shape)
    task_ids = [r["task_id"] for r in records.values()]
    assert len(set(task_ids)) == len(task_ids) == nodes * runs
    for run, result in results.items():
        assert result.context.metadata == {"run": run, "path": ()}  # children wrote only their copies
        assert result.usage.requests == 2 * nodes
        assert result.usage.tool_calls == 2 * nodes - 1
        for path in all_paths(shape):
            seen = records[(run, path)]
            assert seen["depth"] == len(path)
            assert seen["agent"] is agents[path]
            assert seen["current"] is True
            assert seen["path"] == path
            if not path:
                assert seen["task_id"] == result.context.task_id
                assert (seen["parent_task_id"], seen["task_chain"]) == (None, [])
            else:
                parent = records[(run, path[:-1])]
                assert seen["parent_task_id"] == parent["task_id"]
                assert seen["task_chain"] == [*parent["task_chain"], parent["task_id"]]
