"""Tests of `cogent.mcp` against real MCP servers (stdio subprocesses and streamable HTTP)."""
