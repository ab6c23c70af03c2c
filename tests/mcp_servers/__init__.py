"""MCP servers written with the SDK's server API, started by the MCP tests as subprocesses."""
