"""Helper contexts: depth, lineage and retries maintained by the framework, and their composition."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pydantic.dataclasses
import pytest

from cogent import (
    Agent,
    DelegationContext,
    ExecutionContext,
    FunctionModel,
    ModelRetry,
    RetryContext,
    RunContext,
    ScriptedModel,
    TaskContext,
    TimedContext,
    Tool,
    ToolCall,
    ToolRetriesExceeded,
    UserError,
    tool,
)
from cogent.core import generate_id, now_utc
from cogent.messages import Message, RetryPrompt, ToolReturn

pytestmark = pytest.mark.anyio


@dataclass
class Composed(DelegationContext, TaskContext, RetryContext, TimedContext):
    """A user context inheriting several helpers plus its own field."""

    tenant: str = "acme"


@dataclass(frozen=True)
class FrozenExecution(ExecutionContext):
    """A frozen user subclass of a helper, with a required field."""

    tenant: str


@dataclass(frozen=True, slots=True)
class FrozenRetry(RetryContext):
    """A frozen, slotted user subclass of `RetryContext`."""

    user_id: str = "u1"


@pydantic.dataclasses.dataclass
class ValidatedExecution(ExecutionContext):
    """A pydantic dataclass subclass of a helper."""

    tenant: str = "acme"


@dataclass
class SpecExecutionContext(RunContext):
    """The primary spec's "Combining Patterns" `ExecutionContext`, written as the spec writes it."""

    # Task identity
    task_id: str = field(default_factory=generate_id)
    parent_task_id: str | None = None

    # Delegation tracking
    depth: int = 0
    max_depth: int = 5

    # Retry tracking
    retry_count: int = 0
    is_retry: bool = False

    # Timing
    started_at: datetime = field(default_factory=now_utc)
    deadline: datetime | None = None

    @property
    def can_delegate(self) -> bool:
        return self.depth < self.max_depth

    @property
    def elapsed_seconds(self) -> float:
        return (now_utc() - self.started_at).total_seconds()

    def create_child_context(self) -> SpecExecutionContext:
        """Create context for delegated task."""
        return SpecExecutionContext(
            query=self.query,
            task_id=generate_id(),
            parent_task_id=self.task_id,
            depth=self.depth + 1,
            max_depth=self.max_depth,
            metadata=self.metadata,
            started_at=now_utc(),
            deadline=self.deadline,  # Propagate deadline
        )


@tool
def smart_task(ctx: SpecExecutionContext) -> str:
    """Task that uses comprehensive context (the spec's tool)."""
    if not ctx.can_delegate:
        return "Max delegation depth reached"

    if ctx.is_retry:
        return f"Retry attempt #{ctx.retry_count}"

    return f"Task {ctx.task_id} at depth {ctx.depth} (elapsed: {ctx.elapsed_seconds:.1f}s)"


def probe_tool(seen: list[RunContext]) -> Tool[Any, Any]:
    """A `probe` tool recording the context it receives (after a checkpoint, to interleave)."""

    @tool
    async def probe(ctx: RunContext) -> str:
        """Record the context."""
        await anyio.lowlevel.checkpoint()
        seen.append(ctx)
        return "probed"

    return probe


def three_levels(seen: list[RunContext]) -> Agent[Any, Any]:
    """root -> mid -> leaf; each agent first calls `probe` and its subagent in one response."""
    probe = probe_tool(seen)
    leaf = Agent(name="leaf", model=ScriptedModel([ToolCall("probe", {}), "leaf done"]), tools=[probe])
    mid = Agent(
        name="mid",
        model=ScriptedModel([[ToolCall("probe", {}), ToolCall("leaf", {"task": "t"})], "mid done"]),
        tools=[probe],
        subagents=[leaf],
    )
    return Agent(
        name="root",
        model=ScriptedModel([[ToolCall("probe", {}), ToolCall("mid", {"task": "t"})], "root done"]),
        tools=[probe],
        subagents=[mid],
    )


def by_agent(seen: list[RunContext]) -> dict[str, Any]:
    """The recorded contexts keyed by the name of the agent that executed them."""
    return {c.agent.name: c for c in seen if c.agent is not None}


# --- depth and lineage in a three-level tree ------------------------------------------


async def test_delegation_depth_in_three_levels() -> None:
    """Tools at the root, mid and leaf levels see `DelegationContext.depth` 0, 1 and 2."""
    seen: list[RunContext] = []
    result = await three_levels(seen).run("q", context=DelegationContext())
    contexts = by_agent(seen)
    assert {name: c.depth for name, c in contexts.items()} == {"root": 0, "mid": 1, "leaf": 2}
    assert all(type(c) is DelegationContext and c.max_depth == 3 for c in seen)
    assert result.context.depth == 0


async def test_task_lineage_in_three_levels() -> None:
    """`TaskContext` ids chain: each child's parent id is its parent's id and the chain grows by it."""
    seen: list[RunContext] = []
    result = await three_levels(seen).run("q", context=TaskContext(task_id="root-task"))
    c = by_agent(seen)
    assert c["root"] is result.context
    assert (c["root"].task_id, c["root"].parent_task_id, c["root"].task_chain) == ("root-task", None, [])
    assert c["root"].is_root_task and not c["mid"].is_root_task
    assert c["mid"].parent_task_id == "root-task"
    assert c["mid"].task_chain == ["root-task"]
    assert c["leaf"].parent_task_id == c["mid"].task_id
    assert c["leaf"].task_chain == ["root-task", c["mid"].task_id]
    assert len({c["root"].task_id, c["mid"].task_id, c["leaf"].task_id}) == 3
    assert [c[name].depth for name in ("root", "mid", "leaf")] == [0, 1, 2]


async def test_execution_context_depth_and_lineage() -> None:
    """`ExecutionContext` gets depth and lineage advanced together at each level."""
    seen: list[RunContext] = []
    await three_levels(seen).run("q", context=ExecutionContext())
    c = by_agent(seen)
    assert [c[n].depth for n in ("root", "mid", "leaf")] == [0, 1, 2]
    assert c["leaf"].task_chain == [c["root"].task_id, c["mid"].task_id]
    assert c["leaf"].parent_task_id == c["mid"].task_id
    assert all(type(x) is ExecutionContext and x.max_depth == 5 for x in seen)


async def test_refusal_at_max_depth() -> None:
    """At `depth >= max_depth` the delegation is refused: the subagent never runs and the model sees an error."""
    seen: list[RunContext] = []
    root = three_levels(seen)
    result = await root.run("q", context=DelegationContext(max_depth=1))
    assert sorted(by_agent(seen)) == ["mid", "root"]  # the leaf's tools never ran
    assert result.output == "root done"
    (delegation,) = [e for e in result.trace if e.kind == "delegation"]
    refused = [e for e in delegation.children if e.kind == "delegation_refused"]
    assert [(e.agent, e.tool_name, e.depth) for e in refused] == [("mid", "leaf", 1)]
    assert not [e for e in delegation.children if e.kind == "delegation"]
    assert refused[0].detail is not None and refused[0].detail.startswith("Error:")
    assert "depth 1" in refused[0].detail and "max_depth is 1" in refused[0].detail


async def test_refused_delegation_is_an_error_tool_result_for_the_model() -> None:
    """The delegating model receives the refusal as the subagent tool's result, starting with `Error:`."""
    histories: list[list[Message]] = []

    def mid_model(messages: list[Message], info: Any) -> Any:
        histories.append(list(messages))
        return ToolCall("leaf", {"task": "t"}) if len(messages) == 1 else "handled directly"

    leaf_ran: list[bool] = []

    def leaf_model(messages: list[Message], info: Any) -> str:
        leaf_ran.append(True)
        return "leaf"

    leaf = Agent(name="leaf", model=FunctionModel(leaf_model))
    mid = Agent(name="mid", model=FunctionModel(mid_model), subagents=[leaf])
    root = Agent(name="root", model=ScriptedModel([ToolCall("mid", {"task": "t"}), "ok"]), subagents=[mid])
    await root.run("q", context=ExecutionContext(max_depth=1))
    assert leaf_ran == []
    last = histories[-1][-1]
    assert isinstance(last, ToolReturn) and last.tool_name == "leaf"
    assert last.content.startswith("Error: Delegation to 'leaf' was refused")


# --- the spec's own ExecutionContext (duck-typed helpers) ------------------------------


async def test_spec_execution_context_gets_its_override_called_but_no_enforcement() -> None:
    """The spec's hand-written `ExecutionContext` (inheriting only RunContext): the framework calls its
    `create_child_context()` override, but does not enforce `can_delegate` (one rule: only cogent's helper classes are
    enforced), so its own tools check it, as the spec's `smart_task` does."""
    seen: list[RunContext] = []
    result = await three_levels(seen).run("q", context=SpecExecutionContext(max_depth=1))
    c = by_agent(seen)
    assert sorted(c) == ["leaf", "mid", "root"]
    assert c["mid"].depth == 1 and c["mid"].parent_task_id == c["root"].task_id
    assert c["leaf"].depth == 2 and not c["leaf"].can_delegate
    assert type(c["mid"]) is SpecExecutionContext
    assert not any(e.kind == "delegation_refused" for e in result.trace[1].children)


async def test_inheriting_cogents_execution_context_enforces_the_same_limit() -> None:
    """The one-line change (inherit `cogent.context.ExecutionContext`) makes the framework refuse the delegation
    from `depth >= max_depth`."""

    @dataclass
    class Tracked(ExecutionContext):
        pass

    seen: list[RunContext] = []
    result = await three_levels(seen).run("q", context=Tracked(max_depth=1))
    assert sorted(by_agent(seen)) == ["mid", "root"]
    assert any(e.kind == "delegation_refused" for e in result.trace[1].children)


async def test_spec_execution_context_metadata_writes_stay_in_child() -> None:
    """Though the spec's override passes `metadata=self.metadata`, child writes never reach the parent."""

    @tool
    def write(ctx: SpecExecutionContext) -> str:
        """Write into the metadata."""
        ctx.metadata["child_wrote"] = True
        return "ok"

    sub = Agent(name="sub", model=ScriptedModel([ToolCall("write", {}), "ok"]), tools=[write])
    root = Agent(name="root", model=ScriptedModel([ToolCall("sub", {"task": "t"}), "done"]), subagents=[sub])
    caller = SpecExecutionContext(metadata={"tenant": "acme"})
    result = await root.run("q", context=caller)
    assert result.context.metadata == {"tenant": "acme"}
    assert caller.metadata == {"tenant": "acme"}


async def test_spec_smart_task_sees_retry_with_cogents_execution_context() -> None:
    """The spec's `smart_task` reports the retry when its context is cogent's `ExecutionContext` (the framework gives
    the retried call a marked copy); with the spec's hand-written class the fields stay as the caller set them."""
    outcomes: list[str] = []

    @tool
    def flaky(ctx: RunContext) -> str:
        """Fail on the first call, then report what `smart_task` would say."""
        outcome = smart_task.__wrapped__(ctx)  # type: ignore[arg-type]
        outcomes.append(outcome)
        if len(outcomes) % 2:
            raise ModelRetry("try again")
        return outcome

    agent = Agent(name="a", model=ScriptedModel([ToolCall("flaky", {}), ToolCall("flaky", {}), "done"]), tools=[flaky])
    result = await agent.run("q", context=ExecutionContext())
    assert outcomes[0].startswith("Task ") and outcomes[0].endswith("at depth 0 (elapsed: 0.0s)")
    assert outcomes[1] == "Retry attempt #1"
    assert result.context.retry_count == 0 and result.context.is_retry is False
    await agent.run("q", context=SpecExecutionContext())
    assert outcomes[3].startswith("Task ")  # no retry copy for a class that only shares the field names


# --- retries --------------------------------------------------------------------------


@pytest.mark.parametrize("context_class", [RetryContext, ExecutionContext, Composed])
async def test_retry_count_after_model_retry(context_class: type[RetryContext]) -> None:
    """A tool retried after `ModelRetry` sees `retry_count=1, is_retry=True`; a later fresh call sees 0 again."""
    seen: list[tuple[int, bool]] = []

    @tool
    def fetch(ctx: RetryContext) -> str:
        """Fail once, then succeed."""
        seen.append((ctx.retry_count, ctx.is_retry))
        if len(seen) == 1:
            raise ModelRetry("The server was busy; try again.")
        return "data"

    model = ScriptedModel([ToolCall("fetch", {}), ToolCall("fetch", {}), ToolCall("fetch", {}), "done"])
    agent = Agent(name="a", model=model, tools=[fetch])
    result = await agent.run("q", context=context_class())
    assert seen == [(0, False), (1, True), (0, False)]
    assert (result.context.retry_count, result.context.is_retry) == (0, False)
    retries = [m for m in result.messages if isinstance(m, RetryPrompt)]
    assert [r.content for r in retries] == ["The server was busy; try again."]


@pytest.mark.parametrize(
    ("context", "match", "runs"),
    [
        (RetryContext(max_retries=2), r"'always_fails' .*3 times", [0, 1, 2]),
        (RetryContext(), r"'always_fails' .*4 times.*more than the 3 retries allowed", [0, 1, 2, 3]),
    ],
    ids=["max_retries=2", "default"],
)
async def test_max_retries_bounds_tool_retries(context: RetryContext, match: str, runs: list[int]) -> None:
    """`RetryContext.max_retries` (3 by default) retries a failing tool that many times, then raises
    `ToolRetriesExceeded`."""
    seen: list[int] = []

    @tool
    def always_fails(ctx: RetryContext) -> str:
        """Always ask for a retry."""
        seen.append(ctx.retry_count)
        raise ModelRetry("again")

    agent = Agent(name="a", model=FunctionModel(lambda m, i: ToolCall("always_fails", {})), tools=[always_fails])
    with pytest.raises(ToolRetriesExceeded, match=match):
        await agent.run("q", context=context)
    assert seen == runs


async def test_max_retries_overrides_agent_tool_retries() -> None:
    """The context's `max_retries` wins over `Agent(tool_retries=...)`."""
    calls: list[int] = []

    @tool
    def always_fails(ctx: RetryContext) -> str:
        """Always ask for a retry."""
        calls.append(ctx.retry_count)
        raise ModelRetry("again")

    agent = Agent(
        name="a", model=FunctionModel(lambda m, i: ToolCall("always_fails", {})), tools=[always_fails], tool_retries=10
    )
    with pytest.raises(ToolRetriesExceeded):
        await agent.run("q", context=RetryContext(max_retries=1))
    assert calls == [0, 1]


async def test_validation_errors_count_as_retries() -> None:
    """An argument validation error counts: the next valid call is a retry with `retry_count=1`."""
    seen: list[tuple[int, int, bool]] = []

    @tool
    def square(n: int, ctx: ExecutionContext) -> int:
        """Square a number."""
        seen.append((n, ctx.retry_count, ctx.is_retry))
        return n * n

    model = ScriptedModel([ToolCall("square", {"n": "not a number"}), ToolCall("square", {"n": 3}), "done"])
    result = await Agent(name="a", model=model, tools=[square]).run("q", context=ExecutionContext())
    assert seen == [(3, 1, True)]
    assert any(isinstance(m, RetryPrompt) and "square" in m.content for m in result.messages)


async def test_validation_errors_exhaust_retries() -> None:
    """Invalid arguments alone exhaust `max_retries` and raise `ToolRetriesExceeded`; the tool never runs."""
    ran: list[int] = []

    @tool
    def square(n: int) -> int:
        """Square a number."""
        ran.append(n)
        return n * n

    agent = Agent(name="a", model=FunctionModel(lambda m, i: ToolCall("square", {"n": "x"})), tools=[square])
    with pytest.raises(ToolRetriesExceeded):
        await agent.run("q", context=RetryContext(max_retries=1))
    assert ran == []


async def test_retry_copy_of_frozen_slotted_context() -> None:
    """A frozen, slotted `RetryContext` subclass still receives a retry copy; the original stays unchanged."""
    seen: list[FrozenRetry] = []

    @tool
    def fetch(ctx: FrozenRetry) -> str:
        """Fail once."""
        seen.append(ctx)
        if len(seen) == 1:
            raise ModelRetry("again")
        return "ok"

    agent = Agent(name="a", model=ScriptedModel([ToolCall("fetch", {}), ToolCall("fetch", {}), "done"]), tools=[fetch])
    result = await agent.run("q", context=FrozenRetry(user_id="u7"))
    assert [(c.retry_count, c.is_retry, c.user_id) for c in seen] == [(0, False, "u7"), (1, True, "u7")]
    assert seen[0] is result.context and seen[1] is not result.context
    assert result.context.retry_count == 0


# --- create_child_context and composition ---------------------------------------------


def test_child_context_fields() -> None:
    """`ExecutionContext.create_child_context()` advances every helper field as documented."""
    deadline = now_utc() + timedelta(minutes=5)
    parent = ExecutionContext(
        query="q",
        metadata={"k": [1]},
        depth=1,
        max_depth=4,
        task_id="p",
        parent_task_id="g",
        task_chain=["g"],
        retry_count=2,
        is_retry=True,
        max_retries=7,
        deadline=deadline,
        started_at=now_utc() - timedelta(seconds=10),
    )
    child = parent.create_child_context()
    assert type(child) is ExecutionContext
    assert (child.query, child.metadata) == ("q", {"k": [1]})
    assert child.metadata is not parent.metadata
    assert (child.depth, child.max_depth) == (2, 4)
    assert (child.parent_task_id, child.task_chain) == ("p", ["g", "p"])
    assert child.task_id not in ("p", "g")
    assert (child.retry_count, child.is_retry, child.max_retries) == (0, False, 7)
    assert child.deadline == deadline
    assert child.started_at > parent.started_at
    assert (parent.depth, parent.task_chain, parent.retry_count) == (1, ["g"], 2)


def test_composed_context_advances_every_helper() -> None:
    """A user class inheriting several helpers advances all of them and keeps its own fields."""
    parent = Composed(tenant="globex", depth=2, retry_count=1, is_retry=True, metadata={"a": 1})
    child = parent.create_child_context()
    assert type(child) is Composed
    assert child.tenant == "globex"
    assert child.depth == 3 and child.can_delegate is False
    assert child.parent_task_id == parent.task_id and child.task_chain == [parent.task_id]
    assert (child.retry_count, child.is_retry) == (0, False)


def test_task_before_delegation_is_a_user_error() -> None:
    """Listing `TaskContext` before `DelegationContext` (both define `depth`) is refused with a clear error."""
    with pytest.raises(UserError, match="List DelegationContext first"):

        @dataclass
        class Wrong(TaskContext, DelegationContext):
            pass


async def test_composed_context_through_three_levels() -> None:
    """A composed user context carries depth, lineage and its own field through a three-level tree."""
    seen: list[RunContext] = []
    await three_levels(seen).run("q", context=Composed(tenant="initech"))
    c = by_agent(seen)
    assert [c[n].depth for n in ("root", "mid", "leaf")] == [0, 1, 2]
    assert c["leaf"].task_chain == [c["root"].task_id, c["mid"].task_id]
    assert {x.tenant for x in seen} == {"initech"}
    assert all(type(x) is Composed for x in seen)


async def test_frozen_helper_subclass_through_three_levels() -> None:
    """A frozen user subclass of `ExecutionContext` works as the context of a delegating tree."""
    seen: list[RunContext] = []
    caller = FrozenExecution(tenant="t1", metadata={"m": 1})
    result = await three_levels(seen).run("q", context=caller)
    c = by_agent(seen)
    assert [c[n].depth for n in ("root", "mid", "leaf")] == [0, 1, 2]
    assert c["leaf"].parent_task_id == c["mid"].task_id
    assert all(type(x) is FrozenExecution and x.tenant == "t1" for x in seen)
    assert caller.query == "" and result.context.query == "q"  # frozen: only the copy is filled
    with pytest.raises(dataclasses.FrozenInstanceError):
        c["leaf"].depth = 9  # type: ignore[misc]


async def test_pydantic_dataclass_helper_subclass_through_three_levels() -> None:
    """A pydantic dataclass subclass of `ExecutionContext` gets depth and lineage advanced like any other."""
    seen: list[RunContext] = []
    await three_levels(seen).run("q", context=ValidatedExecution(tenant="t2"))
    c = by_agent(seen)
    assert [c[n].depth for n in ("root", "mid", "leaf")] == [0, 1, 2]
    assert c["leaf"].task_chain == [c["root"].task_id, c["mid"].task_id]
    assert all(type(x) is ValidatedExecution and x.tenant == "t2" for x in seen)


async def test_parent_context_unchanged_after_parallel_children() -> None:
    """After children wrote metadata and ran in parallel, the parent's context equals its earlier snapshot."""
    snapshots: list[dict[str, Any]] = []
    both_started = anyio.Event()
    started = 0

    @tool
    async def root_probe(ctx: ExecutionContext) -> str:
        """Snapshot the root's context before the children ran."""
        snapshots.append(
            {f.name: copy.copy(getattr(ctx, f.name)) for f in dataclasses.fields(ctx)} | {"agent": ctx.agent}
        )
        return "ok"

    @tool
    async def child_write(ctx: ExecutionContext) -> str:
        """Write metadata, wait for the sibling, write again."""
        nonlocal started
        ctx.metadata["writer"] = ctx.agent.name if ctx.agent else "?"
        started += 1
        if started == 2:
            both_started.set()
        with anyio.fail_after(5):
            await both_started.wait()
        ctx.metadata["finished"] = ctx.task_id
        return "written"

    def child(name: str) -> Agent[Any, Any]:
        return Agent(name=name, model=ScriptedModel([ToolCall("child_write", {}), name]), tools=[child_write])

    root = Agent(
        name="root",
        model=ScriptedModel(
            [
                ToolCall("root_probe", {}),
                [ToolCall("left", {"task": "t"}), ToolCall("right", {"task": "t"})],
                "done",
            ]
        ),
        tools=[root_probe],
        subagents=[child("left"), child("right")],
    )
    result = await root.run("q", context=ExecutionContext(metadata={"origin": "caller"}))
    after = {f.name: getattr(result.context, f.name) for f in dataclasses.fields(result.context)}
    assert snapshots == [after | {"agent": root}]
    assert result.context.metadata == {"origin": "caller"}
    assert result.usage.requests == 3 + 2 + 2
    assert result.usage.tool_calls == 1 + 2 + 2


@pytest.mark.parametrize("helper", [DelegationContext, TaskContext, RetryContext, TimedContext, ExecutionContext])
def test_every_helper_can_be_subclassed_with_required_fields(helper: type[RunContext]) -> None:
    """A subclass of any helper context may add required fields, passed positionally or by keyword, because every
    field the helpers define is keyword-only."""

    @dataclass
    class Tenant(helper):  # type: ignore[valid-type, misc]
        tenant_id: str

    assert Tenant("acme").tenant_id == "acme"  # type: ignore[call-arg]
    assert Tenant(tenant_id="acme").tenant_id == "acme"  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        helper(0)  # type: ignore[call-arg]


def test_timed_context_reports_overdue_remaining_and_elapsed_time() -> None:
    """`is_overdue` is true only once a deadline has passed; `remaining_seconds` is None without one and negative when
    overdue; `elapsed_seconds` counts from `started_at`."""
    assert TimedContext().is_overdue is False
    assert TimedContext().remaining_seconds is None
    past = TimedContext(deadline=now_utc() - timedelta(seconds=5), started_at=now_utc() - timedelta(seconds=10))
    assert past.is_overdue is True
    assert past.remaining_seconds is not None and past.remaining_seconds < 0
    assert past.elapsed_seconds >= 10
    future = TimedContext(deadline=now_utc() + timedelta(minutes=1))
    assert future.is_overdue is False
    assert future.remaining_seconds is not None and 0 < future.remaining_seconds <= 60
