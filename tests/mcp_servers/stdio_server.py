"""Run the test MCP server over stdio: `python stdio_server.py RECORD_FILE`."""

from __future__ import annotations

import sys

import anyio
from app import build
from mcp.server.stdio import stdio_server


async def main(record_path: str) -> None:
    server = build(record_path)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
