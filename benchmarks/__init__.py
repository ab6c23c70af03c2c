"""cogent's benchmark suite: what the framework costs on top of the work itself.

Run it with `python -m benchmarks` (full mode, several minutes) or `python -m benchmarks
--quick` (a few seconds, what CI runs); `--only A,E` selects groups, `--list` lists them,
`--backend trio` runs on trio. The table is printed and written as JSON to
`benchmarks/results/` (or `--output FILE`), with pyperf's raw values next to it
(`*.pyperf.json`, for `python -m pyperf compare_to before.pyperf.json after.pyperf.json`).
See `docs/performance.md` for the method and the latest figures.

Everything is measured through cogent's public API (`cogent`, `cogent.models`,
`cogent.messages`, ...), never its private modules or attributes, so the suite survives
refactors of the run loop. Each figure is reported next to a *floor* measured in the same
invocation (the same work without the framework: pydantic `validate_json` plus a direct
call, a hand-written agent loop), as a ratio, and each target as met or missed.

Why pyperf (not pytest-benchmark): its `Runner` times each benchmark in several fresh
worker processes (10 here, after one that calibrates the number of loops per value), each
with a warm-up value, so one process's hash seed, memory layout or a burst of load from
another job does not decide a figure; it works with a time function we write ourselves,
which is what timing code on an anyio event loop (asyncio or trio) needs; its results
are files `pyperf compare_to` compares, which is what a before/after needs. pytest-benchmark
times in the test process, and its async support and cross-benchmark arithmetic (a
difference of two runs, a ratio to a floor) would have to be written around it. Quick
mode runs pyperf in-process (`--in-process`, one value of 10 ms per timing).

The groups (one module each, registered in `benchmarks.registry.GROUP_MODULES`):

- A (`tool_calls`): one tool call inside the run loop, for an async tool, an inline sync
  tool (`threaded=False`) and a threaded sync tool: (run with 101 calls - run with 1) / 100.
- B (`runs`): sequential two-turn runs per second.
- C (`concurrency`): 1,000 concurrent runs: wall time, memory per run, context isolation.
- D (`delegation`): delegation chains of depth 1 to 64: cost per level, linearity.
- E (`interceptors`): A with 0, 1 and 5 PRE_ACT interceptors.
- F (`cold_start`): `import cogent`, the provider SDKs it loads, decorating 100 tools.
- T (`telemetry`, optional: needs opentelemetry-sdk): OpenTelemetry instrumentation, per span.

To add a group, write a module that defines `GROUP = benchmarks.registry.Group(...)` with
its `timings` and `figures` (see `benchmarks.registry`), and list it in `GROUP_MODULES`.
A group that needs an extra (DBOS, OpenTelemetry, MCP, a provider SDK) names the modules
in `Group.requires`, imports them only inside its functions, and is skipped with a message
where they are not installed. Figures that are not times (memory, counts) are measured by
the group's `figures()` directly, in the main process.
"""
