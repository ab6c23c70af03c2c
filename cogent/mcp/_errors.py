"""The exceptions of the MCP integration (both derive from `cogent.exceptions.CogentError`)."""

from __future__ import annotations

from ..exceptions import CogentError

__all__ = ["MCPConnectionError", "MCPToolError"]


class MCPConnectionError(CogentError, ConnectionError):
    """An MCP server could not be connected to: the command could not be started, the URL
    could not be reached, the server did not complete the handshake or its tool listing in
    time, or it answered the handshake or the listing with an error.

    Raised when a connection is opened: by `async with server:`, or by the run that opens
    the server for one agent execution (the run then fails with it).
    """


class MCPToolError(CogentError):
    """One MCP tool call failed. Raised by `MCPTool.execute`, so the model receives
    `"Error: <message>"` as the tool result (as for a local tool that raised).

    The causes: the tool reported an error (`isError`; the message is the server's text
    as it is), the server answered with a JSON-RPC error, the connection closed during
    the call (the server died or was stopped), the result did not match the MCP schema,
    or the connection opened for the execution is already closed.

    Attributes:
        code: The JSON-RPC error code when the server (or the SDK, for a closed
            connection) gave one, else `None`.
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
