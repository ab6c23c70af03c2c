"""`AnthropicModel` with the real `anthropic` SDK against a local Messages API server.

`ChatServer` answers `POST /v1/messages` with Messages API bodies or event streams built
below in the shapes of Anthropic's API reference (`message_start`, `content_block_*` with
`text_delta`, `thinking_delta`, `signature_delta` and `input_json_delta`, `message_delta`,
`message_stop`, `ping`, `error`), on 127.0.0.1, on both anyio backends.
"""

from __future__ import annotations

import gc
import importlib
import json
import subprocess
import sys
from typing import Any

import anthropic
import anyio
import pytest
from chat_server import ChatServer, Raw

from cogent import Agent, tool
from cogent.events import FinalResultEvent, TextDeltaEvent
from cogent.exceptions import ModelAPIError, UnexpectedModelBehavior, UserError
from cogent.messages import ModelResponse, Reasoning, ToolCall, ToolReturn, UserPrompt
from cogent.models import ModelRequestParameters, ReasoningDelta, close_loop_resources, infer_model
from cogent.models.anthropic import AnthropicModel, AnthropicSettings

MODEL = "claude-sonnet-5"
PARAMS = ModelRequestParameters(agent_name="claude")
THOUGHT = "The user wants two cities. I will look both up in parallel."
SIGNATURE = "EqQBCkYIBxgCKkBsignature=="


def message(content: list[dict[str, Any]], stop: str, *, cache_read: int = 0, output: int = 20) -> dict[str, Any]:
    """A Messages API response body."""
    usage = {
        "input_tokens": 50,
        "cache_creation_input_tokens": 10,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output,
        "service_tier": "standard",
    }
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": usage,
    }


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n"


def _pieces(text: str, size: int = 9) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream(body: dict[str, Any], *, cut: bool = False) -> Raw:
    """The event stream the API sends for `body` (`cut`: it stops before `message_delta`)."""
    start = {**body, "content": [], "stop_reason": None, "usage": {**body["usage"], "output_tokens": 1}}
    text = _event("message_start", {"message": start}) + _event("ping", {})
    for index, block in enumerate(body["content"]):
        kind = block["type"]
        empty = {
            "text": {"type": "text", "text": ""},
            "thinking": {"type": "thinking", "thinking": "", "signature": ""},
            "tool_use": {"type": "tool_use", "id": block.get("id"), "name": block.get("name"), "input": {}},
        }.get(kind, block)
        text += _event("content_block_start", {"index": index, "content_block": empty})
        if kind == "text":
            for p in _pieces(block["text"]):
                text += _event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": p}})
        elif kind == "thinking":
            for p in _pieces(block["thinking"]):
                text += _event(
                    "content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": p}}
                )
            delta = {"type": "signature_delta", "signature": block["signature"]}
            text += _event("content_block_delta", {"index": index, "delta": delta})
        elif kind == "tool_use":
            for p in ["", *_pieces(json.dumps(block["input"]), 5)]:
                delta = {"type": "input_json_delta", "partial_json": p}
                text += _event("content_block_delta", {"index": index, "delta": delta})
        text += _event("content_block_stop", {"index": index})
    if not cut:
        delta = {"stop_reason": body["stop_reason"], "stop_sequence": None}
        text += _event("message_delta", {"delta": delta, "usage": {"output_tokens": body["usage"]["output_tokens"]}})
        text += _event("message_stop", {})
    return Raw(body=text, content_type="text/event-stream")


def answer(body: dict[str, Any]) -> Any:
    """A script item that answers plain or streamed, as the request asks."""
    return lambda request: stream(body) if request.get("stream") else Raw(body=body)


def error(status: int, kind: str, text: str) -> Raw:
    return Raw(status=status, body={"type": "error", "error": {"type": kind, "message": text}, "request_id": "req_1"})


def claude(server: ChatServer, **settings: Any) -> AnthropicModel:
    settings.setdefault("max_retries", 0)
    return AnthropicModel(
        MODEL, base_url=server.root_url, api_key="sk-ant-test", settings=AnthropicSettings(**settings)
    )


@tool
def get_weather(city: str) -> str:
    """Return the weather of a city.

    Args:
        city: The city.
    """
    return f"sunny in {city}"


TOOL_TURN = message(
    [
        {"type": "thinking", "thinking": THOUGHT, "signature": SIGNATURE},
        {"type": "text", "text": "Let me check both."},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_01B", "name": "get_weather", "input": {"city": "Lyon"}},
    ],
    "tool_use",
    cache_read=30,
    output=80,
)
FINAL = message([{"type": "text", "text": "Sunny in both Paris and Lyon."}], "end_turn")


@pytest.mark.anyio
@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
async def test_parallel_tool_use_with_thinking_round_trips(server: ChatServer, streaming: bool) -> None:
    """Parallel tool uses run; thinking, text and tool uses go back as blocks, results as one user turn."""
    server.script = [answer(TOOL_TURN), answer(FINAL)]
    agent = Agent(name="claude", model=claude(server), instructions="Be brief.", tools=[get_weather])
    if streaming:
        deltas: list[str] = []
        async with agent.run_stream("Weather in Paris and Lyon?") as events:
            async for event in events:
                if isinstance(event, TextDeltaEvent):
                    deltas.append(event.text)
                elif isinstance(event, FinalResultEvent):
                    result = event.result
        assert "".join(deltas) == "Let me check both.Sunny in both Paris and Lyon."
    else:
        result = await agent.run("Weather in Paris and Lyon?")

    assert result.output == "Sunny in both Paris and Lyon."
    tool_turn, final = [m for m in result.messages if isinstance(m, ModelResponse)]
    assert [(c.id, json.loads(c.arguments_json())) for c in tool_turn.tool_calls] == [
        ("toolu_01A", {"city": "Paris"}),
        ("toolu_01B", {"city": "Lyon"}),
    ]
    assert tool_turn.reasoning == [Reasoning(text=THOUGHT, signature=SIGNATURE, provider_field="thinking")]
    assert tool_turn.text == "Let me check both."
    assert (tool_turn.finish_reason, final.finish_reason) == ("tool_call", "stop")
    assert (tool_turn.usage.input_tokens, tool_turn.usage.output_tokens) == (50 + 10 + 30, 80)
    first, second = server.requests
    assert first["system"] == "Be brief."
    assert first["max_tokens"] == 4096
    assert first["tools"] == [
        {
            "name": "get_weather",
            "description": get_weather.definition.description,
            "input_schema": get_weather.definition.parameters_json_schema,
        }
    ]
    assert "tool_choice" not in first
    assert second["messages"][1:] == [
        {"role": "assistant", "content": TOOL_TURN["content"]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "sunny in Paris"},
                {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "sunny in Lyon"},
            ],
        },
    ]


@pytest.mark.anyio
async def test_stream_yields_thinking_as_reasoning_deltas(server: ChatServer) -> None:
    """`request_stream` yields thinking as `ReasoningDelta`s, apart from the text, and keeps the signature."""
    server.script = [answer(TOOL_TURN)]
    items = [i async for i in claude(server).request_stream([UserPrompt(content="Hi")], PARAMS)]
    assert "".join(i.text for i in items if isinstance(i, ReasoningDelta)) == THOUGHT
    response = items[-1]
    assert isinstance(response, ModelResponse)
    assert response.reasoning[0].signature == SIGNATURE


@pytest.mark.anyio
async def test_redacted_thinking_goes_back_as_it_came(server: ChatServer) -> None:
    """A `redacted_thinking` block is kept and sent back unchanged on the next request."""
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4a"}
    server.script = [answer(message([redacted, {"type": "text", "text": "Hello."}], "end_turn")), answer(FINAL)]
    model = claude(server)
    first = await model.request([UserPrompt(content="Hi")], PARAMS)
    assert first.reasoning == [Reasoning(redacted=redacted["data"], provider_field="redacted_thinking")]
    await model.request([UserPrompt(content="Hi"), first, UserPrompt(content="And?")], PARAMS)
    assert server.requests[1]["messages"][1] == {
        "role": "assistant",
        "content": [redacted, {"type": "text", "text": "Hello."}],
    }


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("stop", "expected"),
    [("max_tokens", "length"), ("refusal", "content_filter"), ("stop_sequence", "stop"), ("end_turn", "stop")],
)
@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
async def test_stop_reasons_are_normalized(server: ChatServer, stop: str, expected: str, streaming: bool) -> None:
    """Anthropic stop reasons map to cogent's finish reasons, plain and streamed."""
    server.script = [answer(message([{"type": "text", "text": "Partial answ"}], stop))]
    model = claude(server)
    if streaming:
        response = [i async for i in model.request_stream([UserPrompt(content="Hi")], PARAMS)][-1]
    else:
        response = await model.request([UserPrompt(content="Hi")], PARAMS)
    assert isinstance(response, ModelResponse)
    assert (response.finish_reason, response.text) == (expected, "Partial answ")


@pytest.mark.anyio
@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(
    ("status", "kind"), [(400, "invalid_request_error"), (404, "not_found_error"), (529, "overloaded_error")]
)
async def test_http_errors_are_model_api_errors(server: ChatServer, status: int, kind: str, streaming: bool) -> None:
    """An HTTP error becomes `ModelAPIError` with the status code and the API's message."""
    server.script = [error(status, kind, f"{kind} happened")]
    model = claude(server)
    with pytest.raises(ModelAPIError, match=f"{kind} happened") as info:
        if streaming:
            [i async for i in model.request_stream([UserPrompt(content="Hi")], PARAMS)]
        else:
            await model.request([UserPrompt(content="Hi")], PARAMS)
    assert info.value.status_code == status
    assert isinstance(info.value.__cause__, anthropic.APIStatusError)


@pytest.mark.anyio
async def test_an_error_event_inside_the_stream_carries_its_type(server: ChatServer) -> None:
    """An `error` event in a 200 stream is a `ModelAPIError` with the status its type stands for (529: overloaded)."""
    partial = stream(FINAL).body
    assert isinstance(partial, str)
    cut = partial.split("event: message_delta")[0]
    body = cut + _event("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
    server.script = [Raw(body=body, content_type="text/event-stream")]
    with pytest.raises(ModelAPIError, match="Overloaded") as info:
        [i async for i in claude(server).request_stream([UserPrompt(content="Hi")], PARAMS)]
    assert info.value.status_code == 529
    assert "overloaded_error" in str(info.value)


@pytest.mark.anyio
async def test_a_stream_cut_before_the_stop_reason_is_an_error(server: ChatServer) -> None:
    """A stream that ends before `message_delta` (a cut connection) is refused, not taken as complete."""
    server.script = [stream(TOOL_TURN, cut=True)]
    with pytest.raises(UnexpectedModelBehavior, match="before the message was complete"):
        [i async for i in claude(server).request_stream([UserPrompt(content="Hi")], PARAMS)]


@pytest.mark.anyio
async def test_tool_choice_follows_the_output_mode(server: ChatServer) -> None:
    """A structured output forces a tool (`any`); sequential tool calls disable parallel tool use."""
    server.script = [
        answer(
            message([{"type": "tool_use", "id": "t1", "name": "final_result", "input": {"response": [1]}}], "tool_use")
        )
    ]
    agent = Agent(
        name="claude", model=claude(server), tools=[get_weather], output_type=list[int], parallel_tool_calls=False
    )
    assert (await agent.run("Numbers?")).output == [1]
    assert server.requests[0]["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.anyio
async def test_retry_prompts_are_error_tool_results(server: ChatServer) -> None:
    """A retry prompt that answers a tool call goes back as a `tool_result` with `is_error`."""
    server.script = [
        answer(message([{"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}], "tool_use")),
        answer(FINAL),
    ]
    result = await Agent(name="claude", model=claude(server), tools=[get_weather]).run("Weather?")
    assert not any(isinstance(m, ToolReturn) for m in result.messages)
    (block,) = server.requests[1]["messages"][-1]["content"]
    assert (block["type"], block["tool_use_id"], block["is_error"]) == ("tool_result", "t1", True)


def test_model_string_reads_the_environment(server: ChatServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """`"anthropic:<model>"` is an `AnthropicModel` using `ANTHROPIC_API_KEY` and `ANTHROPIC_BASE_URL`."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.root_url)
    server.script = [answer(FINAL)]
    agent = Agent(name="env", model="anthropic:claude-sonnet-5")
    assert isinstance(agent.model, AnthropicModel)
    assert agent.run_sync("Hi").output == "Sunny in both Paris and Lyon."
    headers = server.raw[0].split("\n\n")[0]
    assert "sk-ant-env" in headers  # the SDK's credential header


def test_missing_credentials_are_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a key or token, building the model fails with a message saying how to fix it."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    with pytest.raises(UserError, match="ANTHROPIC_API_KEY"):
        infer_model("anthropic:claude-sonnet-5")


def test_client_and_api_key_together_are_refused() -> None:
    """Passing `client=` with `api_key=` is a `UserError`: one of them would be ignored."""
    with pytest.raises(UserError, match="client="):
        AnthropicModel("m", api_key="k", client=anthropic.AsyncAnthropic(api_key="k"))


def test_missing_extra_raises_an_import_error_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the `anthropic` package, importing the module says `pip install "cogent-context[anthropic]"`."""
    monkeypatch.setitem(sys.modules, "anthropic", None)
    monkeypatch.delitem(sys.modules, "cogent.models.anthropic")
    with pytest.raises(ImportError, match=r'pip install "cogent-context\[anthropic\]"'):
        importlib.import_module("cogent.models.anthropic")


def test_import_cogent_does_not_import_the_sdks() -> None:
    """`import cogent` (and `cogent.models`) imports neither the anthropic nor the openai SDK."""
    code = "import sys, cogent, cogent.models; print(sorted({'anthropic', 'openai'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_successive_event_loops_leave_no_clients_or_sockets() -> None:
    """Runs on 40 successive event loops, each closed as run_sync closes it, keep sockets and clients flat."""

    def live_clients() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if isinstance(o, anthropic.AsyncAnthropic))

    before = live_clients()
    with ChatServer(keep_alive=True) as server:
        server.script = [answer(FINAL)] * 40
        agent = Agent(name="claude", model=claude(server))

        async def run_once() -> None:
            try:
                await agent.run("Hi")
            finally:
                await close_loop_resources()

        for i in range(40):
            anyio.run(run_once, backend="trio" if i % 2 else "asyncio")
            assert server.wait_connections_open(0) == 0
        assert live_clients() <= before


@pytest.mark.anyio
async def test_async_with_closes_the_connection(server: ChatServer) -> None:
    """Leaving `async with model:` closes its connection; a passed client is left open."""
    with ChatServer(keep_alive=True) as kept:
        kept.script = [answer(FINAL)] * 2
        async with claude(kept) as model:
            await model.request([UserPrompt(content="Hi")], PARAMS)
            assert kept.connections_open == 1
        assert kept.wait_connections_open(0) == 0
        async with anthropic.AsyncAnthropic(api_key="k", base_url=kept.root_url) as client:
            async with AnthropicModel(MODEL, client=client) as passed:
                await passed.request([UserPrompt(content="Hi")], PARAMS)
            assert not client.is_closed()


@pytest.mark.anyio
async def test_settings_reach_the_request(server: ChatServer) -> None:
    """Token cap, sampling, stop sequences, thinking, extra body and headers are sent with the request."""
    server.script = [answer(FINAL)]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    model = claude(
        server,
        max_tokens=2048,
        temperature=0.5,
        top_k=5,
        stop_sequences=["END"],
        thinking=thinking,
        extra_body={"metadata": {"user_id": "u1"}},
        extra_headers={"anthropic-beta": "test-beta"},
    )
    await model.request([UserPrompt(content="Hi")], PARAMS)
    (request,) = server.requests
    expected = {"max_tokens": 2048, "temperature": 0.5, "top_k": 5, "stop_sequences": ["END"], "thinking": thinking}
    assert {k: request[k] for k in expected} == expected
    assert request["metadata"] == {"user_id": "u1"}
    assert "anthropic-beta: test-beta" in server.raw[0].lower()


@pytest.mark.anyio
async def test_the_example_runs_with_the_anthropic_provider(
    server: ChatServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """`examples/openai_compatible.py --provider anthropic` runs its tool through the Messages API."""
    from examples.openai_compatible import main

    call = {"type": "tool_use", "id": "toolu_1", "name": "order_status", "input": {"order_id": "A100"}}
    server.script = [
        answer(message([call], "tool_use")),
        answer(message([{"type": "text", "text": "Shipped."}], "end_turn")),
    ]
    await main(
        ["--provider", "anthropic", "--base-url", server.root_url, "--model", "claude-sonnet-5", "--api-key", "k"]
    )
    assert capsys.readouterr().out.splitlines() == [
        "Shipped.",
        "usage: 2 requests, 120 input + 40 output tokens, 1 tool calls",
    ]
    assert server.requests[1]["messages"][-1]["content"][0]["content"] == "Order A100: shipped on Monday."


@pytest.mark.anyio
async def test_a_history_tool_call_without_id_is_refused(server: ChatServer) -> None:
    """A hand-built history whose tool call has no id is a `UserError`, not a request the API would refuse."""
    history = [
        UserPrompt(content="Hi"),
        ModelResponse(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        ToolReturn(tool_name="get_weather", tool_call_id="x", content="sunny"),
    ]
    with pytest.raises(UserError, match="no id"):
        await claude(server).request(history, PARAMS)
    assert server.requests == []
