"""The test MCP server (the SDK's low-level `Server`), shared by the stdio and HTTP entry points.

Everything the server receives is appended, one JSON object per line, to the record file
named on the command line: every inbound request and notification (`method`, raw
`params`, and for HTTP every header), plus `{"event": "cancelled", "tool": ...}` when a
running tool handler is cancelled. The tests read that file to see exactly what crossed
the process boundary.

Tools: `echo(text)`, `add(a, b)` (structured content with an output schema), `picture()`
(text and an image), `wrapped()` (a string as `{"result": ...}` structured content),
`whoami()` (the credential this request came with: the `Authorization` header over HTTP,
the `MCP_TEST_TOKEN` environment variable over stdio), `fail()` (an `isError` result),
`protocol_error()` (a JSON-RPC error), `malformed()` (a result that breaks the MCP schema),
`slow(seconds)` (sleeps; records its cancellation), `pid()` (the server's process id).
"""

from __future__ import annotations

import json
import os
from typing import Any

import anyio
import mcp.types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError

RED_DOT_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="

_OBJECT = "object"


def _schema(properties: dict[str, Any] | None = None, required: list[str] | None = None) -> dict[str, Any]:
    return {"type": _OBJECT, "properties": properties or {}, "required": required or []}


TOOLS = [
    types.Tool(
        name="echo",
        description="Echo the text back.",
        input_schema=_schema({"text": {"type": "string", "description": "What to echo."}}, ["text"]),
    ),
    types.Tool(
        name="add",
        description="Add two integers.",
        input_schema=_schema({"a": {"type": "integer"}, "b": {"type": "integer"}}, ["a", "b"]),
        output_schema=_schema({"sum": {"type": "integer"}}, ["sum"]),
    ),
    types.Tool(name="picture", description="Draw a red dot.", input_schema=_schema()),
    types.Tool(
        name="wrapped",
        description="A string result, wrapped as the SDK's MCPServer wraps non-object results.",
        input_schema=_schema(),
        output_schema=_schema({"result": {"type": "string"}}, ["result"]),
    ),
    types.Tool(name="whoami", description="Say which credential the request came with.", input_schema=_schema()),
    types.Tool(name="fail", description="Always report an error.", input_schema=_schema()),
    types.Tool(name="protocol_error", description="Answer with a JSON-RPC error.", input_schema=_schema()),
    types.Tool(name="malformed", description="Answer with a malformed result.", input_schema=_schema()),
    types.Tool(
        name="slow",
        description="Sleep for a while.",
        input_schema=_schema({"seconds": {"type": "number"}}, ["seconds"]),
    ),
    types.Tool(name="pid", description="The server's process id.", input_schema=_schema()),
]


def _text(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


def build(record_path: str) -> Server[Any]:
    """Return the server, recording into `record_path`."""

    def record(entry: dict[str, Any]) -> None:
        with open(record_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str) + "\n")

    async def list_tools(ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None) -> Any:
        return types.ListToolsResult(tools=TOOLS)

    async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> Any:
        args = params.arguments or {}
        if params.name == "echo":
            return _text(f"echo: {args['text']}")
        if params.name == "add":
            total = int(args["a"]) + int(args["b"])
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=json.dumps({"sum": total}))],
                structured_content={"sum": total},
            )
        if params.name == "picture":
            return types.CallToolResult(
                content=[
                    types.TextContent(type="text", text="A red dot:"),
                    types.ImageContent(type="image", data=RED_DOT_PNG, mime_type="image/png"),
                ]
            )
        if params.name == "wrapped":
            return types.CallToolResult(
                content=[types.TextContent(type="text", text="plain text")], structured_content={"result": "plain text"}
            )
        if params.name == "whoami":
            if ctx.request is not None:
                return _text(ctx.request.headers.get("authorization", "<no authorization header>"))
            return _text(os.environ.get("MCP_TEST_TOKEN", "<no MCP_TEST_TOKEN>"))
        if params.name == "fail":
            return types.CallToolResult(
                content=[types.TextContent(type="text", text="quota exceeded for this account")], is_error=True
            )
        if params.name == "protocol_error":
            raise MCPError(code=types.INVALID_PARAMS, message="the account does not exist")
        if params.name == "slow":
            try:
                await anyio.sleep(float(args["seconds"]))
            except anyio.get_cancelled_exc_class():
                record({"event": "cancelled", "tool": "slow"})
                raise
            return _text("done sleeping")
        if params.name == "pid":
            return _text(str(os.getpid()))
        raise MCPError(code=types.METHOD_NOT_FOUND, message=f"unknown tool {params.name}")

    async def recorder(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        entry: dict[str, Any] = {"method": ctx.method, "params": ctx.params, "request_id": ctx.request_id}
        if ctx.request is not None:
            entry["headers"] = dict(ctx.request.headers)
        record(entry)
        params = ctx.params or {}
        if ctx.method == "tools/call" and params.get("name") == "malformed":
            return {"content": [{"type": "image", "mimeType": 7}], "isError": "sometimes"}
        return await call_next(ctx)

    server: Server[Any] = Server("cogent-test-server", on_list_tools=list_tools, on_call_tool=call_tool)
    server.middleware.append(recorder)
    return server
