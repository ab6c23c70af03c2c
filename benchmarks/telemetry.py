"""Group T: what OpenTelemetry instrumentation costs per span (optional: needs opentelemetry-sdk).

    python -m benchmarks --only T          # with pyperf, as part of the suite
    python -m benchmarks.telemetry --quick # the figures alone, a few seconds

Instrumentation off is the plain run loop (`RunTree.observer is None`): groups A and B
measure it, and their runs here are the same timings (`B.run`, `A.run.async.*`). With it on,
the agent has `instrument=InstrumentationSettings(tracer_provider=...)` on an SDK
`TracerProvider` without span processors: every span is started, recorded (attributes,
events) and ended, then dropped. So the figures are the cost in the run's own task; an
exporter's work (a `BatchSpanProcessor`'s queue, encoding, the network) comes on top, mostly
in its own thread. The floor is one raw SDK span opened as the current span with four
attributes, the least a hand-instrumented loop pays per step.

- T.span_floor: one raw SDK span (start as current, 4 attributes, end), per span.
- T.per_span: (instrumented two-turn run - plain run) / 4, the run's spans (`invoke_agent`,
  two `chat`, one `execute_tool`).
- T.per_call: A's per-call cost instrumented minus plain: one `execute_tool` span.
- T.runs: instrumented two-turn runs per second (floor: plain runs per second).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .registry import Config, Estimate, Figure, Group, Times, Timing
from .workload import batch_agent, loop_timing, per_call, per_call_timings, run_timing, single_call_agent

SPANS_PER_RUN = 4
"""The spans of one instrumented two-turn run: invoke_agent, chat, execute_tool, chat."""
FLOOR_SPANS = 100
"""Raw spans per operation of the floor timing (so that one await does not dominate it)."""


def _settings() -> Any:
    """Instrumentation into an SDK provider without processors (spans recorded, then dropped)."""
    from opentelemetry.sdk.trace import TracerProvider

    from cogent.telemetry import InstrumentationSettings

    return InstrumentationSettings(tracer_provider=TracerProvider())


def _floor_timing(config: Config) -> Timing:
    """`FLOOR_SPANS` raw SDK spans, each the current span while open, with four attributes."""

    async def prepare() -> Callable[[], Awaitable[None]]:
        from opentelemetry.sdk.trace import TracerProvider

        tracer = TracerProvider().get_tracer("bench")
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_order", "a": 1, "b": "x"}

        async def spans() -> None:
            for _ in range(FLOOR_SPANS):
                with tracer.start_as_current_span("execute_tool lookup_order", attributes=attributes):
                    pass

        return spans

    return loop_timing("T.floor.span", config, prepare)


def timings(config: Config) -> list[Timing]:
    """Return T's timings: the raw span floor, plain and instrumented runs, plain and instrumented calls."""
    instrumented_run = single_call_agent()
    instrumented_run.instrument = _settings()
    result = [_floor_timing(config), run_timing("B.run", config, single_call_agent())]
    result.append(run_timing("T.run.on", config, instrumented_run))
    result.extend(per_call_timings("A.run.async", config, "async"))
    for timing in per_call_timings("T.call.on", config, "async"):
        result.append(_instrumented(timing, config))
    return result


def _instrumented(timing: Timing, config: Config) -> Timing:
    """The same batch run as `timing` (named `T.call.on.<calls>`), with its agent instrumented."""
    calls = int(timing.name.rsplit(".", 1)[1])
    agent = batch_agent("async", calls, parallel=False)
    agent.instrument = _settings()
    return run_timing(timing.name, config, agent)


def _figures(times: Times | Mapping[str, Estimate]) -> list[Figure]:
    floor = times["T.floor.span"] * (1e6 / FLOOR_SPANS)
    on, off = times["T.run.on"], times["B.run"]
    per_span = (on - off) * (1e6 / SPANS_PER_RUN)
    call = (per_call(times, "T.call.on") - per_call(times, "A.run.async")) * 1e6  # type: ignore[arg-type]
    return [
        Figure(
            key="T.span_floor",
            label="one raw OpenTelemetry SDK span",
            value=floor.median,
            mad=floor.mad,
            unit="us",
            note=f"start_as_current_span with 4 attributes, end; per span of {FLOOR_SPANS}; SDK provider, no processor",
        ),
        Figure(
            key="T.per_span",
            label="per span, instrumented run",
            value=per_span.median,
            mad=per_span.mad,
            unit="us",
            floor=floor.median,
            note=f"(instrumented two-turn run - plain run) / {SPANS_PER_RUN} spans; SDK provider, no processor",
        ),
        Figure(
            key="T.per_call",
            label="per tool call, execute_tool span",
            value=call.median,
            mad=call.mad,
            unit="us",
            floor=floor.median,
            note="A.async instrumented - A.async plain: one execute_tool span per call",
        ),
        Figure(
            key="T.runs",
            label="instrumented two-turn runs",
            value=1 / on.median,
            mad=None if on.mad is None else on.mad / on.median**2,
            unit="runs/s",
            floor=1 / off.median,
            note="B with instrument=InstrumentationSettings(...); floor: B without instrumentation",
        ),
    ]


def figures(times: Times, config: Config) -> list[Figure]:
    """Return T's rows from pyperf's times."""
    return _figures(times)


def run(quick: bool) -> dict[str, float]:
    """Measure the figures without pyperf: each timing's median over a few repeats.

    Args:
        quick: 3 repeats of about 20 ms per timing (a few seconds) instead of 7 of 200 ms.

    Returns:
        The figures by key (`T.span_floor`, `T.per_span`, `T.per_call` in microseconds,
        `T.runs` in runs per second).
    """
    config = Config(quick=quick, backend="asyncio")
    repeats, budget = (3, 0.02) if quick else (7, 0.2)
    medians: dict[str, Estimate] = {}
    for timing in timings(config):
        loops = 1
        while timing.time(loops) < budget / 4:
            loops *= 4
        values = [timing.time(loops) / loops for _ in range(repeats)]
        medians[timing.name] = Estimate(statistics.median(values), None)
    return {f.key: f.value for f in _figures(medians)}


GROUP = Group(
    key="T",
    title="OpenTelemetry instrumentation",
    timings=timings,
    figures=figures,
    requires=("opentelemetry.sdk",),
    install='pip install "cogent-context[otel]" opentelemetry-sdk',
)


def main() -> None:
    """Print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="measure for a few seconds only")
    args = parser.parse_args()
    start = time.perf_counter()
    for name, value in run(args.quick).items():
        print(f"{name:16} {value:14.2f}")
    print(f"({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
