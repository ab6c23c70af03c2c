"""How an MCP tool result reaches the model's text-only message history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcp.types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    ContentBlock,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
)

from ._errors import MCPToolError

__all__ = ["render_content", "tool_output"]


def tool_output(result: CallToolResult, output_schema: Mapping[str, Any] | None = None) -> Any:
    """Return what the model receives for a successful result, or raise for an error result.

    - `isError`: raises `MCPToolError` with the server's text, so the model sees
      `"Error: <the server's text>"`, as for a local tool that raised.
    - `structuredContent`, when present and the content blocks are all text (per the MCP
      spec, that text is its serialization): the value, which the run loop sends as JSON
      (a string as is). A value the SDK's servers wrap as `{"result": value}` (their output
      schema is an object whose only property is `result`) is unwrapped.
    - otherwise the content blocks as text (see `render_content`).

    Args:
        result: The server's `CallToolResult`.
        output_schema: The tool's `outputSchema`, as the server listed it.

    Raises:
        MCPToolError: If the result has `isError` set.
    """
    if result.is_error:
        text = render_content(result.content)
        raise MCPToolError(text or "The MCP tool reported an error without a message.")
    structured = result.structured_content
    if structured is None or not all(isinstance(block, TextContent) for block in result.content):
        return render_content(result.content)
    if _wraps_result(output_schema) and isinstance(structured, dict) and structured.keys() == {"result"}:
        return structured["result"]
    return structured


def _wraps_result(schema: Mapping[str, Any] | None) -> bool:
    """Whether `schema` is the SDK's wrapper for a non-object return value: `{"result": ...}` only."""
    if schema is None:
        return False
    properties = schema.get("properties")
    return isinstance(properties, Mapping) and list(properties) == ["result"]


def render_content(blocks: Sequence[ContentBlock]) -> str:
    """Render MCP content blocks as one text, one block per line.

    Text blocks (and embedded text resources) are their text as is; binary content,
    which a text-only history cannot carry, becomes a placeholder naming its kind, MIME
    type and size, e.g. `[image: image/png, 70 bytes, not shown]`; a resource link
    becomes `[resource: <name> <uri>]`.

    Args:
        blocks: The `content` of a `CallToolResult`.

    Returns:
        The text; `""` for no blocks.
    """
    return "\n".join(_render(block) for block in blocks)


def _render(block: ContentBlock) -> str:
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, ImageContent | AudioContent):
        return f"[{block.type}: {block.mime_type}, {_decoded_size(block.data)} bytes, not shown]"
    if isinstance(block, ResourceLink):
        return f"[resource: {block.name} {block.uri}]"
    if isinstance(block, EmbeddedResource):
        resource = block.resource
        if isinstance(resource, BlobResourceContents):
            mime = resource.mime_type or "application/octet-stream"
            return f"[resource {resource.uri}: {mime}, {_decoded_size(resource.blob)} bytes, not shown]"
        return resource.text
    return f"[{block.type} content, not shown]"  # pragma: no cover - the union above is exhaustive today


def _decoded_size(data: str) -> int:
    """The number of bytes the base64 text `data` encodes."""
    return len(data.rstrip("=")) * 3 // 4
