"""Usage accounting and limits, structured output, and dynamic instructions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, assert_type

import pytest
from chat_server import Call, ChatServer, Reply
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from cogent import Agent, RunContext, tool
from cogent.context import ExecutionContext
from cogent.events import FinalResultEvent
from cogent.exceptions import ToolRetriesExceeded, UsageLimitExceeded, UserError
from cogent.messages import Message, ModelResponse, RetryPrompt, ToolCall, messages_to_json
from cogent.models import FunctionModel, ModelRequestParameters, ScriptedModel
from cogent.usage import Usage, UsageLimits

pytestmark = pytest.mark.anyio

CANARY = "canary-93bd21"


@tool
def ping() -> str:
    """Answer pong."""
    return "pong"


def reply(text: str | None = None, *calls: ToolCall, tokens: tuple[int, int] = (0, 0)) -> ModelResponse:
    return ModelResponse(
        text=text, tool_calls=list(calls), usage=Usage(input_tokens=tokens[0], output_tokens=tokens[1])
    )


# --- Usage -----------------------------------------------------------------------------

usages = st.builds(
    Usage,
    requests=st.integers(0, 10**6),
    input_tokens=st.integers(0, 10**9),
    output_tokens=st.integers(0, 10**9),
    tool_calls=st.integers(0, 10**6),
)


@given(usages, usages, usages)
def test_usage_addition_merges_every_counter(a: Usage, b: Usage, c: Usage) -> None:
    """`+` adds each counter, is commutative and associative, and `incr` does the same in place."""
    total = a + b
    assert (total.requests, total.input_tokens, total.output_tokens, total.tool_calls) == (
        a.requests + b.requests,
        a.input_tokens + b.input_tokens,
        a.output_tokens + b.output_tokens,
        a.tool_calls + b.tool_calls,
    )
    assert total.total_tokens == a.total_tokens + b.total_tokens
    assert a + b == b + a
    assert (a + b) + c == a + (b + c)
    assert a + Usage() == a
    inplace = Usage()
    inplace.incr(a)
    inplace.incr(b)
    assert inplace == total


async def test_usage_is_summed_over_the_agent_tree() -> None:
    """Requests, tokens and tool calls of the agent, its subagent and the subagent's subagent add up in the result."""
    leaf = Agent(
        name="leaf", description="Leaf.", model=ScriptedModel([reply("leaf done", tokens=(7, 1))]), tools=[ping]
    )
    middle = Agent(
        name="middle",
        description="Middle.",
        model=ScriptedModel(
            [
                reply(None, ToolCall("ping", {}), ToolCall("leaf", {"task": "go"}), tokens=(20, 4)),
                reply("middle done", tokens=(30, 3)),
            ]
        ),
        tools=[ping],
        subagents=[leaf],
    )
    top = Agent(
        name="top",
        model=ScriptedModel([reply(None, ToolCall("middle", {"task": "go"}), tokens=(100, 10)), reply("top done")]),
        subagents=[middle],
    )
    result = await top.run("Go.")

    assert result.output == "top done"
    assert result.usage == Usage(requests=5, input_tokens=157, output_tokens=18, tool_calls=3)
    own = sum((m.usage for m in result.messages if isinstance(m, ModelResponse)), Usage())
    assert (own.input_tokens, own.output_tokens) == (100, 10)  # the rest came from the subagents


@pytest.mark.parametrize("limit", [1, 2, 4])
async def test_request_limit_is_checked_before_each_request(limit: int) -> None:
    """With `request_limit=n` the model is asked exactly n times, then `UsageLimitExceeded` is raised."""
    calls: list[int] = []

    def always_a_tool(messages: list[Message], info: ModelRequestParameters) -> ToolCall:
        calls.append(1)
        return ToolCall("ping", {})

    agent = Agent(name="looper", model=FunctionModel(always_a_tool), tools=[ping], max_turns=50)
    with pytest.raises(UsageLimitExceeded, match=f"request_limit={limit}"):
        await agent.run("Go.", usage_limits=UsageLimits(request_limit=limit))
    assert len(calls) == limit


async def test_tool_call_limit_is_checked_before_each_tool_call() -> None:
    """With `tool_calls_limit=2` the third tool call is refused before the tool runs."""
    ran: list[str] = []

    @tool
    def work(n: int) -> str:
        """Do work.

        Args:
            n: Which piece.
        """
        ran.append(str(n))
        return "ok"

    model = ScriptedModel([ToolCall("work", {"n": 1}), ToolCall("work", {"n": 2}), ToolCall("work", {"n": 3}), "end"])
    agent = Agent(name="worker", model=model, tools=[work])
    with pytest.raises(UsageLimitExceeded, match="tool_calls_limit=2"):
        await agent.run("Go.", usage_limits=UsageLimits(tool_calls_limit=2))
    assert ran == ["1", "2"]


@pytest.mark.parametrize(
    ("limits", "name"),
    [
        (UsageLimits(input_tokens_limit=50), "input_tokens_limit"),
        (UsageLimits(output_tokens_limit=5), "output_tokens_limit"),
        (UsageLimits(total_tokens_limit=55), "total_tokens_limit"),
    ],
)
async def test_token_limits_stop_the_next_request(limits: UsageLimits, name: str) -> None:
    """Once the reported tokens exceed a token limit, the next request is refused."""
    model = ScriptedModel([reply(None, ToolCall("ping", {}), tokens=(60, 10)), "never asked"])
    with pytest.raises(UsageLimitExceeded, match=name):
        await Agent(name="spender", model=model, tools=[ping]).run("Go.", usage_limits=limits)


async def test_subagents_count_against_the_same_limits() -> None:
    """The subagent's requests are counted with the parent's: the limit is hit inside the subagent."""
    asked: list[str] = []

    def sub_model(messages: list[Message], info: ModelRequestParameters) -> ToolCall:
        asked.append(info.agent_name)
        return ToolCall("ping", {})

    sub = Agent(name="sub", description="Sub.", model=FunctionModel(sub_model), tools=[ping], max_turns=50)
    top = Agent(name="top", model=ScriptedModel([ToolCall("sub", {"task": "go"}), "done"]), subagents=[sub])
    with pytest.raises(UsageLimitExceeded, match="request_limit=3"):
        await top.run("Go.", usage_limits=UsageLimits(request_limit=3))
    assert asked == ["sub", "sub"]  # 1 request by top + 2 by sub = the limit of 3


# --- Structured output -----------------------------------------------------------------


class Order(BaseModel):
    """An order summary."""

    order_id: int
    status: str = Field(description="shipped, pending or cancelled")


async def test_output_type_validates_the_final_result_tool() -> None:
    """The model is offered `final_result` with the output schema, text is not allowed, and `output` is the instance."""
    seen: list[ModelRequestParameters] = []

    def answer(messages: list[Message], info: ModelRequestParameters) -> ToolCall:
        seen.append(info)
        return ToolCall("final_result", {"order_id": 5, "status": "shipped"})

    agent = Agent(name="typed", model=FunctionModel(answer), output_type=Order)
    result = await agent.run("Order 5?")

    assert_type(result.output, Order)
    assert result.output == Order(order_id=5, status="shipped")
    (info,) = seen
    assert info.allow_text_output is False
    (definition,) = info.output_tools
    assert definition.name == "final_result"
    assert definition.parameters_json_schema == Order.model_json_schema()
    assert info.tools == []


async def test_a_structured_agent_runs_its_tools_before_the_final_answer() -> None:
    """With `output_type`, the model's ordinary tool calls run as usual; `final_result` ends the run."""
    looked_up: list[int] = []

    @tool
    def lookup(order_id: int) -> str:
        looked_up.append(order_id)
        return "shipped"

    model = ScriptedModel(
        [ToolCall("lookup", {"order_id": 5}), ToolCall("final_result", {"order_id": 5, "status": "shipped"})]
    )
    result = await Agent(name="typed", model=model, output_type=Order, tools=[lookup]).run("Order 5?")
    assert (result.output, looked_up) == (Order(order_id=5, status="shipped"), [5])


async def test_final_result_is_an_unknown_tool_for_a_text_agent() -> None:
    """An agent without `output_type` has no `final_result` tool: a model calling it gets an unknown-tool retry."""
    model = ScriptedModel([ToolCall("final_result", {"order_id": 5}), "It shipped."])
    result = await Agent(name="plain", model=model).run("Order 5?")
    assert result.output == "It shipped."
    retry = result.messages[2]
    assert isinstance(retry, RetryPrompt) and retry.content.startswith("Unknown tool name: 'final_result'")


async def test_invalid_output_is_sent_back_and_retried() -> None:
    """A final answer that fails validation goes back to the model with the field errors, and the retry succeeds."""
    retries: list[RetryPrompt] = []

    def answer(messages: list[Message], info: ModelRequestParameters) -> ToolCall:
        if isinstance(messages[-1], RetryPrompt):
            retries.append(messages[-1])
            return ToolCall("final_result", {"order_id": 5, "status": "pending"})
        return ToolCall("final_result", {"order_id": "five"})

    result = await Agent(name="typed", model=FunctionModel(answer), output_type=Order).run("Order 5?")

    assert result.output == Order(order_id=5, status="pending")
    (retry,) = retries
    assert retry.tool_name == "final_result" and retry.tool_call_id is not None
    assert "order_id" in retry.content and "status" in retry.content


async def test_output_retries_are_bounded() -> None:
    """A model that never produces a valid answer ends the run with `ToolRetriesExceeded`."""
    model = ScriptedModel([ToolCall("final_result", {"order_id": "x"})] * 3)
    with pytest.raises(ToolRetriesExceeded, match="final answer"):
        await Agent(name="typed", model=model, output_type=Order, tool_retries=1).run("Order?")


async def test_plain_text_is_refused_when_output_is_structured() -> None:
    """A text answer with a structured `output_type` is answered with a request to call `final_result`."""
    model = ScriptedModel(["It shipped.", ToolCall("final_result", {"order_id": 1, "status": "shipped"})])
    result = await Agent(name="typed", model=model, output_type=Order).run("Order 1?")
    assert result.output.status == "shipped"
    retry = result.messages[2]
    assert isinstance(retry, RetryPrompt)
    assert retry.tool_call_id is None and "final_result" in retry.content


@pytest.mark.parametrize(
    ("output_type", "value"), [(int, 42), (list[str], ["a", "b"]), (bool, True), (list[Order], [])]
)
async def test_non_object_outputs_are_wrapped_in_response(output_type: Any, value: Any) -> None:
    """Non-object output types are offered as `{"response": ...}` and unwrapped into `output`."""
    seen: list[dict[str, Any]] = []

    def answer(messages: list[Message], info: ModelRequestParameters) -> ToolCall:
        seen.append(info.output_tools[0].parameters_json_schema)
        return ToolCall("final_result", json.dumps({"response": value}))

    result = await Agent(name="typed", model=FunctionModel(answer), output_type=output_type).run("Go.")
    assert result.output == value
    assert type(result.output) is type(value)
    (schema,) = seen
    assert schema["type"] == "object" and schema["required"] == ["response"]
    assert list(schema["properties"]) == ["response"]


@pytest.mark.parametrize("streaming", [False, True])
async def test_structured_output_with_the_openai_model(server: ChatServer, streaming: bool) -> None:
    """Over Chat Completions the output tool is offered with `tool_choice="required"` and its arguments validated."""
    server.script = [
        Reply(tool_calls=[Call(name="final_result", arguments={"order_id": 8, "status": "cancelled"})]),
    ]
    agent = Agent(name="typed", model=server.model(), output_type=Order)
    if streaming:
        async with agent.run_stream("Order 8?") as stream:
            events = [e async for e in stream]
        final = events[-1]
        assert isinstance(final, FinalResultEvent)
        output = final.result.output
    else:
        output = (await agent.run("Order 8?")).output
    assert output == Order(order_id=8, status="cancelled")
    (request,) = server.requests
    assert request["tool_choice"] == "required"
    assert request["tools"][0]["function"]["name"] == "final_result"
    assert request["tools"][0]["function"]["parameters"] == Order.model_json_schema()


# --- Dynamic instructions --------------------------------------------------------------


@dataclass
class UserContext(ExecutionContext):
    """A context with one field meant for the prompt and secrets that are not."""

    display_name: str
    password: str


def user_context() -> UserContext:
    return UserContext(
        display_name="Ada",
        password=f"{CANARY}-password",
        query=f"{CANARY}-query",
        metadata={"token": f"{CANARY}-metadata"},
        task_id=f"{CANARY}-task",
    )


def instructions_sync(ctx: UserContext) -> str:
    return f"Address the user as {ctx.display_name}."


async def instructions_async(ctx: UserContext) -> str:
    return f"Address the user as {ctx.display_name}."


@pytest.mark.parametrize("instructions", [instructions_sync, instructions_async])
async def test_dynamic_instructions_reach_the_request_and_nothing_else_does(instructions: Any) -> None:
    """A sync or async instructions callable gets the context; only its text reaches the model."""
    captured: list[tuple[str | None, str]] = []

    def answer(messages: list[Message], info: ModelRequestParameters) -> str:
        captured.append((info.instructions, messages_to_json(messages)))
        return "Hello Ada."

    agent = Agent(name="greeter", model=FunctionModel(answer), instructions=instructions, context_type=UserContext)
    assert (await agent.run("Hi!", context=user_context())).output == "Hello Ada."
    ((text, history),) = captured
    assert text == "Address the user as Ada."
    assert CANARY not in history


async def test_dynamic_instructions_see_each_agents_own_context() -> None:
    """A subagent's instructions callable receives the child context (its own depth and task id)."""
    captured: dict[str, str | None] = {}

    def answer(messages: list[Message], info: ModelRequestParameters) -> ToolCall | str:
        captured[info.agent_name] = info.instructions
        if info.agent_name == "lead" and len(messages) == 1:
            return ToolCall("helper", {"task": "help"})
        return "done"

    def describe(ctx: ExecutionContext) -> str:
        return f"You are at depth {ctx.depth}."

    helper = Agent(name="helper", description="Helps.", model=FunctionModel(answer), instructions=describe)
    lead = Agent(name="lead", model=FunctionModel(answer), instructions=describe, subagents=[helper])
    await lead.run("Go.", context=ExecutionContext())
    assert captured == {"lead": "You are at depth 0.", "helper": "You are at depth 1."}


async def test_dynamic_instructions_over_the_openai_model(server: ChatServer) -> None:
    """Over Chat Completions the callable's text is the leading system message and no context data is sent."""
    server.script = [Reply(text="Hello Ada.")]
    agent = Agent(name="greeter", model=server.model(), instructions=instructions_async, context_type=UserContext)
    await agent.run("Hi!", context=user_context())
    (request,) = server.requests
    assert request["messages"] == [
        {"role": "system", "content": "Address the user as Ada."},
        {"role": "user", "content": "Hi!"},
    ]
    assert CANARY not in server.raw[0]


def test_instructions_without_a_context_parameter() -> None:
    """An instructions callable without a context parameter is called with nothing."""
    captured: list[str | None] = []

    def answer(messages: list[Message], info: ModelRequestParameters) -> str:
        captured.append(info.instructions)
        return "ok"

    agent = Agent(name="plain", model=FunctionModel(answer), instructions=lambda: "Be brief.")
    agent.run_sync("Hi", context=RunContext(metadata={"secret": CANARY}))
    assert captured == ["Be brief."]


def test_an_instructions_callable_with_parameters_besides_the_context_is_a_user_error() -> None:
    """An instructions callable is called with the run context only: one that needs more is refused when the agent is
    built, naming its parameters."""

    def greet(ctx: RunContext, name: str) -> str:
        return f"Greet {name}."

    with pytest.raises(UserError, match=r"Agent 'greeter' instructions must take 0 parameter\(s\).*takes 1 \(name\)"):
        Agent(name="greeter", model="test", instructions=greet)
