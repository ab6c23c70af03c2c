"""Secrecy: nothing from a run context reaches the model, and nothing secret is printed.

The rules under test:

1. No value of any context field or metadata entry appears in any model request (messages,
   instructions, tool definitions, output tool definitions), in any stream event that mirrors
   model traffic, or in any tool definition, on every path: tools, subagents, retries,
   interceptors, approvals (with a handler and after an interruption), tool errors. The user can
   still put context data into the prompt on purpose, through their own `instructions`, tool
   results or exception messages: a tool raising `ValueError(f"... {ctx.secret}")` DOES leak
   that text to the model, by the user's choice. The framework itself never adds context data
   (the delegation-refusal message, for example, does not quote the context's depth).
2. `repr()`/`str()` of a context (and so of results, interceptor contexts and traces) hide
   `field(repr=False)` fields and mask the value of every field and metadata key (also nested
   dict keys) whose name looks like a secret (`cogent.context.is_secret_name`). Traces hold no
   context field values at all besides the lineage ids of helper contexts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, make_dataclass
from typing import Any

import pydantic
import pytest

from cogent import (
    Agent,
    ContextTypeError,
    ExecutionContext,
    InterceptContext,
    Interceptor,
    InterceptResult,
    ModelRetry,
    RunContext,
    RunState,
    ToolApprovalItem,
    ToolCall,
    format_trace,
    tool,
)
from cogent.context import is_secret_name
from cogent.events import FinalResultEvent, StreamEvent
from cogent.messages import Message, ModelResponse, RetryPrompt, ToolReturn, UserPrompt, messages_to_json
from cogent.models import FunctionModel, ModelRequestParameters
from cogent.result import RunResult

from ._support import Request

pytestmark = pytest.mark.anyio


@dataclass
class Vault(ExecutionContext):
    """A context full of canaries: every string value is unique and must never reach the model."""

    user_id: str = "CANARY-user-id"
    api_key: str = "CANARY-api-key"
    db_password: str = "CANARY-db-password"
    note: str = field(default="CANARY-hidden-note", repr=False)
    profile: dict[str, Any] = field(
        default_factory=lambda: {"email": "CANARY-email", "refresh_token": "CANARY-refresh-token"}
    )
    permissions: set[str] = field(default_factory=lambda: {"CANARY-permission"})


def new_vault() -> Vault:
    """A Vault with canary metadata too (a secret-named key, a plain key and a nested secret)."""
    return Vault(
        metadata={
            "session_token": "CANARY-session-token",
            "tenant": "CANARY-tenant",
            "nested": {"private_key": "CANARY-private-key", "region": "CANARY-region"},
        }
    )


def canaries(ctx: Vault) -> list[str]:
    """Every context value a model must never see, including the framework's own helper fields."""
    values = [ctx.user_id, ctx.api_key, ctx.db_password, ctx.note, *ctx.profile.values(), *ctx.permissions]
    values += ["CANARY-session-token", "CANARY-tenant", "CANARY-private-key", "CANARY-region", ctx.task_id]
    return values


def leaks(text: str, ctx: Vault) -> list[str]:
    """Return the canaries of `ctx` found in `text`."""
    return [c for c in canaries(ctx) if c in text]


def request_text(request: Request) -> str:
    """Everything one model request carried, as text."""
    params = request.params
    definitions = [*params.tools, *params.output_tools]
    return "\n".join(
        [
            messages_to_json(request.messages),
            params.agent_name,
            params.instructions or "",
            json.dumps([[d.name, d.description, d.parameters_json_schema] for d in definitions]),
        ]
    )


@dataclass
class Scenario:
    """An agent tree that walks every path, and what its models received."""

    agent: Agent[Vault, str]
    requests: list[Request]


class Reader(Interceptor):
    """Reads the context in every phase, the way a permission or audit interceptor does, and edits the run."""

    def pre_run(self, context: InterceptContext, ctx: Vault) -> None:
        assert ctx.api_key.startswith("CANARY")

    def pre_think(self, context: InterceptContext, ctx: Vault) -> InterceptResult:
        notes = [m for m in context.messages if not (isinstance(m, UserPrompt) and m.content == "Be brief.")]
        return InterceptResult.modify_messages([UserPrompt(content="Be brief."), *notes])

    def pre_act(self, context: InterceptContext, ctx: Vault) -> InterceptResult | None:
        if context.tool_name == "lookup":
            return InterceptResult.modify_args(key="orders")
        return None

    def post_act(self, context: InterceptContext, ctx: Vault) -> InterceptResult | None:
        if context.tool_name == "lookup":
            return InterceptResult.skip(f"{context.tool_result} (checked for {len(ctx.user_id)}-char user)")
        return None

    def on_error(self, context: InterceptContext, ctx: Vault) -> None:
        assert ctx.db_password.startswith("CANARY")


def build_scenario() -> Scenario:
    """A boss using every kind of tool, a structured-output helper subagent, approvals, retries and errors."""
    requests: list[Request] = []

    @tool
    def lookup(ctx: Vault, key: str) -> str:
        """Look up a record of the current user."""
        assert ctx.user_id.startswith("CANARY")
        return f"record {key}: 3 items"

    flaky_calls: list[int] = []

    @tool
    def flaky(ctx: Vault) -> str:
        """A tool that asks for one retry."""
        flaky_calls.append(ctx.retry_count)
        if len(flaky_calls) == 1:
            raise ModelRetry("Try again in a moment.")
        return f"worked on retry {ctx.retry_count}"

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @tool(requires_approval=True)
    def refund(ctx: Vault, amount: int) -> str:
        """Refund an amount to the current user."""
        return f"refunded {amount}"

    @tool
    def broken(ctx: Vault) -> str:
        """A tool whose backend is down."""
        raise ConnectionError("backend unavailable")

    def script(name: str, turns: list[Any]) -> FunctionModel:
        def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
            requests.append(Request(list(messages), info))
            step = sum(1 for m in messages if isinstance(m, ModelResponse))
            return turns[min(step, len(turns) - 1)]

        return FunctionModel(respond)

    @dataclass
    class Summary:
        """The helper's structured answer."""

        verdict: str

    helper = Agent(
        name="helper",
        model=script("helper", [ToolCall("lookup", {"key": "x"}), ToolCall("final_result", {"verdict": "fine"})]),
        tools=[lookup],
        description="Checks a record.",
        output_type=Summary,
        instructions=lambda ctx: f"You help at depth {ctx.depth}.",
        context_type=Vault,
    )
    boss = Agent(
        name="boss",
        model=script(
            "boss",
            [
                [
                    ToolCall("lookup", {"key": "profile"}),
                    ToolCall("flaky", {}),
                    ToolCall("add", {"a": "one", "b": 2}),
                    ToolCall("refund", {"amount": 5}),
                    ToolCall("broken", {}),
                    ToolCall("helper", {"task": "Check the record."}),
                    ToolCall("no_such_tool", {}),
                ],
                [ToolCall("flaky", {}), ToolCall("add", {"a": 1, "b": 2})],
                "All done.",
            ],
        ),
        instructions="You are a support agent.",
        tools=[lookup, flaky, add, refund, broken],
        subagents=[helper],
        interceptors=[Reader()],
        context_type=Vault,
    )
    return Scenario(agent=boss, requests=requests)


def approve_small(item: ToolApprovalItem, ctx: Vault) -> bool:
    """An approval handler that reads the context."""
    return ctx.api_key.startswith("CANARY") and json.loads(item.arguments)["amount"] < 10


def check_requests(scenario: Scenario, ctx: Vault) -> None:
    """Assert that no model request and no tool definition carried a canary."""
    assert {r.params.agent_name for r in scenario.requests} == {"boss", "helper"}
    for request in scenario.requests:
        assert leaks(request_text(request), ctx) == [], request.params.agent_name
    for definition in [*(t.definition for t in scenario.agent.tools), *(t.definition for t in scenario.agent.tools)]:
        assert leaks(json.dumps([definition.description, definition.parameters_json_schema]), ctx) == []


def check_result(result: RunResult[Vault, Any], scenario: Scenario, ctx: Vault) -> None:
    """Assert the run walked every path, that no request carried a canary and that the trace shows none."""
    assert result.output == "All done."
    kinds = {e.kind for e in result.trace}
    assert {"tool_call", "tool_error", "retry", "delegation", "approval", "model_request"} <= kinds
    check_requests(scenario, ctx)
    assert leaks(str(result.trace) + format_trace(result.trace), result.context) == [result.context.task_id]


async def test_no_context_value_reaches_any_model_request() -> None:
    """Tools, retries, validation errors, approvals, tool errors, interceptors and a subagent: no model request,
    tool definition or trace carries a value of the context (traces show only the lineage task id)."""
    scenario = build_scenario()
    ctx = new_vault()
    result = await scenario.agent.run("Help me.", context=ctx, approval_handler=approve_small)
    check_result(result, scenario, ctx)


async def test_no_context_value_reaches_a_streamed_event() -> None:
    """The same run streamed: no event mirroring model traffic (text, tool calls, results, delegations) carries one."""
    scenario = build_scenario()
    ctx = new_vault()
    seen: list[StreamEvent] = []
    async with scenario.agent.run_stream("Help me.", context=ctx, approval_handler=approve_small) as stream:
        async for event in stream:
            seen.append(event)
    final = seen[-1]
    assert isinstance(final, FinalResultEvent)
    check_result(final.result, scenario, ctx)
    assert len(seen) > 10
    for event in seen[:-1]:  # delegation events carry the lineage ids of helper contexts, by design
        assert [c for c in leaks(repr(event), ctx) if c != ctx.task_id] == [], event


async def test_no_context_value_reaches_the_model_across_an_interruption() -> None:
    """Without a handler the run stops for approval; the saved state and the resumed requests carry no context value."""
    scenario = build_scenario()
    ctx = new_vault()
    interrupted = await scenario.agent.run("Help me.", context=ctx)
    assert interrupted.state is not None and [i.tool_name for i in interrupted.interruptions] == ["refund"]
    saved = interrupted.state.to_json()
    assert leaks(saved, ctx) == []
    ctx.approve_tool(interrupted.interruptions[0])
    resumed = await scenario.agent.run(RunState.from_json(saved), context=ctx)
    assert resumed.output == "All done."
    check_requests(scenario, ctx)


async def test_a_users_own_exception_message_is_the_only_way_a_context_value_leaks() -> None:
    """A tool that puts a context value into its exception (or ModelRetry) message sends it to the model, by the
    user's choice: the model receives exactly "Error: <message>" (or the retry message), nothing else added."""
    requests: list[Request] = []
    attempts: list[int] = []

    @tool
    def careless(ctx: Vault) -> str:
        """Fails with the user id in the message."""
        attempts.append(1)
        if len(attempts) == 1:
            raise ModelRetry(f"User {ctx.user_id} is locked; try again.")
        raise ValueError(f"lookup failed for {ctx.user_id}")

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        requests.append(Request(list(messages), info))
        step = sum(1 for m in messages if isinstance(m, ModelResponse))
        return ToolCall("careless", {}, f"call-{step}") if step < 2 else "ok"

    agent = Agent(name="a", model=FunctionModel(respond), tools=[careless])
    ctx = new_vault()
    await agent.run("Go.", context=ctx)
    replies = [m for m in requests[-1].messages if isinstance(m, RetryPrompt | ToolReturn)]
    assert [(type(m), m.content) for m in replies] == [
        (RetryPrompt, "User CANARY-user-id is locked; try again."),
        (ToolReturn, "Error: lookup failed for CANARY-user-id"),
    ]
    assert all(leaks(request_text(r), ctx) in ([], ["CANARY-user-id"]) for r in requests)


async def test_a_refused_delegation_does_not_quote_the_context() -> None:
    """A delegation refused at max_depth tells the model the limit is reached, without the context's depth values."""
    requests: list[Request] = []

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        requests.append(Request(list(messages), info))
        return "ok" if any(isinstance(m, ModelResponse) for m in messages) else ToolCall("helper", {"task": "t"}, "c")

    helper = Agent(name="helper", model="test", description="Helps.")
    agent = Agent(name="a", model=FunctionModel(respond), subagents=[helper])
    result = await agent.run("Go.", context=ExecutionContext(depth=7, max_depth=7))
    (refusal,) = [m for m in requests[-1].messages if getattr(m, "tool_call_id", None) == "c"]
    assert refusal.content == (  # type: ignore[union-attr]
        "Error: Delegation to 'helper' was refused: the delegation depth limit is reached. Handle the task directly."
    )
    (event,) = [e for e in result.trace if e.kind == "delegation_refused"]
    assert event.detail is not None and "depth 7" in event.detail  # the developer's trace keeps the numbers


async def test_a_context_type_error_names_classes_not_values() -> None:
    """A tool needing another context class fails with a ContextTypeError that quotes no context value."""

    @dataclass
    class Other(RunContext):
        other: str = ""

    @tool
    def needs_other(ctx: Other) -> str:
        return ctx.other

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        return ToolCall("needs_other", {})

    ctx = new_vault()
    with pytest.raises(ContextTypeError) as caught:
        await Agent(name="a", model=FunctionModel(respond), tools=[needs_other]).run("Go.", context=ctx)
    assert leaks(str(caught.value), ctx) == []


# --- repr() and traces ------------------------------------------------------------------------

SECRET_NAMES = [
    "password",
    "DB_PASSWORD",
    "passwd",
    "client_secret",
    "SecretSauce",
    "token",
    "refresh_token",
    "api_key",
    "OPENAI_API_KEY",
    "apikey",
    "ApiKey",
    "credential",
    "aws_credentials",
    "private_key",
    "ssh_private_key",
]
PLAIN_NAMES = ["user_id", "email", "key", "api", "private", "pass_count", "secre", "tokn", "credit"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_looking_names(name: str) -> None:
    """A name containing password, passwd, secret, token, api_key, apikey, credential or private_key (any case)
    is secret."""
    assert is_secret_name(name)


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_plain_names(name: str) -> None:
    """Names without one of those words are not secret."""
    assert not is_secret_name(name)


def test_repr_of_a_context_hides_and_masks() -> None:
    """repr() and str() hide repr=False fields and mask secret-named fields, metadata keys and nested dict keys,
    while showing the other values."""
    ctx = new_vault()
    for text in (repr(ctx), str(ctx)):
        assert "CANARY-user-id" in text and "CANARY-email" in text and "CANARY-tenant" in text
        assert "CANARY-region" in text and "CANARY-permission" in text
        for hidden in ("CANARY-hidden-note", "note="):
            assert hidden not in text
        for masked in ("api_key", "db_password", "'refresh_token'", "'session_token'", "'private_key'"):
            assert f"{masked}='***'" in text or f"{masked}: '***'" in text
        for secret in ("CANARY-api-key", "CANARY-db-password", "CANARY-refresh-token", "CANARY-session-token"):
            assert secret not in text
        assert "CANARY-private-key" not in text


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_every_secret_looking_field_and_metadata_key_is_masked(name: str) -> None:
    """For each secret-looking name, a field and a metadata key of that name never print their value."""
    cls = make_dataclass("Custom", [(name, str, field(default="VALUE-OF-FIELD"))], bases=(RunContext,))
    ctx = cls(metadata={name: "VALUE-OF-KEY", "inner": [{name: "VALUE-OF-NESTED"}]})
    assert "VALUE-OF" not in repr(ctx)
    assert repr(ctx).count("'***'") == 3


@pytest.mark.parametrize("kind", ["frozen", "slots", "pydantic"])
def test_masking_holds_for_every_kind_of_context_class(kind: str) -> None:
    """Frozen, slotted and pydantic-dataclass contexts mask secrets the same way."""
    if kind == "frozen":

        @dataclass(frozen=True)
        class Frozen(RunContext):
            api_token: str = "CANARY-frozen"

        ctx: RunContext = Frozen()
    elif kind == "slots":

        @dataclass(slots=True)
        class Slotted(RunContext):
            api_token: str = "CANARY-slots"

        ctx = Slotted()
    else:

        @pydantic.dataclasses.dataclass
        class Validated(RunContext):
            api_token: str = "CANARY-pydantic"

        ctx = Validated()
    assert "CANARY" not in repr(ctx) and "api_token='***'" in repr(ctx)


def test_a_subclass_with_its_own_repr_decides_for_itself() -> None:
    """A context class that defines `__repr__` replaces the masking: what it prints is the user's choice."""

    @dataclass
    class Loud(RunContext):
        password: str = "CANARY-loud"

        def __repr__(self) -> str:
            return f"Loud({self.password})"

    assert repr(Loud()) == "Loud(CANARY-loud)"


async def test_results_interceptor_contexts_and_traces_print_no_secret() -> None:
    """repr(result), the InterceptContext an interceptor sees, str(result.trace) and format_trace() never show a
    secret-named or repr=False value."""
    printed: list[str] = []

    class Printer(Interceptor):
        def pre_act(self, context: InterceptContext) -> None:
            printed.append(repr(context))

    @tool
    def lookup(ctx: Vault, key: str) -> str:
        return f"value of {key}"

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        return "done" if any(isinstance(m, ModelResponse) for m in messages) else ToolCall("lookup", {"key": "k"})

    ctx = new_vault()
    agent = Agent(name="a", model=FunctionModel(respond), tools=[lookup], interceptors=[Printer()])
    result = await agent.run("Go.", context=ctx)
    secrets = ["CANARY-api-key", "CANARY-db-password", "CANARY-hidden-note", "CANARY-refresh-token"]
    secrets += ["CANARY-session-token", "CANARY-private-key"]
    for text in (repr(result), *printed, str(result.trace), format_trace(result.trace)):
        assert [s for s in secrets if s in text] == []
    assert leaks(str(result.trace) + format_trace(result.trace), result.context) == [result.context.task_id]
