"""Properties: concurrent runs never mix contexts, `with_metadata` never mutates, nothing reaches the model."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from helpers import last_returns_text
from hypothesis import given, settings
from hypothesis import strategies as st

from cogent import (
    Agent,
    ExecutionContext,
    FunctionModel,
    InterceptContext,
    Interceptor,
    ModelRetry,
    Phase,
    RunContext,
    ToolCall,
    current_context,
    interceptor,
    tool,
)
from cogent.messages import Message, ModelResponse, RetryPrompt, messages_to_json
from cogent.models import ModelRequestParameters

pytestmark = pytest.mark.anyio


@dataclass
class UserContext(RunContext):
    """One user's context."""

    user_id: str
    scratch: list[str] = field(default_factory=list)


@tool
async def whoami_async(ctx: UserContext) -> str:
    """Report the injected user, after yielding to other runs."""
    await anyio.lowlevel.checkpoint()
    ctx.scratch.append("async")
    assert current_context() is ctx
    return ctx.user_id


@tool
def whoami_sync(ctx: UserContext) -> str:
    """Report the injected user from a worker thread."""
    ctx.scratch.append("sync")
    assert current_context() is ctx
    return ctx.user_id


@tool
def whoami_meta(ctx: UserContext) -> str:
    """Report the metadata the run was started with."""
    return repr(sorted(ctx.metadata.items()))


def _respond(messages: list[Message], info: ModelRequestParameters) -> Any:
    """Call every offered tool once, then answer with the results joined by '|'."""
    if not any(isinstance(m, ModelResponse) for m in messages):
        return [ToolCall(t.name, {}) for t in info.tools]
    return last_returns_text(messages)


ISOLATION_AGENT = Agent(name="iso", model=FunctionModel(_respond), tools=[whoami_async, whoami_sync])


async def _run_many(agent: Agent[Any, Any], contexts: list[UserContext]) -> list[Any]:
    """Run `agent` once per context, all concurrently on one event loop; return the results in order."""
    results: list[Any] = [None] * len(contexts)

    async def one(i: int) -> None:
        results[i] = await agent.run(f"request {i}", context=contexts[i])

    async with anyio.create_task_group() as tg:
        for i in range(len(contexts)):
            tg.start_soon(one, i)
    return results


async def test_a_thousand_concurrent_runs_each_see_only_their_own_context() -> None:
    """1,000 concurrent runs on one loop: every tool call (async or threaded) sees its own run's context only."""
    contexts = [UserContext(user_id=f"user-{i}") for i in range(1000)]
    with anyio.fail_after(60):
        results = await _run_many(ISOLATION_AGENT, contexts)
    for i, (ctx, result) in enumerate(zip(contexts, results, strict=True)):
        assert result.output == f"user-{i}|user-{i}"
        assert result.context.user_id == f"user-{i}"
        assert result.context.query == f"request {i}" and ctx.query == ""  # the caller's object is never written
        assert sorted(ctx.scratch) == ["async", "sync"]  # the list is a shared service, written once per tool


@settings(max_examples=6, deadline=None)
@given(
    runs=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=12),
            st.dictionaries(st.text(max_size=6), st.integers() | st.text(max_size=6), max_size=4),
        ),
        min_size=20,
        max_size=50,
    )
)
async def test_concurrent_runs_with_random_ids_and_metadata_never_mix(runs: list[tuple[str, dict[str, Any]]]) -> None:
    """Random user ids (duplicates allowed) and metadata: each run's tools see exactly that run's values."""
    agent = Agent(name="iso", model=FunctionModel(_respond), tools=[whoami_async, whoami_sync, whoami_meta])
    contexts = [UserContext(user_id=uid, metadata=dict(meta)) for uid, meta in runs]
    with anyio.fail_after(30):
        results = await _run_many(agent, contexts)
    for (uid, meta), result in zip(runs, results, strict=True):
        assert result.output == f"{uid}|{uid}|{sorted(meta.items())!r}"
        assert result.context.metadata == meta


@dataclass(frozen=True)
class FrozenTenant(RunContext):
    """A frozen context for the with_metadata property."""

    tenant_id: str = "t"


METADATA = st.dictionaries(
    st.text(max_size=8),
    st.recursive(st.none() | st.integers() | st.text(max_size=5), lambda c: st.lists(c, max_size=3), max_leaves=5),
    max_size=6,
)


@given(
    cls=st.sampled_from([RunContext, UserContext, FrozenTenant, ExecutionContext]),
    metadata=METADATA,
    extra=METADATA,
)
def test_with_metadata_never_mutates_the_original(
    cls: type[RunContext], metadata: dict[str, Any], extra: dict[str, Any]
) -> None:
    """`with_metadata(**kw)` returns a same-class copy with merged metadata; the original is unchanged."""
    ctx = cls(user_id="u", metadata=metadata) if cls is UserContext else cls(metadata=metadata)  # type: ignore[call-arg]
    before_dict = ctx.metadata
    snapshot = copy.deepcopy(metadata)
    new = ctx.with_metadata(**extra)
    assert type(new) is cls
    assert ctx.metadata is before_dict and ctx.metadata == snapshot
    assert new.metadata == {**snapshot, **extra}
    assert new.metadata is not ctx.metadata
    new.metadata["__added_later__"] = 1
    assert "__added_later__" not in ctx.metadata
    for f in dataclasses.fields(ctx):
        if f.name != "metadata":
            assert getattr(new, f.name) == getattr(ctx, f.name)


# --- nothing from the context reaches the model -----------------------------------------------

CANARY = "CANARY-7f3a9c-do-not-send"


class SecretService:
    """A service whose every attribute and repr carries the canary."""

    def __init__(self) -> None:
        self.dsn = f"postgres://{CANARY}"

    def __repr__(self) -> str:
        return f"SecretService({CANARY})"


@dataclass
class LeakyContext(ExecutionContext):
    """A context with the canary in every field the application owns."""

    user_id: str = CANARY
    api_key: str = CANARY
    display_name: str = CANARY
    tags: list[str] = field(default_factory=lambda: [CANARY])
    settings: dict[str, Any] = field(default_factory=lambda: {"nested": {"deeper": [CANARY]}})
    service: SecretService = field(default_factory=SecretService)


class ReadEverything(Interceptor):
    """Reads the context at every phase (by injection), changing nothing."""

    def __init__(self) -> None:
        self.phases: list[Phase] = []

    async def intercept(self, phase: Phase, context: InterceptContext, ctx: LeakyContext) -> None:
        assert ctx.display_name == CANARY and context.run_context is ctx
        self.phases.append(phase)


async def test_nothing_from_the_context_reaches_the_model() -> None:
    """With a canary in every field and nested metadata, no model request (messages, instructions, tools) has it."""
    captured: list[str] = []
    seen_by_tools: list[str] = []

    @tool
    def profile(ctx: LeakyContext, fields: list[str]) -> dict[str, Any]:
        """Return public profile fields.

        Args:
            fields: Which fields to return.
        """
        seen_by_tools.append(ctx.user_id)
        return {"fields": fields, "count": len(ctx.tags)}

    attempts: list[int] = []

    @tool
    async def flaky(ctx: LeakyContext, n: int) -> str:
        """Fails once, then works."""
        seen_by_tools.append(ctx.api_key)
        attempts.append(n)
        if len(attempts) == 1:
            raise ModelRetry("Try again with n=2.")
        return f"ok {n}"

    @tool
    def broken(ctx: LeakyContext) -> str:
        """Always fails (the message names no context value)."""
        seen_by_tools.append(ctx.service.dsn)
        raise RuntimeError("backend unavailable")

    gate_calls: list[str] = []

    @interceptor(Phase.PRE_ACT)
    def gate(call: InterceptContext, ctx: LeakyContext) -> None:
        gate_calls.append(ctx.settings["nested"]["deeper"][0])

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        captured.append(messages_to_json(messages))
        captured.append(repr(messages))
        captured.append(repr(info))  # instructions, tool definitions, output tools, agent name
        captured.append(repr([d.parameters_json_schema for d in info.tools]))
        turn = sum(isinstance(m, ModelResponse) for m in messages)
        last = messages[-1]
        if info.agent_name == "specialist":
            if turn == 0:
                return [ToolCall("profile", {"fields": ["name"]}), ToolCall("flaky", {"n": 1})]
            if isinstance(last, RetryPrompt):
                return ToolCall("flaky", {"n": 2})
            return "specialist finished"
        script: list[Any] = [
            [ToolCall("profile", {"fields": ["email"]}), ToolCall("broken", {}), ToolCall("profile", {"oops": 1})],
            ToolCall("specialist", {"task": "summarize the profile"}),
            "all done",
        ]
        return script[min(turn, len(script) - 1)]

    model = FunctionModel(respond)
    specialist = Agent(
        name="specialist",
        model=model,
        instructions="You are a careful specialist.",
        description="Handles profile questions.",
        tools=[profile, flaky],
    )
    reader = ReadEverything()
    orchestrator = Agent(
        name="orchestrator",
        model=model,
        instructions=lambda ctx: f"Help the user (depth {ctx.depth}).",
        tools=[profile, broken],
        subagents=[specialist],
        interceptors=[gate],
        context_type=LeakyContext,
    )
    ctx = LeakyContext(
        query=CANARY,
        task_id=CANARY,
        metadata={"token": CANARY, "nested": {"list": [CANARY, {"deep": CANARY}]}, CANARY: "as a key"},
    )
    result = await orchestrator.run("What is on my profile?", context=ctx, interceptors=[reader])

    assert result.output == "all done"
    assert len(captured) == 4 * 6  # six model requests (three per agent), four captures each
    assert seen_by_tools.count(CANARY) == 4 and f"postgres://{CANARY}" in seen_by_tools
    assert gate_calls == [CANARY] * 3 and Phase.ON_ERROR in reader.phases  # agent-level: orchestrator only
    assert attempts == [1, 2]
    assert "Error: backend unavailable" in captured[-4] and "Try again with n=2." in "".join(captured)
    for text in captured:
        assert CANARY not in text
        assert "CANARY" not in text
    assert CANARY not in messages_to_json(result.messages)
