"""The workload the groups share: the context, the tools, the models, the floors.

Everything here uses cogent's public API only. The tools are plain functions wrapped with
`tool()`, so a floor can call the very same function directly.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from pydantic import TypeAdapter
from typing_extensions import TypedDict

from cogent import Agent, Interceptor, RunContext, RunResult, ScriptedModel, Tool, ToolCall, tool
from cogent.messages import Message, ModelResponse, ToolReturn, UserPrompt
from cogent.models import Model, ModelRequestParameters

from .registry import Config, Estimate, Times, Timing

__all__ = [
    "ARGUMENTS_JSON",
    "CLOCKS",
    "EXPECTED",
    "EXTRA_CALLS",
    "FLOORS",
    "TASK",
    "TOOLS",
    "AppContext",
    "ToolBatchModel",
    "all_calls_succeeded",
    "batch_agent",
    "floor_async",
    "floor_sync_inline",
    "floor_sync_thread",
    "floor_timing",
    "hand_written_run",
    "lookup_order",
    "lookup_order_sync",
    "loop_timing",
    "per_call",
    "per_call_timings",
    "run_timing",
    "single_call_agent",
    "validate_arguments",
]

ARGUMENTS_JSON = '{"order_id": 42}'
"""The tool call's arguments, as a provider sends them."""
TASK = "Where is order 42?"
"""Every run's input."""
EXPECTED = "order 42 for user-1"
"""What the lookup tools return for the benchmark's context."""


@dataclass
class AppContext(RunContext):
    """The benchmark's application context: one required field, like a real app's."""

    user_id: str
    """The user the run acts for."""


async def lookup_order(order_id: int, ctx: AppContext) -> str:
    """Look up one of the current user's orders.

    Args:
        order_id: The order number.
        ctx: The run context (injected).

    Returns:
        The order's description.
    """
    return f"order {order_id} for {ctx.user_id}"


def lookup_order_sync(order_id: int, ctx: AppContext) -> str:
    """Look up one of the current user's orders, synchronously.

    Args:
        order_id: The order number.
        ctx: The run context (injected).

    Returns:
        The order's description.
    """
    return f"order {order_id} for {ctx.user_id}"


class _OrderArguments(TypedDict):
    order_id: int


validate_arguments = TypeAdapter(_OrderArguments).validate_json
"""The floor's validator: what a hand-written tool path builds once and calls per call."""

TOOLS: dict[str, Tool[Any, Any]] = {
    "async": tool(name="lookup_order")(lookup_order),
    "sync_inline": tool(name="lookup_order", threaded=False)(lookup_order_sync),
    "sync_thread": tool(name="lookup_order")(lookup_order_sync),
}
"""The three tool kinds of A, by kind: `async def`, sync with `threaded=False`, sync threaded."""
CLOCKS: dict[str, Callable[[], float]] = {
    "async": time.process_time,
    "sync_inline": time.process_time,
    "sync_thread": time.perf_counter,
}
"""The clock of each kind's timings: CPU time, except wall time where the loop waits for a
worker thread (a thread hop costs mostly waiting, which CPU time would not count)."""


class ToolBatchModel(Model):
    """A model that answers the task with a fixed list of tool calls, then `"done"`.

    Unlike `ScriptedModel` it does no work proportional to the history, so runs that
    differ only in the number of calls differ only by the run loop's per-call work.

    Args:
        calls: The calls of the first response (shared, as `ScriptedModel` shares them).
    """

    def __init__(self, calls: Sequence[ToolCall]) -> None:
        self.calls = list(calls)
        self.name = "batch"

    async def request(self, messages: list[Message], params: ModelRequestParameters) -> ModelResponse:
        """Return the calls when the last message is the task, else the final answer."""
        if isinstance(messages[-1], UserPrompt):
            return ModelResponse(tool_calls=list(self.calls), model_name=self.name)
        return ModelResponse(text="done", model_name=self.name)


def single_call_agent(fn: Callable[..., Any] = lookup_order) -> Agent[AppContext, str]:
    """Return B's agent: a `ScriptedModel` asks for `lookup_order(42)` (no call id), then answers `"done"`.

    Args:
        fn: The tool's function.
    """
    model = ScriptedModel([ToolCall("lookup_order", ARGUMENTS_JSON), "done"])
    return Agent(name="bench", model=model, tools=[tool(name="lookup_order")(fn)], context_type=AppContext)


async def hand_written_run(ctx: AppContext, call: Callable[..., Awaitable[str]]) -> str:
    """A two-turn agent loop written by hand: the model asks for the tool, then answers.

    Args:
        ctx: The context passed to the tool.
        call: The tool function, called as `await call(**arguments, ctx=ctx)`.

    Returns:
        The final answer, `"done"`.
    """
    script: list[dict[str, Any]] = [
        {"tool_calls": [{"id": "call_1", "name": "lookup_order", "arguments": ARGUMENTS_JSON}]},
        {"text": "done"},
    ]
    messages: list[dict[str, Any]] = [{"role": "user", "content": TASK}]
    while True:
        response = script[sum(1 for m in messages if m["role"] == "assistant")]
        messages.append({"role": "assistant", **response})
        if "text" in response:
            text: str = response["text"]
            return text
        for tool_call in response["tool_calls"]:
            arguments = validate_arguments(tool_call["arguments"])
            content = await call(**arguments, ctx=ctx)
            messages.append({"role": "tool", "tool_call_id": tool_call["id"], "content": content})


async def floor_async(ctx: AppContext) -> str:
    """The floor of one call of the `async def` tool: `validate_json` of the arguments, a direct call."""
    arguments = validate_arguments(ARGUMENTS_JSON)
    return await lookup_order(**arguments, ctx=ctx)


async def floor_sync_inline(ctx: AppContext) -> str:
    """The floor of one call of the inline sync tool: `validate_json` of the arguments, a direct call."""
    arguments = validate_arguments(ARGUMENTS_JSON)
    return lookup_order_sync(**arguments, ctx=ctx)


async def floor_sync_thread(ctx: AppContext) -> str:
    """The floor of one call of the threaded sync tool: `validate_json`, a call in an anyio worker thread."""
    arguments = validate_arguments(ARGUMENTS_JSON)
    return await anyio.to_thread.run_sync(functools.partial(lookup_order_sync, **arguments, ctx=ctx))


FLOORS: dict[str, Callable[[AppContext], Awaitable[str]]] = {
    "async": floor_async,
    "sync_inline": floor_sync_inline,
    "sync_thread": floor_sync_thread,
}
"""The floor of one call of each tool kind of `TOOLS`."""


def loop_timing(
    name: str,
    config: Config,
    prepare: Callable[[], Awaitable[Callable[[], Awaitable[object]]]],
    *,
    clock: Callable[[], float] = time.process_time,
) -> Timing:
    """Return a timing of `await operation()` repeated, on the configured anyio backend.

    Args:
        name: The timing's name.
        config: Gives the backend.
        prepare: Called once per pyperf value inside the event loop, untimed: checks the
            workload and returns the operation.
        clock: The clock, in seconds: by default the process's CPU time, which waiting for
            a core on a shared machine does not inflate (the workloads never sleep, so on an
            idle machine it equals wall time); `time.perf_counter` for work that waits on
            another thread.

    Returns:
        The timing.
    """

    async def timed(loops: int) -> float:
        operation = await prepare()
        start = clock()
        for _ in range(loops):
            await operation()
        return clock() - start

    return Timing(name=name, time=lambda loops: anyio.run(timed, loops, backend=config.backend))


def run_timing(
    name: str,
    config: Config,
    agent: Agent[AppContext, str],
    expected: Callable[[RunResult[AppContext, str]], bool] | None = None,
    *,
    max_depth: int = 16,
    clock: Callable[[], float] = time.process_time,
) -> Timing:
    """Return a timing of sequential `agent.run(TASK)`, each with a new `AppContext`.

    Args:
        name: The timing's name.
        config: Gives the backend.
        agent: The agent; its runs must answer `"done"`.
        expected: Checks one untimed run's result before timing (the measured path must be
            the intended one, not a retry); `None` checks only the output.
        max_depth: The runs' `max_depth`.
        clock: As for `loop_timing`.

    Returns:
        The timing.

    Raises:
        AssertionError: (when timed) If the checked run does not look as expected.
    """

    async def run() -> None:
        await agent.run(TASK, context=AppContext(user_id="user-1"), max_depth=max_depth)

    async def prepare() -> Callable[[], Awaitable[None]]:
        result = await agent.run(TASK, context=AppContext(user_id="user-1"), max_depth=max_depth)
        assert result.output == "done", f"{name}: the run answered {result.output!r}, not 'done'."
        assert expected is None or expected(result), f"{name}: the run did not go as intended: {result.messages}"
        return run

    return loop_timing(name, config, prepare, clock=clock)


def batch_agent(
    kind: str, calls: int, *, parallel: bool, interceptors: Sequence[Interceptor] = ()
) -> Agent[AppContext, str]:
    """Return an agent whose model asks for `calls` calls of the `kind` tool at once, then answers.

    The calls carry ids, as providers send them, so the run does not generate any.

    Args:
        kind: A key of `TOOLS`.
        calls: How many calls the first response holds.
        parallel: The agent's `parallel_tool_calls`.
        interceptors: The agent's interceptors.
    """
    model = ToolBatchModel([ToolCall("lookup_order", ARGUMENTS_JSON, f"call_{i}") for i in range(calls)])
    return Agent(
        name="bench",
        model=model,
        tools=[TOOLS[kind]],
        context_type=AppContext,
        interceptors=interceptors,
        parallel_tool_calls=parallel,
    )


def all_calls_succeeded(calls: int) -> Callable[[RunResult[AppContext, str]], bool]:
    """Return a check that a run's `calls` tool calls all returned the expected result."""

    def check(result: RunResult[AppContext, str]) -> bool:
        contents = [m.content for m in result.messages if isinstance(m, ToolReturn)]
        return contents == [EXPECTED] * calls

    return check


def floor_timing(kind: str, config: Config) -> Timing:
    """Return the timing `A.floor.<kind>`: the floor of one call of the `kind` tool, repeated.

    Args:
        kind: A key of `FLOORS`.
        config: Gives the backend.
    """
    call = FLOORS[kind]

    async def prepare() -> Callable[[], Awaitable[str]]:
        ctx = AppContext(user_id="user-1")
        assert await call(ctx) == EXPECTED, f"The floor of {kind} tool calls returned something unexpected."
        return lambda: call(ctx)

    return loop_timing(f"A.floor.{kind}", config, prepare, clock=CLOCKS[kind])


EXTRA_CALLS = 100
"""How many more calls the long run of a per-call measurement makes than the short one."""


def per_call_timings(
    name: str, config: Config, kind: str, *, parallel: bool = False, interceptors: Sequence[Interceptor] = ()
) -> list[Timing]:
    """Return the two timings of a per-call measurement: `{name}.1` and `{name}.101`.

    Both are two-turn runs of `batch_agent`; they differ only in the number of calls in the
    model's first response (1 and 1 + `EXTRA_CALLS`), so `per_call()` of the two isolates
    what one more call costs inside the run loop.

    Args:
        name: The timings' name prefix.
        config: Gives the backend.
        kind: A key of `TOOLS`.
        parallel: The agent's `parallel_tool_calls` (a single call always runs inline).
        interceptors: The agent's interceptors.

    Returns:
        The short run's timing, then the long run's.
    """
    return [
        run_timing(
            f"{name}.{calls}",
            config,
            batch_agent(kind, calls, parallel=parallel, interceptors=interceptors),
            all_calls_succeeded(calls),
            clock=CLOCKS[kind],
        )
        for calls in (1, 1 + EXTRA_CALLS)
    ]


def per_call(times: Times, name: str) -> Estimate:
    """Return the seconds one tool call costs in the run loop, from the `per_call_timings(name)`.

    Args:
        times: The measured times.
        name: The timings' name prefix.

    Returns:
        (long run - short run) / `EXTRA_CALLS`.
    """
    return (times[f"{name}.{1 + EXTRA_CALLS}"] - times[f"{name}.1"]) / EXTRA_CALLS
