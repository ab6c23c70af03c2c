"""A small MCP server (the SDK's `MCPServer`) keeping notes per user, over stdio.

The user is identified by the `NOTES_TOKEN` environment variable of the process, which
the agent sets per run from the run context. The server also reports the cogent task id
it received in the request's `_meta`, to show the lineage crossing the boundary.

    python examples/mcp/notes_server.py
"""

from __future__ import annotations

import os

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

USERS = {"tok-ada": "ada", "tok-bob": "bob"}
NOTES = {
    "ada": ["Call the bank about the mortgage", "Buy oat milk"],
    "bob": ["Renew the passport"],
}

server = MCPServer("notes")


def current_user() -> str:
    user = USERS.get(os.environ.get("NOTES_TOKEN", ""))
    if user is None:
        raise ToolError("Unknown or missing NOTES_TOKEN: this server only serves its registered users.")
    return user


@server.tool()
def list_notes(ctx: Context) -> str:
    """List the current user's notes."""
    user = current_user()
    task = (ctx.request_context.meta or {}).get("cogent/task_id", "?")
    lines = [f"- {note}" for note in NOTES[user]]
    return f"Notes of {user} (task {task}):\n" + "\n".join(lines)


@server.tool()
def add_note(text: str) -> str:
    """Add a note for the current user.

    Args:
        text: The note.
    """
    NOTES[current_user()].append(text)
    return "Noted."


if __name__ == "__main__":
    server.run("stdio")
