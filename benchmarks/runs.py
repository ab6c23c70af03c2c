"""Group B: sequential two-turn runs per second.

`Agent` + `ScriptedModel`: the model asks for `lookup_order(42)` (without a call id, as
offline models send it, so the run generates one), then answers `"done"`; each run gets a
new `AppContext`. The floor is the same two turns written by hand (a message list, the
script, `validate_json`, the call).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .registry import Config, Figure, Group, Times, Timing
from .workload import AppContext, hand_written_run, lookup_order, loop_timing, run_timing, single_call_agent

TARGET_RUNS_PER_SECOND = 40_000
"""The issue's target for B."""


def _floor_timing(config: Config) -> Timing:
    async def prepare() -> Callable[[], Awaitable[str]]:
        return lambda: hand_written_run(AppContext(user_id="user-1"), lookup_order)

    return loop_timing("B.floor", config, prepare)


def timings(config: Config) -> list[Timing]:
    """Return B's timings: the hand-written loop, then `Agent.run()`."""
    return [_floor_timing(config), run_timing("B.run", config, single_call_agent())]


def figures(times: Times, config: Config) -> list[Figure]:
    """Return B's row: runs per second against the hand-written loop's."""
    run, floor = times["B.run"], times["B.floor"]
    return [
        Figure(
            key="B.runs",
            label="sequential two-turn runs (1 tool call)",
            value=1 / run.median,
            mad=None if run.mad is None else run.mad / run.median**2,
            unit="runs/s",
            floor=1 / floor.median,
            target=f">= {TARGET_RUNS_PER_SECOND:,} runs/s",
            met=1 / run.median >= TARGET_RUNS_PER_SECOND,
            note="agent.run() with ScriptedModel; floor: a hand-written two-turn loop",
        )
    ]


GROUP = Group(key="B", title="sequential two-turn runs", timings=timings, figures=figures)
