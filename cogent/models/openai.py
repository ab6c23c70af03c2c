"""`OpenAIModel`: the Chat Completions API through the official `openai` SDK.

It drives OpenAI and any server that speaks the same wire format (vLLM, Ollama,
llama.cpp, LiteLLM, ...): pass `base_url=` (or set `OPENAI_BASE_URL`). Requests are
built from the message history, the instructions and the tool definitions only; the
run context is never part of them.

```python
from cogent import Agent
from cogent.models.openai import OpenAIModel, OpenAISettings

model = OpenAIModel(
    "llama3.1",
    base_url="http://localhost:11434/v1",
    api_key="unused",
    settings=OpenAISettings(temperature=0, max_retries=0),
)
agent = Agent(name="assistant", model=model, instructions="Be brief.")
```

Retries of failed HTTP requests (429, 5xx, connection errors) are the SDK's: set
`OpenAISettings(max_retries=...)` or configure the client you pass. Provider errors
that remain are raised as `cogent.exceptions.ModelAPIError`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from anyio.lowlevel import RunVar

try:
    import openai
    from openai import AsyncOpenAI
    from openai.types.chat import (
        ChatCompletion,
        ChatCompletionChunk,
        ChatCompletionMessageFunctionToolCall,
        ChatCompletionMessageParam,
        ChatCompletionMessageToolCallUnionParam,
        ChatCompletionToolUnionParam,
    )
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test in a subprocess
    raise ImportError(
        'cogent.models.openai needs the openai SDK; install it with: pip install "cogent-context[openai]"'
    ) from _exc

from ..exceptions import ModelAPIError, UnexpectedModelBehavior, UserError
from ..messages import Message, ModelResponse, RetryPrompt, SystemPrompt, ToolCall, ToolReturn, UserPrompt
from ..tools import ToolDefinition
from ..usage import Usage
from ._base import Model, ModelRequestParameters, TextDelta

__all__ = ["OpenAIModel", "OpenAISettings"]


@dataclass(kw_only=True, frozen=True, slots=True)
class OpenAISettings:
    """Request settings for `OpenAIModel`; `None` leaves a setting to the server or SDK."""

    temperature: float | None = None
    """Sampling temperature (0 to 2)."""
    max_tokens: int | None = None
    """Cap on the tokens generated per response (sent as `max_tokens`, which
    OpenAI-compatible servers accept; OpenAI's reasoning models need
    `extra_body={"max_completion_tokens": n}` instead)."""
    top_p: float | None = None
    """Nucleus sampling probability mass."""
    seed: int | None = None
    """Seed for best-effort deterministic sampling."""
    stop: list[str] | None = None
    """Sequences at which the server stops generating."""
    timeout: float | None = None
    """Timeout per HTTP request, in seconds (the SDK's default when `None`)."""
    max_retries: int | None = None
    """How often the SDK retries a failed request (429, 5xx, connection errors); the
    SDK's default (2) when `None`. Use 0 to fail fast."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Extra JSON fields merged into every request body (server-specific options)."""
    extra_headers: dict[str, str] = field(default_factory=dict)
    """Extra HTTP headers sent with every request."""


class OpenAIModel(Model):
    """A model served through the Chat Completions API.

    `Agent(model="openai:gpt-4o-mini")` is `OpenAIModel("gpt-4o-mini")`, configured
    from the environment (`OPENAI_API_KEY`, `OPENAI_BASE_URL`) as the SDK reads it.

    Args:
        model_name: The model, as the server names it (`"gpt-4o-mini"`, `"llama3.1"`).
        base_url: The API's base URL, e.g. `"http://localhost:8000/v1"`; defaults to
            `OPENAI_BASE_URL`, then OpenAI's.
        api_key: The API key; defaults to `OPENAI_API_KEY`. Local servers usually
            accept any value.
        client: An `openai.AsyncOpenAI` to use instead of creating one (then
            `base_url` and `api_key` must not be given).
        settings: Sampling, timeout, retry and extra request options.

    Raises:
        UserError: If `client` is combined with `base_url`/`api_key`, or no API key
            is given and `OPENAI_API_KEY` is not set.
    """

    def __init__(
        self,
        model_name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        client: AsyncOpenAI | None = None,
        settings: OpenAISettings | None = None,
    ) -> None:
        self.model_name = model_name
        self.name = model_name
        self.settings = settings if settings is not None else OpenAISettings()
        retries = self.settings.max_retries
        if client is not None:
            if base_url is not None or api_key is not None:
                raise UserError(
                    f"OpenAIModel({model_name!r}) got client= together with base_url= or api_key=; "
                    "configure the client instead, or pass base_url/api_key without a client."
                )
            self.client = client if retries is None else client.with_options(max_retries=retries)
            self._factory: Callable[[], AsyncOpenAI] | None = None
            return
        max_retries = openai.DEFAULT_MAX_RETRIES if retries is None else retries

        def new_client() -> AsyncOpenAI:
            # A plain SDK-default HTTP client: the SDK's own wrapper closes leaked clients on
            # whichever asyncio loop is running at garbage collection, which breaks when
            # the client belonged to another loop or to trio.
            return AsyncOpenAI(
                api_key=api_key,
                base_url=base_url,
                max_retries=max_retries,
                http_client=openai.DefaultAsyncHttpxClient(),
            )

        self._factory = new_client
        self._loop_clients: RunVar[AsyncOpenAI] = RunVar(f"cogent_openai_client_{id(self)}")
        self._client_bound = False
        try:
            self.client = self._factory()
        except openai.OpenAIError as exc:
            problem = (
                "has no API key"
                if api_key is None and not os.environ.get("OPENAI_API_KEY")
                else "could not be configured"
            )
            raise UserError(
                f"OpenAIModel({model_name!r}) {problem}: pass api_key=..., set the OPENAI_API_KEY "
                "environment variable, or pass client=openai.AsyncOpenAI(...). Local OpenAI-compatible "
                f"servers accept any key, e.g. api_key='unused'. (The openai SDK said: {exc})"
            ) from exc

    def __repr__(self) -> str:
        return f"OpenAIModel({self.model_name!r}, base_url={str(self.client.base_url)!r})"

    def _current_client(self) -> AsyncOpenAI:
        """Return the client for the running event loop.

        A client's connection pool belongs to the event loop that opened it, so a model
        that created its own client gives every event loop its own (e.g. successive
        `agent.run_sync()` calls); a client passed in is used as it is.
        """
        if self._factory is None:
            return self.client
        try:
            return self._loop_clients.get()
        except LookupError:
            client = self._factory() if self._client_bound else self.client
            self._client_bound = True
            self._loop_clients.set(client)
            return client

    async def request(self, messages: list[Message], params: ModelRequestParameters) -> ModelResponse:
        """Send one Chat Completions request and return the first choice.

        Args:
            messages: The history to send (mapped to Chat Completions messages).
            params: Instructions (a leading system message), tools and output mode.

        Returns:
            The text and tool calls of the first choice, with the reported token usage.

        Raises:
            ModelAPIError: If the server answers with an error, or cannot be reached
                (after the SDK's retries).
            UnexpectedModelBehavior: If the response has no choices.
        """
        try:
            completion: ChatCompletion = await self._current_client().chat.completions.create(
                **self._request_kwargs(messages, params)
            )
        except openai.APIError as exc:
            raise self._api_error(exc) from exc
        if not completion.choices:
            raise UnexpectedModelBehavior(
                f"Model {self.model_name!r} at {self.client.base_url} answered with no choices; check that the "
                "server supports the Chat Completions API for this model."
            )
        message = completion.choices[0].message
        calls = [
            ToolCall(c.function.name, c.function.arguments or "{}", c.id)
            for c in message.tool_calls or ()
            if isinstance(c, ChatCompletionMessageFunctionToolCall)
        ]
        usage = completion.usage
        return ModelResponse(
            text=message.content or message.refusal or None,
            tool_calls=calls,
            usage=Usage(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens) if usage else Usage(),
            model_name=completion.model or self.model_name,
        )

    async def request_stream(
        self, messages: list[Message], params: ModelRequestParameters
    ) -> AsyncIterator[TextDelta | ModelResponse]:
        """Stream one Chat Completions request (server-sent events).

        Yields a `TextDelta` per text chunk as it arrives, then the complete
        `ModelResponse` (text, tool calls assembled from their streamed fragments by
        index, and the usage requested with `stream_options={"include_usage": True}`).

        Args:
            messages: As for `request()`.
            params: As for `request()`.

        Raises:
            ModelAPIError: If the server answers with an error, before or during the stream.
        """
        text: list[str] = []
        calls: dict[int, _StreamedCall] = {}
        usage = Usage()
        model_name = self.model_name
        try:
            stream = await self._current_client().chat.completions.create(
                **self._request_kwargs(messages, params), stream=True, stream_options={"include_usage": True}
            )
            async with stream:
                async for chunk in stream:
                    chunk_: ChatCompletionChunk = chunk
                    model_name = chunk_.model or model_name
                    if chunk_.usage is not None:
                        usage = Usage(
                            input_tokens=chunk_.usage.prompt_tokens, output_tokens=chunk_.usage.completion_tokens
                        )
                    for choice in chunk_.choices:
                        if choice.index != 0:
                            continue
                        delta = choice.delta
                        for fragment in delta.tool_calls or ():
                            call = calls.setdefault(fragment.index, _StreamedCall())
                            call.id = call.id or fragment.id
                            if fragment.function is not None:
                                call.name += fragment.function.name or ""
                                call.arguments += fragment.function.arguments or ""
                        if delta.content:
                            text.append(delta.content)
                            yield TextDelta(delta.content)
        except openai.APIError as exc:
            raise self._api_error(exc) from exc
        yield ModelResponse(
            text="".join(text) or None,
            tool_calls=[ToolCall(c.name, c.arguments or "{}", c.id) for _, c in sorted(calls.items())],
            usage=usage,
            model_name=model_name,
        )

    def _request_kwargs(self, messages: list[Message], params: ModelRequestParameters) -> dict[str, Any]:
        """Return the keyword arguments of `chat.completions.create` for one request."""
        kwargs: dict[str, Any] = {
            "model": self.model_name,
            "messages": _map_messages(messages, params.instructions),
        }
        definitions = [*params.tools, *params.output_tools]
        if definitions:
            kwargs["tools"] = [_map_tool(d) for d in definitions]
            kwargs["parallel_tool_calls"] = params.parallel_tool_calls
            if not params.allow_text_output:
                kwargs["tool_choice"] = "required"
        s = self.settings
        for name, value in (
            ("temperature", s.temperature),
            ("max_tokens", s.max_tokens),
            ("top_p", s.top_p),
            ("seed", s.seed),
            ("stop", s.stop),
            ("timeout", s.timeout),
            ("extra_body", s.extra_body or None),
            ("extra_headers", s.extra_headers or None),
        ):
            if value is not None:
                kwargs[name] = value
        return kwargs

    def _api_error(self, exc: openai.APIError) -> ModelAPIError:
        status = getattr(exc, "status_code", None)
        if isinstance(exc, openai.APIStatusError):
            what = f"answered HTTP {status}"
        elif isinstance(exc, openai.APIConnectionError):
            what = "could not be reached"
        else:
            what = "reported an error"
        return ModelAPIError(
            f"The server at {self.client.base_url} {what} for model {self.model_name!r}: {exc.message} "
            "Check the model name, the base URL, the API key and the request settings "
            "(transient errors are retried by the SDK: OpenAISettings(max_retries=...)).",
            status_code=status,
            body=exc.body,
        )


@dataclass(kw_only=True, slots=True)
class _StreamedCall:
    """A tool call being assembled from streamed fragments."""

    id: str | None = None
    """The call id (sent with the first fragment)."""
    name: str = ""
    """The tool name, concatenated as the SDK's own stream accumulator does."""
    arguments: str = ""
    """The JSON arguments text, concatenated."""


def _map_tool(definition: ToolDefinition) -> ChatCompletionToolUnionParam:
    return {
        "type": "function",
        "function": {
            "name": definition.name,
            "description": definition.description,
            "parameters": definition.parameters_json_schema,
        },
    }


def _map_messages(messages: list[Message], instructions: str | None) -> list[ChatCompletionMessageParam]:
    """Map a cogent history (plus the instructions) to Chat Completions messages."""
    mapped: list[ChatCompletionMessageParam] = []
    if instructions:
        mapped.append({"role": "system", "content": instructions})
    for m in messages:
        if isinstance(m, SystemPrompt):
            mapped.append({"role": "system", "content": m.content})
        elif isinstance(m, UserPrompt):
            mapped.append({"role": "user", "content": m.content})
        elif isinstance(m, ModelResponse):
            calls: list[ChatCompletionMessageToolCallUnionParam] = [
                {
                    "id": call.id or "",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments_json()},
                }
                for call in m.tool_calls
            ]
            if calls:
                mapped.append({"role": "assistant", "content": m.text, "tool_calls": calls})
            else:
                mapped.append({"role": "assistant", "content": m.text or ""})
        elif isinstance(m, ToolReturn | RetryPrompt) and m.tool_call_id is not None:
            mapped.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        else:
            mapped.append({"role": "user", "content": m.content})
    return mapped
