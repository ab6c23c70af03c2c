"""Spans of concurrent runs are never mixed: each run is its own tree, equal to its own trace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import anyio
import anyio.lowlevel
import pytest

from cogent import Agent, ExecutionContext, RunResult, ScriptedModel, SpanAttribute, ToolCall, tool
from cogent.telemetry import InstrumentationSettings

from ._support import Spans, assert_tree_matches

RUNS = 1_000


@dataclass
class UserContext(ExecutionContext):
    """Each run's user, exported so that a span that landed in another run's tree would show it."""

    user: Annotated[str, SpanAttribute] = ""


@tool
async def whoami(ctx: UserContext) -> str:
    """Name the current user (after letting the other runs go first)."""
    await anyio.lowlevel.checkpoint()
    return ctx.user


@pytest.mark.anyio
async def test_a_thousand_concurrent_runs_each_get_their_own_span_tree(
    settings: InstrumentationSettings, spans: Spans
) -> None:
    """1,000 concurrent runs, each delegating and calling tools in parallel: 1,000 trees, each equal to its trace."""
    helper = Agent(name="helper", model=ScriptedModel([ToolCall("whoami", {}), "helped"]), tools=[whoami])
    agent = Agent(
        name="desk",
        model=ScriptedModel([[ToolCall("helper", {"task": "help"}), ToolCall("whoami", {})], "done"]),
        tools=[whoami],
        subagents=[helper],
        instrument=settings,
    )
    results: dict[str, RunResult[UserContext, str]] = {}

    async def one(i: int) -> None:
        results[f"user-{i}"] = await agent.run("go", context=UserContext(user=f"user-{i}"))

    async with anyio.create_task_group() as tg:
        for i in range(RUNS):
            tg.start_soon(one, i)

    kids = spans.index()
    roots = spans.roots()
    assert len(roots) == RUNS
    covered = 0
    for root in roots:
        user = str((root.attributes or {})["cogent.context.user"])
        covered += assert_tree_matches(kids, root, "desk", results[user].trace)
        assert root.context is not None
        stack = [root]
        while stack:  # every span of the tree is of this run: its user, its trace
            span = stack.pop()
            assert span.context is not None and span.context.trace_id == root.context.trace_id
            assert (span.attributes or {}).get("cogent.context.user", user) == user
            stack.extend(kids.get(span.context.span_id, []))
    assert covered == len(spans.all) == RUNS * 9
