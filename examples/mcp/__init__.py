"""An agent using an MCP server over stdio, with per-user credentials from the run context.

Run it with `python -m examples.mcp` (offline: a scripted model, no API key).
"""
