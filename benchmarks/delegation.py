"""Group D: delegation chains of depth 1, 4, 16 and 64.

`level_0` delegates to `level_1`, ... down to `level_d`, which answers at once; every other
level's `ScriptedModel` calls the next agent, then answers `"done"`. The chains run with
`run(max_depth=64)` (the default hard limit is 16). Cost per level = (chain run - run of
the last agent alone) / d; the floor is one B run (a whole two-turn run with a tool call).
Linearity: the cost per level must not grow with depth, so per-level(64) / per-level(1) is
reported, in time (noisy) and in Python calls counted with `sys.setprofile` over one run
(deterministic).
"""

from __future__ import annotations

import sys

import anyio

from cogent import Agent, ScriptedModel, ToolCall

from .registry import Config, Estimate, Figure, Group, Times, Timing
from .workload import TASK, AppContext, run_timing, single_call_agent

DEPTHS = (1, 4, 16, 64)
"""The chain depths measured."""
TARGET_B_RUNS_PER_LEVEL = 3
"""The issue's target: one level costs at most this many B runs."""
TARGET_LINEARITY = 1.5
"""The most per-level(64) / per-level(1) may be in time: linear, with room for noise."""


def chain(depth: int) -> Agent[AppContext, str]:
    """Return `level_0`, which delegates down to `level_<depth>` (which answers at once).

    Args:
        depth: The number of delegations; 0 gives the last agent alone.
    """
    agent: Agent[AppContext, str] = Agent(name=f"level_{depth}", model=ScriptedModel(["done"]), context_type=AppContext)
    for level in range(depth - 1, -1, -1):
        call = ToolCall(f"level_{level + 1}", {"task": "go on"}, "call_1")
        agent = Agent(
            name=f"level_{level}", model=ScriptedModel([call, "done"]), subagents=[agent], context_type=AppContext
        )
    return agent


def timings(config: Config) -> list[Timing]:
    """Return D's timings: B's run (the floor), the last agent alone, then each chain."""
    return [
        run_timing("B.run", config, single_call_agent()),
        *(run_timing(f"D.chain.{depth}", config, chain(depth), max_depth=max(DEPTHS)) for depth in (0, *DEPTHS)),
    ]


async def _python_calls(depth: int) -> int:
    """Count the Python and C function calls (and coroutine resumptions) of one run of `chain(depth)`."""
    agent = chain(depth)
    await agent.run(TASK, context=AppContext(user_id="user-1"), max_depth=max(DEPTHS))  # warm-up
    count = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        await agent.run(TASK, context=AppContext(user_id="user-1"), max_depth=max(DEPTHS))
    finally:
        sys.setprofile(None)
    return count


async def _calls_per_level() -> dict[int, float]:
    leaf = await _python_calls(0)
    return {depth: (await _python_calls(depth) - leaf) / depth for depth in DEPTHS}


def figures(times: Times, config: Config) -> list[Figure]:
    """Return D's rows: the cost per level at each depth, and the linearity of time and of work."""
    b_run = times["B.run"] * 1e6
    per_level: dict[int, Estimate] = {d: (times[f"D.chain.{d}"] - times["D.chain.0"]) * (1e6 / d) for d in DEPTHS}
    calls = anyio.run(_calls_per_level, backend=config.backend)
    rows = [
        Figure(
            key=f"D.depth_{depth}",
            label=f"delegation chain of depth {depth}, cost per level",
            value=cost.median,
            mad=cost.mad,
            unit="us",
            floor=b_run.median,
            target=f"<= {TARGET_B_RUNS_PER_LEVEL}x B run",
            met=cost.median <= TARGET_B_RUNS_PER_LEVEL * b_run.median,
            note=f"(chain run - last agent alone) / {depth}; whole run "
            f"{times[f'D.chain.{depth}'].median * 1e6:,.0f} us; {calls[depth]:,.0f} Python calls per level; "
            "floor: one B run",
        )
        for depth, cost in per_level.items()
    ]
    deepest, first = max(DEPTHS), min(DEPTHS)
    linearity = per_level[deepest].median / per_level[first].median
    work = calls[deepest] / calls[first]
    rows.append(
        Figure(
            key="D.linearity",
            label=f"time per level, depth {deepest} / depth {first}",
            value=linearity,
            unit="x",
            target=f"<= {TARGET_LINEARITY}x",
            met=linearity <= TARGET_LINEARITY,
            note="linear when about 1 (the target leaves room for timing noise)",
        )
    )
    rows.append(
        Figure(
            key="D.work",
            label=f"Python calls per level, depth {deepest} / depth {first}",
            value=work,
            unit="x",
            target="1.00x (exactly linear)",
            met=round(work, 2) == 1.0,
            note="counted with sys.setprofile over one run per depth: immune to timing noise",
        )
    )
    return rows


GROUP = Group(key="D", title="delegation chains", timings=timings, figures=figures)
