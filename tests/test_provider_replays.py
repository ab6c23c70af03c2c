"""`OpenAIModel` against answers shaped as real OpenAI-compatible servers send them.

`tests/replays.py` holds each provider's recorded-shape answers; `ChatServer` replays them
on 127.0.0.1, plain and as event streams, and enforces the rules the providers enforce
(DeepSeek refuses a history whose tool-call turn lacks its `reasoning_content`).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from chat_server import ChatServer, Raw, events
from replays import (
    ANSWER,
    DEEPSEEK_MISSING_REASONING,
    GEMINI_SIGNATURE,
    OPENROUTER_DETAILS,
    PROVIDERS,
    Provider,
    deepseek,
)

from cogent import Agent, tool
from cogent.events import FinalResultEvent, TextDeltaEvent
from cogent.exceptions import ModelAPIError, UnexpectedModelBehavior, UserError
from cogent.messages import ModelResponse, Reasoning, ToolCall, ToolReturn, UserPrompt
from cogent.models import FunctionModel, ModelRequestParameters, ReasoningDelta, TextDelta

pytestmark = pytest.mark.anyio

PARAMS = ModelRequestParameters(agent_name="replay")


@tool
def get_weather(city: str) -> str:
    """Return the weather of a city.

    Args:
        city: The city.
    """
    return f"18°C and sunny in {city}"


def _answer(provider: Provider, streaming: bool, turn: str) -> Raw:
    if streaming:
        return provider.tool_stream if turn == "tool" else provider.final_stream
    return Raw(body=provider.tool_turn if turn == "tool" else provider.final)


def _enforce(provider: Provider, streaming: bool) -> Any:
    """The second answer, refused as DeepSeek refuses it when the reasoning did not come back."""

    def answer(body: dict[str, Any]) -> Raw:
        assistant = body["messages"][1]
        if provider.reasoning_field == "reasoning_content" and "reasoning_content" not in assistant:
            return DEEPSEEK_MISSING_REASONING
        return _answer(provider, streaming, "final")

    return answer


async def _run(agent: Agent[Any, Any], streaming: bool) -> tuple[Any, list[str]]:
    if not streaming:
        return await agent.run("Weather in Paris?"), []
    deltas: list[str] = []
    result = None
    async with agent.run_stream("Weather in Paris?") as stream:
        async for event in stream:
            if isinstance(event, TextDeltaEvent):
                deltas.append(event.text)
            elif isinstance(event, FinalResultEvent):
                result = event.result
    return result, deltas


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS, ids=[p.name for p in PROVIDERS])
async def test_recorded_conversation(server: ChatServer, provider: Provider, streaming: bool) -> None:
    """A recorded tool call runs; answer, ids, finish reasons, usage and reasoning come through and go back."""
    server.script = [_answer(provider, streaming, "tool"), _enforce(provider, streaming)]
    agent = Agent(name="weather", model=server.model(), tools=[get_weather])
    result, deltas = await _run(agent, streaming)

    assert result.output == ANSWER
    if streaming:
        assert "".join(deltas).endswith(ANSWER)
    tool_turn, final = [m for m in result.messages if isinstance(m, ModelResponse)]
    ids = [c.id for c in tool_turn.tool_calls]
    for sent, kept in zip(provider.call_ids, ids, strict=True):
        assert kept == sent if sent is not None else kept  # an empty id was replaced by a run-unique one
    assert len(set(ids)) == len(ids)
    assert [r.tool_call_id for r in result.messages if isinstance(r, ToolReturn)] == ids
    assert (tool_turn.finish_reason, final.finish_reason) == ("tool_call", "stop")
    assert (tool_turn.usage.input_tokens, tool_turn.usage.output_tokens) == provider.usage
    assert final.reasoning == [] or all(r.provider_field == provider.reasoning_field for r in final.reasoning)
    assert "".join(r.text for r in tool_turn.reasoning) == provider.reasoning_text
    assert all(r.provider_field == provider.reasoning_field for r in tool_turn.reasoning)
    assert final.text == ANSWER  # reasoning is never mixed into the text
    assert not provider.reasoning_text or provider.reasoning_text not in (tool_turn.text or "")

    _, second = server.requests
    assistant = second["messages"][1]
    assert [c["id"] for c in assistant["tool_calls"]] == ids  # exactly the ids stored in the history
    assert [m["tool_call_id"] for m in second["messages"][2:]] == ids
    assert [json.loads(c["function"]["arguments"])["city"] for c in assistant["tool_calls"]] == [
        json.loads(c.arguments_json())["city"] for c in tool_turn.tool_calls
    ]
    if provider.reasoning_field in ("reasoning_content", "reasoning"):
        assert assistant[provider.reasoning_field] == provider.reasoning_text
    elif provider.reasoning_field == "reasoning_details":
        assert assistant["reasoning_details"] == OPENROUTER_DETAILS
        assert "reasoning" not in assistant
    elif provider.reasoning_field == "extra_content":
        signed, unsigned = assistant["tool_calls"]
        assert signed["extra_content"] == {"google": {"thought_signature": GEMINI_SIGNATURE}}
        assert "extra_content" not in unsigned
    else:
        assert not {"reasoning", "reasoning_content", "reasoning_details"} & assistant.keys()


@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p.reasoning_text], ids=lambda p: p.name)
async def test_stream_yields_reasoning_deltas_apart_from_text(server: ChatServer, provider: Provider) -> None:
    """`request_stream` yields the reasoning as `ReasoningDelta`s, never as text, before the response."""
    server.script = [provider.tool_stream]
    items = [item async for item in server.model().request_stream([UserPrompt(content="Weather?")], PARAMS)]

    response = items[-1]
    assert isinstance(response, ModelResponse)
    reasoning = "".join(i.text for i in items if isinstance(i, ReasoningDelta))
    assert reasoning == provider.reasoning_text == "".join(r.text for r in response.reasoning)
    assert not any(isinstance(i, TextDelta) for i in items)


async def test_deepseek_refuses_a_history_without_its_reasoning(server: ChatServer) -> None:
    """With `send_reasoning=False` DeepSeek answers 400: the reasoning sent back by default is what it requires."""
    provider = deepseek()
    server.script = [Raw(body=provider.tool_turn), _enforce(provider, False)]
    agent = Agent(name="weather", model=server.model(send_reasoning=False), tools=[get_weather])
    with pytest.raises(ModelAPIError, match="reasoning_content in the thinking mode must be passed back") as info:
        await agent.run("Weather in Paris?")
    assert info.value.status_code == 400


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
async def test_a_plain_text_200_is_unexpected_model_behavior(server: ChatServer, streaming: bool) -> None:
    """A misconfigured proxy's `text/plain` 200 becomes `UnexpectedModelBehavior` quoting the start of its body."""
    body = "upstream connect error or disconnect/reset before headers. reset reason: overflow " + "x" * 5000
    server.script = [Raw(body=body, content_type="text/plain")]
    model = server.model()
    with pytest.raises(UnexpectedModelBehavior, match="upstream connect error") as info:
        if streaming:
            [item async for item in model.request_stream([UserPrompt(content="Hi")], PARAMS)]
        else:
            await model.request([UserPrompt(content="Hi")], PARAMS)
    assert server.base_url in str(info.value)
    assert len(str(info.value)) < 600


@pytest.mark.parametrize(
    ("answer", "status", "fragments"),
    [
        pytest.param(
            Raw(body={"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-day", "metadata": {}}}),
            429,
            ["Rate limit exceeded: free-models-per-day", "'429'"],
            id="openrouter-json-error-in-200",
        ),
        pytest.param(
            events(
                {
                    "id": "gen-1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "m",
                    "provider": "Google",
                    "choices": [
                        {"index": 0, "delta": {"role": "assistant", "content": "It is"}, "finish_reason": None}
                    ],
                },
                {
                    "id": "gen-1",
                    "object": "chat.completion.chunk",
                    "created": 1,
                    "model": "m",
                    "provider": "Google",
                    "error": {"code": 502, "message": "Provider disconnected unexpectedly"},
                    "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
                },
            ),
            502,
            ["Provider disconnected unexpectedly", "'502'"],
            id="openrouter-error-chunk",
        ),
        pytest.param(
            events(
                "event: error\n",
                {
                    "error": {
                        "message": "The server had an error while processing your request.",
                        "type": "server_error",
                        "param": None,
                        "code": "server_error",
                    }
                },
            ),
            None,
            ["The server had an error while processing your request.", "'server_error'"],
            id="openai-error-event",
        ),
        pytest.param(
            events(
                {
                    "object": "error",
                    "message": "This model's maximum context length is 4096 tokens.",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                }
            ),
            400,
            ["maximum context length is 4096 tokens", "'BadRequestError'"],
            id="vllm-error-object",
        ),
        pytest.param(
            events(
                {
                    "error": "Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096",
                    "error_type": "validation",
                }
            ),
            None,
            ["Input validation error"],
            id="tgi-error-string",
        ),
    ],
)
async def test_errors_inside_a_200_answer_are_model_api_errors(
    server: ChatServer, answer: Raw, status: int | None, fragments: list[str]
) -> None:
    """An error the server reports inside a 200 answer or stream is a `ModelAPIError` with its own code and type."""
    server.script = [answer]
    model = server.model()
    with pytest.raises(ModelAPIError) as info:
        if answer.content_type == "text/event-stream":
            [item async for item in model.request_stream([UserPrompt(content="Hi")], PARAMS)]
        else:
            await model.request([UserPrompt(content="Hi")], PARAMS)
    assert info.value.status_code == status
    for fragment in fragments:
        assert fragment in str(info.value)
    assert info.value.body is not None


def _truncated(streaming: bool) -> Raw:
    call = {"index": 0, "id": "call_t", "type": "function", "function": {"name": "get_weather", "arguments": '{"ci'}}
    if streaming:
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        return events(
            {
                **chunk,
                "choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [call]}, "finish_reason": None}],
            },
            {**chunk, "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
            "data: [DONE]\n\n",
        )
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return Raw(
        body={
            "id": "c",
            "object": "chat.completion",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "message": message, "finish_reason": "length"}],
        }
    )


@pytest.mark.parametrize("streaming", [False, True], ids=["plain", "stream"])
async def test_a_truncated_answer_reports_length(server: ChatServer, streaming: bool) -> None:
    """An answer cut off at the token limit says `finish_reason="length"`, plain and streamed."""
    server.script = [_truncated(streaming)]
    model = server.model()
    if streaming:
        response = [i async for i in model.request_stream([UserPrompt(content="Hi")], PARAMS)][-1]
    else:
        response = await model.request([UserPrompt(content="Hi")], PARAMS)
    assert isinstance(response, ModelResponse)
    assert response.finish_reason == "length"
    assert response.tool_calls == [ToolCall("get_weather", '{"ci', "call_t")]


async def test_a_filtered_azure_answer_reports_content_filter(server: ChatServer) -> None:
    """Azure's content filter stop (`finish_reason: "content_filter"`, no content) is reported as such."""
    choice = {
        "index": 0,
        "finish_reason": "content_filter",
        "message": {"role": "assistant", "content": None},
        "content_filter_results": {"violence": {"filtered": True, "severity": "high"}},
    }
    server.script = [
        Raw(body={"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o", "choices": [choice]})
    ]
    response = await server.model().request([UserPrompt(content="Hi")], PARAMS)
    assert (response.finish_reason, response.text) == ("content_filter", None)


async def test_a_stream_cut_before_the_finish_is_an_error(server: ChatServer) -> None:
    """A stream that ends without a finish reason (a cut connection) is refused, not taken as complete."""
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    call = {"index": 0, "id": "call_x", "type": "function", "function": {"name": "get_weather", "arguments": '{"city"'}}
    server.script = [
        events({**chunk, "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]})
    ]
    with pytest.raises(UnexpectedModelBehavior, match="before the model finished"):
        [i async for i in server.model().request_stream([UserPrompt(content="Hi")], PARAMS)]


async def test_a_history_tool_call_without_id_is_refused(server: ChatServer) -> None:
    """A hand-built history whose tool call has no id is a `UserError`, not a request with an empty id."""
    history = [
        UserPrompt(content="Hi"),
        ModelResponse(tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
        ToolReturn(tool_name="get_weather", tool_call_id="x", content="sunny"),
    ]
    with pytest.raises(UserError, match="no id"):
        await server.model().request(history, PARAMS)
    assert server.requests == []


async def test_reasoning_from_another_provider_is_not_sent(server: ChatServer) -> None:
    """Reasoning without a Chat Completions field (e.g. an Anthropic thinking block) stays out of the request."""
    server.script = [Raw(body=deepseek().final)]
    history = [
        UserPrompt(content="Hi"),
        ModelResponse(
            text="Hello", reasoning=[Reasoning(text="secret thought", signature="sig", provider_field="thinking")]
        ),
        UserPrompt(content="Weather?"),
    ]
    await server.model().request(history, PARAMS)
    assert "secret thought" not in json.dumps(server.requests[0])


async def test_the_default_stream_yields_reasoning_then_text() -> None:
    """A model without its own streaming yields its reasoning, then its text, then the response."""
    reply = ModelResponse(text="answer", reasoning=[Reasoning(text="thought", provider_field="reasoning")])
    model = FunctionModel(lambda messages, info: reply)
    items = [i async for i in model.request_stream([UserPrompt(content="Hi")], PARAMS)]
    assert items == [ReasoningDelta("thought"), TextDelta("answer"), reply]
