"""Group E: what interceptors that override only PRE_ACT add to a tool call.

A's per-call measurement (A.async: run of 101 calls - run of 1, / 100) with 0, 1 and 5
interceptors on the agent, each overriding only `pre_act` and returning `None`. The body of
such an interceptor (a direct `pre_act()` call on a real `InterceptContext`, captured from a
run) is timed too and subtracted: E.first = E.1 - E.0 - body, E.each = (E.5 - E.1) / 4 - body.
E.first includes building the phase's `InterceptContext`, which only the first pays.
"""

from __future__ import annotations

import time

import anyio

from cogent import InterceptContext, Interceptor, InterceptResult

from .registry import Config, Figure, Group, Times, Timing
from .workload import TASK, AppContext, batch_agent, floor_timing, per_call, per_call_timings

COUNTS = (1, 5)
"""The numbers of interceptors measured besides none."""
TARGET_US = 1.0
"""The issue's target for what one interceptor adds beyond its body, in microseconds."""


class PreActNoop(Interceptor):
    """An interceptor that overrides only PRE_ACT and lets every call through."""

    def pre_act(self, context: InterceptContext) -> InterceptResult | None:
        """Let the call through.

        Args:
            context: The phase's context.

        Returns:
            `None`: continue.
        """
        return None


class _Capture(Interceptor):
    """Keeps the `InterceptContext` of the last PRE_ACT it saw."""

    seen: InterceptContext | None = None

    def pre_act(self, context: InterceptContext) -> None:
        self.seen = context


async def _captured_context() -> InterceptContext:
    capture = _Capture()
    await batch_agent("async", 1, parallel=False, interceptors=[capture]).run(
        TASK, context=AppContext(user_id="user-1")
    )
    assert capture.seen is not None, "The capturing interceptor saw no PRE_ACT."
    return capture.seen


def _body_timing(config: Config) -> Timing:
    async def timed(loops: int) -> float:
        context, noop = await _captured_context(), PreActNoop()
        start = time.process_time()
        for _ in range(loops):
            noop.pre_act(context)
        return time.process_time() - start

    return Timing(name="E.body", time=lambda loops: anyio.run(timed, loops, backend=config.backend))


def timings(config: Config) -> list[Timing]:
    """Return E's timings: A.async's floor and runs, the same with 1 and 5 interceptors, and the body."""
    result = [floor_timing("async", config), *per_call_timings("A.run.async", config, "async")]
    for count in COUNTS:
        noops = [PreActNoop() for _ in range(count)]
        result.extend(per_call_timings(f"E.run.{count}", config, "async", interceptors=noops))
    result.append(_body_timing(config))
    return result


def figures(times: Times, config: Config) -> list[Figure]:
    """Return E's rows: the per-call cost with 0, 1 and 5 interceptors, the first's and each further one's."""
    none = per_call(times, "A.run.async") * 1e6
    costs = {count: per_call(times, f"E.run.{count}") * 1e6 for count in COUNTS}
    body = times["E.body"] * 1e6
    first = costs[1] - none - body
    each = (costs[5] - costs[1]) / 4 - body
    floor = times["A.floor.async"] * 1e6
    rows = [
        Figure(
            key="E.0",
            label="A.async, 0 PRE_ACT interceptors",
            value=none.median,
            mad=none.mad,
            unit="us",
            floor=floor.median,
            note="A.async measured again; floor: validate_json + direct call",
        )
    ]
    for count, cost in costs.items():
        rows.append(
            Figure(
                key=f"E.{count}",
                label=f"A.async, {count} PRE_ACT interceptor{'s' if count > 1 else ''}",
                value=cost.median,
                mad=cost.mad,
                unit="us",
                floor=none.median,
                note="floor: E.0",
            )
        )
    for key, label, added, how in (
        ("E.first", "added by the first PRE_ACT interceptor, minus its body", first, "E.1 - E.0 - body"),
        ("E.each", "added by each further PRE_ACT interceptor, minus its body", each, "(E.5 - E.1) / 4 - body"),
    ):
        rows.append(
            Figure(
                key=key,
                label=label,
                value=added.median,
                mad=added.mad,
                unit="us",
                target=f"<= {TARGET_US:g} us",
                met=added.median <= TARGET_US,
                note=f"{how} (body: {body.median:.3f} us)"
                + ("; includes building the phase's InterceptContext" if key == "E.first" else ""),
            )
        )
    return rows


GROUP = Group(key="E", title="PRE_ACT interceptors on a tool call", timings=timings, figures=figures)
