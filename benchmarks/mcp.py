"""What an MCP tool call costs over stdio, against a local tool call (public API only).

    python -m benchmarks.mcp            # full mode
    python -m benchmarks.mcp --quick    # a few seconds

Both tools echo their argument. The local one is a `@tool` run with `execute()`; the MCP
one is an `MCPTool` of a stdio server (this module, started with `--serve`, written with
the SDK's low-level `Server`) run with `execute()` over one open connection: the
difference is the round trip to the other process (JSON-RPC framing, pipes, the server's
dispatch). Also measured: opening a server for one execution (start the subprocess,
handshake, list the tools, stop it), the cost a per-run `env=` callable pays per run.

Run it as a module (`-m`) from the repository root: run as a file, its name would shadow
the `mcp` package.

Figures (medians of the repeats, microseconds or milliseconds as named):
`mcp.local_call_us`, `mcp.stdio_call_us`, `mcp.overhead_us` (their difference),
`mcp.ratio` (stdio / local), `mcp.open_per_run_ms`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from cogent import RunContext, tool
from cogent.mcp import MCPServerStdio

ROOT = Path(__file__).resolve().parent.parent


@tool
async def echo(text: str) -> str:
    """Echo the text back."""
    return text


async def _per_call_us(call: Any, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await call()
    return (time.perf_counter() - start) / calls * 1e6


async def _measure(quick: bool) -> dict[str, float]:
    calls, repeats, opens = (100, 3, 2) if quick else (1000, 5, 5)
    ctx = RunContext()
    server = MCPServerStdio(sys.executable, ["-m", "benchmarks.mcp", "--serve"], cwd=ROOT, name="bench")
    arguments = echo.validate_arguments('{"text": "hello"}')

    open_ms = []
    for _ in range(opens):
        start = time.perf_counter()
        async with server.open(ctx) as tools:
            assert [t.name for t in tools] == ["echo"]
        open_ms.append((time.perf_counter() - start) * 1e3)

    async def local() -> None:
        await echo.execute(arguments, ctx)

    local_us, stdio_us = [], []
    async with server, server.open(ctx) as tools:
        remote_tool = tools[0]

        async def remote() -> None:
            await remote_tool.execute(arguments, ctx)

        await _per_call_us(remote, 10)  # warm-up
        await _per_call_us(local, 10)
        for _ in range(repeats):
            local_us.append(await _per_call_us(local, calls))
            stdio_us.append(await _per_call_us(remote, calls))
    local_median, stdio_median = statistics.median(local_us), statistics.median(stdio_us)
    return {
        "mcp.local_call_us": local_median,
        "mcp.stdio_call_us": stdio_median,
        "mcp.overhead_us": stdio_median - local_median,
        "mcp.ratio": stdio_median / local_median,
        "mcp.open_per_run_ms": statistics.median(open_ms),
    }


def run(quick: bool) -> dict[str, float]:
    """Measure the per-call cost of an MCP tool over stdio against a local tool.

    Args:
        quick: A few seconds of measuring instead of the full mode.

    Returns:
        The figures named in the module docstring.
    """
    return anyio.run(_measure, quick)


def _serve() -> None:
    """Serve the benchmark's echo tool over stdio (the SDK's low-level server)."""
    import mcp.types as types
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server

    listed = types.Tool(
        name="echo",
        description="Echo the text back.",
        input_schema={"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
    )

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[listed])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        text = str((params.arguments or {}).get("text", ""))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])

    server: Server[Any] = Server("bench", on_list_tools=list_tools, on_call_tool=call_tool)

    async def main() -> None:
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    anyio.run(main)


def main() -> None:
    """Print the figures (or serve, with `--serve`)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="measure for a few seconds only")
    parser.add_argument("--serve", action="store_true", help="run the benchmark's MCP server on stdio")
    args = parser.parse_args()
    if args.serve:
        _serve()
        return
    for name, value in run(args.quick).items():
        print(f"{name:24} {value:12.2f}")


if __name__ == "__main__":
    main()
