"""Cancellation: cancelling a run stops its model request, tools and subagents at once and leaves nothing behind.

"Cancelling" means an anyio cancel scope around `agent.run()` (a task group being cancelled,
`move_on_after`, or leaving a `run_stream()` block early). After it: no task of the run is
left, the code after a cancelled tool's or model's await never runs, `current_context()` is
unset again, and other runs on the same loop are unaffected. The one exception is documented
in its own test: a *sync* tool in a worker thread cannot be interrupted, so its thread runs to
completion in the background; the run does not wait for it and its result reaches no one.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest

from cogent import (
    Agent,
    InterceptContext,
    Phase,
    RunContext,
    ToolApprovalItem,
    ToolCall,
    current_context,
    interceptor,
    tool,
)
from cogent.messages import Message
from cogent.models import FunctionModel, ModelRequestParameters

from ._support import busy_threads, calls_then

pytestmark = pytest.mark.anyio

GENEROUS = 5.0  # seconds: a bound for "promptly" that a loaded CI machine still meets
FOREVER = 3600


class Probe:
    """Records where a run's code started waiting and what ran after its awaits."""

    def __init__(self) -> None:
        self.waiting: list[str] = []
        self.after: list[str] = []
        self.all_waiting = anyio.Event()
        self.expected = 0

    async def hang(self, where: str) -> None:
        """Wait forever (until cancelled), recording the wait and anything that runs after it."""
        self.waiting.append(where)
        if len(self.waiting) >= self.expected:
            self.all_waiting.set()
        await anyio.sleep(FOREVER)
        self.after.append(where)


def hanging_tree(probe: Probe) -> Agent[Any, Any]:
    """A boss whose two tools hang and whose worker subagent's model hangs, all at the same time."""

    @tool
    async def slow_a() -> str:
        await probe.hang("tool a")
        return "a"

    @tool
    async def slow_b() -> str:
        await probe.hang("tool b")
        return "b"

    async def worker_model(messages: list[Message], info: ModelRequestParameters) -> str:
        await probe.hang("worker model")
        return "worker done"

    worker = Agent(name="worker", model=FunctionModel(worker_model), description="Works.")
    first = [ToolCall("slow_a", {}), ToolCall("slow_b", {}), ToolCall("worker", {"task": "t"})]
    return Agent(name="boss", model=calls_then(first), tools=[slow_a, slow_b], subagents=[worker])


async def cancel_when_waiting(probe: Probe, run: Any) -> float:
    """Start `run()` in a task group, cancel the group once every hang point waits; return how long it took."""
    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(GENEROUS):
            await probe.all_waiting.wait()
        started = time.perf_counter()
        group.cancel_scope.cancel()
    return time.perf_counter() - started


async def test_cancelling_a_run_stops_its_tools_and_subagents() -> None:
    """Cancelling the task group around run() stops two hanging tools and a subagent's hanging model request at
    once; no code after their awaits runs and no task is left."""
    probe = Probe()
    probe.expected = 3
    agent = hanging_tree(probe)
    tasks_before = len(anyio.get_running_tasks())
    finished: list[str] = []

    async def run() -> None:
        await agent.run("Go.")
        finished.append("run")

    took = await cancel_when_waiting(probe, run)
    assert took < GENEROUS
    assert sorted(probe.waiting) == ["tool a", "tool b", "worker model"]
    assert len(anyio.get_running_tasks()) == tasks_before
    await anyio.sleep(0.05)
    assert probe.after == [] and finished == []
    assert busy_threads() == []
    with pytest.raises(LookupError):
        current_context()


async def test_cancelling_a_hanging_model_request() -> None:
    """A run cancelled by `move_on_after` during its model request returns control at once; the model's code
    after its await never runs."""
    probe = Probe()
    probe.expected = 1

    async def model(messages: list[Message], info: ModelRequestParameters) -> str:
        await probe.hang("model")
        return "late"

    agent = Agent(name="a", model=FunctionModel(model))
    with anyio.move_on_after(GENEROUS) as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(agent.run, "Go.")
            await probe.all_waiting.wait()
            started = time.perf_counter()
            scope.deadline = anyio.current_time()  # the timeout fires now
    assert scope.cancelled_caught and time.perf_counter() - started < GENEROUS
    await anyio.sleep(0.05)
    assert probe.waiting == ["model"] and probe.after == []


async def test_leaving_a_stream_early_cancels_the_run() -> None:
    """Leaving a `run_stream()` block after the first event cancels the run: its hanging tools never resume and
    no task is left."""
    probe = Probe()
    probe.expected = 3
    agent = hanging_tree(probe)
    tasks_before = len(anyio.get_running_tasks())
    async with agent.run_stream("Go.") as stream:
        async for _ in stream:
            with anyio.fail_after(GENEROUS):
                await probe.all_waiting.wait()
            break
    assert len(anyio.get_running_tasks()) == tasks_before
    await anyio.sleep(0.05)
    assert probe.after == []


async def test_cancelling_during_an_interceptor_and_an_approval_handler() -> None:
    """A run cancelled while an async PRE_ACT interceptor or an async approval handler waits stops there: the
    tool never runs."""
    tool_ran: list[str] = []

    @tool(requires_approval=True)
    def guarded() -> str:
        tool_ran.append("guarded")
        return "ran"

    for where in ("interceptor", "approval"):
        probe = Probe()
        probe.expected = 1

        @interceptor(Phase.PRE_ACT)
        async def slow_gate(call: InterceptContext) -> None:
            await probe.hang("interceptor")

        async def slow_handler(item: ToolApprovalItem) -> bool:
            await probe.hang("approval")
            return True

        interceptors = [slow_gate] if where == "interceptor" else []
        agent = Agent(name="a", model=calls_then(ToolCall("guarded", {})), tools=[guarded], interceptors=interceptors)

        async def run() -> None:
            await agent.run("Go.", approval_handler=slow_handler)

        await cancel_when_waiting(probe, run)
        await anyio.sleep(0.05)
        assert probe.waiting == [where] and probe.after == []
    assert tool_ran == []


async def test_cancelling_one_run_leaves_the_others_running() -> None:
    """Among ten concurrent runs sharing one agent, cancelling one does not disturb the other nine."""
    gate = anyio.Event()

    @tool
    async def wait_for_gate(ctx: RunContext) -> str:
        await gate.wait()
        return f"passed {ctx.get('n')}"

    agent = Agent(name="a", model=calls_then(ToolCall("wait_for_gate", {}), final="finished"), tools=[wait_for_gate])
    outputs: dict[int, str] = {}
    scopes: dict[int, anyio.CancelScope] = {}

    async def one(n: int) -> None:
        with anyio.CancelScope() as scopes[n]:
            outputs[n] = (await agent.run("Go.", context={"n": n})).output

    async with anyio.create_task_group() as group:
        for n in range(10):
            group.start_soon(one, n)
        await anyio.sleep(0.05)
        scopes[3].cancel()
        await anyio.sleep(0.05)
        gate.set()
    assert sorted(outputs) == [n for n in range(10) if n != 3]
    assert set(outputs.values()) == {"finished"}


async def test_a_cancelled_sync_tool_finishes_in_its_thread_and_is_discarded() -> None:
    """A sync tool cannot be interrupted: the cancelled run returns at once, the worker thread finishes its call
    later in the background, and nothing it returns reaches a run."""
    entered = threading.Event()
    release = threading.Event()
    done = threading.Event()
    finished: list[str] = []

    @tool
    def blocking() -> str:
        entered.set()
        release.wait(GENEROUS)
        finished.append("done")
        done.set()
        return "late"

    agent = Agent(name="a", model=calls_then(ToolCall("blocking", {})), tools=[blocking])
    started = time.perf_counter()
    with anyio.move_on_after(GENEROUS) as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(agent.run, "Go.")
            await anyio.to_thread.run_sync(entered.wait, GENEROUS)
            group.cancel_scope.cancel()
    assert not scope.cancelled_caught and time.perf_counter() - started < GENEROUS
    assert finished == [] and busy_threads() != []
    release.set()
    await anyio.to_thread.run_sync(done.wait, GENEROUS)
    assert finished == ["done"]
