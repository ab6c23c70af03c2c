"""Group C: 1,000 concurrent runs, each with its own context.

B's run, 1,000 at once in one anyio task group, every run with its own `AppContext`. The
tool yields to the event loop once (`anyio.lowlevel.checkpoint()`) so that all runs are in
flight together, then reports the injected context's user and `current_context()`'s.

- Time of one round: a pyperf timing, in CPU time like every timing that does not wait for
  a thread (nothing in the round sleeps or waits, so it is the round's wall time on an idle
  core). Floor: 1,000 hand-written loops in the same task group, with their own
  `ContextVar` in place of `current_context()`.
- Peak memory growth per run: a probe, not a timing. `tracemalloc`'s peak during one
  round minus the traced memory before it, with every run's result kept alive until all
  have ended (as an application would), divided by 1,000.
- Runs that saw another run's context: a probe over several rounds; each run checks
  `result.context`, the injected `ctx` and `current_context()` after the yield.
"""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import cast

import anyio
import anyio.lowlevel

from cogent import Agent, current_context
from cogent.messages import ToolReturn

from .registry import Config, Figure, Group, Times, Timing
from .workload import TASK, AppContext, hand_written_run, loop_timing, single_call_agent

RUNS = 1_000
"""Runs started at once."""
TARGET_SECONDS = 0.05
"""The issue's target for one round's wall time."""
TARGET_KIB_PER_RUN = 8
"""The issue's target for the peak memory growth per run."""

floor_context: ContextVar[AppContext] = ContextVar("floor_context")
"""The floor's own current context: what `current_context()` is to a run."""

RunOne = Callable[[int], Awaitable[tuple[bool, object]]]
"""Does run number `i`; returns whether it saw only its own context, and what to keep alive."""


async def lookup_order_seen(order_id: int, ctx: AppContext) -> str:
    """Look up an order after yielding once; name the injected context's user and the current one's.

    Args:
        order_id: The order number.
        ctx: The run context (injected).

    Returns:
        The order's description, naming both users.
    """
    await anyio.lowlevel.checkpoint()
    return f"order {order_id} for {ctx.user_id} seen {cast(AppContext, current_context()).user_id}"


async def floor_lookup_order_seen(order_id: int, ctx: AppContext) -> str:
    """The floor's tool: as `lookup_order_seen`, reading the floor's own context variable.

    Args:
        order_id: The order number.
        ctx: The context.

    Returns:
        The order's description, naming both users.
    """
    await anyio.lowlevel.checkpoint()
    return f"order {order_id} for {ctx.user_id} seen {floor_context.get().user_id}"


def _agent_one(agent: Agent[AppContext, str]) -> RunOne:
    async def one(i: int) -> tuple[bool, object]:
        user = f"user-{i}"
        result = await agent.run(TASK, context=AppContext(user_id=user))
        returns = [m.content for m in result.messages if isinstance(m, ToolReturn)]
        return result.context.user_id == user and returns == [f"order 42 for {user} seen {user}"], result

    return one


async def _floor_one(i: int) -> tuple[bool, object]:
    ctx = AppContext(user_id=f"user-{i}")
    token = floor_context.set(ctx)
    try:
        output = await hand_written_run(ctx, floor_lookup_order_seen)
    finally:
        floor_context.reset(token)
    return output == "done", output


async def concurrent_round(run_one: RunOne) -> int:
    """Start `run_one(0 .. RUNS - 1)` at once in one task group; keep every result until all end.

    Args:
        run_one: Does one run.

    Returns:
        How many runs saw a context other than their own.
    """
    ok = [False] * RUNS
    kept: list[object] = [None] * RUNS

    async def task(i: int) -> None:
        ok[i], kept[i] = await run_one(i)

    async with anyio.create_task_group() as tg:
        for i in range(RUNS):
            tg.start_soon(task, i)
    return ok.count(False)


def _round_timing(name: str, config: Config, run_one: RunOne) -> Timing:
    async def prepare() -> Callable[[], Awaitable[int]]:
        await concurrent_round(run_one)  # untimed: lazily built state (validators, thread pools) is ready
        return lambda: concurrent_round(run_one)

    return loop_timing(name, config, prepare)


def timings(config: Config) -> list[Timing]:
    """Return C's timings: a round of hand-written loops, then a round of runs."""
    return [
        _round_timing("C.floor", config, _floor_one),
        _round_timing("C.run", config, _agent_one(single_call_agent(lookup_order_seen))),
    ]


async def _peak_growth(run_one: RunOne) -> tuple[int, int]:
    """Return the tracemalloc peak growth (bytes) of one round after a warm-up round, and its mismatches."""
    await concurrent_round(run_one)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        mismatches = await concurrent_round(run_one)
        return tracemalloc.get_traced_memory()[1] - before, mismatches
    finally:
        tracemalloc.stop()


async def _probe(rounds: int) -> tuple[int, int, int]:
    """Return the floor's and the runs' peak memory growth (bytes), and the mismatches over `rounds` + 1 rounds."""
    agent_one = _agent_one(single_call_agent(lookup_order_seen))
    floor_peak, _ = await _peak_growth(_floor_one)
    peak, mismatches = await _peak_growth(agent_one)
    for _ in range(rounds):
        mismatches += await concurrent_round(agent_one)
    return floor_peak, peak, mismatches


def figures(times: Times, config: Config) -> list[Figure]:
    """Return C's rows: wall time, memory per run, and runs that saw another run's context."""
    rounds = 1 if config.quick else 5
    floor_peak, peak, mismatches = anyio.run(_probe, rounds, backend=config.backend)
    wall, floor = times["C.run"], times["C.floor"]
    kib = 1024 * RUNS
    return [
        Figure(
            key="C.wall",
            label=f"{RUNS:,} concurrent runs, time for the round",
            value=wall.median,
            mad=wall.mad,
            unit="s",
            floor=floor.median,
            target=f"<= {TARGET_SECONDS} s",
            met=wall.median <= TARGET_SECONDS,
            note="one anyio task group; the tool yields once so that all runs are in flight together; CPU time "
            "(nothing in the round waits, so it is the wall time of an idle core)",
        ),
        Figure(
            key="C.memory",
            label=f"{RUNS:,} concurrent runs, peak memory growth per run",
            value=peak / kib,
            unit="KiB",
            floor=floor_peak / kib,
            target=f"<= {TARGET_KIB_PER_RUN} KiB",
            met=peak / kib <= TARGET_KIB_PER_RUN,
            note="tracemalloc peak during a round minus the traced memory before, every result kept alive, / runs",
        ),
        Figure(
            key="C.mismatches",
            label="runs that saw another run's context",
            value=mismatches,
            unit="count",
            target="0",
            met=mismatches == 0,
            note=f"over {rounds + 1} rounds of {RUNS:,} runs: result.context, the injected ctx and "
            "current_context() after a yield",
        ),
    ]


GROUP = Group(key="C", title=f"{RUNS:,} concurrent runs", timings=timings, figures=figures)
