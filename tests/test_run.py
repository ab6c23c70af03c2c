"""The run loop: turns, history, retries, errors, concurrency, usage, trace and the offline models."""

from __future__ import annotations

import dataclasses
import gc
import json
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import pydantic
import pytest
from helpers import last_results

from cogent import (
    Agent,
    FunctionModel,
    MaxTurnsExceeded,
    ModelRetry,
    RetryContext,
    RunContext,
    ScriptedModel,
    StopExecution,
    TestModel,
    ToolCall,
    ToolRetriesExceeded,
    UnexpectedModelBehavior,
    Usage,
    UserError,
    current_context,
    interceptor,
    tool,
)
from cogent.interceptors import InterceptContext, InterceptResult, Phase
from cogent.messages import Message, ModelResponse, RetryPrompt, ToolReturn, UserPrompt
from cogent.models import ModelRequestParameters


@dataclass
class AppContext(RunContext):
    """A context with one required field."""

    user_id: str


def echo_model(*calls: ToolCall) -> FunctionModel:
    """Make `calls` on the first turn, then answer with the results joined by '|'."""

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not any(isinstance(m, ModelResponse) for m in messages):
            return list(calls)
        return "|".join(r.content for r in last_results(messages))

    return FunctionModel(respond)


# --- output and history -----------------------------------------------------------------


@pytest.mark.anyio
async def test_output_and_messages() -> None:
    """A run returns the final text and the whole history in order, without system prompts."""

    @tool
    def add(a: int, b: int) -> int:
        return a + b

    agent = Agent(
        name="calc",
        model=ScriptedModel([ToolCall("add", {"a": 2, "b": 3}, "c1"), "The sum is 5."]),
        instructions="Be exact.",
        tools=[add],
    )
    result = await agent.run("What is 2 + 3?")
    assert result.output == "The sum is 5."
    kinds = [type(m).__name__ for m in result.messages]
    assert kinds == ["UserPrompt", "ModelResponse", "ToolReturn", "ModelResponse"]
    assert result.messages[0] == UserPrompt(content="What is 2 + 3?")
    tool_return = result.messages[2]
    assert isinstance(tool_return, ToolReturn)
    assert (tool_return.tool_name, tool_return.tool_call_id, tool_return.content) == ("add", "c1", "5")
    assert result.new_messages() == result.messages


@pytest.mark.anyio
async def test_multi_turn_with_message_history() -> None:
    """`message_history=previous.messages` continues a conversation; `new_messages()` holds only the new turn."""
    requests: list[list[Message]] = []

    def respond(messages: list[Message], info: ModelRequestParameters) -> str:
        requests.append(list(messages))
        prompts = [m.content for m in messages if isinstance(m, UserPrompt)]
        return f"answer {len(prompts)}: {prompts[-1]}"

    agent = Agent(name="chat", model=FunctionModel(respond))
    first = await agent.run("hello")
    second = await agent.run("and again", message_history=first.messages)
    assert first.output == "answer 1: hello"
    assert second.output == "answer 2: and again"
    assert requests[1][: len(first.messages)] == first.messages
    assert second.messages[: len(first.messages)] == first.messages
    new = second.new_messages()
    assert [type(m).__name__ for m in new] == ["UserPrompt", "ModelResponse"]
    assert new[0] == UserPrompt(content="and again")
    assert len(first.messages) == 2  # the first result is not modified by the second run


@pytest.mark.anyio
async def test_a_call_id_reused_in_a_later_turn_gets_a_fresh_id() -> None:
    """A model that reuses an earlier turn's call id gets its call renamed, so each result pairs with exactly one call
    in the history (and the provider never sees the same id twice)."""
    add = tool(lambda a, b: str(a + b), name="add")
    model = ScriptedModel([ToolCall("add", {"a": 1, "b": 1}, "c1"), ToolCall("add", {"a": 2, "b": 2}, "c1"), "done"])
    result = await Agent(name="a", model=model, tools=[add]).run("go")
    ids = [c.id for m in result.messages if isinstance(m, ModelResponse) for c in m.tool_calls]
    assert ids[0] == "c1" and ids[1] not in (None, "", "c1")
    assert [(m.tool_call_id, m.content) for m in result.messages if isinstance(m, ToolReturn)] == [
        (ids[0], "2"),
        (ids[1], "4"),
    ]


@pytest.mark.anyio
async def test_a_response_mixing_calls_with_and_without_ids_runs_every_call() -> None:
    """Calls with and without ids in one response all run; the missing id is assigned and its result pairs with it."""
    add = tool(lambda a, b: str(a + b), name="add")
    calls = [ToolCall("add", {"a": 1, "b": 1}, "c1"), ToolCall("add", {"a": 2, "b": 2})]
    result = await Agent(name="a", model=ScriptedModel([calls, "done"]), tools=[add]).run("go")
    response = result.messages[1]
    assert isinstance(response, ModelResponse)
    (first, second) = [c.id for c in response.tool_calls]
    assert first == "c1" and second not in (None, "", "c1")
    assert [(m.tool_call_id, m.content) for m in result.messages if isinstance(m, ToolReturn)] == [
        ("c1", "2"),
        (second, "4"),
    ]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("response", "problem"),
    [
        (ModelResponse(text="hi", usage=None), "whose usage is not a Usage"),  # type: ignore[arg-type]
        (ModelResponse(text=b"hi"), "whose text is not a str or None"),  # type: ignore[arg-type]
        (ModelResponse(tool_calls=[{"name": "add", "arguments": "{}"}]), "tool calls that are not ToolCall"),  # type: ignore[list-item]
        (ModelResponse(tool_calls=[ToolCall(7, {})]), "tool calls that are not ToolCall"),  # type: ignore[arg-type]
        (ModelResponse(tool_calls=[ToolCall("add", 7)]), "tool calls that are not ToolCall"),  # type: ignore[arg-type]
        (ModelResponse(tool_calls=[ToolCall("add", {}, 7)]), "tool calls that are not ToolCall"),  # type: ignore[arg-type]
        (ModelResponse(tool_calls=(ToolCall("add", {}),)), "tool calls that are not ToolCall"),  # type: ignore[arg-type]
        ("plain text", "returned a str instead of a ModelResponse"),
    ],
)
async def test_a_malformed_model_response_is_unexpected_model_behavior(response: Any, problem: str) -> None:
    """A model (e.g. a custom Model class) that returns a malformed response fails the run with an error naming the
    model and what is wrong, before any tool runs."""
    ran: list[int] = []

    @tool
    def add() -> str:
        ran.append(1)
        return "ok"

    class Broken(FunctionModel):
        async def request(self, *args: Any, **kwargs: Any) -> Any:
            return response

    agent = Agent(name="a", model=Broken(lambda m, i: "unused", name="broken"), tools=[add])
    with pytest.raises(UnexpectedModelBehavior, match=f"Model 'broken' .*{problem}"):
        await agent.run("go")
    assert ran == []


@pytest.mark.anyio
@pytest.mark.parametrize("history", ["hello", b"hello", iter([]), set()], ids=["str", "bytes", "iterator", "set"])
async def test_message_history_must_be_a_list_of_cogent_messages(history: Any) -> None:
    """A string, bytes, a generator or a set as `message_history` is refused with a UserError saying what to pass;
    so is a list holding provider-style dicts."""
    agent = Agent(name="a", model="test")
    with pytest.raises(UserError, match=r"message_history=\w+; pass a list of cogent messages"):
        await agent.run("go", message_history=history)
    with pytest.raises(UserError, match=r"message_history\[1\] = dict; pass cogent messages"):
        await agent.run("go", message_history=[UserPrompt(content="hi"), {"role": "assistant", "content": "hello"}])


@pytest.mark.anyio
async def test_an_assigned_call_id_never_collides_with_one_the_model_chose() -> None:
    """When the model itself uses an id of the form the run assigns (`call_<n>`), the id assigned to a call without
    one is still unique in the history."""
    add = tool(lambda a, b: str(a + b), name="add")
    calls = [ToolCall("add", {"a": 1, "b": 1}, "call_1"), ToolCall("add", {"a": 2, "b": 2})]
    result = await Agent(name="a", model=ScriptedModel([calls, "done"]), tools=[add]).run("go")
    response = result.messages[1]
    assert isinstance(response, ModelResponse)
    ids = [c.id for c in response.tool_calls]
    assert ids[0] == "call_1" and ids[1] is not None and ids[1] != "call_1"
    assert [m.tool_call_id for m in result.messages if isinstance(m, ToolReturn)] == ids


@pytest.mark.anyio
async def test_max_turns_exceeded() -> None:
    """A model that never stops calling tools hits `max_turns` and the run raises MaxTurnsExceeded."""
    calls: list[int] = []

    @tool
    def again() -> str:
        calls.append(1)
        return "again"

    agent = Agent(name="loop", model=FunctionModel(lambda m, i: ToolCall("again", {})), tools=[again], max_turns=3)
    with pytest.raises(MaxTurnsExceeded, match=r"'loop' made 3 model requests"):
        await agent.run("go")
    assert len(calls) == 3


# --- retries and errors -----------------------------------------------------------------


@pytest.mark.anyio
async def test_model_retry_sends_a_retry_prompt_then_succeeds() -> None:
    """`raise ModelRetry(msg)` sends `msg` to the model as a retry prompt; the corrected call succeeds."""
    seen_retry: list[RetryPrompt] = []

    @tool
    def find_user(name: str) -> str:
        if name != "Alice":
            raise ModelRetry(f"No user named {name!r}; try 'Alice'.")
        return "user 1"

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        results = last_results(messages)
        if not results:
            return ToolCall("find_user", {"name": "alice"})
        if isinstance(results[0], RetryPrompt):
            seen_retry.append(results[0])
            return ToolCall("find_user", {"name": "Alice"})
        return results[0].content

    agent = Agent(name="a", model=FunctionModel(respond), tools=[find_user])
    result = await agent.run("find alice")
    assert result.output == "user 1"
    assert seen_retry[0].content == "No user named 'alice'; try 'Alice'."
    assert seen_retry[0].tool_name == "find_user"
    assert [e.kind for e in result.trace] == ["model_request", "retry", "model_request", "tool_call", "model_request"]


@pytest.mark.anyio
async def test_argument_validation_error_is_a_retry_prompt() -> None:
    """Arguments that fail validation never reach the tool; the model sees what was wrong."""
    ran: list[int] = []

    @tool
    def set_age(age: int) -> str:
        ran.append(age)
        return f"age={age}"

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        results = last_results(messages)
        if not results:
            return ToolCall("set_age", '{"age": "old"}')
        if isinstance(results[0], RetryPrompt):
            return ToolCall("set_age", {"age": 42})
        return results[0].content

    agent = Agent(name="a", model=FunctionModel(respond), tools=[set_age])
    result = await agent.run("go")
    assert result.output == "age=42"
    assert ran == [42]
    retry = next(m for m in result.messages if isinstance(m, RetryPrompt))
    assert "set_age" in retry.content and "age" in retry.content and "integer" in retry.content


@pytest.mark.anyio
async def test_malformed_json_arguments_are_a_retry_prompt() -> None:
    """Arguments that are not even JSON become a retry prompt, not a crash."""

    @tool
    def ping(n: int) -> str:
        return "pong"

    agent = Agent(
        name="a", model=ScriptedModel([ToolCall("ping", "{not json"), ToolCall("ping", {"n": 1}), "done"]), tools=[ping]
    )
    result = await agent.run("go")
    assert result.output == "done"
    assert any(isinstance(m, RetryPrompt) and "ping" in m.content for m in result.messages)


@pytest.mark.anyio
async def test_tool_retries_exceeded() -> None:
    """A tool that keeps asking for retries exhausts `tool_retries` and the run raises ToolRetriesExceeded."""
    attempts: list[int] = []

    @tool
    def flaky() -> str:
        attempts.append(1)
        raise ModelRetry("try again")

    agent = Agent(name="a", model=FunctionModel(lambda m, i: ToolCall("flaky", {})), tools=[flaky], tool_retries=2)
    with pytest.raises(ToolRetriesExceeded, match=r"'flaky'.*3 times.*2 retries"):
        await agent.run("go")
    assert len(attempts) == 3


@pytest.mark.anyio
async def test_tool_exception_becomes_error_result() -> None:
    """A tool's exception becomes `Error: <message>` for the model and a trace event with the exception."""

    @tool
    def explode(x: int) -> str:
        raise ValueError(f"cannot handle {x}")

    agent = Agent(name="a", model=echo_model(ToolCall("explode", {"x": 7})), tools=[explode])
    result = await agent.run("go")
    assert result.output == "Error: cannot handle 7"
    error = next(e for e in result.trace if e.kind == "tool_error")
    assert isinstance(error.error, ValueError) and error.tool_name == "explode"


@pytest.mark.anyio
async def test_tool_exception_propagates_with_tool_errors_raise() -> None:
    """With `tool_errors="raise"` the tool's own exception propagates out of `run()`."""

    @tool
    def explode() -> str:
        raise KeyError("missing")

    agent = Agent(name="a", model=echo_model(ToolCall("explode", {})), tools=[explode], tool_errors="raise")
    with pytest.raises(KeyError, match="missing"):
        await agent.run("go")


@pytest.mark.anyio
async def test_unknown_tool_name_is_a_retry_prompt() -> None:
    """A call to a tool that does not exist gets a retry prompt listing the available tools."""

    @tool
    def real() -> str:
        return "real result"

    agent = Agent(
        name="a", model=ScriptedModel([ToolCall("imaginary", {}), ToolCall("real", {}), "done"]), tools=[real]
    )
    result = await agent.run("go")
    assert result.output == "done"
    retry = result.messages[2]
    assert isinstance(retry, RetryPrompt)
    assert retry.content == "Unknown tool name: 'imaginary'. Available tools: real."


# --- the context is injected, never taken from the model -----------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("param", ["ctx", "deps"])
async def test_model_cannot_supply_the_context_parameter(param: str) -> None:
    """A key named like the context parameter is a validation error; the tool only ever gets the real context."""
    seen: list[Any] = []

    def body(x: int, **injected: Any) -> str:
        seen.append(injected[param])
        return "ok"

    if param == "ctx":

        @tool
        def guarded(x: int, ctx: AppContext) -> str:
            return body(x, ctx=ctx)

    else:

        @tool
        def guarded(x: int, deps: AppContext) -> str:
            return body(x, deps=deps)

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        results = last_results(messages)
        if not results:
            return ToolCall("guarded", {"x": 1, param: {"user_id": "attacker"}})
        if isinstance(results[0], RetryPrompt):
            return ToolCall("guarded", {"x": 1})
        return "done"

    agent = Agent(name="a", model=FunctionModel(respond), tools=[guarded])
    result = await agent.run("go", context=AppContext(user_id="real-user"))
    retry = next(m for m in result.messages if isinstance(m, RetryPrompt))
    assert param in retry.content
    assert len(seen) == 1
    assert seen[0] is result.context and seen[0].user_id == "real-user"


# --- concurrency --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_tool_calls_of_one_response_run_concurrently() -> None:
    """Two calls in one response are both running at once (each waits for the other; serial execution deadlocks)."""
    inside = {"a": anyio.Event(), "b": anyio.Event()}

    @tool
    async def meet(me: str, other: str) -> str:
        inside[me].set()
        await inside[other].wait()
        return f"{me} met {other}"

    agent = Agent(
        name="a",
        model=echo_model(ToolCall("meet", {"me": "a", "other": "b"}), ToolCall("meet", {"me": "b", "other": "a"})),
        tools=[meet],
    )
    with anyio.fail_after(5):
        result = await agent.run("go")
    assert result.output == "a met b|b met a"


@pytest.mark.anyio
async def test_threaded_sync_tools_run_concurrently() -> None:
    """Two sync tools of one response run in two worker threads at the same time."""
    barrier = threading.Barrier(2, timeout=5)

    @tool
    def wait_for_peer(name: str) -> str:
        barrier.wait()
        return name

    agent = Agent(
        name="a",
        model=echo_model(ToolCall("wait_for_peer", {"name": "x"}), ToolCall("wait_for_peer", {"name": "y"})),
        tools=[wait_for_peer],
    )
    assert (await agent.run("go")).output == "x|y"


@pytest.mark.anyio
async def test_parallel_tool_calls_false_runs_sequentially() -> None:
    """With `parallel_tool_calls=False` one call finishes before the next starts, in the model's order."""
    log: list[str] = []
    offered: list[bool] = []

    @tool
    async def step(name: str) -> str:
        log.append(f"start {name}")
        await anyio.sleep(0.01)
        log.append(f"end {name}")
        return name

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        offered.append(info.parallel_tool_calls)
        if not any(isinstance(m, ModelResponse) for m in messages):
            return [ToolCall("step", {"name": n}) for n in ("a", "b", "c")]
        return "|".join(r.content for r in last_results(messages))

    agent = Agent(name="a", model=FunctionModel(respond), tools=[step], parallel_tool_calls=False)
    assert (await agent.run("go")).output == "a|b|c"
    assert log == ["start a", "end a", "start b", "end b", "start c", "end c"]
    assert offered == [False, False]


@pytest.mark.anyio
async def test_results_keep_call_order_when_concurrent() -> None:
    """Concurrent calls finishing in reverse order still return their results in the model's call order."""

    @tool
    async def wait(seconds: float, label: str) -> str:
        await anyio.sleep(seconds)
        return label

    model = echo_model(
        ToolCall("wait", {"seconds": 0.05, "label": "slow"}), ToolCall("wait", {"seconds": 0, "label": "fast"})
    )
    agent = Agent(name="a", model=model, tools=[wait])
    result = await agent.run("go")
    assert result.output == "slow|fast"


# --- results, usage, trace ----------------------------------------------------------------


@pytest.mark.anyio
async def test_non_string_results_are_json() -> None:
    """Strings go to the model as they are; other results are serialized to JSON."""

    class Point(pydantic.BaseModel):
        x: int
        y: int

    @tool
    def structured() -> dict[str, Any]:
        return {"items": [1, 2], "ok": True, "none": None}

    @tool
    def model_result() -> Point:
        return Point(x=1, y=2)

    @tool
    def number() -> int:
        return 42

    @tool
    def text() -> str:
        return '{"not": "re-encoded"}'

    model = echo_model(
        ToolCall("structured", {}), ToolCall("model_result", {}), ToolCall("number", {}), ToolCall("text", {})
    )
    agent = Agent(name="a", model=model, tools=[structured, model_result, number, text])
    result = await agent.run("go")
    contents = [m.content for m in result.messages if isinstance(m, ToolReturn)]
    assert json.loads(contents[0]) == {"items": [1, 2], "ok": True, "none": None}
    assert json.loads(contents[1]) == {"x": 1, "y": 2}
    assert contents[2] == "42"
    assert contents[3] == '{"not": "re-encoded"}'


@pytest.mark.anyio
async def test_usage_counts_requests_tokens_and_tool_calls_over_the_tree() -> None:
    """Usage sums model requests, reported tokens and tool calls (delegations included) over all agents."""

    @tool
    def leaf() -> str:
        return "leaf"

    def respond(messages: list[Message], info: ModelRequestParameters) -> ModelResponse:
        first = not any(isinstance(m, ModelResponse) for m in messages)
        usage = Usage(input_tokens=10, output_tokens=3)
        if info.agent_name == "top" and first:
            return ModelResponse(tool_calls=[ToolCall("leaf", {}), ToolCall("sub", {"task": "t"})], usage=usage)
        if info.agent_name == "sub" and first:
            return ModelResponse(tool_calls=[ToolCall("leaf", {})], usage=usage)
        return ModelResponse(text="done", usage=usage)

    sub = Agent(name="sub", model=FunctionModel(respond), tools=[leaf])
    top = Agent(name="top", model=FunctionModel(respond), tools=[leaf], subagents=[sub])
    result = await top.run("go")
    assert result.usage == Usage(requests=4, input_tokens=40, output_tokens=12, tool_calls=3)
    assert result.usage.total_tokens == 52


@pytest.mark.anyio
async def test_trace_records_events_in_order_with_delegations_nested() -> None:
    """The trace lists model requests, tool calls and delegations in order; the subagent's events nest."""

    @tool
    def lookup() -> str:
        return "found"

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        turn = sum(isinstance(m, ModelResponse) for m in messages)
        if info.agent_name == "helper":
            return ToolCall("lookup", {}) if turn == 0 else "helped"
        return (
            [ToolCall("lookup", {}), ToolCall("lookup", {}), ToolCall("helper", {"task": "t"})][turn]
            if turn < 3
            else "end"
        )

    helper = Agent(name="helper", model=FunctionModel(respond), tools=[lookup])
    main = Agent(name="main", model=FunctionModel(respond), tools=[lookup], subagents=[helper])
    result = await main.run("go")
    top = [(e.kind, e.agent, e.tool_name, e.depth) for e in result.trace]
    assert top == [
        ("model_request", "main", None, 0),
        ("tool_call", "main", "lookup", 0),
        ("model_request", "main", None, 0),
        ("tool_call", "main", "lookup", 0),
        ("model_request", "main", None, 0),
        ("delegation", "helper", "helper", 1),
        ("model_request", "main", None, 0),
    ]
    delegation = result.trace[5]
    assert [(e.kind, e.agent, e.depth) for e in delegation.children] == [
        ("model_request", "helper", 1),
        ("tool_call", "helper", 1),
        ("model_request", "helper", 1),
    ]
    assert delegation.detail == "helped"
    starts = [e.started for e in result.trace]
    assert starts == sorted(starts)
    assert all(e.duration >= 0 for e in result.trace)


# --- entry points and offline models -----------------------------------------------------


def test_run_sync_from_sync_code() -> None:
    """`run_sync` runs an agent from plain synchronous code."""

    @tool
    def who(ctx: AppContext) -> str:
        return ctx.user_id

    agent = Agent(name="a", model=echo_model(ToolCall("who", {})), tools=[who])
    assert agent.run_sync("go", context=AppContext(user_id="sync-user")).output == "sync-user"


@pytest.mark.anyio
async def test_run_sync_on_the_event_loop_thread_is_a_user_error() -> None:
    """Calling `run_sync` from async code explains to await `run()` instead."""
    agent = Agent(name="a", model="test")
    with pytest.raises(UserError, match=r"await agent\.run"):
        agent.run_sync("go")


@pytest.mark.anyio
async def test_test_model_calls_every_tool_once() -> None:
    """TestModel calls each offered tool once with schema-valid arguments, then summarizes the results."""
    calls: list[tuple[str, Any]] = []

    @tool
    def alpha(name: str, count: int) -> str:
        calls.append(("alpha", (name, count)))
        return "A"

    @tool
    def beta(flag: bool, ctx: AppContext) -> str:
        calls.append(("beta", (flag, ctx.user_id)))
        return "B"

    @tool
    async def gamma(items: list[int], limit: int = 5) -> str:
        calls.append(("gamma", (items, limit)))
        return "C"

    agent = Agent(name="a", model=TestModel(), tools=[alpha, beta, gamma])
    result = await agent.run("go", context=AppContext(user_id="u"))
    assert sorted(name for name, _ in calls) == ["alpha", "beta", "gamma"]
    assert dict(calls)["beta"][1] == "u"
    assert json.loads(result.output) == {"alpha": "A", "beta": "B", "gamma": "C"}
    assert result.usage.tool_calls == 3 and result.usage.requests == 2


@pytest.mark.anyio
async def test_model_string_test() -> None:
    """`model="test"` is a TestModel."""

    @tool
    def only() -> str:
        return "only result"

    agent = Agent(name="a", model="test", tools=[only])
    assert isinstance(agent.model, TestModel)
    assert json.loads((await agent.run("go")).output) == {"only": "only result"}
    with pytest.raises(UserError, match="Unknown model 'nonsense'"):
        Agent(name="b", model="nonsense")


@pytest.mark.anyio
async def test_scripted_model_is_stateless_across_concurrent_runs() -> None:
    """One ScriptedModel serves concurrent runs, each playing the script from the start."""

    @tool
    async def echo(ctx: AppContext) -> str:
        await anyio.lowlevel.checkpoint()
        return ctx.user_id

    agent = Agent(name="a", model=ScriptedModel([ToolCall("echo", {}), "done"]), tools=[echo])
    outputs: dict[str, str] = {}

    async def one(uid: str) -> None:
        result = await agent.run("go", context=AppContext(user_id=uid))
        ret = next(m for m in result.messages if isinstance(m, ToolReturn))
        outputs[uid] = f"{result.output}:{ret.content}"

    async with anyio.create_task_group() as tg:
        for uid in ("u1", "u2", "u3"):
            tg.start_soon(one, uid)
    assert outputs == {"u1": "done:u1", "u2": "done:u2", "u3": "done:u3"}


# --- what happens to each call ---------------------------------------------------------


@pytest.mark.anyio
async def test_every_call_outcome_is_in_the_trace() -> None:
    """An unknown tool, invalid arguments, a ModelRetry, a tool error, approvals and a successful call each leave a
    trace event naming the tool, the call and what happened."""

    @tool
    def add(a: int) -> str:
        return str(a)

    @tool
    def flaky() -> str:
        raise ModelRetry("try later")

    @tool
    def broken() -> str:
        raise RuntimeError("kaput")

    @tool(requires_approval=True)
    def guarded() -> str:
        return "ok"

    @tool(requires_approval=True)
    def denied() -> str:
        return "ok"

    calls = [
        ToolCall("nope", {}, "c1"),
        ToolCall("add", {"a": "x"}, "c2"),
        ToolCall("flaky", {}, "c3"),
        ToolCall("broken", {}, "c4"),
        ToolCall("guarded", {}, "c5"),
        ToolCall("denied", {}, "c6"),
    ]
    agent = Agent(name="a", model=ScriptedModel([calls, "done"]), tools=[add, flaky, broken, guarded, denied])
    result = await agent.run("go", approval_handler=lambda item: item.tool_name == "guarded")
    events = sorted((e.call_id, e.kind, e.tool_name, e.decision) for e in result.trace if e.call_id)
    assert events == [
        ("c1", "retry", "nope", None),
        ("c2", "retry", "add", None),
        ("c3", "retry", "flaky", None),
        ("c4", "tool_error", "broken", None),
        ("c5", "approval", "guarded", "approved"),
        ("c5", "tool_call", "guarded", None),
        ("c6", "approval", "denied", "rejected"),
    ]
    details = {e.call_id: e.detail for e in result.trace if e.kind != "approval"}
    assert (details["c1"], details["c3"], details["c4"], details["c5"]) == (
        "unknown tool",
        "try later",
        "Error: kaput",
        "ok",
    )
    assert details["c2"] is not None and details["c2"].startswith("The arguments for 'add' are invalid")
    for event in result.trace:  # every kind of event has every field set (None where it does not apply)
        assert len([getattr(event, f.name) for f in dataclasses.fields(event)]) == 15  # AttributeError if unset
        assert event.children == [] and event.duration >= 0


@pytest.mark.anyio
async def test_a_failing_call_cancels_the_other_calls_of_its_response() -> None:
    """When a call fails the run (here: its retries are exhausted), the response's other calls are cancelled, not
    waited for; an ON_ERROR interceptor that recovers the run sees in the trace that they did not finish."""
    never = anyio.Event()

    @tool
    async def flaky() -> str:
        await anyio.lowlevel.checkpoint()
        raise ModelRetry("again")

    @tool
    async def waits() -> str:
        await never.wait()
        return "never"

    @interceptor(Phase.ON_ERROR)
    def recover(call: InterceptContext) -> InterceptResult:
        return InterceptResult.stop(f"recovered from {type(call.error).__name__}")

    agent = Agent(
        name="a",
        model=ScriptedModel([[ToolCall("waits", {}, "w"), ToolCall("flaky", {}, "f")], "unused"]),
        tools=[flaky, waits],
        tool_retries=0,
        interceptors=[recover],
    )
    with anyio.fail_after(10):
        result = await agent.run("go")
    assert result.output == "recovered from ToolRetriesExceeded"
    assert [(e.kind, e.detail) for e in result.trace if e.call_id == "w"] == [
        ("tool_error", "Cancelled before it finished.")
    ]


@pytest.mark.anyio
async def test_the_first_call_that_ends_the_run_decides_its_output() -> None:
    """When several calls of one response end the run (each stopped by POST_ACT), the first call's stop is the
    output, whatever order they finish in."""

    second_done = anyio.Event()

    @tool
    async def first() -> str:
        await second_done.wait()  # finishes last
        return "1"

    @tool
    async def second() -> str:
        second_done.set()
        return "2"

    @interceptor(Phase.POST_ACT)
    def stop_each(call: InterceptContext) -> InterceptResult:
        return InterceptResult.stop(f"stopped by {call.tool_name}")

    agent = Agent(
        name="a",
        model=ScriptedModel([[ToolCall("first", {}), ToolCall("second", {})], "unused"]),
        tools=[first, second],
        interceptors=[stop_each],
    )
    assert (await agent.run("go")).output == "stopped by first"


@pytest.mark.anyio
async def test_a_tool_raising_stop_execution_ends_the_run_with_its_response() -> None:
    """A tool may end the whole run by raising StopExecution(response): the response is the run's output."""

    @tool
    def finish(answer: str) -> str:
        raise StopExecution(f"final: {answer}")

    model, requests = FunctionModel(lambda m, i: ToolCall("finish", {"answer": "42"})), None
    agent = Agent(name="a", model=model, tools=[finish])
    result = await agent.run("go")
    assert result.output == "final: 42"
    assert requests is None and result.usage.requests == 1


@pytest.mark.anyio
async def test_a_sync_tool_that_forgets_to_await_a_run_gets_a_user_error() -> None:
    """A sync tool that calls `agent.run(...)` (a coroutine) instead of `run_sync` fails with a UserError saying so,
    whether it reads `.output` from the coroutine or returns the coroutine itself; the coroutine is closed, so
    Python adds no "coroutine ... was never awaited" warning."""
    inner = Agent(name="inner", model=ScriptedModel(["inner answer"]))

    @tool
    def reads_output() -> str:
        return inner.run("task").output  # type: ignore[attr-defined]

    @tool
    def returns_it() -> Any:
        return inner.run("task")

    async def forget() -> None:
        for forgetful, message in ((reads_output, "without awaiting it"), (returns_it, "returned a coroutine")):
            agent = Agent(name="a", model=ScriptedModel([ToolCall(forgetful.name, {}), "done"]), tools=[forgetful])
            with pytest.raises(UserError, match=rf"{forgetful.name!r} .*{message}.*run_sync"):
                await agent.run("go")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        await forget()
        await anyio.lowlevel.checkpoint()  # the event loop drops its last reference to the finished tasks
        gc.collect()  # the exceptions, their tracebacks and any coroutine left unclosed are gone
    assert [str(w.message) for w in caught if "never awaited" in str(w.message)] == []


@pytest.mark.anyio
async def test_a_tool_within_its_timeout_returns_its_value() -> None:
    """A tool with a timeout that finishes in time returns its value as usual."""

    @tool(timeout=30)
    async def quick(x: int) -> int:
        await anyio.lowlevel.checkpoint()
        return x * 2

    agent = Agent(name="a", model=echo_model(ToolCall("quick", {"x": 21})), tools=[quick])
    assert (await agent.run("go")).output == "42"


@pytest.mark.anyio
async def test_arguments_as_json_text_are_validated_like_a_dict() -> None:
    """Arguments sent as JSON text (as providers send them), or as empty text for a tool without parameters, are
    validated like a dict; invalid JSON text is a retry prompt for the model."""

    @tool
    def add(a: int, b: int = 1) -> str:
        return str(a + b)

    @tool
    def ping() -> str:
        return "pong"

    assert add.validate_arguments('{"a": 2, "b": 3}') == {"a": 2, "b": 3}
    assert ping.validate_arguments("") == {}
    model = echo_model(ToolCall("add", '{"a": 2}'), ToolCall("ping", ""), ToolCall("add", '{"a": '))
    result = await Agent(name="a", model=model, tools=[add, ping]).run("go")
    added, pong, invalid = result.output.split("|")
    assert (added, pong) == ("3", "pong")
    assert invalid.startswith("The arguments for 'add' are invalid:\n- (arguments): Invalid JSON")


@pytest.mark.anyio
async def test_current_context_is_the_context_the_call_received() -> None:
    """Inside a retried call `current_context()` is the retry copy the tool receives; a later call of the same turn
    sees the execution's own context again."""
    seen: list[tuple[int, bool, bool]] = []

    @tool
    async def flaky(ctx: RetryContext) -> str:
        seen.append((ctx.retry_count, current_context() is ctx, False))
        if ctx.retry_count == 0:
            raise ModelRetry("again")
        return "ok"

    @tool
    async def probe(ctx: RetryContext) -> str:
        seen.append((ctx.retry_count, current_context() is ctx, True))
        return "probed"

    model = ScriptedModel([ToolCall("flaky", {}), [ToolCall("flaky", {}), ToolCall("probe", {})], "done"])
    agent = Agent(name="a", model=model, tools=[flaky, probe], parallel_tool_calls=False)
    await agent.run("go", context=RetryContext())
    assert seen == [(0, True, False), (1, True, False), (0, True, True)]
