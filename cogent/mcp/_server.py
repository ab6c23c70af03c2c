"""MCP servers as toolsets: `MCPServerStdio` and `MCPServerHTTP`."""

from __future__ import annotations

import sys
from abc import abstractmethod
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO, TypeAlias
from urllib.parse import urlsplit

import httpx2
from mcp import StdioServerParameters, stdio_client
from mcp.client import Transport
from mcp.client.streamable_http import streamable_http_client

from ..context import RunContext
from ..exceptions import UserError
from ..tools import BaseTool, Toolset
from ._connection import Connection, connect
from ._tool import MCPTool

__all__ = ["ApprovalRule", "HeadersSource", "MCPServer", "MCPServerHTTP", "MCPServerStdio"]

ApprovalRule: TypeAlias = bool | Collection[str] | Callable[[str], bool]
"""Which of a server's tools need an approval per call: all (`True`), none (`False`), the
tools with these names (the server's names, without the prefix), or those for which the
predicate, given the server's name of the tool, returns `True`."""

HeadersSource: TypeAlias = Mapping[str, str] | Callable[[Any], Mapping[str, str]]
"""Fixed values, or a callable that receives the run context of an agent execution and
returns that execution's values (per-run credentials)."""


class MCPServer(Toolset):
    """An MCP server whose tools an agent offers to its model: `Agent(tools=[server])`.

    Each agent execution opens the server (`open(ctx)`), lists its tools once and offers
    them next to the agent's own tools. The connection is the one opened by
    `async with server:` when there is one and it does not depend on the context;
    otherwise the execution opens its own and closes it when it ends.

    Use `MCPServerStdio` or `MCPServerHTTP`.
    """

    def __init__(
        self,
        *,
        name: str,
        tool_prefix: str | None,
        requires_approval: ApprovalRule,
        timeout: float | None,
        connect_timeout: float,
    ) -> None:
        if tool_prefix is not None and (not isinstance(tool_prefix, str) or not tool_prefix):
            raise UserError(f"MCP server {name!r} got tool_prefix={tool_prefix!r}; use a non-empty string or None.")
        for arg, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value <= 0):
                raise UserError(f"MCP server {name!r} got {arg}={value!r}; use a positive number of seconds.")
        self.name = name
        """The server's name in messages and errors."""
        self.tool_prefix = tool_prefix
        """Prepended to each of the server's tool names to make the name the model sees."""
        self.timeout = timeout
        """Seconds each tool call may take (enforced by the run loop, as for local tools)."""
        self.connect_timeout = connect_timeout
        """Seconds the start, the handshake and the tool listing may take each."""
        self._needs_approval = _approval_predicate(requires_approval, name)
        self._exit_stack: AsyncExitStack | None = None
        self._shared: Connection | None = None

    @property
    @abstractmethod
    def per_run(self) -> bool:
        """Whether each execution needs its own connection (its credentials come from the context)."""

    @abstractmethod
    def _transport(self, ctx: RunContext | None) -> Transport:
        """Return a fresh SDK transport for a connection made for `ctx` (`None`: the shared one)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    async def __aenter__(self) -> MCPServer:
        """Open the connection that executions share until `async with` ends.

        Raises:
            UserError: If the server is already open, or its credentials come from the
                run context (each execution then opens its own connection).
            MCPConnectionError: If the server cannot be started, reached or handshaken.
        """
        if self._exit_stack is not None:
            raise UserError(f"MCP server {self.name!r} is already open; enter `async with server:` once at a time.")
        if self.per_run:
            raise UserError(
                f"MCP server {self.name!r} takes its credentials from the run context, so every agent execution "
                "opens its own connection; remove `async with server:` (there is no shared connection to open)."
            )
        stack = AsyncExitStack()
        self._exit_stack = stack
        try:
            self._shared = await stack.enter_async_context(
                connect(self._transport(None), label=self.name, limit=self.connect_timeout)
            )
        except BaseException:
            self._exit_stack = None
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        """Close the shared connection (and stop the subprocess of a stdio server)."""
        stack, self._exit_stack, self._shared = self._exit_stack, None, None
        if stack is None:
            return None
        return await stack.__aexit__(exc_type, exc, tb)

    def open(self, ctx: RunContext) -> AbstractAsyncContextManager[Sequence[BaseTool]]:
        """Open the server for one agent execution and yield its tools (listed now, once).

        Tools for which the context's `can_use_tool(name)` method (if it has one) returns
        false are left out; `name` is the name the model would see.

        Args:
            ctx: The execution's run context (for per-run credentials and filtering).

        Returns:
            An async context manager yielding the `MCPTool`s; leaving it closes the
            connection it opened, if it opened one.

        Raises:
            MCPConnectionError: On entering, if the connection cannot be opened or the
                tools cannot be listed.
        """
        return self._open(ctx)

    @asynccontextmanager
    async def _open(self, ctx: RunContext) -> AsyncIterator[Sequence[BaseTool]]:
        shared = self._shared
        if shared is not None and not self.per_run:
            yield await self._tools(shared, ctx)
            return
        async with connect(self._transport(ctx), label=self.name, limit=self.connect_timeout) as connection:
            yield await self._tools(connection, ctx)

    async def _tools(self, connection: Connection, ctx: RunContext) -> list[MCPTool]:
        listed = await connection.list_tools(self.connect_timeout)
        prefix = self.tool_prefix or ""
        tools = [
            MCPTool(
                name=prefix + info.name,
                server_tool=info,
                connection=connection,
                requires_approval=self._needs_approval(info.name),
                timeout=self.timeout,
            )
            for info in listed
        ]
        check = getattr(ctx, "can_use_tool", None)
        if callable(check):
            tools = [t for t in tools if check(t.name)]
        return tools


class MCPServerStdio(MCPServer):
    """An MCP server run as a subprocess, speaking MCP over its stdin and stdout.

    ```python
    server = MCPServerStdio("python", ["-m", "my_server"], env=lambda ctx: {"USER_TOKEN": ctx.token})
    agent = Agent(name="assistant", model=model, tools=[server])
    ```

    Args:
        command: The executable to start.
        args: Its arguments.
        env: Environment variables for the subprocess, added to the SDK's safe default
            set (`HOME`, `PATH`, `USER`, ...; the rest of this process's environment is
            not inherited). A callable receives the run context and makes each agent
            execution start its own subprocess with that execution's values (per-user
            credentials); a mapping allows one shared subprocess (`async with server:`).
        cwd: The subprocess's working directory.
        name: The server's name in messages; defaults to `"stdio:<command name>"`.
        tool_prefix: Prepended to every tool name the model sees (`"fs_"` makes `read`
            `fs_read`), to avoid clashes between servers.
        requires_approval: Which tools need an approval per call (see `ApprovalRule`).
        timeout: Seconds each tool call may take, or `None`.
        connect_timeout: Seconds the start and handshake, and the tool listing, may take.
        stderr: Where the subprocess's stderr goes (a file with a file descriptor);
            defaults to this process's `sys.stderr`.

    Raises:
        UserError: If an argument is invalid (a non-positive timeout, an empty prefix,
            a malformed approval rule).
    """

    def __init__(
        self,
        command: str,
        args: Sequence[str] = (),
        *,
        env: HeadersSource | None = None,
        cwd: str | Path | None = None,
        name: str | None = None,
        tool_prefix: str | None = None,
        requires_approval: ApprovalRule = False,
        timeout: float | None = None,
        connect_timeout: float = 30.0,
        stderr: TextIO | None = None,
    ) -> None:
        if not isinstance(command, str) or not command:
            raise UserError(f"MCPServerStdio needs a command to run, got {command!r}.")
        if isinstance(args, str):
            raise UserError(f"MCPServerStdio got args={args!r}; pass a list of arguments, not one string.")
        super().__init__(
            name=name or f"stdio:{Path(command).name}",
            tool_prefix=tool_prefix,
            requires_approval=requires_approval,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        self.command = command
        """The executable."""
        self.args = list(args)
        """Its arguments."""
        self.env = env
        """The subprocess's extra environment, or a callable making it from the run context."""
        self.cwd = cwd
        """The subprocess's working directory."""
        self.stderr = stderr
        """Where the subprocess's stderr goes (`None`: `sys.stderr`)."""

    @property
    def per_run(self) -> bool:
        """Whether `env` is a callable, so each execution starts its own subprocess."""
        return callable(self.env)

    def _transport(self, ctx: RunContext | None) -> Transport:
        env = _resolve(self.env, ctx, owner=f"MCPServerStdio {self.name!r}", what="env")
        params = StdioServerParameters(command=self.command, args=self.args, env=env, cwd=self.cwd)
        return stdio_client(params, errlog=self.stderr or sys.stderr)


class MCPServerHTTP(MCPServer):
    """An MCP server reached over the streamable HTTP transport.

    ```python
    server = MCPServerHTTP(
        "https://tools.example.com/mcp",
        headers=lambda ctx: {"Authorization": f"Bearer {ctx.user_token}"},
    )
    ```

    Args:
        url: The server's MCP endpoint.
        headers: HTTP headers sent with every request. A callable receives the run
            context and makes each agent execution connect with that execution's
            headers (per-user credentials: two users' runs never share a connection);
            a mapping allows one shared connection (`async with server:`).
        name: The server's name in messages; defaults to the URL without its query
            string and user info.
        tool_prefix: Prepended to every tool name the model sees.
        requires_approval: Which tools need an approval per call (see `ApprovalRule`).
        timeout: Seconds each tool call may take, or `None`.
        connect_timeout: Seconds the connection and handshake, and the tool listing, may take.

    Raises:
        UserError: If an argument is invalid (a URL that is not http(s), a non-positive
            timeout, an empty prefix, a malformed approval rule).
    """

    def __init__(
        self,
        url: str,
        *,
        headers: HeadersSource | None = None,
        name: str | None = None,
        tool_prefix: str | None = None,
        requires_approval: ApprovalRule = False,
        timeout: float | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"MCPServerHTTP needs an http:// or https:// URL, got {url!r}.")
        port = f":{parts.port}" if parts.port else ""
        super().__init__(
            name=name or f"{parts.scheme}://{parts.hostname}{port}{parts.path}",
            tool_prefix=tool_prefix,
            requires_approval=requires_approval,
            timeout=timeout,
            connect_timeout=connect_timeout,
        )
        self.url = url
        """The MCP endpoint."""
        self.headers = headers
        """The HTTP headers, or a callable making them from the run context."""

    @property
    def per_run(self) -> bool:
        """Whether `headers` is a callable, so each execution opens its own connection."""
        return callable(self.headers)

    def _transport(self, ctx: RunContext | None) -> Transport:
        headers = _resolve(self.headers, ctx, owner=f"MCPServerHTTP {self.name!r}", what="headers")
        return _http_transport(self.url, headers, self.connect_timeout)


@asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str] | None, connect_limit: float) -> AsyncIterator[Any]:
    """The streamable HTTP transport over an HTTP client of its own, closed with it."""
    http_timeout = httpx2.Timeout(connect_limit, read=None)  # a tool call may take long; the run bounds it
    async with (
        httpx2.AsyncClient(headers=headers, timeout=http_timeout) as http,
        streamable_http_client(url, http_client=http) as streams,
    ):
        yield streams


def _resolve(source: HeadersSource | None, ctx: RunContext | None, *, owner: str, what: str) -> dict[str, str] | None:
    """Return the fixed mapping, or what the callable makes from `ctx`, checked to be str -> str."""
    if source is None:
        return None
    values = source(ctx) if callable(source) else source
    if not isinstance(values, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in values.items()):
        raise UserError(
            f"{owner}: {what} must be a mapping of str to str (or a callable returning one), "
            f"got a {type(values).__name__} (its values are not shown: they may be credentials)."
        )
    return dict(values)


def _approval_predicate(rule: ApprovalRule, server: str) -> Callable[[str], bool]:
    """Turn an `ApprovalRule` into a predicate on the server's tool names."""
    if isinstance(rule, bool):
        return lambda _name: rule
    if callable(rule):
        predicate = rule

        def ask(name: str) -> bool:
            answer = predicate(name)
            if not isinstance(answer, bool):
                raise UserError(
                    f"MCP server {server!r}: the requires_approval predicate returned {answer!r} for {name!r}; "
                    "return True or False."
                )
            return answer

        return ask
    if isinstance(rule, str) or not isinstance(rule, Collection) or not all(isinstance(n, str) for n in rule):
        raise UserError(
            f"MCP server {server!r} got requires_approval={rule!r}; use a bool, a collection of tool names "
            "or a predicate on the tool name."
        )
    names = frozenset(rule)
    return names.__contains__
