"""MCP servers as toolsets: tool listing, definitions, results and life cycle, over stdio and HTTP."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import pytest

from cogent import RunContext
from cogent.exceptions import UserError
from cogent.mcp import MCPServerHTTP, MCPServerStdio, MCPTool, MCPToolError

from .conftest import STDIO_SCRIPT, Record, Served

pytestmark = pytest.mark.anyio


def by_name(tools: object) -> dict[str, MCPTool]:
    assert isinstance(tools, list)
    return {t.name: t for t in tools}


async def test_tools_are_offered_with_the_servers_names_descriptions_and_schemas(served: Served) -> None:
    """Each server tool becomes an MCPTool whose definition is the server's name, description and input schema."""
    async with served.server.open(RunContext()) as tools:
        found = by_name(tools)
    assert set(found) == {
        "echo",
        "add",
        "picture",
        "wrapped",
        "whoami",
        "fail",
        "protocol_error",
        "malformed",
        "slow",
        "pid",
    }
    echo = found["echo"].definition
    assert echo.name == "echo"
    assert echo.description == "Echo the text back."
    assert echo.parameters_json_schema == {
        "type": "object",
        "properties": {"text": {"type": "string", "description": "What to echo."}},
        "required": ["text"],
    }
    assert found["echo"].tool_type == "extension"
    assert [e["method"] for e in served.record.entries()].count("tools/list") == 1


async def test_text_structured_and_image_results_reach_the_model_as_documented(served: Served) -> None:
    """Text comes as is, structured content as the value (sent as JSON), images as a placeholder line."""
    async with served.server.open(RunContext()) as tools:
        found = by_name(tools)
        ctx = RunContext()
        assert await found["echo"].execute({"text": "héllo"}, ctx) == "echo: héllo"
        assert await found["add"].execute({"a": 2, "b": 40}, ctx) == {"sum": 42}
        assert await found["picture"].execute({}, ctx) == "A red dot:\n[image: image/png, 70 bytes, not shown]"
        assert await found["wrapped"].execute({}, ctx) == "plain text"


async def test_an_is_error_result_raises_with_the_servers_text(served: Served) -> None:
    """`isError` raises MCPToolError whose message is the server's text, so the model sees "Error: <text>"."""
    async with served.server.open(RunContext()) as tools:
        with pytest.raises(MCPToolError) as caught:
            await by_name(tools)["fail"].execute({}, RunContext())
    assert str(caught.value) == "quota exceeded for this account"


async def test_a_protocol_error_raises_naming_the_server_tool_and_code(served: Served) -> None:
    """A JSON-RPC error answer becomes MCPToolError with the code and the server's message."""
    async with served.server.open(RunContext()) as tools:
        with pytest.raises(MCPToolError) as caught:
            await by_name(tools)["protocol_error"].execute({}, RunContext())
    assert caught.value.code == -32602
    assert "the account does not exist" in str(caught.value)
    assert repr(served.server.name) in str(caught.value) and "'protocol_error'" in str(caught.value)


async def test_a_malformed_result_raises_a_tool_error(served: Served) -> None:
    """A result that breaks the MCP schema becomes MCPToolError, never a pydantic ValidationError."""
    async with served.server.open(RunContext()) as tools:
        with pytest.raises(MCPToolError, match="malformed result for 'malformed'"):
            await by_name(tools)["malformed"].execute({}, RunContext())


async def test_the_prefix_renames_the_tools_the_model_sees_but_calls_the_server_names(
    stdio_args: list[str], record: Record
) -> None:
    """With tool_prefix the model sees prefixed names; the server still receives its own names."""
    server = MCPServerStdio(sys.executable, stdio_args, tool_prefix="calc_")
    async with server.open(RunContext()) as tools:
        found = by_name(tools)
        assert "calc_add" in found and "add" not in found
        assert found["calc_add"].definition.name == "calc_add"
        assert await found["calc_add"].execute({"a": 1, "b": 2}, RunContext()) == {"sum": 3}
    assert record.calls()[0]["params"]["name"] == "add"


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (True, {"echo", "add", "fail"}),
        (False, set()),
        (["add", "fail", "not_a_tool"], {"add", "fail"}),
        (lambda name: name.startswith("e"), {"echo"}),
    ],
)
async def test_requires_approval_by_flag_names_or_predicate(
    stdio_args: list[str], rule: object, expected: set[str]
) -> None:
    """requires_approval marks every tool, the named server tools, or those the predicate picks."""
    server = MCPServerStdio(sys.executable, stdio_args, tool_prefix="x_", requires_approval=rule)  # type: ignore[arg-type]
    async with server.open(RunContext()) as tools:
        marked = {t.name.removeprefix("x_") for t in tools if t.requires_approval}
    assert marked & {"echo", "add", "fail"} == expected


async def test_a_predicate_that_does_not_return_a_bool_is_a_user_error(stdio_args: list[str]) -> None:
    """An approval predicate answering something other than a bool fails the opening (fail closed)."""
    server = MCPServerStdio(sys.executable, stdio_args, requires_approval=lambda name: "yes")  # type: ignore[arg-type, return-value]
    with pytest.raises(UserError, match="return True or False"):
        async with server.open(RunContext()):
            pass


@dataclass
class Limited(RunContext):
    allowed: frozenset[str] = frozenset()

    def can_use_tool(self, name: str) -> bool:
        return name in self.allowed


async def test_the_contexts_can_use_tool_filters_the_tools_offered_and_called(served: Served) -> None:
    """Only the tools the context's can_use_tool() allows are offered; a call under a context that forbids it fails."""
    async with served.server.open(Limited(allowed=frozenset({"echo"}))) as tools:
        assert [t.name for t in tools] == ["echo"]
        echo = by_name(tools)["echo"]
        with pytest.raises(MCPToolError, match="not allowed"):
            await echo.execute({"text": "x"}, Limited(allowed=frozenset()))
    assert served.record.calls() == []


@pytest.mark.parametrize("arguments", ["[1, 2]", "not json", "3", {"text": "x"}])
async def test_arguments_must_be_a_json_object(stdio_server: MCPServerStdio, arguments: object) -> None:
    """validate_arguments accepts a JSON object (text or dict) and raises ValueError (a retry prompt) otherwise."""
    async with stdio_server.open(RunContext()) as tools:
        echo = by_name(tools)["echo"]
        if isinstance(arguments, dict):
            assert echo.validate_arguments(arguments) == arguments
        else:
            with pytest.raises(ValueError, match="'echo'"):
                echo.validate_arguments(arguments)  # type: ignore[arg-type]
        assert echo.validate_arguments('{"text": "y"}') == {"text": "y"}
        assert echo.validate_arguments("") == {}


async def test_invalid_arguments_that_reach_the_server_come_back_as_an_error(served: Served) -> None:
    """Arguments the server's schema rejects (it validates) are an MCPToolError, not a crash."""
    async with served.server.open(RunContext()) as tools:
        with pytest.raises(MCPToolError):
            await by_name(tools)["add"].execute({"a": "many"}, RunContext())


async def test_async_with_opens_one_connection_that_executions_reuse(stdio_args: list[str], record: Record) -> None:
    """Inside `async with server:` every execution reuses the shared connection (one subprocess, one server pid)."""
    server = MCPServerStdio(sys.executable, stdio_args)
    async with server:
        pids = []
        for _ in range(2):
            async with server.open(RunContext()) as tools:
                pids.append(await by_name(tools)["pid"].execute({}, RunContext()))
    assert pids[0] == pids[1]
    assert [e["method"] for e in record.entries()].count("tools/list") == 2


async def test_without_async_with_each_execution_opens_and_closes_its_own(stdio_args: list[str]) -> None:
    """Without `async with`, each execution starts its own server and stops it when it ends."""
    server = MCPServerStdio(sys.executable, stdio_args)
    pids = []
    for _ in range(2):
        async with server.open(RunContext()) as tools:
            pids.append(await by_name(tools)["pid"].execute({}, RunContext()))
    assert pids[0] != pids[1]


async def test_a_tool_used_after_its_execution_ended_fails_clearly(served: Served) -> None:
    """Calling an MCPTool after its execution ended raises MCPToolError saying the connection is closed."""
    async with served.server.open(RunContext()) as tools:
        echo = by_name(tools)["echo"]
    with pytest.raises(MCPToolError, match="is closed"):
        await echo.execute({"text": "late"}, RunContext())


async def test_entering_twice_is_a_user_error(stdio_server: MCPServerStdio) -> None:
    """`async with server:` while it is already open raises UserError and leaves the first connection usable."""
    async with stdio_server:
        with pytest.raises(UserError, match="already open"):
            async with stdio_server:
                pass
        async with stdio_server.open(RunContext()) as tools:
            assert await by_name(tools)["echo"].execute({"text": "still"}, RunContext()) == "echo: still"


async def test_an_exception_in_the_body_is_not_wrapped(served: Served) -> None:
    """An exception raised while the toolset is open leaves it unchanged (never an ExceptionGroup)."""
    error = KeyError("the run's own error")
    with pytest.raises(KeyError) as caught:
        async with served.server.open(RunContext()):
            raise error
    assert caught.value is error
    with pytest.raises(KeyError) as caught:
        async with served.server:
            raise error
    assert caught.value is error


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tool_prefix": ""}, "tool_prefix"),
        ({"timeout": 0}, "timeout=0"),
        ({"timeout": True}, "timeout=True"),
        ({"connect_timeout": -1}, "connect_timeout=-1"),
        ({"requires_approval": "echo"}, "requires_approval"),
        ({"requires_approval": [1]}, "requires_approval"),
    ],
)
def test_invalid_arguments_are_user_errors(kwargs: dict[str, object], match: str) -> None:
    """Each invalid constructor argument raises UserError naming it."""
    with pytest.raises(UserError, match=match):
        MCPServerStdio(sys.executable, [STDIO_SCRIPT], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(UserError, match=match):
        MCPServerHTTP("http://127.0.0.1:1/mcp", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["ftp://host/mcp", "127.0.0.1:8000/mcp", "", "http:///mcp"])
def test_a_url_that_is_not_http_is_a_user_error(url: str) -> None:
    """MCPServerHTTP refuses URLs that are not http(s) with a host."""
    with pytest.raises(UserError, match="http:// or https:// URL"):
        MCPServerHTTP(url)


def test_stdio_arguments_are_checked() -> None:
    """An empty command or one string of arguments is a UserError."""
    with pytest.raises(UserError, match="command"):
        MCPServerStdio("")
    with pytest.raises(UserError, match="list of arguments"):
        MCPServerStdio(sys.executable, "-m server")


def test_the_default_name_hides_url_credentials_and_query() -> None:
    """The default name of an HTTP server (used in errors) drops user info and the query string."""
    server = MCPServerHTTP("https://user:pw@tools.example.com:8443/mcp?token=s3cret")
    assert server.name == "https://tools.example.com:8443/mcp"
    assert json.dumps(repr(server)).count("s3cret") == 0
