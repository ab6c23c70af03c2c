"""Faults at the MCP boundary end in the documented outcome, with nothing leaked.

- A connection that cannot be opened: `MCPConnectionError` (a `CogentError`) when the
  server is opened (`async with server:` or an execution's `open(ctx)`).
- A call that fails (the server dies, answers with an error, is cancelled by a deadline):
  `MCPToolError` (or the cancellation itself) from `execute`, which the run loop turns
  into an error result for the model; the connection's other users are unaffected.
- No subprocess, task or socket survives (checked by counting).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest
from chat_server import ChatServer

from cogent import RunContext
from cogent.exceptions import CogentError
from cogent.mcp import MCPConnectionError, MCPServerHTTP, MCPServerStdio, MCPToolError

from .conftest import (
    Record,
    Served,
    child_pids,
    free_port,
    live_tasks,
    open_sockets,
    start_http_server,
    wait_until,
)

pytestmark = pytest.mark.anyio


def tool(tools: object, name: str) -> object:
    return next(t for t in tools if t.name == name)  # type: ignore[attr-defined]


async def expect_connection_error(server: MCPServerStdio | MCPServerHTTP, match: str) -> MCPConnectionError:
    """Opening `server` both ways raises MCPConnectionError matching `match`; return the last one."""
    with pytest.raises(MCPConnectionError, match=match):
        async with server:
            pass
    with pytest.raises(MCPConnectionError, match=match) as caught:
        async with server.open(RunContext()):
            pass
    assert isinstance(caught.value, CogentError)
    return caught.value


async def test_an_unreachable_http_server_is_a_connection_error() -> None:
    """A URL where nothing listens gives MCPConnectionError naming the server and the network error."""
    server = MCPServerHTTP(f"http://127.0.0.1:{free_port()}/mcp", name="gone")
    error = await expect_connection_error(server, "'gone' could not be connected to: ConnectError")
    assert not isinstance(error, BaseExceptionGroup)


async def test_an_http_endpoint_that_is_not_mcp_is_a_connection_error(server: ChatServer) -> None:
    """An HTTP server that answers the MCP handshake with an HTTP error (404) gives MCPConnectionError."""
    await expect_connection_error(MCPServerHTTP(f"{server.base_url}/mcp", name="chat"), "'chat'")


async def test_a_command_that_does_not_exist_is_a_connection_error() -> None:
    """A stdio command that cannot be started gives MCPConnectionError with the OS error."""
    server = MCPServerStdio("/nonexistent/mcp-server", name="missing")
    await expect_connection_error(server, "'missing' could not be connected to: FileNotFoundError")


async def test_a_server_that_exits_at_start_is_a_connection_error() -> None:
    """A subprocess that exits before the handshake gives MCPConnectionError saying the connection closed."""
    server = MCPServerStdio(sys.executable, ["-c", "import sys; sys.exit(3)"], name="quitter")
    await expect_connection_error(server, "'quitter' could not be connected to: MCPError: Connection closed")


async def test_a_server_that_never_answers_the_handshake_times_out() -> None:
    """A subprocess that never speaks MCP gives MCPConnectionError after connect_timeout, and is stopped."""
    server = MCPServerStdio(sys.executable, ["-c", "import time; time.sleep(60)"], name="mute", connect_timeout=0.5)
    with pytest.raises(MCPConnectionError, match=r"did not complete the MCP handshake within 0\.5 seconds"):
        async with server.open(RunContext()):
            pass


async def test_a_stdio_server_killed_mid_call_gives_a_tool_error(stdio_server: MCPServerStdio, record: Record) -> None:
    """Killing the stdio server during a call makes that call raise MCPToolError; later calls fail the same way."""
    async with stdio_server.open(RunContext()) as tools:
        pid = int(await tool(tools, "pid").execute({}, RunContext()))  # type: ignore[attr-defined]
        errors: list[BaseException] = []

        async def call() -> None:
            try:
                await tool(tools, "slow").execute({"seconds": 30}, RunContext())  # type: ignore[attr-defined]
            except MCPToolError as exc:
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await wait_until(lambda: bool(record.calls("slow")))
            os.kill(pid, signal.SIGKILL)
        assert len(errors) == 1
        assert "closed during the call to 'slow'" in str(errors[0])
        with pytest.raises(MCPToolError):
            await tool(tools, "echo").execute({"text": "after"}, RunContext())  # type: ignore[attr-defined]


async def test_an_http_server_killed_mid_call_gives_a_tool_error(tmp_path: Path) -> None:
    """Killing the HTTP server during a call makes that call raise MCPToolError, and the execution closes cleanly."""
    with start_http_server(tmp_path / "record.jsonl") as http:
        server = MCPServerHTTP(http.url, name="doomed")
        async with server.open(RunContext()) as tools:
            errors: list[BaseException] = []

            async def call() -> None:
                try:
                    await tool(tools, "slow").execute({"seconds": 30}, RunContext())  # type: ignore[attr-defined]
                except MCPToolError as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await wait_until(lambda: bool(http.record.calls("slow")))
                http.process.kill()
            assert len(errors) == 1 and "'doomed'" in str(errors[0])


async def test_cancelling_a_call_cancels_it_on_the_server(served: Served, transport: str) -> None:
    """A call cancelled by a deadline's cancel scope is cancelled on the server (stdio: notifications/cancelled)."""
    async with served.server.open(RunContext()) as tools:
        async with anyio.create_task_group() as tg:
            tg.start_soon(tool(tools, "slow").execute, {"seconds": 30}, RunContext())  # type: ignore[attr-defined]
            await wait_until(lambda: bool(served.record.calls("slow")))  # cancelled once the server runs it
            tg.cancel_scope.cancel()
        await wait_until(lambda: any(e.get("event") == "cancelled" for e in served.record.entries()))
        assert await tool(tools, "echo").execute({"text": "still here"}, RunContext()) == "echo: still here"  # type: ignore[attr-defined]
    if transport == "stdio":
        (call,) = served.record.calls("slow")
        cancels = [e for e in served.record.entries() if e.get("method") == "notifications/cancelled"]
        assert [c["params"]["requestId"] for c in cancels] == [call["request_id"]]


async def test_concurrent_calls_on_one_connection_fail_independently(served: Served) -> None:
    """An error result or a cancelled call does not disturb the other calls running on the same connection."""
    async with served.server.open(RunContext()) as tools:
        results: dict[str, object] = {}

        async def run(name: str, args: dict[str, object]) -> None:
            try:
                results[name] = await tool(tools, name).execute(args, RunContext())  # type: ignore[attr-defined]
            except MCPToolError as exc:
                results[name] = f"Error: {exc}"

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "fail", {})
            tg.start_soon(run, "echo", {"text": "a"})
            tg.start_soon(run, "add", {"a": 1, "b": 1})
            with anyio.move_on_after(0.2):
                await tool(tools, "slow").execute({"seconds": 30}, RunContext())  # type: ignore[attr-defined]
    assert results == {"fail": "Error: quota exceeded for this account", "echo": "echo: a", "add": {"sum": 2}}


async def test_nothing_leaks_after_successful_failed_and_cancelled_executions(served: Served) -> None:
    """After executions that succeed, fail to connect or are cancelled, the task, socket and process counts are back."""

    async def exercise() -> None:
        async with served.server.open(RunContext()) as tools:
            await tool(tools, "echo").execute({"text": "x"}, RunContext())  # type: ignore[attr-defined]
        with anyio.move_on_after(0.3):
            async with served.server.open(RunContext()) as tools:
                await tool(tools, "slow").execute({"seconds": 30}, RunContext())  # type: ignore[attr-defined]
        with pytest.raises(MCPConnectionError):
            async with MCPServerHTTP(f"http://127.0.0.1:{free_port()}/mcp").open(RunContext()):
                pass
        async with served.server, served.server.open(RunContext()) as tools:
            await tool(tools, "echo").execute({"text": "y"}, RunContext())  # type: ignore[attr-defined]

    await exercise()  # warm up: the event loop's and HTTP machinery's first-use objects
    tasks, sockets, children = live_tasks(), open_sockets(), child_pids()
    for _ in range(2):
        await exercise()
    await wait_until(lambda: live_tasks() == tasks)
    assert open_sockets() == sockets
    assert child_pids() == children
