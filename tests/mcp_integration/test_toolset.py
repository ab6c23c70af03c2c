"""MCP servers as toolsets: tool listing, definitions, results and life cycle, over stdio and HTTP."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import pytest

from cogent import RunContext
from cogent.exceptions import UserError
from cogent.mcp import MCPServerHTTP, MCPServerStdio, MCPTool, MCPToolError

from .conftest import Record, Served, STDIO_SCRIPT

pytestmark = pytest.mark.anyio


def by_name(tools: object) -> dict[str, MCPTool]:
    assert isinstance(tools, list)
    return {t.name: t for t in tools}


async def test_tools_are_offered_with_the_servers_names_descriptions_and_schemas(served: Served) -> None:
    """Each server tool becomes an MCPTool whose definition is the server's name, description and input schema."""
    async with served.server.open(RunContext()) as tools:
        found = by_name(tools)
    assert set(found) == {"echo", "add", "picture", "whoami", "fail", "protocol_error", "malformed", "slow", "pid"}
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
