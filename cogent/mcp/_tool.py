"""`MCPTool`: one tool of an MCP server, as the run loop executes it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import pydantic_core
from mcp.types import Tool as MCPToolInfo

from ..context import RunContext
from ..tools import BaseTool, ToolDefinition
from ._errors import MCPToolError
from ._meta import request_meta
from ._results import tool_output

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["MCPTool"]


class MCPTool(BaseTool):
    """One tool of an MCP server, offered to the model for one agent execution.

    Made by an `MCPServer` when an execution opens it; it calls the tool over that
    execution's connection. The run loop treats it like a local tool: interceptors,
    approvals, usage limits, the timeout and the deadline apply alike.

    Attributes:
        name: The name the model calls it by (the server's name with the `tool_prefix`).
        server_tool: The tool as the server listed it (`mcp.types.Tool`).
        requires_approval: Whether each call must be approved before it runs.
        timeout: Seconds a call may take (enforced by the run loop), or `None`.
    """

    tool_type: ClassVar[str] = "extension"

    def __init__(
        self,
        *,
        name: str,
        server_tool: MCPToolInfo,
        connection: Connection,
        requires_approval: bool,
        timeout: float | None,
    ) -> None:
        self.name = name
        self.server_tool = server_tool
        self.requires_approval = requires_approval
        self.timeout = timeout
        self._connection = connection
        self._definition = ToolDefinition(
            name=name,
            description=server_tool.description or "",
            parameters_json_schema=dict(server_tool.input_schema),
        )

    def __repr__(self) -> str:
        return f"MCPTool(name={self.name!r}, server={self._connection.label!r})"

    @property
    def definition(self) -> ToolDefinition:
        """The `ToolDefinition` sent to the model: the server's description and input schema."""
        return self._definition

    def validate_arguments(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """Check that the model's arguments are a JSON object; the server validates the rest.

        Empty text (some models send it for tools without parameters) counts as `{}`.

        Raises:
            ValueError: If the text is not JSON, or the JSON is not an object.
        """
        if isinstance(arguments, str):
            if not arguments.strip():
                return {}
            try:
                arguments = pydantic_core.from_json(arguments)
            except ValueError as exc:
                raise ValueError(f"The arguments of tool {self.name!r} are not valid JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise ValueError(
                f"The arguments of tool {self.name!r} must be a JSON object, got {type(arguments).__name__}."
            )
        return arguments

    async def execute(self, arguments: dict[str, Any], ctx: RunContext) -> Any:
        """Call the tool on the server, with the context's lineage in the request's `_meta`.

        Cancelling the call (the run's deadline, the tool's timeout) sends the server
        the MCP cancellation for the request.

        Args:
            arguments: The validated arguments.
            ctx: The run context of the call.

        Returns:
            The result for the model: the structured content when the server sent one
            (and only text besides), else the content as text (images as placeholders;
            see `render_content`).

        Raises:
            MCPToolError: If the tool reported an error (`isError`, with the server's
                text), the server answered with an error, the connection closed, the
                result was malformed, or the context's `can_use_tool()` refuses it.
        """
        check = getattr(ctx, "can_use_tool", None)
        if callable(check) and not check(self.name):
            raise MCPToolError(f"Tool {self.name!r} is not allowed for the current user; use one of the tools offered.")
        result = await self._connection.call_tool(self.server_tool.name, arguments, meta=request_meta(ctx))
        return tool_output(result, self.server_tool.output_schema)
