"""MCP tools in agent runs: the run loop executes them as it executes local tools."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from helpers import echo_model

from cogent import Agent, ExecutionContext, FunctionModel, ScriptedModel, ToolCall, format_trace
from cogent.core import now_utc
from cogent.exceptions import DeadlineExceeded
from cogent.interceptors import InterceptContext, InterceptResult, Phase, ToolGate, interceptor
from cogent.mcp import MCPServerHTTP, MCPServerStdio
from cogent.messages import Message, ToolReturn
from cogent.models import ModelRequestParameters

from .conftest import HTTPServerProcess, Record, Served, wait_until

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.anyio


@dataclass
class UserContext(ExecutionContext):
    token: str = ""
    allowed: frozenset[str] = frozenset({"echo", "whoami", "add"})

    def can_use_tool(self, name: str) -> bool:
        return name in self.allowed


def returns(messages: list[Message]) -> list[str]:
    return [m.content for m in messages if isinstance(m, ToolReturn)]


async def test_an_agent_calls_mcp_tools_and_sees_their_results(served: Served) -> None:
    """The model calls MCP tools like local ones: text as is, structured content as JSON, isError as an error."""
    model = echo_model(
        ToolCall(name="echo", arguments={"text": "hi"}, id="c1"),
        ToolCall(name="add", arguments={"a": 1, "b": 2}, id="c2"),
        ToolCall(name="fail", arguments={}, id="c3"),
    )
    agent = Agent(name="mcp", model=model, tools=[served.server])
    result = await agent.run("go")
    assert result.output == 'echo: hi|{"sum":3}|Error: quota exceeded for this account'
    assert "tool_call echo" in format_trace(result.trace)


async def test_two_users_on_one_agent_reach_the_server_with_their_own_credentials(http: HTTPServerProcess) -> None:
    """Concurrent runs of two users on one agent each see only their own Authorization header."""
    server = MCPServerHTTP(http.url, headers=lambda ctx: {"Authorization": f"Bearer {ctx.token}"})
    agent = Agent(name="mcp", model=echo_model(ToolCall(name="whoami", arguments={})), tools=[server])
    outputs: dict[str, str] = {}

    async def run(token: str) -> None:
        outputs[token] = str((await agent.run("who am I?", context=UserContext(token=token))).output)

    async with anyio.create_task_group() as tg:
        for token in ("ada", "bob"):
            tg.start_soon(run, token)
    assert outputs == {"ada": "Bearer ada", "bob": "Bearer bob"}


async def test_interceptors_apply_to_mcp_tools(served: Served) -> None:
    """A PRE_ACT interceptor that stops an MCP call keeps it from reaching the server."""

    @interceptor(Phase.PRE_ACT)
    def block(call: InterceptContext) -> InterceptResult:
        return InterceptResult.stop("blocked by policy") if call.tool_name == "echo" else InterceptResult.ok()

    agent = Agent(
        name="mcp",
        model=echo_model(ToolCall(name="echo", arguments={"text": "x"})),
        tools=[served.server],
        interceptors=[block],
    )
    result = await agent.run("go")
    assert result.output == "blocked by policy"
    assert served.record.calls() == []


async def test_an_mcp_tool_that_requires_approval_interrupts_the_run(stdio_args: list[str], record: Record) -> None:
    """requires_approval on an MCP tool interrupts the run before the server is called."""
    server = MCPServerStdio(sys.executable, stdio_args, requires_approval=["echo"])
    agent = Agent(name="mcp", model=echo_model(ToolCall(name="echo", arguments={"text": "x"})), tools=[server])
    result = await agent.run("go")
    assert [i.tool_name for i in result.interruptions] == ["echo"]
    assert record.calls() == []


async def test_the_tool_gate_and_can_use_tool_hide_mcp_tools_from_the_model(served: Served) -> None:
    """The model is offered only the MCP tools the context allows."""
    offered: list[list[str]] = []

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        offered.append(sorted(t.name for t in info.tools))
        return "done"

    agent = Agent(name="mcp", model=FunctionModel(respond), tools=[served.server], interceptors=[ToolGate()])
    await agent.run("go", context=UserContext(allowed=frozenset({"echo"})))
    assert offered == [["echo"]]


async def test_a_deadline_cancels_the_mcp_call_on_the_server(served: Served) -> None:
    """A run whose deadline passes during an MCP call raises DeadlineExceeded and the server sees the cancellation."""
    agent = Agent(
        name="mcp",
        model=ScriptedModel([ToolCall(name="slow", arguments={"seconds": 30}), "done"]),
        tools=[served.server],
    )
    async with served.server:  # opened first: the deadline bounds the call, not the server's start-up
        context = UserContext(
            deadline=now_utc() + timedelta(seconds=3), allowed=frozenset({"slow"})
        )  # wide: the call starts first
        with pytest.raises(DeadlineExceeded):
            await agent.run("go", context=context)
    await wait_until(lambda: any(e.get("event") == "cancelled" for e in served.record.entries()))


async def test_a_tool_timeout_gives_the_model_an_error_and_cancels_on_the_server(
    stdio_args: list[str], record: Record
) -> None:
    """MCPServer(timeout=...) bounds each call as for local tools; the server sees the cancellation."""
    server = MCPServerStdio(sys.executable, stdio_args, timeout=2)  # wide: the request reaches the server first
    agent = Agent(name="mcp", model=echo_model(ToolCall(name="slow", arguments={"seconds": 30})), tools=[server])
    result = await agent.run("go")
    assert "timed out after 2 seconds" in str(result.output)
    await wait_until(lambda: any(e.get("event") == "cancelled" for e in record.entries()))


async def test_the_run_carries_its_lineage_to_the_server(served: Served) -> None:
    """The server receives the execution context's task id in `_meta`."""
    agent = Agent(name="mcp", model=echo_model(ToolCall(name="echo", arguments={"text": "x"})), tools=[served.server])
    result = await agent.run("go", context=UserContext())
    (call,) = served.record.calls("echo")
    assert call["params"]["_meta"]["cogent/task_id"] == result.context.task_id  # type: ignore[attr-defined]


def test_the_example_runs_offline() -> None:
    """`python -m examples.mcp` runs its agent against the shipped stdio server and prints the trace."""
    done = subprocess.run(
        [sys.executable, "-m", "examples.mcp"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "tool_call" in done.stdout and "ada" in done.stdout
