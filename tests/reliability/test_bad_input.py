"""Bad input: every malformed thing a model or a caller can hand the run loop has one documented outcome.

Each test is one row of the table; its docstring states the outcome. The rule behind all
rows: bad input from the *model* becomes a message the model can act on (a `RetryPrompt`
naming the problem, or an error tool result) and counts toward the tool's retries; bad
input from the *caller* is a `UserError` raised before anything runs; exceptions raised by
the user's own code propagate unchanged. No row ends in an exception from cogent's
internals (an AttributeError, a RecursionError, a pydantic error, an ExceptionGroup).
"""

from __future__ import annotations

import enum
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cogent import (
    Agent,
    InterceptContext,
    InterceptResult,
    Phase,
    RunContext,
    ScriptedModel,
    ToolApprovalItem,
    ToolCall,
    ToolRetriesExceeded,
    UserError,
    interceptor,
    tool,
)
from cogent.messages import Message, ModelResponse, RetryPrompt, ToolReturn
from cogent.models import FunctionModel, ModelRequestParameters

from ._support import Request, answers, calls_then

pytestmark = pytest.mark.anyio

CALL = "call-1"


@dataclass
class Spy:
    """Records the arguments every call of a tool received."""

    calls: list[dict[str, Any]]


@pytest.fixture
def spy() -> Spy:
    """A fresh call recorder."""
    return Spy(calls=[])


def add_tool(spy: Spy) -> Any:
    """Return an `add(a: int, b: int)` tool that records its calls in `spy`."""

    @tool
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        spy.calls.append({"a": a, "b": b})
        return a + b

    return add


async def call_add(spy: Spy, arguments: str | dict[str, Any]) -> Message:
    """Run an agent whose model calls `add` once with `arguments`; return the message answering the call."""
    agent = Agent(name="calc", model=calls_then(ToolCall("add", arguments, CALL)), tools=[add_tool(spy)])
    result = await agent.run("Add.")
    assert result.output == "done"
    (reply,) = answers(result, CALL)
    return reply


# --- Malformed arguments ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"a": 1,', "EOF while parsing"),
        ('{"a": 1, "b": 2} and more', "trailing characters"),
        ("{'a': 1, 'b': 2}", "key must be a string"),
        ("a=1, b=2", "expected value"),
    ],
)
async def test_malformed_json_arguments(spy: Spy, text: str, problem: str) -> None:
    """Malformed JSON: the tool does not run; the model gets a RetryPrompt naming the JSON error, and answers."""
    reply = await call_add(spy, text)
    assert isinstance(reply, RetryPrompt)
    assert "Invalid JSON" in reply.content and problem in reply.content
    assert spy.calls == []


@pytest.mark.parametrize("text", ["[1, 2]", "null", "42", '"a and b"'])
async def test_json_arguments_that_are_not_an_object(spy: Spy, text: str) -> None:
    """Valid JSON that is not an object: a RetryPrompt saying the arguments should be an object."""
    reply = await call_add(spy, text)
    assert isinstance(reply, RetryPrompt)
    assert "(arguments): Input should be an object" in reply.content
    assert spy.calls == []


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"a": "x", "b": 2}, "a: Input should be a valid integer"),
        ({"a": 1.5, "b": 2}, "a: Input should be a valid integer, got a number with a fractional part"),
        ('{"a": NaN, "b": 2}', "a: Input should be a finite number"),
        ({"a": [1], "b": 2}, "a: Input should be a valid integer"),
    ],
)
async def test_arguments_of_the_wrong_type(spy: Spy, arguments: Any, problem: str) -> None:
    """A value of the wrong type: a RetryPrompt naming the field and pydantic's message; the tool does not run."""
    reply = await call_add(spy, arguments)
    assert isinstance(reply, RetryPrompt)
    assert problem in reply.content
    assert spy.calls == []


async def test_lax_coercion_of_numeric_strings_and_booleans(spy: Spy) -> None:
    """pydantic's lax mode applies: `"2"`, `3.0` and `true` reach an `int` parameter as 2, 3 and 1."""
    reply = await call_add(spy, '{"a": "2", "b": 3.0}')
    assert isinstance(reply, ToolReturn) and reply.content == "5"
    await call_add(spy, '{"a": true, "b": 1}')
    assert spy.calls == [{"a": 2, "b": 3}, {"a": 1, "b": 1}]
    assert all(type(v) is int for call in spy.calls for v in call.values())


@pytest.mark.parametrize(
    ("arguments", "problems"),
    [
        ({"a": 1}, ["b: Field required"]),
        ("", ["a: Field required", "b: Field required"]),
        ({}, ["a: Field required", "b: Field required"]),
        ({"a": 1, "b": 2, "c": 3}, ["c: Extra inputs are not permitted"]),
        ({"b": 2, "c": 3}, ["a: Field required", "c: Extra inputs are not permitted"]),
    ],
)
async def test_missing_and_extra_arguments(spy: Spy, arguments: Any, problems: list[str]) -> None:
    """Missing or unknown keys: one RetryPrompt listing every problem (empty text counts as `{}`)."""
    reply = await call_add(spy, arguments)
    assert isinstance(reply, RetryPrompt)
    assert all(p in reply.content for p in problems)
    assert spy.calls == []


async def test_duplicate_json_keys_keep_the_last_value(spy: Spy) -> None:
    """A key repeated in the JSON text is not an error: the last value wins (pydantic's JSON parser)."""
    reply = await call_add(spy, '{"a": 1, "a": 2, "b": 3}')
    assert isinstance(reply, ToolReturn)
    assert spy.calls == [{"a": 2, "b": 3}]


@dataclass
class Account(RunContext):
    """A context with a field the model must never be able to set."""

    account_id: str = "acct-1"


def context_tools(seen: list[Any]) -> list[Any]:
    """Three tools whose context parameter has different names and annotations."""

    @tool
    def by_ctx(ctx: Account, x: int) -> str:
        seen.append(ctx)
        return "ok"

    @tool
    def by_context(context: Account, x: int) -> str:
        seen.append(context)
        return "ok"

    @tool
    def unannotated(ctx, x: int) -> str:  # type: ignore[no-untyped-def]
        seen.append(ctx)
        return "ok"

    return [by_ctx, by_context, unannotated]


@pytest.mark.parametrize(("tool_name", "key"), [("by_ctx", "ctx"), ("by_context", "context"), ("unannotated", "ctx")])
async def test_a_key_named_like_the_context_parameter(tool_name: str, key: str) -> None:
    """An argument named like the context parameter: a RetryPrompt naming it; the context is never replaced."""
    seen: list[Any] = []
    forged = {"x": 1, key: {"account_id": "acct-evil", "metadata": {"role": "admin"}}}
    agent = Agent(name="a", model=calls_then(ToolCall(tool_name, forged, CALL)), tools=context_tools(seen))
    result = await agent.run("Go.", context=Account())
    (reply,) = answers(result, CALL)
    assert isinstance(reply, RetryPrompt)
    assert f"{key}: Extra inputs are not permitted" in reply.content
    assert "acct-evil" not in reply.content
    assert seen == []


async def test_unknown_tool_name(spy: Spy) -> None:
    """An unknown tool: a RetryPrompt listing the available tools; it counts as a retry, so a repeat fails the run."""
    agent = Agent(name="calc", model=calls_then(ToolCall("multiply", {"a": 1}, CALL)), tools=[add_tool(spy)])
    result = await agent.run("Go.")
    (reply,) = answers(result, CALL)
    assert isinstance(reply, RetryPrompt)
    assert reply.content == "Unknown tool name: 'multiply'. Available tools: add."
    stubborn = Agent(name="calc", model=ScriptedModel([ToolCall("multiply", {})] * 3), tools=[add_tool(spy)])
    with pytest.raises(ToolRetriesExceeded, match="'multiply'"):
        await stubborn.run("Go.")
    assert spy.calls == []


def guarded_tools(ran: list[str]) -> list[Any]:
    """A harmless tool and one that needs approval, both recording that they ran."""

    @tool
    def read(x: str) -> str:
        ran.append("read")
        return x

    @tool(requires_approval=True)
    def delete(x: str) -> str:
        ran.append("delete")
        return f"deleted {x}"

    return [read, delete]


@pytest.mark.parametrize("phase", [Phase.PRE_RUN, Phase.PRE_THINK])
async def test_a_call_to_a_tool_gated_by_modify_tools(phase: Phase) -> None:
    """A call to a tool removed by `modify_tools`: it does not run; the model gets an error result naming it."""
    ran: list[str] = []

    @interceptor(phase)
    def only_read(call: InterceptContext) -> InterceptResult:
        return InterceptResult.modify_tools(["read"])

    requests: list[Request] = []
    model = calls_then(ToolCall("delete", {"x": "db"}, CALL), requests=requests)
    agent = Agent(name="a", model=model, tools=guarded_tools(ran), interceptors=[only_read])
    result = await agent.run("Go.", approval_handler=lambda item: True)
    (reply,) = answers(result, CALL)
    assert isinstance(reply, ToolReturn)
    assert reply.content == "Error: Tool 'delete' is not available now; use one of the tools offered."
    assert ran == []
    assert all([t.name for t in r.params.tools] == ["read"] for r in requests)


async def test_a_call_to_an_unapproved_tool() -> None:
    """An undecided call without a handler interrupts the run (output None, one pending item); nothing runs."""
    ran: list[str] = []
    agent = Agent(name="a", model=calls_then(ToolCall("delete", {"x": "db"}, CALL)), tools=guarded_tools(ran))
    result = await agent.run("Go.")
    assert result.output is None
    assert [(i.tool_name, i.call_id, i.arguments) for i in result.interruptions] == [("delete", CALL, '{"x":"db"}')]
    assert ran == []


async def test_a_call_rejected_by_the_approval_handler() -> None:
    """A rejected call does not run; the model gets a rejection message and the run ends normally."""
    ran: list[str] = []
    agent = Agent(name="a", model=calls_then(ToolCall("delete", {"x": "db"}, CALL)), tools=guarded_tools(ran))
    result = await agent.run("Go.", approval_handler=lambda item: False)
    (reply,) = answers(result, CALL)
    assert isinstance(reply, ToolReturn) and reply.content == "Tool call 'delete' was rejected; do not retry it."
    assert ran == []
    assert result.output == "done"


# --- Size, depth and encoding -------------------------------------------------------------

TEN_MB = 10 * 1024 * 1024


async def test_a_ten_megabyte_argument_string() -> None:
    """A 10 MB string reaches a `str` parameter intact; 10 MB of junk gets a short RetryPrompt that never echoes it."""
    received: list[str] = []

    @tool
    def store(text: str, count: int) -> str:
        received.append(text)
        return f"stored {len(text)}"

    big = "x" * TEN_MB
    agent = Agent(
        name="a",
        model=ScriptedModel(
            [
                ToolCall("store", json.dumps({"text": big, "count": 1}), "ok"),
                ToolCall("store", json.dumps({"text": "t", "count": big}), "junk"),
                "done",
            ]
        ),
        tools=[store],
    )
    result = await agent.run("Go.")
    assert received == [big]
    (stored,) = answers(result, "ok")
    assert stored.content == f"stored {TEN_MB}"
    (junk,) = answers(result, "junk")
    assert isinstance(junk, RetryPrompt)
    assert "count: Input should be a valid integer" in junk.content and len(junk.content) < 500


@pytest.mark.parametrize(
    "text",
    [
        '{"data": ' + "[" * 10_000 + "]" * 10_000 + "}",
        '{"data": ' + '{"a": ' * 10_000 + "1" + "}" * 10_000 + "}",
    ],
    ids=["arrays", "objects"],
)
async def test_deeply_nested_json_arguments(text: str) -> None:
    """JSON nested 10,000 levels deep: a RetryPrompt about the parser's recursion limit, never a RecursionError."""
    received: list[Any] = []

    @tool
    def take(data: Any) -> str:
        received.append(data)
        return "taken"

    agent = Agent(name="a", model=calls_then(ToolCall("take", text, CALL)), tools=[take])
    result = await agent.run("Go.")
    (reply,) = answers(result, CALL)
    assert isinstance(reply, RetryPrompt)
    assert "Invalid JSON: recursion limit exceeded" in reply.content
    assert received == []


@pytest.mark.parametrize(
    "text",
    [
        '{"text": "\\udc80"}',  # a JSON escape of a lone (trailing) surrogate
        '{"text": "\\ud83d"}',  # a lone leading surrogate
        '{"text": "' + b"caf\xe9".decode("utf-8", "surrogateescape") + '"}',  # non-UTF-8 bytes, decoded leniently
        '{"text": "\udc80"}',  # a raw lone surrogate in the text
    ],
    ids=["escaped-trailing", "escaped-leading", "surrogateescape", "raw"],
)
async def test_lone_surrogates_and_non_utf8_in_arguments(text: str) -> None:
    """Arguments text that is not valid Unicode: a RetryPrompt; the tool never sees an unencodable string."""
    received: list[str] = []

    @tool
    def echo(text: str) -> str:
        received.append(text)
        return text

    agent = Agent(name="a", model=calls_then(ToolCall("echo", text, CALL)), tools=[echo])
    result = await agent.run("Go.")
    (reply,) = answers(result, CALL)
    assert isinstance(reply, RetryPrompt)
    assert received == []
    assert result.output == "done"


async def test_a_valid_surrogate_pair_is_decoded() -> None:
    """An escaped surrogate *pair* is valid JSON: the tool receives the decoded character."""
    received: list[str] = []

    @tool
    def echo(text: str) -> str:
        received.append(text)
        return text

    agent = Agent(name="a", model=calls_then(ToolCall("echo", '{"text": "\\ud83d\\ude00"}', CALL)), tools=[echo])
    await agent.run("Go.")
    assert received == ["\U0001f600"]


async def test_dict_arguments_from_an_offline_model_are_validated_in_python_mode() -> None:
    """Dict arguments (offline models only) skip JSON parsing: a lone surrogate in a `str` reaches the tool as given."""
    received: list[str] = []

    @tool
    def echo(text: str) -> str:
        received.append(text)
        return "ok"

    agent = Agent(name="a", model=calls_then(ToolCall("echo", {"text": "\udc80"}, CALL)), tools=[echo])
    result = await agent.run("Go.")
    assert received == ["\udc80"]
    assert result.output == "done"


# --- Odd model responses ----------------------------------------------------------------------


@pytest.mark.parametrize("empty", [ModelResponse(), ModelResponse(text=""), ModelResponse(text=None, tool_calls=[])])
async def test_an_empty_model_response(empty: ModelResponse) -> None:
    """An empty response: the model gets "Your response was empty..." and may answer; if it stays empty the run
    fails with ToolRetriesExceeded once `tool_retries` is used up."""
    agent = Agent(name="a", model=ScriptedModel([empty, "recovered"]))
    result = await agent.run("Go.")
    assert result.output == "recovered"
    retry = result.messages[2]
    assert isinstance(retry, RetryPrompt)
    assert retry.content == "Your response was empty. Answer with text or call a tool."
    silent = Agent(name="a", model=FunctionModel(lambda messages, info: ModelResponse()), tool_retries=2)
    with pytest.raises(ToolRetriesExceeded, match="3 times"):
        await silent.run("Go.")


async def test_a_model_response_with_both_text_and_tool_calls(spy: Spy) -> None:
    """Text plus tool calls: the calls run, the text stays in the history, and the run goes on to the next turn."""
    both = ModelResponse(text="Let me add that.", tool_calls=[ToolCall("add", {"a": 1, "b": 2}, CALL)])
    agent = Agent(name="a", model=ScriptedModel([both, "It is 3."]), tools=[add_tool(spy)])
    result = await agent.run("Go.")
    assert result.output == "It is 3."
    assert spy.calls == [{"a": 1, "b": 2}]
    assert isinstance(result.messages[1], ModelResponse) and result.messages[1].text == "Let me add that."


async def test_duplicate_tool_call_ids_in_one_response(spy: Spy) -> None:
    """Repeated ids: every call runs; the repeats get fresh ids so each result pairs with exactly one call."""
    calls = [ToolCall("add", {"a": 1, "b": 1}, "dup"), ToolCall("add", {"a": 2, "b": 2}, "dup")]
    agent = Agent(name="a", model=ScriptedModel([calls, "done"]), tools=[add_tool(spy)])
    result = await agent.run("Go.")
    response = result.messages[1]
    assert isinstance(response, ModelResponse)
    ids = [c.id for c in response.tool_calls]
    assert ids[0] == "dup" and ids[1] != "dup" and ids[1] is not None
    assert [(m.tool_call_id, m.content) for m in result.messages if isinstance(m, ToolReturn)] == [
        (ids[0], "2"),
        (ids[1], "4"),
    ]
    assert len(spy.calls) == 2


@pytest.mark.parametrize("parallel", [True, False])
async def test_a_duplicate_id_never_rides_on_another_calls_approval(parallel: bool) -> None:
    """Approving one call never approves a second call that reuses its id, in the same response or a later one."""
    ran: list[str] = []
    asked: list[str] = []

    def handler(item: ToolApprovalItem) -> bool:
        asked.append(item.arguments)
        return "harmless" in item.arguments

    script = [
        [ToolCall("delete", {"x": "harmless"}, "same"), ToolCall("delete", {"x": "everything"}, "same")],
        ToolCall("delete", {"x": "everything else"}, "same"),
        "done",
    ]
    agent = Agent(name="a", model=ScriptedModel(script), tools=guarded_tools(ran), parallel_tool_calls=parallel)
    await agent.run("Go.", approval_handler=handler)
    assert sorted(asked) == sorted(['{"x":"harmless"}', '{"x":"everything"}', '{"x":"everything else"}'])
    assert ran == ["delete"]


async def test_a_duplicate_id_after_an_interruption_needs_its_own_decision() -> None:
    """Two pending calls sharing an id become two items with distinct ids; approving one leaves the other pending."""
    ran: list[str] = []
    script = [[ToolCall("delete", {"x": "harmless"}, "same"), ToolCall("delete", {"x": "everything"}, "same")], "done"]
    agent = Agent(name="a", model=ScriptedModel(script), tools=guarded_tools(ran))
    first = await agent.run("Go.")
    assert len({i.call_id for i in first.interruptions}) == 2
    assert first.state is not None
    (harmless,) = [i for i in first.interruptions if "harmless" in i.arguments]
    first.context.approve_tool(harmless)
    second = await agent.run(first.state, context=first.context)
    assert ran == ["delete"]
    assert [i.arguments for i in second.interruptions] == ['{"x":"everything"}']


async def test_an_id_approved_in_an_earlier_run_needs_a_new_decision() -> None:
    """A call reusing an id that was approved per call in an earlier run on the same context waits for its own
    decision instead of running on the old approval (decisions are bound to the run, not the id)."""
    ran: list[str] = []
    context = RunContext()
    first_agent = Agent(
        name="a", model=calls_then(ToolCall("delete", {"x": "tmp"}, "call_0")), tools=guarded_tools(ran)
    )
    first = await first_agent.run("Clean tmp.", context=context)
    assert first.state is not None
    context.approve_tool(first.interruptions[0])
    await first_agent.run(first.state, context=context)
    later = Agent(
        name="a", model=calls_then(ToolCall("delete", {"x": "everything"}, "call_0")), tools=guarded_tools(ran)
    )
    second = await later.run("Another conversation.", context=context)
    assert ran == ["delete"]
    assert [i.arguments for i in second.interruptions] == ['{"x":"everything"}']
    assert context.approval_status(second.interruptions[0]) == "undecided"


# --- Odd contexts -------------------------------------------------------------------------------


async def test_none_as_context_gives_each_run_a_fresh_context() -> None:
    """`context=None`: each run gets its own new RunContext, so one run's writes never reach another."""
    seen: list[RunContext] = []

    @tool
    def remember(ctx: RunContext) -> str:
        seen.append(ctx)
        previous = ctx.metadata.get("note")
        ctx.metadata["note"] = "written"
        return f"note was {previous}"

    agent = Agent(name="a", model=calls_then(ToolCall("remember", {}, CALL)), tools=[remember])
    first = await agent.run("One.", context=None)
    second = await agent.run("Two.", context=None)
    assert seen[0] is not seen[1] and type(seen[0]) is RunContext
    assert [answers(r, CALL)[0].content for r in (first, second)] == ["note was None", "note was None"]


async def test_a_dict_as_context_becomes_metadata_and_is_not_modified() -> None:
    """`context={...}`: a RunContext whose metadata equals the dict; tool writes never reach the caller's dict."""
    seen: list[RunContext] = []

    @tool
    def tag(ctx: RunContext) -> str:
        seen.append(ctx)
        ctx.metadata["added"] = True
        return str(ctx.get("tenant"))

    caller = {"tenant": "acme"}
    agent = Agent(name="a", model=calls_then(ToolCall("tag", {}, CALL)), tools=[tag])
    result = await agent.run("Go.", context=caller)
    assert answers(result, CALL)[0].content == "acme"
    assert type(seen[0]) is RunContext
    assert caller == {"tenant": "acme"}


@pytest.mark.parametrize("context", [5, "ctx", [("tenant", "acme")], object()], ids=["int", "str", "list", "object"])
async def test_any_other_context_is_a_user_error(context: Any) -> None:
    """A context that is not a RunContext, a dict or None: a UserError naming the type, before the model is asked."""
    requests: list[Request] = []
    agent = Agent(name="a", model=calls_then(ToolCall("x", {}), requests=requests))
    with pytest.raises(UserError, match=f"got context={type(context).__qualname__}"):
        await agent.run("Go.", context=context)
    assert requests == []


class Uncopyable:
    """An object whose copy hooks raise."""

    def __copy__(self) -> Uncopyable:
        raise RuntimeError("this object cannot be copied")

    def __deepcopy__(self, memo: dict[int, Any]) -> Uncopyable:
        raise RuntimeError("this object cannot be deep-copied")


@dataclass(frozen=True)
class Services(RunContext):
    """A frozen (hashable-by-dataclass) context holding objects that cannot be hashed, copied or replayed."""

    lock: Any = None
    stream: Any = None
    handle: Any = None
    rows: Any = None


def numbers() -> Iterator[int]:
    """A generator: consuming it would be visible."""
    yield from range(3)


async def test_uncopyable_and_unhashable_objects_in_context_fields() -> None:
    """Locks, generators, objects whose `__copy__` raises and unhashable values are shared by reference: the run
    and its subagent never copy, hash, consume or acquire them."""
    received: list[tuple[Any, ...]] = []

    @tool
    def use(ctx: Services) -> str:
        received.append((ctx.lock, ctx.stream, ctx.handle, ctx.rows, ctx.metadata["also"]))
        return "used"

    context = Services(lock=threading.Lock(), stream=numbers(), handle=Uncopyable(), rows=[{"id": 1}])
    context = context.with_metadata(also=Uncopyable())
    with pytest.raises(TypeError, match="unhashable"):
        hash(context)
    worker = Agent(name="worker", model=calls_then(ToolCall("use", {})), tools=[use], description="Works.")
    boss = Agent(name="boss", model=calls_then([ToolCall("use", {}), ToolCall("worker", {"task": "t"})]), tools=[use])
    boss.add_subagents(worker)
    result = await boss.run("Go.", context=context)
    assert result.output == "done"
    expected = (context.lock, context.stream, context.handle, context.rows, context.metadata["also"])
    assert len(received) == 2
    assert all(all(a is b for a, b in zip(got, expected, strict=True)) for got in received)
    assert not context.lock.locked()
    assert list(context.stream) == [0, 1, 2]


async def test_a_context_whose_own_copy_raises() -> None:
    """A context class whose `__copy__` raises: `run()` raises that exception unchanged before the model is asked."""

    @dataclass
    class Pinned(RunContext):
        def __copy__(self) -> Pinned:
            raise RuntimeError("Pinned contexts cannot be copied")

    requests: list[Request] = []
    agent = Agent(name="a", model=calls_then(ToolCall("x", {}), requests=requests))
    with pytest.raises(RuntimeError, match="Pinned contexts cannot be copied"):
        await agent.run("Go.", context=Pinned())
    assert requests == []


class BrokenChildren(RunContext):
    """A context whose `create_child_context()` raises."""

    def create_child_context(self) -> BrokenChildren:
        raise RuntimeError("no children today")


def delegating_pair(worker_ran: list[str], **boss_options: Any) -> Agent[Any, Any]:
    """A boss agent whose model delegates once to a worker that records that it ran."""

    def work(messages: list[Message], info: ModelRequestParameters) -> str:
        worker_ran.append("worker")
        return "worked"

    worker = Agent(name="worker", model=FunctionModel(work), description="Works.")
    return Agent(
        name="boss", model=calls_then(ToolCall("worker", {"task": "t"}, CALL)), subagents=[worker], **boss_options
    )


async def test_a_context_whose_create_child_context_raises() -> None:
    """`create_child_context()` raising: the delegation fails like a tool (the boss's model gets "Error: <message>",
    the trace has a tool_error event), the subagent never runs; with tool_errors="raise" the exception propagates."""
    worker_ran: list[str] = []
    result = await delegating_pair(worker_ran).run("Go.", context=BrokenChildren())
    (reply,) = answers(result, CALL)
    assert isinstance(reply, ToolReturn) and reply.content == "Error: no children today"
    assert [e.kind for e in result.trace if e.call_id == CALL] == ["tool_error"]
    with pytest.raises(RuntimeError, match="no children today"):
        await delegating_pair(worker_ran, tool_errors="raise").run("Go.", context=BrokenChildren())
    assert worker_ran == []


async def test_a_create_child_context_that_returns_no_context() -> None:
    """`create_child_context()` returning something that is not a RunContext: a UserError naming the class."""

    class Careless(RunContext):
        def create_child_context(self) -> Any:
            return {"depth": 1}

    worker_ran: list[str] = []
    with pytest.raises(UserError, match=r"Careless.create_child_context\(\) returned a dict"):
        await delegating_pair(worker_ran).run("Go.", context=Careless())
    assert worker_ran == []


# --- Property: arbitrary JSON arguments for a rich signature --------------------------------------


class Priority(enum.Enum):
    """An enum parameter."""

    LOW = "low"
    HIGH = "high"


class Address(BaseModel):
    """A nested model."""

    street: str
    zip_code: Annotated[str, Field(pattern=r"^\d{5}$")]


class Item(BaseModel):
    """A model inside a list."""

    sku: str
    quantity: Annotated[int, Field(ge=1)]
    gift: bool = False


class Order(BaseModel):
    """A model nesting a model, a list of models, an enum and an optional."""

    address: Address
    items: list[Item]
    priority: Priority
    note: str | None = None


class Oracle(BaseModel):
    """The same signature declared independently of cogent: what a valid call looks like."""

    model_config = ConfigDict(extra="forbid")

    order: Order
    tags: list[str]
    discount: float | None = None
    level: Priority = Priority.LOW


received_orders: list[dict[str, Any]] = []


@tool
def place_order(order: Order, tags: list[str], discount: float | None = None, level: Priority = Priority.LOW) -> str:
    """Place an order."""
    received_orders.append({"order": order, "tags": tags, "discount": discount, "level": level})
    return "placed"


words = st.sampled_from(["", "a", "Main St 1", "caf\u00e9", "\U0001f600", "12345", "low", "null", '"quoted"'])
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | words | st.sampled_from([10**400, -0.0])
json_values = json_scalars | st.lists(json_scalars, max_size=3) | st.dictionaries(words, json_scalars, max_size=3)
valid_items = st.fixed_dictionaries({"sku": words, "quantity": st.integers(1, 20)}, optional={"gift": st.booleans()})
valid_calls = st.fixed_dictionaries(
    {
        "order": st.fixed_dictionaries(
            {
                "address": st.fixed_dictionaries(
                    {"street": words, "zip_code": st.integers(0, 99_999).map("{:05d}".format)}
                ),
                "items": st.lists(valid_items, max_size=3),
                "priority": st.sampled_from(["low", "high"]),
            },
            optional={"note": st.none() | words},
        ),
        "tags": st.lists(words, max_size=3),
    },
    optional={"discount": st.none() | st.floats() | st.integers(-5, 5), "level": st.just("high")},
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Yield the path of every value nested in `value` (dict keys and list indexes), `value` itself first."""
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from paths(child, (*prefix, key))


def mutate(call: dict[str, Any], kind: int, where: int, junk: Any, ascii_only: bool) -> str:
    """Return `call` as JSON text, broken in the way `kind` chooses at the place `where` chooses.

    Kinds 0-1 keep the call valid; 2-4 replace a nested value (or the whole call) with `junk`;
    5 deletes a nested value; 6 adds the key `extra` to a nested object (an error at the top
    level, ignored inside pydantic models); 7 truncates the text; 8 sends `junk` instead; 9 sends
    `junk` as raw text when it is a string.
    """
    every = list(paths(call))
    chosen = every[where % len(every)]
    if 2 <= kind <= 6 and chosen:
        parent = call
        for key in chosen[:-1]:
            parent = parent[key]
        target = parent[chosen[-1]]
        if kind <= 4:
            parent[chosen[-1]] = junk
        elif kind == 5:
            del parent[chosen[-1]]
        elif isinstance(target, dict):
            target["extra"] = junk
        elif isinstance(parent, dict):
            parent["extra"] = junk
    text = json.dumps(call, ensure_ascii=ascii_only)
    if kind == 7:
        return text[: where % (len(text) + 1)]
    if kind == 8 or (2 <= kind <= 4 and not chosen):
        return json.dumps(junk, ensure_ascii=ascii_only)
    if kind == 9:
        return junk if isinstance(junk, str) else text[: len(text) // 2]
    return text


argument_texts = st.builds(mutate, valid_calls, st.integers(0, 9), st.integers(0, 10_000), json_values, st.booleans())


def check_typed(received: dict[str, Any], expected: Oracle) -> None:
    """Assert the tool received correctly typed values equal to the independently validated ones."""
    order, tags, discount, level = received["order"], received["tags"], received["discount"], received["level"]
    assert type(order) is Order and type(order.address) is Address
    assert type(order.items) is list and all(type(i) is Item and type(i.quantity) is int for i in order.items)
    assert type(order.priority) is Priority and type(level) is Priority
    assert type(tags) is list and all(type(t) is str for t in tags)
    assert discount is None or type(discount) is float
    assert (order, tags, level) == (expected.order, expected.tags, expected.level)
    assert discount == expected.discount or (discount != discount and expected.discount != expected.discount)  # NaN


async def check_arguments(text: str) -> None:
    """Drive one call with `text` through the run loop and check the property."""
    received_orders.clear()
    agent = Agent(name="shop", model=calls_then(ToolCall("place_order", text, CALL)), tools=[place_order])
    result = await agent.run("Order.")
    assert result.output == "done"
    (reply,) = answers(result, CALL)
    try:
        expected: Oracle | None = Oracle.model_validate_json(text or "{}")
    except ValidationError:
        expected = None
    if expected is None:
        assert isinstance(reply, RetryPrompt) and reply.content.startswith("The arguments for 'place_order'")
        assert received_orders == []
    else:
        assert isinstance(reply, ToolReturn) and reply.content == "placed"
        (received,) = received_orders
        check_typed(received, expected)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=argument_texts)
async def test_arbitrary_json_arguments_either_call_the_tool_typed_or_retry(text: str) -> None:
    """Any arguments text (300 examples): the tool runs with correctly typed values, or the model gets a RetryPrompt."""
    await check_arguments(text)


@pytest.fixture(scope="module")
def portals() -> Iterator[list[BlockingPortal]]:
    """An asyncio and a trio event loop, each in its own thread, reused across hypothesis examples."""
    with start_blocking_portal("asyncio") as on_asyncio, start_blocking_portal("trio") as on_trio:
        yield [on_asyncio, on_trio]


@pytest.mark.slow
@settings(max_examples=2_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=argument_texts)
def test_arbitrary_json_arguments_many_examples(portals: list[BlockingPortal], text: str) -> None:
    """The same property over 2,000 examples, each checked on both asyncio and trio."""
    for portal in portals:
        portal.call(check_arguments, text)
