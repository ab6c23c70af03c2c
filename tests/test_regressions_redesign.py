"""Regression tests for the run-loop redesign (issue 12, items 2-8).

Each test failed on the code before the redesign (commit 04c9a3d) and passes now; the
report of the hardening branch records how each one failed there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Generic, NewType, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.lowlevel
import mpmath
import pytest

import cogent
import cogent.context
from cogent import (
    Agent,
    ContextTypeError,
    FunctionModel,
    InterceptContext,
    Interceptor,
    InterceptResult,
    ModelRetry,
    Phase,
    RunContext,
    ToolCall,
    ToolRetriesExceeded,
    UserError,
    interceptor,
    tool,
)
from cogent.core import now_utc
from cogent.messages import Message, ModelResponse, RetryPrompt, ToolReturn
from cogent.models import ModelRequestParameters

pytestmark = pytest.mark.anyio

CANARY = "canary-7d41"


# --- helpers ----------------------------------------------------------------------------


def answers_after_last_response(messages: list[Message]) -> list[ToolReturn | RetryPrompt]:
    """Return the tool returns and retry prompts after the last model response."""
    found: list[ToolReturn | RetryPrompt] = []
    for m in reversed(messages):
        if isinstance(m, ModelResponse):
            break
        if isinstance(m, ToolReturn | RetryPrompt):
            found.insert(0, m)
    return found


@dataclass
class Recorder:
    """A model that makes `calls` first, then echoes the results joined by '|'; it records each request."""

    calls: list[ToolCall]
    requests: list[list[Message]] = field(default_factory=list)

    def model(self) -> FunctionModel:
        """Return the model."""

        def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
            self.requests.append(list(messages))
            if not any(isinstance(m, ModelResponse) for m in messages):
                return list(self.calls)
            return "|".join(m.content for m in answers_after_last_response(messages))

        return FunctionModel(respond)


def agent_with(*tools: Any, calls: list[ToolCall], **options: Any) -> tuple[Agent[Any, Any], Recorder]:
    """An agent whose model makes `calls` once, then answers with their results."""
    recorder = Recorder(calls)
    return Agent(name="agent", model=recorder.model(), tools=list(tools), **options), recorder


# --- item 2: the caller's objects are never written -------------------------------------


@dataclass
class AuditContext(RunContext):
    """A context with a value an auditing interceptor must never see."""

    secret: str = CANARY


@tool
def add_one(ctx: AuditContext, x: int) -> str:
    """Add one."""
    return str(x + 1)


@tool
def explode(ctx: AuditContext, x: int) -> str:
    """Fail."""
    raise RuntimeError("exploded")


async def test_post_act_and_on_error_interceptors_see_the_arguments_without_the_context() -> None:
    """POST_ACT and ON_ERROR receive `tool_args` as the model sent them, never with the injected context."""
    seen: dict[Phase, list[dict[str, Any]]] = {}

    @interceptor(Phase.PRE_ACT, Phase.POST_ACT, Phase.ON_ERROR)
    def audit(ic: InterceptContext) -> None:
        seen.setdefault(ic.phase, []).append(dict(ic.tool_args or {}))

    agent, _ = agent_with(
        add_one,
        explode,
        calls=[ToolCall("add_one", {"x": 1}, "c1"), ToolCall("explode", {"x": 2}, "c2")],
        interceptors=[audit],
        parallel_tool_calls=False,
    )
    result = await agent.run("go", context=AuditContext())
    assert result.output == "2|Error: exploded"
    assert seen[Phase.POST_ACT] == [{"x": 1}]
    assert seen[Phase.ON_ERROR] == [{"x": 2}]
    assert CANARY not in repr(seen)


async def test_tool_execute_leaves_the_callers_argument_dict_unchanged() -> None:
    """`Tool.execute(args, ctx)` injects the context without writing it into `args`."""
    args = {"x": 41}
    assert await add_one.execute(args, AuditContext()) == "42"
    assert args == {"x": 41}


class FrozenError(Exception):
    """A user exception that refuses new attributes, as attrs' frozen exceptions do (they allow only the
    attributes Python's raise machinery sets)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("__cause__", "__context__", "__traceback__", "__suppress_context__", "__notes__"):
            super().__setattr__(name, value)
            return
        raise TypeError(f"FrozenError is immutable; cannot set {name!r}")


class PlainError(Exception):
    """A user exception with nothing special."""


def on_error_counter() -> tuple[Interceptor, list[BaseException]]:
    """An ON_ERROR interceptor that records every error it sees."""
    errors: list[BaseException] = []

    @interceptor(Phase.ON_ERROR)
    def record(ic: InterceptContext) -> None:
        errors.append(ic.error)  # type: ignore[arg-type]

    return record, errors


async def test_a_frozen_user_exception_becomes_an_error_result() -> None:
    """A tool's exception that refuses attribute writes reaches the model as an error result (ON_ERROR fires)."""

    @tool
    def frozen() -> str:
        """Fail with an immutable exception."""
        raise FrozenError("frozen failure")

    watcher, errors = on_error_counter()
    agent, _ = agent_with(frozen, calls=[ToolCall("frozen", {}, "c1")], interceptors=[watcher])
    result = await agent.run("go")
    assert result.output == "Error: frozen failure"
    assert len(errors) == 1


@pytest.mark.parametrize("make", [lambda: FrozenError("kept"), lambda: PlainError("kept")], ids=["frozen", "plain"])
async def test_a_raised_user_exception_propagates_unchanged(make: Any) -> None:
    """With tool_errors="raise", the tool's own exception object propagates with its attributes untouched."""
    raised = make()

    @tool
    def fail() -> str:
        """Fail."""
        raise raised

    watcher, errors = on_error_counter()
    agent, _ = agent_with(fail, calls=[ToolCall("fail", {}, "c1")], interceptors=[watcher], tool_errors="raise")
    before = dict(vars(raised))
    with pytest.raises(type(raised)) as info:
        await agent.run("go")
    assert info.value is raised
    assert vars(info.value) == before
    assert errors == [raised]


async def test_on_error_fires_in_every_run_for_a_reused_exception_object() -> None:
    """A module-level exception instance raised in two runs fires ON_ERROR in both (nothing is stamped on it)."""
    shared = PlainError("shared instance")

    @tool
    def fail() -> str:
        """Fail with a shared instance."""
        raise shared

    watcher, errors = on_error_counter()
    agent, _ = agent_with(fail, calls=[ToolCall("fail", {}, "c1")], interceptors=[watcher])
    assert (await agent.run("one")).output == "Error: shared instance"
    assert (await agent.run("two")).output == "Error: shared instance"
    assert errors == [shared, shared]


@tool
def my_query(ctx: RunContext) -> str:
    """Return the run's query."""
    return ctx.query


async def test_a_context_reused_by_a_second_run_does_not_show_the_first_runs_input() -> None:
    """A run never writes the caller's context (`query` included): the next run sees its own input."""
    ctx = RunContext()
    agent, _ = agent_with(my_query, calls=[ToolCall("my_query", {}, "c1")])
    first = await agent.run(f"first {CANARY}", context=ctx)
    assert first.output == f"first {CANARY}"
    assert ctx.query == ""
    second = await agent.run("second", context=ctx)
    assert second.output == "second"
    assert ctx.query == ""


async def test_concurrent_runs_sharing_one_context_see_only_their_own_input() -> None:
    """Runs executing at the same time on one context object each see their own input as `query`."""

    @tool
    async def slow_query(ctx: RunContext) -> str:
        """Return the query after letting the other runs go first."""
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        return ctx.query

    shared = RunContext()
    agent, _ = agent_with(slow_query, calls=[ToolCall("slow_query", {}, "c1")])
    outputs: dict[int, str] = {}

    async def one(i: int) -> None:
        outputs[i] = (await agent.run(f"input-{i}", context=shared)).output

    async with anyio.create_task_group() as tg:
        for i in range(20):
            tg.start_soon(one, i)
    assert outputs == {i: f"input-{i}" for i in range(20)}
    assert shared.query == ""


# --- item 3: one rule for helper fields -------------------------------------------------


@dataclass
class Order(RunContext):
    """An application context whose `deadline` is an order's delivery date, not the run's."""

    deadline: datetime = field(default_factory=lambda: now_utc() - timedelta(days=2))


@tool
def delivery(ctx: Order) -> str:
    """Say when the order was due."""
    return "late" if ctx.deadline < now_utc() else "on time"


async def test_an_orders_past_deadline_field_does_not_abort_the_run() -> None:
    """A plain context's `deadline` field is data: a past date does not raise DeadlineExceeded."""
    agent, _ = agent_with(delivery, calls=[ToolCall("delivery", {}, "c1")])
    assert (await agent.run("when?", context=Order())).output == "late"


@dataclass
class SearchContext(RunContext):
    """A search application's context: `depth` is how deep the crawler goes, not a delegation depth."""

    depth: int = 9
    max_depth: int = 2


@dataclass
class SpecExecutionContext(RunContext):
    """The spec's hand-written ExecutionContext (inherits only RunContext), at its depth limit."""

    depth: int = 5
    max_depth: int = 5

    @property
    def can_delegate(self) -> bool:
        """The spec's helper property, for the tools' own use."""
        return self.depth < self.max_depth


@pytest.mark.parametrize("ctx", [SearchContext(), SpecExecutionContext()], ids=["search-depth", "spec-execution"])
async def test_depth_fields_of_a_plain_context_do_not_refuse_delegation(ctx: RunContext) -> None:
    """Only cogent's DelegationContext refuses delegations; a plain class's depth fields are data."""
    child = Agent(name="child", model=FunctionModel(lambda m, i: "child ran"), description="A child.")
    parent, _ = agent_with(calls=[ToolCall("child", {"task": "work"}, "c1")], subagents=[child])
    result = await parent.run("go", context=ctx)
    assert result.output == "child ran"
    assert [e.kind for e in result.trace if e.kind.startswith("delegation")] == ["delegation"]


@dataclass
class SpecRetryContext(RunContext):
    """The spec's hand-written RetryContext: it inherits only RunContext."""

    retry_count: int = 0
    max_retries: int = 3
    is_retry: bool = False


async def test_the_specs_hand_written_retry_context_is_plain_data() -> None:
    """A hand-written RetryContext gets no retry copy, and its max_retries does not change the limit."""
    seen: list[tuple[bool, int]] = []

    @tool
    def flaky(ctx: SpecRetryContext) -> str:
        """Always ask for a retry."""
        seen.append((ctx.is_retry, ctx.retry_count))
        raise ModelRetry("again")

    model = FunctionModel(lambda m, i: ToolCall("flaky", {}))
    agent = Agent(name="agent", model=model, tools=[flaky], tool_retries=1)
    with pytest.raises(ToolRetriesExceeded):
        await agent.run("go", context=SpecRetryContext(max_retries=5))
    assert seen == [(False, 0), (False, 0)]  # Agent(tool_retries=1): two attempts, neither a copy


async def test_cogents_retry_context_max_retries_sets_the_limit() -> None:
    """cogent's RetryContext(max_retries=5) allows 5 retries, each call seeing its retry count."""
    seen: list[tuple[bool, int]] = []

    @tool
    def flaky(ctx: cogent.context.RetryContext) -> str:
        """Succeed on the sixth attempt."""
        seen.append((ctx.is_retry, ctx.retry_count))
        if len(seen) <= 5:
            raise ModelRetry("again")
        return "finally"

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        last = answers_after_last_response(messages)
        if last and isinstance(last[0], ToolReturn):
            return last[0].content
        return ToolCall("flaky", {})

    agent = Agent(name="agent", model=FunctionModel(respond), tools=[flaky], tool_retries=1)
    result = await agent.run("go", context=cogent.context.RetryContext(max_retries=5))
    assert result.output == "finally"
    assert seen == [(False, 0), *((True, n) for n in range(1, 6))]


# --- item 4: injection by type ----------------------------------------------------------

T = TypeVar("T")


@dataclass
class Tenant(RunContext, Generic[T]):
    """A generic application context."""

    tenant_id: str = "t-1"


TenantId = NewType("TenantId", Tenant)  # type: ignore[valid-newtype]


def generic_tenant(ctx: Tenant[int], x: int) -> str:
    """Use a generic context."""
    return f"{ctx.tenant_id}:{x}"


def newtype_tenant(ctx: TenantId, x: int) -> str:
    """Use a NewType of a context."""
    return f"{ctx.tenant_id}:{x}"


@pytest.mark.parametrize("fn", [generic_tenant, newtype_tenant], ids=["generic", "newtype"])
async def test_generic_and_newtype_contexts_are_injected_and_hidden(fn: Any) -> None:
    """`ctx: Tenant[int]` and a NewType of a context class are injected and absent from the schema."""
    fn = tool(fn)
    assert set(fn.definition.parameters_json_schema["properties"]) == {"x"}
    agent, recorder = agent_with(
        fn,
        calls=[ToolCall(fn.name, {"x": 1}, "ok"), ToolCall(fn.name, {"x": 2, "ctx": {"tenant_id": "forged"}}, "bad")],
    )
    result = await agent.run("go", context=Tenant(tenant_id="t-9"))
    answers = answers_after_last_response(recorder.requests[-1])
    assert isinstance(answers[0], ToolReturn) and answers[0].content == "t-9:1"
    assert isinstance(answers[1], RetryPrompt) and "ctx" in answers[1].content
    assert "forged" not in str(result.output)


DEFAULT_CONTEXT = AuditContext(secret=CANARY)


def default_unannotated(x: int, c=DEFAULT_CONTEXT) -> str:  # type: ignore[no-untyped-def]
    """A context instance as the default of an unannotated parameter."""
    return f"{c.secret == CANARY}:{x}"


def default_any(x: int, c: Any = DEFAULT_CONTEXT) -> str:
    """A context instance as the default of an `Any` parameter."""
    return f"{c.secret == CANARY}:{x}"


@pytest.mark.parametrize("fn", [default_unannotated, default_any], ids=["unannotated", "any"])
async def test_a_context_instance_as_a_default_is_never_published(fn: Any) -> None:
    """A parameter whose default is a context is injected; the default's fields never reach the schema."""
    t = tool(fn)
    assert CANARY not in json.dumps(t.definition.parameters_json_schema)
    assert set(t.definition.parameters_json_schema["properties"]) == {"x"}
    agent, recorder = agent_with(t, calls=[ToolCall(t.name, {"x": 3}, "c1")])
    result = await agent.run("go", context=AuditContext(secret="other"))
    assert result.output == "False:3"  # the run's context was injected, not the default
    assert all(CANARY not in repr(r) for r in recorder.requests)


def object_ctx(ctx: object, x: int) -> str:
    """Take the context annotated as `object`."""
    assert isinstance(ctx, RunContext)
    return f"{type(ctx).__name__}:{x}"


async def test_a_ctx_parameter_annotated_object_is_injected() -> None:
    """`ctx: object` receives the run context and is not in the schema."""
    t = tool(object_ctx)
    assert set(t.definition.parameters_json_schema["properties"]) == {"x"}
    agent, _ = agent_with(t, calls=[ToolCall("object_ctx", {"x": 1}, "c1")])
    assert (await agent.run("go", context=AuditContext())).output == "AuditContext:1"


class HasSecret(Protocol):
    """What a tool needs from a context, described structurally."""

    secret: str


@runtime_checkable
class HasTenant(Protocol):
    """A runtime-checkable structural context."""

    tenant_id: str


def protocol_ctx(ctx: HasSecret, x: int) -> str:
    """Read the secret through a Protocol."""
    return f"{ctx.secret == CANARY}:{x}"


def checked_protocol_ctx(ctx: HasTenant, x: int) -> str:
    """Read the tenant through a runtime-checkable Protocol."""
    return f"{ctx.tenant_id}:{x}"


async def test_a_protocol_typed_parameter_is_injected() -> None:
    """A parameter named `ctx` annotated with a Protocol receives the run context and is not in the schema."""
    t = tool(protocol_ctx)
    assert set(t.definition.parameters_json_schema["properties"]) == {"x"}
    agent, _ = agent_with(t, calls=[ToolCall("protocol_ctx", {"x": 1}, "c1")])
    assert (await agent.run("go", context=AuditContext())).output == "True:1"


def test_a_protocol_annotation_elsewhere_is_a_model_argument() -> None:
    """Only the parameter named `ctx` is injected through a Protocol annotation: elsewhere it is a model argument."""
    import typing

    def scale(n: typing.SupportsIndex, factor: int) -> int:
        return int(n) * factor

    with pytest.raises(UserError, match="pydantic cannot validate"):
        tool(scale)


async def test_a_runtime_checkable_protocol_parameter_is_checked_before_any_request() -> None:
    """A runtime-checkable Protocol is injected when the context conforms, else ContextTypeError before any request."""
    agent, recorder = agent_with(tool(checked_protocol_ctx), calls=[ToolCall("checked_protocol_ctx", {"x": 2}, "c1")])
    assert (await agent.run("go", context=Tenant(tenant_id="t-2"))).output == "t-2:2"
    recorder.requests.clear()
    with pytest.raises(ContextTypeError):
        await agent.run("go", context=AuditContext())
    assert recorder.requests == []


# --- item 5: tool results are always text ---------------------------------------------


class OnlyStr:
    """An object pydantic cannot serialize, with only `__str__`."""

    def __str__(self) -> str:
        return "only-str"


RESULTS: list[tuple[str, Any, str]] = [
    ("mpmath", mpmath.mpf("1.5"), "1.5"),
    ("only-str", OnlyStr(), "only-str"),
    ("range", range(3), "range(0, 3)"),
    ("dict-keys", {"a": 1}.keys(), "dict_keys(['a'])"),
    ("exception", ValueError("a value"), "a value"),
    ("memoryview", memoryview(b"ab"), "<memory at"),
    ("non-utf8-bytes", b"\xff\xfe", "xff"),
    ("list-of-unknown", [OnlyStr(), mpmath.mpf(2)], '["only-str","2.0"]'),
]


@pytest.mark.parametrize(("value", "expected"), [r[1:] for r in RESULTS], ids=[r[0] for r in RESULTS])
@pytest.mark.parametrize("tool_errors", ["model", "raise"])
async def test_a_value_pydantic_cannot_serialize_reaches_the_model_as_text(
    value: Any, expected: str, tool_errors: str
) -> None:
    """A tool that returned normally is never reported as failed: unserializable values fall back to str()."""

    @tool
    def produce() -> Any:
        """Return the value."""
        return value

    agent, _ = agent_with(produce, calls=[ToolCall("produce", {}, "c1")], tool_errors=tool_errors)
    result = await agent.run("go")
    assert expected in result.output
    assert not result.output.startswith("Error")
    assert "Unable to serialize" not in result.output
    assert [e.kind for e in result.trace if e.tool_name == "produce"] == ["tool_call"]


# --- item 6: the public surface ---------------------------------------------------------

PRIVATE_NOW = [
    "interceptor_plan",
    "tool_definitions",
    "instructions_for",
    "output_adapter",
    "output_definition",
    "output_wrapped",
]


@pytest.mark.parametrize("name", PRIVATE_NOW)
def test_run_loop_internals_are_not_public_on_agent(name: str) -> None:
    """Agent exposes no run-loop internals (they live in the private spec)."""
    agent = Agent(name="a", model="test", output_type=int)
    assert not hasattr(agent, name)


async def test_approval_trace_events_carry_the_decision() -> None:
    """Every approval event says approved, rejected or pending."""

    @tool(requires_approval=True)
    def guarded(n: int) -> str:
        """Needs approval."""
        return f"ran {n}"

    calls = [ToolCall("guarded", {"n": n}, f"c{n}") for n in (1, 2)]
    agent, _ = agent_with(guarded, calls=calls)
    result = await agent.run("go", approval_handler=lambda item: json.loads(item.arguments)["n"] == 1)
    decisions = {e.call_id: e.decision for e in result.trace if e.kind == "approval"}
    assert decisions == {"c1": "approved", "c2": "rejected"}
    interrupted = await agent.run("go")
    assert {e.decision for e in interrupted.trace if e.kind == "approval"} == {"pending"}


STREAM_EVENTS = [
    "ApprovalDecision",
    "DelegationEndEvent",
    "DelegationStartEvent",
    "FinalResultEvent",
    "ReasoningDeltaEvent",
    "StreamEvent",
    "TextDeltaEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "TraceEvent",
    "format_trace",
]


@pytest.mark.parametrize("name", STREAM_EVENTS)
def test_events_are_importable_from_cogent_and_cogent_events(name: str) -> None:
    """Trace and stream events are exported by `cogent` and `cogent.events` (the same objects)."""
    events = __import__("cogent.events", fromlist=[name])
    assert getattr(cogent, name) is getattr(events, name)


# --- item 8: newcomer friction ----------------------------------------------------------


@dataclass
class AppContext(RunContext):
    """A context subclass a tool requires."""

    user_id: str = "u-1"


@tool
def needs_app(ctx: AppContext) -> str:
    """Needs an AppContext."""
    return ctx.user_id


async def test_a_tool_needing_a_context_subclass_fails_before_any_model_request() -> None:
    """Without context_type=, a run with the wrong context fails with ContextTypeError before the first request."""
    agent, recorder = agent_with(needs_app, calls=[ToolCall("needs_app", {}, "c1")])
    with pytest.raises(ContextTypeError, match="AppContext"):
        await agent.run("go")
    assert recorder.requests == []


class TwoPhases(Interceptor):
    """An interceptor handling two phases, wrong in one of them."""

    def pre_think(self, context: InterceptContext) -> InterceptResult:
        return InterceptResult.continue_()

    def post_act(self, context: InterceptContext) -> InterceptResult:
        return InterceptResult.modify_args(x=1)


@interceptor(Phase.PRE_RUN, Phase.POST_THINK)
def two_phase_function(ic: InterceptContext) -> InterceptResult | None:
    """Fine in PRE_RUN, wrong in POST_THINK."""
    return InterceptResult.modify_tools([]) if ic.phase is Phase.POST_THINK else None


class AllPhases(Interceptor):
    """An interceptor overriding intercept(), wrong only in POST_RUN."""

    async def intercept(self, phase: Phase, context: InterceptContext) -> Any:
        return "not a result" if phase is Phase.POST_RUN else None


@pytest.mark.parametrize(
    ("watcher", "owner", "phase"),
    [
        (TwoPhases(), "TwoPhases.post_act", "POST_ACT"),
        (two_phase_function, "two_phase_function", "POST_THINK"),
        (AllPhases(), "AllPhases.intercept", "POST_RUN"),
    ],
    ids=["methods", "function", "intercept"],
)
async def test_a_multi_phase_interceptor_error_names_the_interceptor_and_the_phase(
    watcher: Interceptor, owner: str, phase: str
) -> None:
    """The UserError for a wrong result names the interceptor and the phase it was returned in."""
    agent, _ = agent_with(add_one, calls=[ToolCall("add_one", {"x": 1}, "c1")], interceptors=[watcher])
    with pytest.raises(UserError) as info:
        await agent.run("go", context=AuditContext())
    message = str(info.value)
    assert owner in message
    assert f"in {phase}" in message


async def test_an_unawaited_agent_run_in_a_sync_tool_names_run_sync() -> None:
    """A sync tool calling `agent.run(...)` without await gets a UserError telling it to use run_sync."""
    inner = Agent(name="inner", model=FunctionModel(lambda m, i: "inner"))

    @tool
    def uses_output() -> str:
        """Forget the await."""
        return inner.run("x").output  # type: ignore[attr-defined]

    @tool
    def returns_it() -> Any:
        """Forget the await and return the coroutine."""
        return inner.run("x")

    for t in (uses_output, returns_it):
        agent, _ = agent_with(t, calls=[ToolCall(t.name, {}, "c1")])
        with pytest.raises(UserError, match="run_sync"):
            await agent.run("go")
