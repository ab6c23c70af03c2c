"""Deadlines: a context's `deadline` cuts off tools, model requests and subagents promptly."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio
import pytest

from cogent import (
    Agent,
    DeadlineExceeded,
    ExecutionContext,
    FunctionModel,
    RunContext,
    ScriptedModel,
    TimedContext,
    ToolCall,
    UserError,
    current_context,
    tool,
)
from cogent.core import now_utc
from cogent.messages import Message

pytestmark = pytest.mark.anyio

PROMPT_BOUND = 1.0
"""Seconds: the generous bound within which a 300 ms deadline must end the run (the issue's bound)."""


@dataclass
class SpecTimedContext(RunContext):
    """The primary spec's "Execution Timing" `TimedContext`, written as the spec writes it."""

    started_at: datetime = field(default_factory=now_utc)
    deadline: datetime | None = None

    @property
    def elapsed_seconds(self) -> float:
        return (now_utc() - self.started_at).total_seconds()

    @property
    def is_overdue(self) -> bool:
        if self.deadline is None:
            return False
        return now_utc() > self.deadline

    @property
    def remaining_seconds(self) -> float | None:
        if self.deadline is None:
            return None
        return (self.deadline - now_utc()).total_seconds()


def in_ms(milliseconds: float) -> datetime:
    """A timezone-aware deadline `milliseconds` from now."""
    return now_utc() + timedelta(milliseconds=milliseconds)


def task_count() -> int:
    """The number of tasks alive in the current event loop."""
    return len(anyio.get_running_tasks())


def sleeping_agent(after_sleep: list[str], name: str = "sleeper") -> Agent[Any, Any]:
    """An agent whose model calls two async tools at once; one sleeps 10 s, one 20 s."""

    @tool
    async def slow(seconds: float) -> str:
        """Sleep, then note that the code after the sleep ran."""
        await anyio.sleep(seconds)
        after_sleep.append(f"slept {seconds}")
        return "awake"

    calls = [ToolCall("slow", {"seconds": 10}), ToolCall("slow", {"seconds": 20})]
    return Agent(name=name, model=ScriptedModel([calls, "done"]), tools=[slow])


async def test_deadline_cuts_off_sleeping_async_tools() -> None:
    """A 300 ms deadline ends a run whose tools sleep 10 s with `DeadlineExceeded` well under a second."""
    after_sleep: list[str] = []
    agent = sleeping_agent(after_sleep)
    tasks_before = task_count()
    deadline = in_ms(300)
    started = time.perf_counter()
    with pytest.raises(DeadlineExceeded, match="'sleeper' did not finish before its context's deadline"):
        await agent.run("q", context=TimedContext(deadline=deadline))
    raised_at = now_utc()
    assert time.perf_counter() - started < PROMPT_BOUND
    print(f"\nDeadlineExceeded {(raised_at - deadline).total_seconds() * 1000:.1f} ms after the deadline")
    assert after_sleep == []
    assert task_count() == tasks_before
    with pytest.raises(LookupError):
        current_context()


async def test_deadline_exceeded_is_a_timeout_error() -> None:
    """`DeadlineExceeded` can be caught as the built-in `TimeoutError`."""
    agent = sleeping_agent([])
    with pytest.raises(TimeoutError):
        await agent.run("q", context=ExecutionContext(deadline=in_ms(50)))


async def test_subagent_inherits_deadline() -> None:
    """A subagent runs under its parent's deadline: its sleeping tool is cut off and the run fails promptly."""
    after_sleep: list[str] = []
    seen: list[ExecutionContext] = []

    @tool
    async def note(ctx: ExecutionContext) -> str:
        """Record the subagent's context."""
        seen.append(ctx)
        return "noted"

    sub = sleeping_agent(after_sleep, name="sub")
    sub.add_tools(note)
    sub.model = ScriptedModel([ToolCall("note", {}), [ToolCall("slow", {"seconds": 10})], "done"])
    parent = Agent(name="parent", model=ScriptedModel([ToolCall("sub", {"task": "t"}), "done"]), subagents=[sub])
    tasks_before = task_count()
    deadline = in_ms(300)
    caller = ExecutionContext(deadline=deadline)
    started = time.perf_counter()
    with pytest.raises(DeadlineExceeded):
        await parent.run("q", context=caller)
    assert time.perf_counter() - started < PROMPT_BOUND
    assert after_sleep == []
    assert task_count() == tasks_before
    (child,) = seen
    assert child.deadline == deadline
    assert child.depth == 1 and child.started_at > caller.started_at


async def test_blocking_sync_tool_is_abandoned() -> None:
    """A sync tool blocked in its worker thread does not delay the deadline; the thread is abandoned.

    Python cannot stop a thread, so the blocked worker thread keeps running after
    `run()` has raised `DeadlineExceeded`: its code after the blocking call still runs
    once it unblocks, and its result is discarded. Tools that block should check
    `ctx.remaining_seconds` (or use a timeout) themselves.
    """
    release = threading.Event()
    finished = threading.Event()

    @tool
    def blocking(ctx: TimedContext) -> str:
        """Block until released, then note that the code after the block ran."""
        release.wait(10)
        finished.set()
        return "unblocked"

    agent = Agent(name="blocker", model=ScriptedModel([ToolCall("blocking", {}), "done"]), tools=[blocking])
    started = time.perf_counter()
    try:
        with pytest.raises(DeadlineExceeded):
            await agent.run("q", context=TimedContext(deadline=in_ms(300)))
        assert time.perf_counter() - started < PROMPT_BOUND
        assert not finished.is_set()  # the thread is still blocked: it was abandoned, not stopped
    finally:
        release.set()
    assert await anyio.to_thread.run_sync(finished.wait, 5)  # the abandoned thread ran to completion


async def test_hanging_model_request_is_cut_off() -> None:
    """A model request that hangs is cancelled at the deadline."""
    resumed: list[bool] = []

    async def hang(messages: list[Message], info: Any) -> str:
        await anyio.sleep(10)
        resumed.append(True)
        return "too late"

    agent = Agent(name="hanging", model=FunctionModel(hang))
    tasks_before = task_count()
    started = time.perf_counter()
    with pytest.raises(DeadlineExceeded):
        await agent.run("q", context=TimedContext(deadline=in_ms(300)))
    assert time.perf_counter() - started < PROMPT_BOUND
    assert resumed == []
    assert task_count() == tasks_before


async def test_past_deadline_fails_before_any_work() -> None:
    """A deadline already in the past raises `DeadlineExceeded` before the model is asked anything."""
    requests: list[str] = []

    def answer(messages: list[Message], info: Any) -> str:
        requests.append(info.agent_name)
        return "answered"

    agent = Agent(name="late", model=FunctionModel(answer))
    with pytest.raises(DeadlineExceeded, match="'late'"):
        await agent.run("q", context=TimedContext(deadline=now_utc() - timedelta(seconds=1)))
    assert requests == []


async def test_spec_timed_context_is_plain_data_until_it_inherits_the_helper() -> None:
    """The spec's hand-written `TimedContext` (inheriting only RunContext) keeps `deadline` as data its tools read:
    a past deadline does not stop the run. The documented one-line change, inheriting `cogent.context.TimedContext`,
    makes the framework enforce it."""
    requests: list[str] = []

    def answer(messages: list[Message], info: Any) -> str:
        requests.append(info.agent_name)
        return "answered"

    agent = Agent(name="a", model=FunctionModel(answer))
    past = now_utc() - timedelta(seconds=1)
    result = await agent.run("q", context=SpecTimedContext(deadline=past))
    assert result.output == "answered" and result.context.is_overdue

    @dataclass
    class Enforced(TimedContext):  # the one-line change: the base class
        pass

    with pytest.raises(DeadlineExceeded):
        await agent.run("q", context=Enforced(deadline=past))
    assert requests == ["a"]


async def test_future_deadline_does_not_interfere() -> None:
    """A run that finishes before its deadline returns normally, and tools can read the remaining time."""
    remaining: list[float | None] = []

    @tool
    async def check(ctx: TimedContext) -> str:
        """Report the time left."""
        remaining.append(ctx.remaining_seconds)
        return "overdue" if ctx.is_overdue else "on time"

    agent = Agent(name="a", model=ScriptedModel([ToolCall("check", {}), "done"]), tools=[check])
    result = await agent.run("q", context=TimedContext(deadline=now_utc() + timedelta(minutes=1)))
    assert result.output == "done"
    (left,) = remaining
    assert left is not None and 0 < left <= 60


async def test_naive_deadline_is_a_user_error() -> None:
    """A deadline without a timezone is refused with a `UserError`, and the run leaves no current context."""
    agent = Agent(name="a", model=ScriptedModel(["done"]))
    with pytest.raises(UserError, match="timezone"):
        await agent.run("q", context=TimedContext(deadline=datetime.now() + timedelta(minutes=1)))
    with pytest.raises(LookupError):
        current_context()
