"""cogent's benchmark suite: what the framework costs on top of the work itself.

Run it with `python -m benchmarks` (or `python benchmarks/run.py`); `--quick` takes a
few seconds and is what CI runs. Every figure is the median of several repeats after a
warm-up, and is reported as a ratio to a *floor*: the same work done by hand (pydantic
`validate_json` plus a direct call, or a hand-written agent loop), measured in the same
process right before it. The table is printed and written as JSON to
`benchmarks/results/` (or `--output`).

Sections (see `docs/performance.md` for the method and the latest full-mode table):

- A. One tool call through the run loop's own tool path, `_Execution._call_tool()` on a
  prepared execution: JSON arguments in, validation, context check and injection, usage,
  the PRE_ACT/POST_ACT interceptor plan, the trace event, the `ToolReturn` out. For an
  `async def` tool, an inline sync tool (`threaded=False`) and a threaded sync tool.
- B. Whole runs: `Agent` + `ScriptedModel` (one tool call, then `"done"`), sequential.
- C. 1,000 such runs at once in one task group, each with its own context: wall time,
  peak traced memory growth, and how many runs saw a context other than their own.
- D. Delegation chains of depth 1, 4, 16 and 64 with trivial models: cost per level.
- E. A with 0, 1 and 5 interceptors that override only PRE_ACT.
- F. Cold start: `import cogent` in a fresh interpreter, and decorating 100 tools.

The targets come from the project's performance issue; a missed target is reported,
never hidden. Quick mode asserts nothing.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pydantic
from pydantic import TypeAdapter
from typing_extensions import TypedDict

import cogent
from cogent import (
    Agent,
    InterceptContext,
    Interceptor,
    InterceptResult,
    Phase,
    RunContext,
    ScriptedModel,
    ToolCall,
    current_context,
    tool,
)
from cogent._run import _Execution, _Tree
from cogent.context import _execution_copy
from cogent.messages import ToolReturn
from cogent.usage import Usage

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ARGUMENTS_JSON = '{"order_id": 42}'
TASK = "Where is order 42?"
PROVIDER_MODULES = ("openai", "httpx", "anthropic", "google.genai")
SECTIONS = ("A", "B", "C", "D", "E", "F")

# --- The workload ------------------------------------------------------------------


@dataclass
class AppContext(RunContext):
    """The benchmark's application context: one required field, like a real app's."""

    user_id: str
    """The user the run acts for."""


@tool
async def lookup_order(order_id: int, ctx: AppContext) -> str:
    """Look up one of the current user's orders.

    Args:
        order_id: The order number.
    """
    return f"order {order_id} for {ctx.user_id}"


@tool(name="lookup_order_inline", threaded=False)
def lookup_order_inline(order_id: int, ctx: AppContext) -> str:
    """Look up one of the current user's orders (sync, runs on the event loop).

    Args:
        order_id: The order number.
    """
    return f"order {order_id} for {ctx.user_id}"


@tool(name="lookup_order_thread")
def lookup_order_thread(order_id: int, ctx: AppContext) -> str:
    """Look up one of the current user's orders (sync, runs in a worker thread).

    Args:
        order_id: The order number.
    """
    return f"order {order_id} for {ctx.user_id}"


@tool(name="lookup_order")
async def lookup_order_yielding(order_id: int, ctx: AppContext) -> str:
    """Look up an order, yielding to the event loop once so concurrent runs interleave.

    Args:
        order_id: The order number.
    """
    await anyio.lowlevel.checkpoint()
    return f"order {order_id} for {ctx.user_id} seen {current_context().user_id}"  # type: ignore[attr-defined]


class _OrderArguments(TypedDict):
    order_id: int


ORDER_ARGUMENTS = TypeAdapter(_OrderArguments)
"""The floor's validator: what a hand-written tool path would build once."""


class PreActNoop(Interceptor):
    """An interceptor that overrides only PRE_ACT and lets every call through."""

    def pre_act(self, context: InterceptContext) -> InterceptResult | None:
        return None


def _script() -> ScriptedModel:
    return ScriptedModel([ToolCall("lookup_order", ARGUMENTS_JSON), "done"])


def _agent(tools: list[Any], interceptors: tuple[Interceptor, ...] = ()) -> Agent[AppContext, str]:
    return Agent(name="bench", model=_script(), tools=tools, context_type=AppContext, interceptors=interceptors)


def _prepared_execution(agent: Agent[AppContext, str], ctx: AppContext) -> _Execution:
    """Return an execution as `run()` prepares it, ready for `_call_tool()`."""
    tree = _Tree(usage=Usage(), limits=None, interceptors=(), approval_handler=None, max_depth=16)
    return _Execution(agent, _execution_copy(ctx, agent, TASK), tree, TASK, [], depth=0, trace=[])


# --- Floors: the same work without a framework --------------------------------------


async def _floor_call_async(ctx: AppContext) -> str:
    arguments = ORDER_ARGUMENTS.validate_json(ARGUMENTS_JSON)
    result: str = await lookup_order.__wrapped__(**arguments, ctx=ctx)
    return result


async def _floor_call_sync(ctx: AppContext) -> str:
    arguments = ORDER_ARGUMENTS.validate_json(ARGUMENTS_JSON)
    return lookup_order_inline.__wrapped__(**arguments, ctx=ctx)


async def _floor_call_thread(ctx: AppContext) -> str:
    arguments = ORDER_ARGUMENTS.validate_json(ARGUMENTS_JSON)
    func = lookup_order_thread.__wrapped__
    result: str = await anyio.to_thread.run_sync(lambda: func(**arguments, ctx=ctx))
    return result


async def _hand_written_run(ctx: AppContext, func: Callable[..., Awaitable[str]]) -> str:
    """A two-turn agent loop written by hand: the model asks for the tool, then answers."""
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
        for call in response["tool_calls"]:
            arguments = ORDER_ARGUMENTS.validate_json(call["arguments"])
            content = await func(**arguments, ctx=ctx)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})


# --- Measurement --------------------------------------------------------------------


@dataclass(kw_only=True)
class Settings:
    """How much work each figure does."""

    quick: bool
    """Quick mode: small counts, no thresholds asserted."""
    repeats: int
    """Timed repeats per figure (the median is reported)."""
    tool_calls: int
    """Calls per repeat for A and E (async and inline sync tools)."""
    thread_calls: int
    """Calls per repeat for the threaded sync tool."""
    runs: int
    """Runs per repeat for B."""
    concurrent: int
    """Runs started at once for C."""
    chain_runs: int
    """Runs per repeat for each depth of D."""
    tools_decorated: int
    """Tools decorated per repeat for F."""
    import_repeats: int
    """Fresh interpreters started per import measurement for F."""


FULL = Settings(
    quick=False,
    repeats=7,
    tool_calls=20_000,
    thread_calls=2_000,
    runs=5_000,
    concurrent=1_000,
    chain_runs=200,
    tools_decorated=100,
    import_repeats=7,
)
QUICK = Settings(
    quick=True,
    repeats=3,
    tool_calls=1_000,
    thread_calls=200,
    runs=300,
    concurrent=1_000,
    chain_runs=10,
    tools_decorated=100,
    import_repeats=1,
)


Batch = Callable[[int], Awaitable[object]]
"""Does `n` operations: `await batch(n)`."""


async def _interleaved(batches: list[tuple[Batch, int]], repeats: int) -> list[float]:
    """Return the median seconds per operation of each `(batch, n)`, after a warm-up of each.

    The repeats alternate between the batches (floor, figure, floor, figure, ...), so a
    figure and the floor it is compared with see the same machine conditions.
    """
    for batch, n in batches:
        await batch(max(n // 10, 1))
    samples: list[list[float]] = [[] for _ in batches]
    for _ in range(repeats):
        for (batch, n), bucket in zip(batches, samples, strict=True):
            gc.collect()
            start = time.perf_counter()
            await batch(n)
            bucket.append((time.perf_counter() - start) / n)
    return [statistics.median(bucket) for bucket in samples]


@dataclass(kw_only=True)
class Figure:
    """One row of the table."""

    key: str
    """A stable identifier, e.g. `A.async`."""
    label: str
    """What was measured."""
    value: float
    """The measurement, in `unit`."""
    unit: str
    """`us` (microseconds per operation), `runs/s`, `s`, `MiB`, `ms` or `count`."""
    floor: float | None = None
    """The floor's measurement in the same unit, when the figure has one."""
    ratio: float | None = None
    """How many times the floor's cost the figure's cost is."""
    target: str | None = None
    """The target, as text, when the issue sets one."""
    met: bool | None = None
    """Whether the target is met (`None` when there is no target)."""
    note: str | None = None
    """What exactly was timed, or why a target is checked the way it is."""


def _cost_ratio(value: float, floor: float, unit: str) -> float:
    """Cost relative to the floor (for throughput units, the inverse of the rate ratio)."""
    return floor / value if unit == "runs/s" else value / floor


class Suite:
    """Runs the sections in order and collects their figures."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.figures: list[Figure] = []

    def add(self, figure: Figure) -> Figure:
        if figure.floor is not None and figure.ratio is None and figure.floor > 0:
            figure.ratio = _cost_ratio(figure.value, figure.floor, figure.unit)
        self.figures.append(figure)
        return figure

    # --- A, E: tool calls ---

    def _tool_path(self, tool_name: str, interceptors: tuple[Interceptor, ...] = ()) -> Batch:
        """Calls of `tool_name` through `_Execution._call_tool()` on a prepared execution."""
        agent = _agent([lookup_order, lookup_order_inline, lookup_order_thread], interceptors)
        execution = _prepared_execution(agent, AppContext(user_id="user-1"))
        call = ToolCall(tool_name, ARGUMENTS_JSON, "call_1")
        expected = "order 42 for user-1"

        async def batch(k: int) -> None:
            execution.trace.clear()
            for _ in range(k):
                message = await execution._call_tool(call, None, None)
            assert isinstance(message, ToolReturn) and message.content == expected, message

        return batch

    def _floor(self, call: Callable[[AppContext], Awaitable[str]]) -> Batch:
        """Calls of a floor function (validation plus a direct call)."""
        ctx = AppContext(user_id="user-1")

        async def batch(k: int) -> None:
            for _ in range(k):
                await call(ctx)

        return batch

    async def section_a(self) -> None:
        note = "_Execution._call_tool(ToolCall(JSON arguments)) on a prepared execution, ToolReturn out"
        for key, label, name, floor_call, n in (
            ("A.async", "tool call, async def", "lookup_order", _floor_call_async, self.s.tool_calls),
            (
                "A.sync_inline",
                "tool call, sync threaded=False",
                "lookup_order_inline",
                _floor_call_sync,
                self.s.tool_calls,
            ),
            (
                "A.sync_thread",
                "tool call, sync in worker thread",
                "lookup_order_thread",
                _floor_call_thread,
                self.s.thread_calls,
            ),
        ):
            floor, value = await _interleaved(
                [(self._floor(floor_call), n), (self._tool_path(name), n)], self.s.repeats
            )
            figure = Figure(key=key, label=label, value=value * 1e6, unit="us", floor=floor * 1e6, note=note)
            if key == "A.async":
                figure.target = "<= 2x floor"
                figure.met = value <= 2 * floor
            self.add(figure)

    async def section_e(self) -> None:
        n = self.s.tool_calls
        noop = PreActNoop()
        ic = _prepared_execution(_agent([lookup_order]), AppContext(user_id="user-1"))._intercept_context(
            Phase.PRE_ACT, tool_name="lookup_order", tool_args={"order_id": 42}
        )

        async def body_batch(k: int) -> None:
            for _ in range(k):
                noop.pre_act(ic)

        body, floor, base, one, five = await _interleaved(
            [
                (body_batch, n),
                (self._floor(_floor_call_async), n),
                (self._tool_path("lookup_order"), n),
                (self._tool_path("lookup_order", (PreActNoop(),)), n),
                (self._tool_path("lookup_order", tuple(PreActNoop() for _ in range(5))), n),
            ],
            self.s.repeats,
        )
        self.add(
            Figure(key="E.0", label="A.async, 0 PRE_ACT interceptors", value=base * 1e6, unit="us", floor=floor * 1e6)
        )
        for count, value in ((1, one), (5, five)):
            self.add(
                Figure(
                    key=f"E.{count}",
                    label=f"A.async, {count} PRE_ACT interceptor{'s' if count > 1 else ''}",
                    value=value * 1e6,
                    unit="us",
                    floor=base * 1e6,
                )
            )
        first = one - base - body
        each = (five - one) / 4 - body
        self.add(
            Figure(
                key="E.first",
                label="added by the first PRE_ACT interceptor, minus its body",
                value=first * 1e6,
                unit="us",
                target="<= 1 us",
                met=first <= 1e-6,
                note=f"E.1 - E.0 - body ({body * 1e6:.3f} us); includes building the phase's InterceptContext",
            )
        )
        self.add(
            Figure(
                key="E.each",
                label="added by each further PRE_ACT interceptor, minus its body",
                value=each * 1e6,
                unit="us",
                target="<= 1 us",
                met=each <= 1e-6,
                note=f"(E.5 - E.1) / 4 - body ({body * 1e6:.3f} us)",
            )
        )

    # --- B: sequential runs ---

    def _runs(self, agent: Agent[AppContext, str]) -> Batch:
        """Sequential runs of `agent`, each with its own context."""

        async def batch(k: int) -> None:
            for i in range(k):
                result = await agent.run(TASK, context=AppContext(user_id=f"user-{i}"))
            assert result.output == "done", result.output

        return batch

    async def section_b(self) -> None:
        n = self.s.runs
        raw = lookup_order.__wrapped__

        async def floor_batch(k: int) -> None:
            for i in range(k):
                await _hand_written_run(AppContext(user_id=f"user-{i}"), raw)

        floor, value = await _interleaved([(floor_batch, n), (self._runs(_agent([lookup_order])), n)], self.s.repeats)
        self.add(
            Figure(
                key="B.runs",
                label="sequential two-turn runs (1 tool call)",
                value=1 / value,
                unit="runs/s",
                floor=1 / floor,
                target=">= 20,000 runs/s",
                met=1 / value >= 20_000,
                note="agent.run() with ScriptedModel; floor: a hand-written two-turn loop",
            )
        )

    # --- C: concurrency ---

    async def _concurrent(self, run_one: Callable[[int], Awaitable[tuple[bool, object]]]) -> tuple[float, int]:
        """Start `run_one(0..n-1)` at once in one task group; return the wall time and the failed checks.

        Every run's result stays alive until all runs have ended, as an application's would.
        """
        n = self.s.concurrent
        ok = [False] * n
        kept: list[object] = [None] * n

        async def one(i: int) -> None:
            ok[i], kept[i] = await run_one(i)

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(n):
                tg.start_soon(one, i)
        return time.perf_counter() - start, ok.count(False)

    async def _peak_growth(self, run_one: Callable[[int], Awaitable[tuple[bool, object]]]) -> tuple[float, int]:
        """Return the tracemalloc peak growth (bytes) of one `_concurrent` round, and its failed checks."""
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            _, failed = await self._concurrent(run_one)
            return tracemalloc.get_traced_memory()[1] - before, failed
        finally:
            tracemalloc.stop()

    async def section_c(self) -> None:
        n = self.s.concurrent
        agent = _agent([lookup_order_yielding])
        raw = lookup_order_yielding.__wrapped__

        async def floor_one(i: int) -> tuple[bool, object]:
            ctx = AppContext(user_id=f"user-{i}")
            token = cogent.context._current.set(ctx)  # what current_context() reads
            try:
                output = await _hand_written_run(ctx, raw)
            finally:
                cogent.context._current.reset(token)
            return output == "done", output

        async def agent_one(i: int) -> tuple[bool, object]:
            user = f"user-{i}"
            result = await agent.run(TASK, context=AppContext(user_id=user))
            returns = [m for m in result.messages if isinstance(m, ToolReturn)]
            ok = (
                result.context.user_id == user
                and len(returns) == 1
                and returns[0].content == f"order 42 for {user} seen {user}"
            )
            return ok, result

        _, floor_bad = await self._concurrent(floor_one)  # warm-up rounds: their checks count too
        _, bad = await self._concurrent(agent_one)
        floor_walls: list[float] = []
        walls: list[float] = []
        for _ in range(self.s.repeats):
            for run_one, bucket in ((floor_one, floor_walls), (agent_one, walls)):
                gc.collect()
                wall, failed = await self._concurrent(run_one)
                bucket.append(wall)
                if run_one is agent_one:
                    bad += failed
                else:
                    floor_bad += failed
        floor_peak, failed = await self._peak_growth(floor_one)
        floor_bad += failed
        peak, failed = await self._peak_growth(agent_one)
        bad += failed
        floor_wall, wall = statistics.median(floor_walls), statistics.median(walls)
        mib = 1024 * 1024
        self.add(
            Figure(
                key="C.wall",
                label=f"{n} concurrent runs, wall time",
                value=wall,
                unit="s",
                floor=floor_wall,
                target="<= 0.1 s",
                met=wall <= 0.1,
                note="one anyio task group; the tool yields once (checkpoint) so runs interleave",
            )
        )
        self.add(
            Figure(
                key="C.memory",
                label=f"{n} concurrent runs, peak memory growth",
                value=peak / mib,
                unit="MiB",
                floor=floor_peak / mib,
                target="<= 10 MiB",
                met=peak <= 10 * mib,
                note="tracemalloc peak minus the traced memory before; every RunResult kept alive",
            )
        )
        self.add(
            Figure(
                key="C.mismatches",
                label="runs that saw another run's user_id",
                value=bad,
                unit="count",
                floor=floor_bad,
                target="0",
                met=bad == 0,
                note=f"over {self.s.repeats + 2} rounds of {n} runs: checks result.context, the tool's injected "
                "ctx and current_context() after a yield",
            )
        )

    # --- D: delegation ---

    async def section_d(self) -> None:
        depths = (1, 4, 16, 64)
        n = self.s.chain_runs

        def chain(depth: int) -> Agent[AppContext, str]:
            """`level_0` delegates to `level_1`, ... down to `level_<depth>`, which answers at once."""
            agent: Agent[AppContext, str] = Agent(
                name=f"level_{depth}", model=ScriptedModel(["done"]), context_type=AppContext
            )
            for level in range(depth - 1, -1, -1):
                call = ToolCall(f"level_{level + 1}", {"task": "go on"}, "call_1")
                agent = Agent(
                    name=f"level_{level}",
                    model=ScriptedModel([call, "done"]),
                    subagents=[agent],
                    context_type=AppContext,
                )
            return agent

        async def run(agent: Agent[AppContext, str]) -> None:
            result = await agent.run(TASK, context=AppContext(user_id="user-1"), max_depth=max(depths))
            assert result.output == "done"

        def runs(agent: Agent[AppContext, str]) -> Batch:
            async def batch(k: int) -> None:
                for _ in range(k):
                    await run(agent)

            return batch

        leaf = chain(0)
        chains = {depth: chain(depth) for depth in depths}
        run_cost, leaf_cost, *totals = await _interleaved(
            [
                (self._runs(_agent([lookup_order])), n * 4),
                (runs(leaf), n * 4),
                *((runs(chains[depth]), max(n * 4 // depth, 3)) for depth in depths),
            ],
            self.s.repeats,
        )
        leaf_calls = await _python_calls(run, leaf)
        per_level: dict[int, float] = {}
        calls_per_level: dict[int, float] = {}
        for depth, total in zip(depths, totals, strict=True):
            per_level[depth] = (total - leaf_cost) / depth
            calls_per_level[depth] = (await _python_calls(run, chains[depth]) - leaf_calls) / depth
            figure = Figure(
                key=f"D.depth_{depth}",
                label=f"delegation chain of depth {depth}, cost per level",
                value=per_level[depth] * 1e6,
                unit="us",
                floor=run_cost * 1e6,
                note=f"(run - single-agent run) / depth; whole run {total * 1e6:.0f} us; "
                f"{calls_per_level[depth]:.0f} Python calls per level; floor: one B run",
            )
            if depth == 1:
                figure.label = "one delegation (chain of depth 1)"
                figure.target = "<= 3x B run"
                figure.met = per_level[1] <= 3 * run_cost
            self.add(figure)
        spread = max(per_level.values()) / min(per_level.values())
        self.add(
            Figure(
                key="D.linearity",
                label="max/min time per level, depths 1-64",
                value=spread,
                unit="x",
                target="<= 1.5x",
                met=spread <= 1.5,
                note="run(max_depth=64); the default hard limit is run(max_depth=16)",
            )
        )
        work = max(calls_per_level.values()) / min(calls_per_level.values())
        self.add(
            Figure(
                key="D.work",
                label="max/min Python calls per level, depths 1-64",
                value=work,
                unit="x",
                target="1.00x (exactly linear)",
                met=work == 1.0,
                note="counted with sys.setprofile over one run per depth: immune to timing noise",
            )
        )

    # --- F: cold start ---

    def _interpreters(self, codes: list[str], cache: str) -> list[float]:
        """Return the median CPU time (user + system, seconds) of `python -c code` for each code.

        Each code runs in fresh processes, alternating between the codes. CPU time rather than
        wall time: on a shared machine, waiting for a core is not import work; on an idle
        machine the two agree (an import uses one core).
        """
        for code in codes:
            _python(code, cache)  # warm-up: fills the bytecode cache
        samples: list[list[float]] = [[] for _ in codes]
        for _ in range(self.s.import_repeats):
            for code, bucket in zip(codes, samples, strict=True):
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                _python(code, cache)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                bucket.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        return [statistics.median(bucket) for bucket in samples]

    async def section_f(self) -> None:
        dependencies_code = "import anyio, docstring_parser, typing_extensions; from pydantic import TypeAdapter"
        providers_code = (
            f"import cogent, json, sys; print(json.dumps([m for m in {PROVIDER_MODULES!r} if m in sys.modules]))"
        )
        with tempfile.TemporaryDirectory(prefix="cogent-bench-pycache-") as cache:
            empty, dependencies, imported = self._interpreters(["pass", dependencies_code, "import cogent"], cache)
            loaded = json.loads(_python(providers_code, cache))
        value = imported - empty
        self.add(
            Figure(
                key="F.import",
                label="import cogent (fresh interpreter, CPU time)",
                value=value * 1e3,
                unit="ms",
                floor=(dependencies - empty) * 1e3,
                target="<= 150 ms",
                met=value <= 0.150,
                note="minus `python -c pass`, bytecode cached as after pip install; "
                "floor: importing the runtime dependencies (anyio, pydantic, ...)",
            )
        )
        self.add(
            Figure(
                key="F.providers",
                label="provider SDK modules loaded by import cogent",
                value=len(loaded),
                unit="count",
                target="0",
                met=not loaded,
                note=f"checked: {', '.join(PROVIDER_MODULES)}; loaded: {', '.join(loaded) or 'none'}",
            )
        )
        k = self.s.tools_decorated
        functions = iter([_tool_function(i) for i in range(k * (self.s.repeats + 1))])

        async def floor_batch(m: int) -> None:
            for _ in range(m):

                class Arguments(TypedDict):  # a new class each time, as each tool has its own
                    order_id: int
                    note: str

                TypeAdapter(Arguments).json_schema()

        async def cogent_batch(m: int) -> None:
            for _ in range(m):
                tool(next(functions)).definition  # noqa: B018 - building the definition is part of the cost

        floor, decorated = await _interleaved([(floor_batch, k), (cogent_batch, k)], self.s.repeats)
        self.add(
            Figure(
                key="F.decorate",
                label=f"decorate {k} tools (with their definitions)",
                value=decorated * k * 1e3,
                unit="ms",
                floor=floor * k * 1e3,
                note="distinct functions; floor: one pydantic TypedDict TypeAdapter + JSON schema per tool",
            )
        )

    async def run(self, sections: str) -> None:
        """Run the named sections (letters of `SECTIONS`), in alphabetical order."""
        for letter in SECTIONS:
            if letter in sections:
                await getattr(self, f"section_{letter.lower()}")()


async def _python_calls(run: Callable[[Any], Awaitable[None]], agent: Any) -> int:
    """Count the Python and C function calls (and coroutine resumptions) of `await run(agent)`."""
    count = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(profile)
    try:
        await run(agent)
    finally:
        sys.setprofile(None)
    return count


def _tool_function(i: int) -> Callable[..., Any]:
    async def func(order_id: int, ctx: AppContext, note: str = "") -> str:
        """Look up an order.

        Args:
            order_id: The order number.
            note: A note to attach.
        """
        return f"{order_id} {ctx.user_id} {note}"

    func.__name__ = func.__qualname__ = f"tool_{i}"
    return func


def _python(code: str, cache: str) -> str:
    """Run `python -c code` in a fresh interpreter that imports this same `cogent`; return its output.

    Bytecode is cached in `cache` (as `pip install` precompiles it), even when the caller's
    environment sets PYTHONDONTWRITEBYTECODE, so imports are not measured with compilation.
    """
    root = str(Path(cogent.__file__).resolve().parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PYTHONPYCACHEPREFIX": cache}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    return done.stdout


# --- Reporting ----------------------------------------------------------------------


def _format(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "count":
        return f"{value:.0f}"
    if unit == "runs/s":
        return f"{value:,.0f} runs/s"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value:.3f} s"
    return f"{value:,.2f} {unit.replace('us', 'µs')}"


def table(figures: list[Figure]) -> str:
    """Render the figures as a Markdown table."""
    rows = [("figure", "cogent", "floor", "ratio", "target", "status")]
    for f in figures:
        status = "" if f.met is None else ("met" if f.met else "MISSED")
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}x"
        rows.append(
            (f"{f.key} {f.label}", _format(f.value, f.unit), _format(f.floor, f.unit), ratio, f.target or "", status)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    """Describe the machine and the versions the figures were measured with."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu or "unknown",
        "cpus": os.cpu_count(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "pydantic": pydantic.VERSION,
        "anyio": _version("anyio"),
        "cogent": _version("cogent-context"),
    }


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    """Run the suite; print the table; write the JSON. Returns the process exit code (0)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a few seconds), as CI runs it")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio", help="the anyio backend")
    parser.add_argument("--output", type=Path, help="the JSON file to write (default: benchmarks/results/)")
    parser.add_argument("--only", default="".join(SECTIONS), help="the sections to run, e.g. AE (default: all)")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of the run (top 30, own time)")
    args = parser.parse_args(argv)
    sections = args.only.upper()
    if not sections or set(sections) - set(SECTIONS):
        parser.error(f"--only takes letters among {''.join(SECTIONS)}, e.g. --only AE; got {args.only!r}.")
    settings = QUICK if args.quick else FULL
    suite = Suite(settings)
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    anyio.run(suite.run, sections, backend=args.backend)
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - started
    mode = "quick" if args.quick else "full"
    report = {
        "mode": mode,
        "backend": args.backend,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(elapsed, 2),
        "machine": machine(),
        "settings": asdict(settings),
        "sections": sections,
        "figures": [asdict(f) for f in suite.figures],
    }
    output = args.output or RESULTS_DIR / f"{mode}-{args.backend}-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(table(suite.figures))
    print(f"\n{mode} mode, {args.backend}, {elapsed:.1f} s; {machine()['cpu']}; written to {output}")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
