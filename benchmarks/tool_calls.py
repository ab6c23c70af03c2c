"""Group A: what one tool call costs inside the run loop.

Measured through `Agent.run()` only: two runs that differ in nothing but the number of tool
calls in the model's first response (1, then 101, each `lookup_order(42)` with JSON
arguments and a call id), answered by `ToolBatchModel`, whose cost does not depend on the
history. (run of 101 calls - run of 1 call) / 100 is the cost of one call: arguments
validated from JSON, the context checked and injected, the call, usage, the trace event,
the `ToolReturn` in the history, and the run loop's per-call share of its own bookkeeping.
The agent has `parallel_tool_calls=False`, so the calls take the sequential path, as a
single call does; `A.async_parallel` measures the default concurrent path (a task per call).
Times are CPU times, except for the threaded tool: a thread hop is mostly waiting for the
worker thread, which only wall time counts (so that figure is the most sensitive to load).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio

from .registry import Config, Figure, Group, Times, Timing
from .workload import (
    CLOCKS,
    EXTRA_CALLS,
    AppContext,
    floor_async,
    floor_timing,
    loop_timing,
    per_call,
    per_call_timings,
)

KINDS = {
    "async": "tool call, async def",
    "sync_inline": "tool call, sync threaded=False",
    "sync_thread": "tool call, sync in a worker thread",
}
"""The tool kinds measured, with their labels."""
TARGET_RATIO = 3
"""The issue's target: one call costs at most this many times its floor."""


def _parallel_floor_timing(config: Config) -> Timing:
    """`EXTRA_CALLS` floor calls, each in its own task of one task group (per group: divide)."""

    async def prepare() -> Callable[[], Awaitable[None]]:
        ctx = AppContext(user_id="user-1")

        async def group() -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(EXTRA_CALLS):
                    tg.start_soon(floor_async, ctx)

        return group

    return loop_timing("A.floor.async.parallel", config, prepare)


def timings(config: Config) -> list[Timing]:
    """Return A's timings: per tool kind, its floor and its two runs; then the parallel path."""
    result: list[Timing] = []
    for kind in KINDS:
        result.append(floor_timing(kind, config))
        result.extend(per_call_timings(f"A.run.{kind}", config, kind))
    result.append(_parallel_floor_timing(config))
    result.extend(per_call_timings("A.run.async.parallel", config, "async", parallel=True))
    return result


def figures(times: Times, config: Config) -> list[Figure]:
    """Return A's rows: the cost of one call of each kind against its floor (target: at most 3x)."""
    rows: list[Figure] = []
    for kind, label in KINDS.items():
        call = per_call(times, f"A.run.{kind}") * 1e6
        floor = times[f"A.floor.{kind}"] * 1e6
        rows.append(
            Figure(
                key=f"A.{kind}",
                label=label,
                value=call.median,
                mad=call.mad,
                unit="us",
                floor=floor.median,
                target=f"<= {TARGET_RATIO}x floor",
                met=call.median <= TARGET_RATIO * floor.median,
                note=f"(run with {1 + EXTRA_CALLS} calls - run with 1) / {EXTRA_CALLS}, parallel_tool_calls=False; "
                f"{'wall' if CLOCKS[kind] is time.perf_counter else 'CPU'} time; floor: validate_json + direct call",
            )
        )
    call = per_call(times, "A.run.async.parallel") * 1e6
    floor = times["A.floor.async.parallel"] * (1e6 / EXTRA_CALLS)
    rows.append(
        Figure(
            key="A.async_parallel",
            label="tool call, async def, calls run concurrently",
            value=call.median,
            mad=call.mad,
            unit="us",
            floor=floor.median,
            note=f"as A.async with parallel_tool_calls=True (a task per call); floor: {EXTRA_CALLS} floor calls "
            "started in one task group, per call",
        )
    )
    return rows


GROUP = Group(key="A", title="one tool call inside the run loop", timings=timings, figures=figures)
