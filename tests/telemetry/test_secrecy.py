"""No run context value ever reaches a span unless its class marks the field (and it is not a secret)."""

from __future__ import annotations

import enum
import pickle
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

import pydantic
import pytest
from opentelemetry.sdk.trace import TracerProvider

from cogent import (
    Agent,
    ExecutionContext,
    FunctionModel,
    ModelRetry,
    RunContext,
    SpanAttribute,
    ToolApprovalItem,
    ToolCall,
    UserError,
    tool,
)
from cogent.context import Resource
from cogent.core import now_utc
from cogent.messages import Message, ModelResponse
from cogent.models import ModelRequestParameters
from cogent.telemetry import InstrumentationSettings

from ._support import Spans

CANARY = "CANARY-7f3a"
"""In every context value, metadata entry and (with content off) everything the model sees."""
CONTENT = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions")


class Tier(enum.Enum):
    """A customer tier."""

    GOLD = "gold"


@dataclass
class Profile:
    """A nested record (never exported: not marked, and not a scalar)."""

    email: str
    notes: dict[str, Any]


@dataclass
class RichContext(ExecutionContext):
    """An application context: services, ids, secrets, nested records, and three exported fields."""

    user_id: str = f"{CANARY}-user"
    api_key: str = f"{CANARY}-api-key"
    database_url: str = f"postgresql://app:{CANARY}@db/prod"
    profile: Profile = field(default_factory=lambda: Profile(email=f"{CANARY}@example.com", notes={"k": [CANARY]}))
    permissions: list[str] = field(default_factory=lambda: [f"{CANARY}-perm"])
    client: Annotated[object, Resource] = field(default_factory=lambda: type(CANARY, (), {})())
    tenant: Annotated[str, SpanAttribute] = "acme"
    tier: Annotated[Tier, SpanAttribute] = Tier.GOLD
    regions: Annotated[list[str], SpanAttribute] = field(default_factory=lambda: ["eu", "us"])
    password: Annotated[str, SpanAttribute] = f"{CANARY}-password"  # marked, but secret-named: never exported
    refresh_token: Annotated[str | None, SpanAttribute] = f"{CANARY}-token"  # likewise


def rich_context() -> RichContext:
    """A context with the canary in every value it holds (the exported fields aside)."""
    return RichContext(
        query=f"{CANARY}-query",
        metadata={"user": CANARY, "nested": {"deep": [CANARY, {"key": CANARY}]}, "api_token": CANARY},
        deadline=now_utc() + timedelta(minutes=5),
    )


class Boom(Exception):
    """A failure whose message quotes the context."""


def build(*, leak_to_model: bool, tool_errors: str = "model") -> Agent[RichContext, str]:
    """A tree whose tools and instructions read every context field; with `leak_to_model` they also tell the model."""

    def said(text: str, ctx: RichContext) -> str:
        return f"{text} for {ctx.user_id} at {ctx.database_url}" if leak_to_model else text

    @tool
    def lookup(order_id: int, ctx: RichContext) -> str:
        """Look up an order."""
        assert ctx.api_key and ctx.profile.email and ctx.metadata["nested"]
        return said(f"order {order_id}", ctx)

    @tool
    def explode(ctx: RichContext) -> str:
        """Fail, quoting the database URL (always when the error leaves the run: the model never sees it)."""
        raise Boom(f"cannot reach {ctx.database_url}" if tool_errors == "raise" else said("cannot reach it", ctx))

    @tool
    def picky(ctx: RichContext) -> str:
        """Ask for a retry, quoting the user."""
        if not ctx.is_retry:
            raise ModelRetry(said("try again", ctx))
        return "fine"

    @tool(requires_approval=True)
    def refund(order_id: int, ctx: RichContext) -> str:
        """Refund an order (needs approval)."""
        return said(f"refunded {order_id}", ctx)

    def sub_model(messages: list[Message], info: ModelRequestParameters) -> Any:
        responses = sum(isinstance(m, ModelResponse) for m in messages)
        if responses == 0:
            return [
                ToolCall("lookup", {"order_id": 1}),
                ToolCall("explode", {}),
                ToolCall("picky", {}),
                ToolCall("refund", {"order_id": 2}),
            ]
        if responses == 1:  # the retry picky asked for
            return ToolCall("picky", {})
        return "sub done"

    sub = Agent(
        name="sub",
        model=FunctionModel(sub_model),
        tools=[lookup, explode, picky, refund],
        instructions=lambda ctx: said("You help with orders", ctx),
        tool_errors=tool_errors,  # type: ignore[arg-type]
        context_type=RichContext,
    )

    def top_model(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not any(isinstance(m, ModelResponse) for m in messages):
            return [ToolCall("sub", {"task": "handle order 1"}), ToolCall("lookup", {"order_id": 3})]
        return "all done"

    return Agent(
        name="top",
        model=FunctionModel(top_model),
        tools=[lookup],
        subagents=[sub],
        instructions=lambda ctx: said("You are the desk", ctx),
        tool_errors=tool_errors,  # type: ignore[arg-type]
        context_type=RichContext,
    )


def approve(item: ToolApprovalItem, ctx: RichContext) -> bool:
    """Approve calls of the canary user (the handler reads the context)."""
    return ctx.user_id.startswith(CANARY)


def assert_no_canary(spans: Spans) -> None:
    """No span holds the canary: names, attributes, events, status, links, resource (all of `to_json()`)."""
    assert spans.all
    for span in spans.all:
        assert CANARY not in span.to_json(), span.to_json()


@pytest.mark.anyio
@pytest.mark.parametrize("include_content", [False, True])
async def test_no_context_value_reaches_a_span(provider: TracerProvider, spans: Spans, include_content: bool) -> None:
    """Canaries in every field, secret, nested record and metadata entry never reach a span, content on or off.

    Across subagents, parallel calls, a tool error, a retry, an approval by a handler, an
    interruption and its resumption, and an exception raised out of the run. With content
    off the tools and instructions even tell the model the canary; with content on (what
    the model sees is exported, by the user's choice) they do not.
    """
    settings = InstrumentationSettings(tracer_provider=provider, include_content=include_content)
    leak = not include_content
    agent = build(leak_to_model=leak)
    agent.instrument = settings
    result = await agent.run("help", context=rich_context(), approval_handler=approve)
    assert result.output == "all done"
    kinds = {e.kind for e in result.trace} | {c.kind for e in result.trace for c in e.children}
    assert {"delegation", "approval", "tool_error", "retry", "tool_call"} <= kinds

    paused = await agent.run("help", context=rich_context())  # no handler: the refund interrupts the run
    assert paused.state is not None
    paused.context.approve_tool(paused.interruptions[0])
    assert (await agent.run(paused.state, context=paused.context)).output == "all done"

    raising = build(leak_to_model=leak, tool_errors="raise")  # the exception leaves the run, quoting the canary
    raising.instrument = settings
    with pytest.raises(Boom, match=CANARY):
        await raising.run("help", context=rich_context(), approval_handler=approve)

    assert_no_canary(spans)
    exported = [dict(s.attributes or {}) for s in spans.by_operation("invoke_agent")]
    assert {(a["cogent.context.tenant"], a["cogent.context.tier"], a["cogent.context.regions"]) for a in exported} == {
        ("acme", "gold", ("eu", "us"))
    }
    keys = {k for s in spans.all for k in (s.attributes or {})}
    assert {k for k in keys if k.startswith("cogent.context.")} == {
        "cogent.context.tenant",
        "cogent.context.tier",
        "cogent.context.regions",
    }
    assert bool(set(CONTENT) & keys) is include_content
    decisions = {(s.attributes or {}).get("cogent.approval.decision") for s in spans.by_operation("execute_tool")}
    assert {"approved", "pending"} <= decisions


@dataclass(frozen=True)
class FrozenContext(RunContext):
    """A frozen context with one exported field."""

    tenant: Annotated[str, SpanAttribute] = "t-frozen"
    secret_key: Annotated[str, SpanAttribute] = "s"


@dataclass(slots=True)
class SlotsContext(RunContext):
    """A slotted context with one exported field."""

    tenant: Annotated[str, SpanAttribute] = "t-slots"
    count: Annotated[int, SpanAttribute] = 3


@pydantic.dataclasses.dataclass
class PydanticContext(RunContext):
    """A pydantic dataclass context with one exported field."""

    tenant: Annotated[str, SpanAttribute] = "t-pydantic"
    ratio: Annotated[float | None, SpanAttribute] = None


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ctx", "expected"),
    [
        (FrozenContext(), {"cogent.context.tenant": "t-frozen"}),
        (SlotsContext(), {"cogent.context.tenant": "t-slots", "cogent.context.count": 3}),
        (PydanticContext(), {"cogent.context.tenant": "t-pydantic"}),  # None: left out
    ],
)
async def test_marked_fields_of_every_kind_of_context_class_are_exported(
    settings: InstrumentationSettings, spans: Spans, ctx: RunContext, expected: dict[str, Any]
) -> None:
    """Frozen, slotted and pydantic dataclass contexts export their marked fields (never a secret-named one)."""
    await Agent(name="a", model="test", instrument=settings).run("go", context=ctx)
    (span,) = spans.by_operation("invoke_agent")
    assert {k: v for k, v in (span.attributes or {}).items() if k.startswith("cogent.context.")} == expected


@dataclass
class DictField(RunContext):
    """Marks a mapping, whose text could carry anything."""

    settings: Annotated[dict[str, str], SpanAttribute] = field(default_factory=lambda: {"password": "x"})


@dataclass
class NestedMarker(RunContext):
    """Puts the marker inside an optional."""

    tenant: Annotated[str, SpanAttribute] | None = None


@dataclass
class Unresolvable(RunContext):
    """Marks a field whose type cannot be resolved."""

    handle: Annotated[NotDefinedAnywhere, SpanAttribute] | None = None  # type: ignore[name-defined]  # noqa: F821


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("ctx", "message"),
    [
        (DictField(), r"DictField's field 'settings' is marked SpanAttribute but holds a dict"),
        (NestedMarker(), r"NestedMarker's field 'tenant' has the SpanAttribute marker inside another type"),
        (Unresolvable(), r"Unresolvable's field 'handle' is marked SpanAttribute, but its annotation cannot be"),
    ],
)
async def test_a_marked_field_that_cannot_be_exported_safely_is_a_user_error(
    settings: InstrumentationSettings, ctx: RunContext, message: str
) -> None:
    """A marked mapping, a misplaced marker or an unresolvable marked annotation fails the run, naming the field."""
    with pytest.raises(UserError, match=message):
        await Agent(name="a", model="test", instrument=settings).run("go", context=ctx)


def test_the_marker_is_a_singleton_not_a_class() -> None:
    """`SpanAttribute()` is a TypeError showing how to write it; copies and pickles are the marker itself."""
    with pytest.raises(TypeError, match=r"Annotated\[T, SpanAttribute\]"):
        SpanAttribute()  # type: ignore[operator]
    assert pickle.loads(pickle.dumps(SpanAttribute)) is SpanAttribute
    assert repr(SpanAttribute) == "SpanAttribute"
