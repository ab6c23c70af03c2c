"""`OpenAIModel` with the real `openai` SDK against a local Chat Completions server.

The server (`tests/chat_server.py`) listens on 127.0.0.1 in a thread, so these tests
run on both anyio backends: the SDK's HTTP client (httpx2/httpcore2 over anyio) works
on asyncio and on trio.
"""

from __future__ import annotations

import importlib
import json
import socket
import sys
import threading
from dataclasses import dataclass
from typing import Any

import anyio
import openai
import pytest
from chat_server import Call, ChatServer, ErrorReply, Reply
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cogent import Agent, tool
from cogent.context import ExecutionContext
from cogent.events import FinalResultEvent, TextDeltaEvent, ToolCallEvent, ToolResultEvent
from cogent.exceptions import ModelAPIError, ModelRetry, UserError
from cogent.messages import ModelResponse, ToolCall, ToolReturn
from cogent.models import ModelRequestParameters, TextDelta, infer_model
from cogent.models.openai import OpenAIModel, OpenAISettings

pytestmark = pytest.mark.anyio

CANARY = "canary-5e1f0c"


@dataclass
class ShopContext(ExecutionContext):
    """A context with a secret in every field the tests can fill."""

    user_id: str
    api_token: str


def secret_context() -> ShopContext:
    return ShopContext(
        user_id=f"{CANARY}-user",
        api_token=f"{CANARY}-token",
        query=f"{CANARY}-query",
        metadata={"session": f"{CANARY}-metadata", f"{CANARY}-key": 1},
        task_id=f"{CANARY}-task",
    )


@tool
def lookup_order(ctx: ShopContext, order_id: int) -> str:
    """Look up an order of the current user.

    Args:
        order_id: The order number.
    """
    return f"order {order_id} of {ctx.user_id[-4:]}: shipped"


async def test_tool_calling_run_end_to_end(server: ChatServer) -> None:
    """A tool call from the server runs with the injected context and its result goes back in the next request."""
    server.script = [
        Reply(tool_calls=[Call(name="lookup_order", arguments={"order_id": 42}, id="call_a")], input_tokens=50),
        Reply(text="Order 42 has shipped.", input_tokens=80, output_tokens=7),
    ]
    agent = Agent(name="shop", model=server.model(), instructions="Help with orders.", tools=[lookup_order])
    result = await agent.run("Where is order 42?", context=secret_context())

    assert result.output == "Order 42 has shipped."
    first, second = server.requests
    assert first["model"] == "fake-model"
    assert first["messages"] == [
        {"role": "system", "content": "Help with orders."},
        {"role": "user", "content": "Where is order 42?"},
    ]
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": lookup_order.definition.description,
                "parameters": lookup_order.definition.parameters_json_schema,
            },
        }
    ]
    assert "ctx" not in json.dumps(first["tools"])
    assert first["parallel_tool_calls"] is True
    assert "tool_choice" not in first
    assert second["messages"][2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "lookup_order", "arguments": '{"order_id": 42}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "order 42 of user: shipped"},
    ]
    assert result.usage.requests == 2
    assert (result.usage.input_tokens, result.usage.output_tokens) == (130, 12)
    responses = [m for m in result.messages if isinstance(m, ModelResponse)]
    assert [r.model_name for r in responses] == ["fake-model", "fake-model"]
    assert responses[0].tool_calls == [ToolCall("lookup_order", '{"order_id": 42}', "call_a")]


async def test_several_tool_calls_per_response(server: ChatServer) -> None:
    """Every tool call of one response runs and each result answers its own call id, in order."""
    server.script = [
        Reply(
            tool_calls=[
                Call(name="lookup_order", arguments={"order_id": 1}, id="c1"),
                Call(name="lookup_order", arguments={"order_id": 2}, id="c2"),
                Call(name="lookup_order", arguments={"order_id": 3}, id="c3"),
            ]
        ),
        Reply(text="All shipped."),
    ]
    agent = Agent(name="shop", model=server.model(), tools=[lookup_order])
    result = await agent.run("Check 1, 2 and 3.", context=secret_context())

    assert result.output == "All shipped."
    assert result.usage.tool_calls == 3
    messages = server.requests[1]["messages"]
    assert [c["id"] for c in messages[1]["tool_calls"]] == ["c1", "c2", "c3"]
    assert [(m["role"], m["tool_call_id"], m["content"]) for m in messages[2:]] == [
        ("tool", "c1", "order 1 of user: shipped"),
        ("tool", "c2", "order 2 of user: shipped"),
        ("tool", "c3", "order 3 of user: shipped"),
    ]


async def test_streaming_end_to_end_over_sse(server: ChatServer) -> None:
    """`run_stream` over SSE yields tool events, several text deltas and the result, with streamed usage."""
    server.script = [
        Reply(
            tool_calls=[
                Call(name="lookup_order", arguments={"order_id": 7}, id="s1"),
                Call(name="lookup_order", arguments={"order_id": 8}, id="s2"),
            ],
            input_tokens=30,
            output_tokens=9,
        ),
        Reply(text="Orders 7 and 8 have both shipped.", input_tokens=60, output_tokens=11),
    ]
    agent = Agent(name="shop", model=server.model(), tools=[lookup_order], parallel_tool_calls=False)
    async with agent.run_stream("Check 7 and 8.", context=secret_context()) as stream:
        events = [event async for event in stream]

    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.call_id, json.loads(c.arguments)) for c in calls] == [("s1", {"order_id": 7}), ("s2", {"order_id": 8})]
    assert [e.result for e in events if isinstance(e, ToolResultEvent)] == [
        "order 7 of user: shipped",
        "order 8 of user: shipped",
    ]
    deltas = [e.text for e in events if isinstance(e, TextDeltaEvent)]
    assert len(deltas) > 1
    assert "".join(deltas) == "Orders 7 and 8 have both shipped."
    final = events[-1]
    assert isinstance(final, FinalResultEvent)
    assert final.result.output == "Orders 7 and 8 have both shipped."
    assert (final.result.usage.input_tokens, final.result.usage.output_tokens) == (90, 20)
    for request in server.requests:
        assert request["stream"] is True
        assert request["stream_options"] == {"include_usage": True}
    assert server.requests[0]["parallel_tool_calls"] is False


async def test_stream_delivers_text_before_the_response_ends(server: ChatServer) -> None:
    """The first text delta reaches the caller while the server still holds back the rest of the stream."""
    release = threading.Event()
    server.script = [Reply(text="first chunk, then the rest", pause=release)]
    agent = Agent(name="talker", model=server.model())
    deltas: list[str] = []
    async with agent.run_stream("Talk.") as stream:
        async for event in stream:
            if isinstance(event, TextDeltaEvent):
                deltas.append(event.text)
                release.set()  # the server sends the rest only now
            elif isinstance(event, FinalResultEvent):
                assert event.result.output == "first chunk, then the rest"
    assert server.pauses_released == [True]  # the server did not time out waiting for the caller
    assert "".join(deltas) == "first chunk, then the rest"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40),
    args=st.lists(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=8), max_size=3), max_size=3),
    chunk_size=st.integers(1, 7),
)
async def test_streamed_response_equals_the_plain_response(
    server: ChatServer, text: str, args: list[dict[str, Any]], chunk_size: int
) -> None:
    """Whatever the chunking, the streamed response assembles to the same text and tool calls as the plain one."""
    calls = [Call(name=f"tool_{i}", arguments=a, id=f"id_{i}") for i, a in enumerate(args)]
    server.script = [Reply(text=text or None, tool_calls=calls, chunk_size=chunk_size)] * 2
    model = server.model()
    params = ModelRequestParameters(agent_name="prop")
    plain = await model.request([], params)
    items = [item async for item in model.request_stream([], params)]

    streamed = items[-1]
    assert isinstance(streamed, ModelResponse)
    assert all(isinstance(i, TextDelta) for i in items[:-1])
    assert "".join(i.text for i in items[:-1] if isinstance(i, TextDelta)) == (text or "")
    assert streamed.text == plain.text
    assert streamed.tool_calls == plain.tool_calls
    assert [json.loads(c.arguments_json()) for c in streamed.tool_calls] == args
    assert streamed.usage == plain.usage


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("status", [400, 500])
async def test_provider_error_is_a_clear_model_api_error(server: ChatServer, status: int, streaming: bool) -> None:
    """An HTTP error with a JSON body becomes `ModelAPIError` with the provider's message and status code."""
    server.script = [ErrorReply(status=status, message="The model `fake-model` does not exist.")]
    agent = Agent(name="shop", model=server.model(max_retries=0))
    with pytest.raises(ModelAPIError) as info:
        if streaming:
            async with agent.run_stream("Hi") as stream:
                async for _ in stream:
                    pass
        else:
            await agent.run("Hi")
    assert info.value.status_code == status
    assert "The model `fake-model` does not exist." in str(info.value)
    assert server.base_url in str(info.value)
    assert isinstance(info.value.__cause__, openai.APIStatusError)
    assert len(server.requests) == 1  # max_retries=0: no SDK retry


async def test_sdk_retries_are_configurable(server: ChatServer) -> None:
    """`OpenAISettings(max_retries=n)` lets the SDK retry a 500 and the run succeeds."""
    server.script = [ErrorReply(status=500, message="overloaded", retry_after_ms=1), Reply(text="recovered")]
    agent = Agent(name="shop", model=server.model(max_retries=1))
    result = await agent.run("Hi")
    assert result.output == "recovered"
    assert len(server.requests) == 2
    assert result.usage.requests == 1  # one model request for the run; the retry is the SDK's


async def test_connection_error_is_a_model_api_error() -> None:
    """A server that cannot be reached gives `ModelAPIError` without a status code."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    model = OpenAIModel(
        "fake-model", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", settings=OpenAISettings(max_retries=0)
    )
    with pytest.raises(ModelAPIError, match="could not be reached") as info:
        await Agent(name="shop", model=model).run("Hi")
    assert info.value.status_code is None
    assert isinstance(info.value.__cause__, openai.APIConnectionError)


async def test_requests_contain_no_context_data(server: ChatServer) -> None:
    """No context field or metadata value (of the agent or its subagent) appears in any recorded request."""

    @tool
    def note(ctx: ShopContext, text: str) -> str:
        """Store a note.

        Args:
            text: The note.
        """
        ctx.metadata["note"] = text
        return "stored"

    helper = Agent(name="helper", model=server.model(), description="Takes notes.", tools=[note])
    agent = Agent(name="shop", model=server.model(), instructions="Be helpful.", tools=[lookup_order, note])
    agent.add_subagents(helper)
    server.script = [
        Reply(
            tool_calls=[
                Call(name="lookup_order", arguments={"order_id": 1}),
                Call(name="helper", arguments={"task": "note the order"}),
            ]
        ),
        Reply(tool_calls=[Call(name="note", arguments={"text": "order 1"})]),  # the helper's turn
        Reply(text="noted"),  # the helper's answer
        Reply(text="Done."),
    ]
    context = secret_context()
    result = await agent.run("Check order 1.", context=context)

    assert result.output == "Done."
    assert len(server.requests) == 4
    for raw in server.raw:
        assert CANARY not in raw
    assert server.requests[1]["messages"] == [{"role": "user", "content": "note the order"}]  # the helper's first


async def test_retry_prompts_map_to_tool_and_user_messages(server: ChatServer) -> None:
    """A tool's `ModelRetry` goes back as a `tool` message; a rejected final answer as a `user` message."""

    @tool
    def flaky(attempt: int) -> str:
        """Fails on the first attempt.

        Args:
            attempt: The attempt number.
        """
        if attempt == 1:
            raise ModelRetry("Use attempt=2.")
        return "ok"

    agent = Agent(name="shop", model=server.model(), tools=[flaky], output_type=list[int], tool_retries=2)
    server.script = [
        Reply(tool_calls=[Call(name="flaky", arguments={"attempt": 1}, id="r1")]),
        Reply(text="I am done."),  # plain text is refused: output_type needs the final_result tool
        Reply(tool_calls=[Call(name="final_result", arguments={"response": [1, 2]}, id="f1")]),
    ]
    result = await agent.run("Go")

    assert result.output == [1, 2]
    second, third = server.requests[1]["messages"], server.requests[2]["messages"]
    assert second[-1] == {"role": "tool", "tool_call_id": "r1", "content": "Use attempt=2."}
    assert third[-1]["role"] == "user"
    assert "final_result" in third[-1]["content"]
    for request in server.requests:
        assert request["tool_choice"] == "required"
        assert [t["function"]["name"] for t in request["tools"]] == ["flaky", "final_result"]


async def test_no_tool_fields_without_tools(server: ChatServer) -> None:
    """A request without tools sends neither `tools`, `parallel_tool_calls` nor `tool_choice`."""
    server.script = [Reply(text="Hello!")]
    assert (await Agent(name="plain", model=server.model()).run("Hi")).output == "Hello!"
    (request,) = server.requests
    assert not {"tools", "parallel_tool_calls", "tool_choice"} & request.keys()
    assert request["messages"] == [{"role": "user", "content": "Hi"}]


async def test_settings_reach_the_request(server: ChatServer) -> None:
    """Sampling settings, `extra_body` and `extra_headers` are sent with every request."""
    server.script = [Reply(text="ok")]
    model = server.model(
        temperature=0.25,
        max_tokens=64,
        top_p=0.5,
        seed=7,
        stop=["END"],
        timeout=30.0,
        extra_body={"top_k": 3},
        extra_headers={"X-Test": "yes"},
    )
    await Agent(name="tuned", model=model).run("Hi")
    (request,) = server.requests
    expected = {"temperature": 0.25, "max_tokens": 64, "top_p": 0.5, "seed": 7, "stop": ["END"], "top_k": 3}
    assert {k: request[k] for k in expected} == expected
    assert "x-test: yes" in server.raw[0].lower()


async def test_message_history_round_trips_through_the_provider(server: ChatServer) -> None:
    """A previous run's messages are sent back as the same Chat Completions messages in the next run."""
    server.script = [
        Reply(tool_calls=[Call(name="lookup_order", arguments={"order_id": 5}, id="h1")]),
        Reply(text="Shipped."),
        Reply(text="You are welcome."),
    ]
    agent = Agent(name="shop", model=server.model(), tools=[lookup_order])
    first = await agent.run("Order 5?", context=secret_context())
    second = await agent.run("Thanks!", context=secret_context(), message_history=first.messages)

    assert second.output == "You are welcome."
    sent = server.requests[2]["messages"]
    assert sent[:-1] == [*server.requests[1]["messages"], {"role": "assistant", "content": "Shipped."}]
    assert sent[-1] == {"role": "user", "content": "Thanks!"}
    assert isinstance(second.messages[2], ToolReturn)


async def test_model_string_reads_the_environment(server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """`"openai:<model>"` uses `OPENAI_API_KEY` and `OPENAI_BASE_URL` as the SDK does."""
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    server.script = [Reply(text="from env")]
    agent = Agent(name="env", model="openai:fake-model")
    assert isinstance(agent.model, OpenAIModel)
    assert (await agent.run("Hi")).output == "from env"
    assert "authorization: bearer env-key" in server.raw[0].lower()


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key, `"openai:<model>"` fails at construction with a message saying how to fix it."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    with pytest.raises(UserError, match=r"OPENAI_API_KEY.*api_key="):
        infer_model("openai:gpt-4o-mini")


def test_client_and_base_url_together_are_refused() -> None:
    """Passing `client=` with `base_url=` is a `UserError`: one of them would be ignored."""
    with pytest.raises(UserError, match="client="):
        OpenAIModel("m", base_url="http://127.0.0.1:1/v1", client=openai.AsyncOpenAI(api_key="k"))


async def test_a_passed_client_is_used(server: ChatServer) -> None:
    """A caller's `AsyncOpenAI` client is used as is, with `max_retries` from the settings applied."""
    server.script = [ErrorReply(status=500, message="busy", retry_after_ms=1), Reply(text="via client")]
    async with openai.AsyncOpenAI(api_key="client-key", base_url=server.base_url, max_retries=0) as client:
        model = OpenAIModel("fake-model", client=client, settings=OpenAISettings(max_retries=1))
        assert (await Agent(name="c", model=model).run("Hi")).output == "via client"
    assert "authorization: bearer client-key" in server.raw[0].lower()
    assert len(server.requests) == 2


def test_one_model_serves_successive_event_loops() -> None:
    """One model instance keeps working across `run_sync` calls, each on a new event loop (and backend)."""
    with ChatServer(keep_alive=True) as server:  # pooled connections belong to the loop that opened them
        agent = Agent(name="sync", model=server.model())
        server.script = [Reply(text="one"), Reply(text="two"), Reply(text="three")]
        assert agent.run_sync("1").output == "one"
        assert agent.run_sync("2").output == "two"

        async def on_trio() -> str:
            return str((await agent.run("3")).output)

        assert anyio.run(on_trio, backend="trio") == "three"


def test_missing_extra_raises_an_import_error_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the `openai` package, importing the module says `pip install "cogent-context[openai]"`."""
    monkeypatch.setitem(sys.modules, "openai", None)  # makes `import openai` fail
    monkeypatch.delitem(sys.modules, "cogent.models.openai")
    with pytest.raises(ImportError, match=r'pip install "cogent-context\[openai\]"'):
        importlib.import_module("cogent.models.openai")


@pytest.mark.parametrize("stream", [False, True])
async def test_the_openai_compatible_example(
    server: ChatServer, capsys: pytest.CaptureFixture[str], stream: bool
) -> None:
    """`examples/openai_compatible.py` runs its tool against a server and prints the answer and the usage."""
    from examples.openai_compatible import main

    server.script = [
        Reply(tool_calls=[Call(name="order_status", arguments={"order_id": "A100"})], input_tokens=40),
        Reply(text="Yes, order A100 shipped on Monday.", input_tokens=60, output_tokens=9),
    ]
    argv = ["--base-url", server.base_url, "--model", "fake-model", "--api-key", "k"]
    await main([*argv, "--stream"] if stream else argv)

    out = capsys.readouterr().out.splitlines()
    assert out == [
        "Yes, order A100 shipped on Monday.",
        "usage: 2 requests, 100 input + 14 output tokens, 1 tool calls",
    ]
    assert server.requests[1]["messages"][-1]["content"] == "Order A100: shipped on Monday."
    assert server.requests[0]["messages"][0]["content"].startswith("You help Ada with their orders.")


def test_the_example_reports_an_unreachable_server_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The example prints one line naming the problem, with its `python -m` name, and exits with status 1."""
    from examples.openai_compatible import cli

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert cli(["--model", "m", "--api-key", "k", "--base-url", f"http://127.0.0.1:{port}/v1"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("python -m examples.openai_compatible: error: The server at http://127.0.0.1:")
    assert "could not be reached" in captured.err
    assert captured.err.count("\n") == 1
