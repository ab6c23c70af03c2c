"""MCP tool servers as toolsets, with the run context crossing the process boundary.

```python
from cogent import Agent
from cogent.mcp import MCPServerHTTP, MCPServerStdio

files = MCPServerStdio("python", ["-m", "files_server"], tool_prefix="fs_")
crm = MCPServerHTTP("https://crm.example.com/mcp", headers=lambda ctx: {"Authorization": f"Bearer {ctx.token}"})
agent = Agent(name="assistant", model=model, tools=[files, crm])
```

The context crosses the boundary in three documented ways only: per-run credentials
(`env`/`headers` callables that receive the context), the task lineage and the W3C
trace context in each request's `_meta` (see `request_meta`), and the context's
`can_use_tool()` filter on the tools offered. Nothing else from the context is sent.

Needs the extra: `pip install "cogent-context[mcp]"`.
"""

from __future__ import annotations

try:
    import mcp as _mcp  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise ImportError(
        'cogent.mcp needs the MCP SDK; install it with: pip install "cogent-context[mcp]" '
        '(from a checkout: pip install -e ".[mcp]")'
    ) from _exc

from ._errors import MCPConnectionError, MCPToolError
from ._meta import request_meta
from ._results import render_content
from ._server import ApprovalRule, HeadersSource, MCPServer, MCPServerHTTP, MCPServerStdio
from ._tool import MCPTool

__all__ = [
    "ApprovalRule",
    "HeadersSource",
    "MCPConnectionError",
    "MCPServer",
    "MCPServerHTTP",
    "MCPServerStdio",
    "MCPTool",
    "MCPToolError",
    "render_content",
    "request_meta",
]
