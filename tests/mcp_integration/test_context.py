"""The run context crossing the MCP boundary: per-run credentials, lineage in `_meta`, nothing else."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from cogent import DelegationContext, ExecutionContext, RunContext, TaskContext
from cogent.exceptions import UserError
from cogent.mcp import MCPServerHTTP, MCPServerStdio, request_meta

from .conftest import HTTPServerProcess, Record, Served

pytestmark = pytest.mark.anyio

TASK_ID_KEY = "cogent/task_id"
PARENT_TASK_ID_KEY = "cogent/parent_task_id"
DEPTH_KEY = "cogent/depth"


@dataclass
class UserContext(ExecutionContext):
    user_id: str = ""
    token: str = ""


def tool(tools: Any, name: str) -> Any:
    return next(t for t in tools if t.name == name)


def cogent_meta(entry: dict[str, Any]) -> dict[str, Any]:
    """The `_meta` entries of a recorded request that cogent owns (the SDK adds its own)."""
    meta = entry["params"].get("_meta") or {}
    return {k: v for k, v in meta.items() if k.startswith("cogent/")}


async def run_users_concurrently(
    server: MCPServerHTTP | MCPServerStdio, users: list[UserContext]
) -> dict[str, list[str]]:
    """Open the server for each user's execution at once and call whoami three times each, interleaved."""
    seen: dict[str, list[str]] = {u.user_id: [] for u in users}
    all_open = anyio.Event()
    opened = 0

    async def execution(ctx: UserContext) -> None:
        nonlocal opened
        async with server.open(ctx) as tools:
            opened += 1
            if opened == len(users):
                all_open.set()
            await all_open.wait()
            whoami = tool(tools, "whoami")
            for _ in range(3):
                seen[ctx.user_id].append(await whoami.execute({}, ctx))
                await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        for user in users:
            tg.start_soon(execution, user)
    return seen


async def test_two_concurrent_users_reach_the_http_server_with_their_own_headers(http: HTTPServerProcess) -> None:
    """Per-run headers: each user's calls carry that user's Authorization header, never the other's."""
    server = MCPServerHTTP(http.url, headers=lambda ctx: {"Authorization": f"Bearer {ctx.token}"})
    ada = UserContext(user_id="ada", token="tok-ada")
    bob = UserContext(user_id="bob", token="tok-bob")
    seen = await run_users_concurrently(server, [ada, bob])
    assert seen == {"ada": ["Bearer tok-ada"] * 3, "bob": ["Bearer tok-bob"] * 3}
    owner = {ada.task_id: "Bearer tok-ada", bob.task_id: "Bearer tok-bob"}
    calls = http.record.calls("whoami")
    assert len(calls) == 6
    for call in calls:
        assert call["headers"]["authorization"] == owner[cogent_meta(call)[TASK_ID_KEY]]
    lists = [e for e in http.record.entries() if e["method"] == "tools/list"]
    assert sorted(e["headers"]["authorization"] for e in lists) == ["Bearer tok-ada", "Bearer tok-bob"]


async def test_two_concurrent_users_get_their_own_stdio_server_with_their_own_env(stdio_args: list[str]) -> None:
    """Per-run env: each user's execution starts its own subprocess with that user's environment."""
    server = MCPServerStdio(sys.executable, stdio_args, env=lambda ctx: {"MCP_TEST_TOKEN": ctx.token})
    users = [UserContext(user_id="ada", token="tok-ada"), UserContext(user_id="bob", token="tok-bob")]
    seen = await run_users_concurrently(server, users)
    assert seen == {"ada": ["tok-ada"] * 3, "bob": ["tok-bob"] * 3}


@pytest.mark.parametrize("kind", ["stdio", "http"])
async def test_a_server_with_per_run_credentials_cannot_be_shared(
    kind: str, stdio_args: list[str], http: HTTPServerProcess
) -> None:
    """`async with` on a server whose credentials come from the context is a UserError (no shared connection)."""
    server: MCPServerStdio | MCPServerHTTP
    if kind == "stdio":
        server = MCPServerStdio(sys.executable, stdio_args, env=lambda ctx: {})
    else:
        server = MCPServerHTTP(http.url, headers=lambda ctx: {})
    with pytest.raises(UserError, match="its own connection"):
        async with server:
            pass


async def test_fixed_headers_are_sent_on_the_shared_connection(http: HTTPServerProcess) -> None:
    """A mapping of headers is sent with every request of a shared connection."""
    server = MCPServerHTTP(http.url, headers={"Authorization": "Bearer service"})
    async with server, server.open(RunContext()) as tools:
        assert await tool(tools, "whoami").execute({}, RunContext()) == "Bearer service"


async def test_a_headers_callable_returning_a_non_mapping_is_a_user_error_that_hides_the_value(
    http: HTTPServerProcess,
) -> None:
    """A headers callable returning a non-mapping fails the opening with a UserError that does not print it."""
    server = MCPServerHTTP(http.url, headers=lambda ctx: "Bearer s3cret")  # type: ignore[arg-type, return-value]
    with pytest.raises(UserError, match="mapping of str to str") as caught:
        async with server.open(RunContext()):
            pass
    assert "s3cret" not in str(caught.value)


async def test_the_lineage_of_the_execution_is_in_meta(served: Served) -> None:
    """Each call's `_meta` carries the context's task id, parent task id and depth."""
    parent = ExecutionContext()
    child = parent.create_child_context()
    async with served.server.open(child) as tools:
        await tool(tools, "echo").execute({"text": "x"}, child)
        await tool(tools, "echo").execute({"text": "y"}, parent)
    first, second = (cogent_meta(c) for c in served.record.calls("echo"))
    assert first == {TASK_ID_KEY: child.task_id, PARENT_TASK_ID_KEY: parent.task_id, DEPTH_KEY: 1}
    assert second == {TASK_ID_KEY: parent.task_id, DEPTH_KEY: 0}


def test_lineage_is_read_from_the_helper_classes_only() -> None:
    """Task ids come from TaskContext, depth from DelegationContext (else the task chain); look-alike fields never."""

    @dataclass
    class LookAlike(RunContext):
        task_id: str = "order-7"
        parent_task_id: str = "order-6"
        depth: int = 9

    task = TaskContext(task_chain=["root", "mid"], parent_task_id="mid")
    assert request_meta(task) == {TASK_ID_KEY: task.task_id, PARENT_TASK_ID_KEY: "mid", DEPTH_KEY: 2}
    assert request_meta(DelegationContext(depth=2)) == {DEPTH_KEY: 2}
    assert request_meta(LookAlike()) == {}
    assert request_meta(RunContext(metadata={"task_id": "t"})) == {}
    assert request_meta(None) == {}


@dataclass
class Canaries(ExecutionContext):
    user_id: str = "CANARY-user-id"
    password: str = "CANARY-password"
    api_key: str = "CANARY-api-key"
    token: str = "CANARY-token"
    db: dict[str, str] = field(default_factory=lambda: {"dsn": "CANARY-dsn"})
    notes: list[str] = field(default_factory=lambda: ["CANARY-note"])


async def test_nothing_else_from_the_context_reaches_the_server(served: Served) -> None:
    """Canary values in every field and in the metadata never reach the server, except the explicitly mapped header."""
    ctx = Canaries(
        query="CANARY-query",
        metadata={"session": "CANARY-metadata", "CANARY-key": 1, "secret": "CANARY-secret"},
        task_id="mapped-task-id",
        parent_task_id="mapped-parent-id",
        task_chain=["CANARY-chain-root", "mapped-parent-id"],
    )
    server = served.server
    if isinstance(server, MCPServerHTTP):
        server = MCPServerHTTP(server.url, headers=lambda c: {"Authorization": f"Bearer {c.token}"})
    async with server.open(ctx) as tools:
        await tool(tools, "echo").execute({"text": "hello"}, ctx)
        await tool(tools, "whoami").execute({}, ctx)
    text = served.record.text()
    assert "mapped-task-id" in text and "mapped-parent-id" in text
    if isinstance(server, MCPServerHTTP):
        assert text.count("CANARY-token") == len(served.record.entries())  # once per request, in the header
        entries = served.record.entries()
        for entry in entries:
            entry["headers"].pop("authorization")
        text = str(entries)
    assert "CANARY" not in text


def test_the_trace_context_is_added_only_while_a_span_records() -> None:
    """request_meta adds traceparent (not baggage) when an OpenTelemetry span is recording, and nothing otherwise."""
    from opentelemetry import baggage, context
    from opentelemetry.sdk.trace import TracerProvider

    assert "traceparent" not in request_meta(RunContext())
    tracer = TracerProvider().get_tracer("test")
    token = context.attach(baggage.set_baggage("user", "CANARY-baggage"))
    try:
        with tracer.start_as_current_span("run") as span:
            meta = request_meta(RunContext())
            trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        context.detach(token)
    assert meta["traceparent"].split("-")[1] == trace_id
    assert "baggage" not in meta and "CANARY" not in str(meta)


async def test_the_server_receives_the_trace_id_of_the_current_span(served: Served) -> None:
    """With a recording span around the call, the server's `_meta.traceparent` carries that span's trace id."""
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    async with served.server.open(RunContext()) as tools:
        with tracer.start_as_current_span("run") as span:
            await tool(tools, "echo").execute({"text": "traced"}, RunContext())
    trace_id = format(span.get_span_context().trace_id, "032x")
    (call,) = served.record.calls("echo")
    assert call["params"]["_meta"]["traceparent"].split("-")[1] == trace_id


def test_records_are_per_test(record: Record) -> None:
    """The stdio record file of a test starts empty (the tests above rely on it)."""
    assert record.entries() == []
