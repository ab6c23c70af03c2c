"""Run an agent whose tools come from an MCP server, once per user, and print one run's trace.

    python -m examples.mcp

Each run starts the notes server as a subprocess with that user's token in its
environment (`env=` receives the run context), so each user sees only their own notes;
the server also receives the run's task id in each request's `_meta`. The model is
scripted, so the example runs offline without an API key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import anyio

from cogent import Agent, ExecutionContext, FunctionModel, ToolCall, format_trace
from cogent.mcp import MCPServerStdio
from cogent.messages import Message, ModelResponse, ToolReturn
from cogent.models import ModelRequestParameters

SERVER = Path(__file__).resolve().parent / "notes_server.py"


@dataclass
class UserContext(ExecutionContext):
    """Who is asking; `notes_token` is their credential for the notes server."""

    user: str = ""
    notes_token: str = ""


notes = MCPServerStdio(
    sys.executable,
    [str(SERVER)],
    name="notes",
    env=lambda ctx: {"NOTES_TOKEN": ctx.notes_token},
)


def offline_model(messages: list[Message], info: ModelRequestParameters) -> ToolCall | str:
    """Stand-in for an LLM: list the notes first, then answer with what the tool returned."""
    if not any(isinstance(m, ModelResponse) for m in messages):
        return ToolCall(name="list_notes", arguments={})
    return next(m.content for m in reversed(messages) if isinstance(m, ToolReturn))


agent = Agent(
    name="assistant",
    model=FunctionModel(offline_model),
    instructions="Answer questions about the user's notes; use the tools.",
    tools=[notes],
    context_type=UserContext,
)


async def main() -> None:
    """Run the agent for two users concurrently, print what each got, then one run's trace."""
    users = [UserContext(user="ada", notes_token="tok-ada"), UserContext(user="bob", notes_token="tok-bob")]
    results = {}

    async def run(ctx: UserContext) -> None:
        results[ctx.user] = await agent.run("What are my notes?", context=ctx)

    async with anyio.create_task_group() as tg:
        for ctx in users:
            tg.start_soon(run, ctx)
    for ctx in users:
        print(f"== {ctx.user} asked; the answer:\n{results[ctx.user].output}")
    print("== the trace of ada's run")
    print(format_trace(results["ada"].trace))


if __name__ == "__main__":
    anyio.run(main)
