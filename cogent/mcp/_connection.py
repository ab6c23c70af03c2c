"""One open connection to an MCP server, held by its own task.

The SDK's `mcp.Client` runs its transport in a task group entered where the client is
entered. `connect()` enters it in a task of its own, so a transport that fails after the
handshake never cancels the run that uses the connection (its calls fail instead), and so
the handshake can be bounded by a timeout.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import anyio
import anyio.abc
from mcp import Client
from mcp.client import Transport
from mcp.shared.exceptions import MCPError
from mcp.types import CONNECTION_CLOSED, CallToolResult, Implementation, RequestParamsMeta
from mcp.types import Tool as MCPToolInfo
from pydantic import ValidationError

from ._errors import MCPConnectionError, MCPToolError

__all__ = ["Connection", "connect", "describe"]

logger = logging.getLogger("cogent.mcp")

_MAX_LIST_PAGES = 100
"""Pages of `tools/list` read at most, so a server whose cursor never ends cannot hang a run."""


def describe(exc: BaseException) -> str:
    """Describe an exception in one line, looking inside exception groups (the SDK's task groups)."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in exc.exceptions)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Connection:
    """An open connection: lists and calls tools, turning the SDK's failures into cogent's."""

    def __init__(self, client: Client, label: str) -> None:
        self.client = client
        """The entered SDK client."""
        self.label = label
        """The server's name, for messages."""
        self.closed = False
        """Whether the connection has been closed by its owner."""

    async def list_tools(self, limit: float) -> list[MCPToolInfo]:
        """Return every tool the server lists (all pages).

        Raises:
            MCPConnectionError: If the listing fails, takes longer than `limit` seconds,
                or lists a name twice.
        """
        tools: list[MCPToolInfo] = []
        cursor: str | None = None
        try:
            with anyio.fail_after(limit):
                for _ in range(_MAX_LIST_PAGES):
                    page = await self.client.list_tools(cursor=cursor)
                    tools.extend(page.tools)
                    cursor = page.next_cursor
                    if cursor is None:
                        break
        except TimeoutError:
            raise MCPConnectionError(
                f"The MCP server {self.label!r} did not list its tools within {limit} seconds; "
                "check the server, or raise connect_timeout."
            ) from None
        except (MCPError, ValidationError) as exc:
            raise MCPConnectionError(
                f"The MCP server {self.label!r} failed to list its tools: {describe(exc)}."
            ) from exc
        names = [t.name for t in tools]
        if len(set(names)) != len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise MCPConnectionError(f"The MCP server {self.label!r} lists these tools more than once: {twice}.")
        return tools

    async def call_tool(self, name: str, arguments: dict[str, Any], *, meta: dict[str, Any]) -> CallToolResult:
        """Call the server's tool `name`.

        Raises:
            MCPToolError: If the server answers with an error, the connection is or gets
                closed, or the result does not match the MCP schema.
        """
        if self.closed:
            raise MCPToolError(
                f"The connection to the MCP server {self.label!r} is closed; its tools can only be called "
                "while the agent execution (or the `async with server:` block) that opened it runs.",
                code=CONNECTION_CLOSED,
            )
        try:
            return await self.client.call_tool(name, arguments, meta=cast(RequestParamsMeta, meta) if meta else None)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                raise MCPToolError(
                    f"The connection to the MCP server {self.label!r} closed during the call to {name!r} "
                    "(the server stopped or crashed).",
                    code=exc.code,
                ) from exc
            raise MCPToolError(
                f"The MCP server {self.label!r} answered the call to {name!r} with error {exc.code}: {exc.message}",
                code=exc.code,
            ) from exc
        except ValidationError as exc:
            raise MCPToolError(
                f"The MCP server {self.label!r} returned a malformed result for {name!r} "
                f"({exc.error_count()} schema errors)."
            ) from exc


@asynccontextmanager
async def connect(transport: Transport, *, label: str, limit: float) -> AsyncIterator[Connection]:
    """Open a connection over `transport` (handshake included) and close it on exit.

    An exception raised in the `async with` body leaves it unchanged (the task group
    holding the connection would otherwise wrap it in an `ExceptionGroup`).

    Args:
        transport: A fresh SDK transport (an async context manager of streams).
        label: The server's name, for messages.
        limit: Seconds the start and the handshake may take.

    Raises:
        MCPConnectionError: If the transport cannot be opened (spawn or network error),
            the handshake fails, or it takes longer than `limit` seconds.
    """
    client = Client(transport, client_info=Implementation(name="cogent", version="1"))
    stop = anyio.Event()
    raised: BaseException | None = None
    unwrapped: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            try:
                try:
                    with anyio.fail_after(limit):
                        await tg.start(_hold, client, stop, label)
                except TimeoutError:
                    raise MCPConnectionError(
                        f"The MCP server {label!r} did not complete the MCP handshake within {limit} seconds; "
                        "check that the command or URL serves MCP, or raise connect_timeout."
                    ) from None
                except Exception as exc:
                    raise MCPConnectionError(
                        f"The MCP server {label!r} could not be connected to: {describe(exc)}."
                    ) from exc
                connection = Connection(client, label)
                try:
                    yield connection
                finally:
                    connection.closed = True
                    stop.set()
            except BaseException as exc:
                raised = exc
                raise
    except BaseExceptionGroup as group:
        if raised is None or _leaves(group) != [raised]:
            raise
        unwrapped = raised
    if unwrapped is not None:
        raise unwrapped


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions inside `group` and its nested groups."""
    found: list[BaseException] = []
    for inner in group.exceptions:
        found.extend(_leaves(inner) if isinstance(inner, BaseExceptionGroup) else [inner])
    return found


async def _hold(client: Client, stop: anyio.Event, label: str, *, task_status: anyio.abc.TaskStatus[None]) -> None:
    """Keep `client` entered until `stop` is set; log (never raise) a failure after the handshake."""
    started = False
    try:
        async with client:
            task_status.started()
            started = True
            await stop.wait()
    except Exception as exc:
        if not started:
            raise
        logger.warning("The connection to the MCP server %r ended with an error: %s", label, describe(exc))
