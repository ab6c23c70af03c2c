"""`OpenAIModel`: the Chat Completions API through the official `openai` SDK.

It drives OpenAI and any server that speaks the same wire format (Azure OpenAI, Gemini's
OpenAI-compatible endpoint, DeepSeek, Groq, Cerebras, OpenRouter, Hugging Face, vLLM,
Ollama, llama.cpp, LiteLLM, ...): pass `base_url=` (or set `OPENAI_BASE_URL`). Requests are
built from the message history, the instructions and the tool definitions only; the run
context is never part of them.

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

Life cycle: the model creates its `AsyncOpenAI` client on first use, one per event loop,
and closes it in `aclose()` (or at the end of `async with model:`) and when
`cogent.models.close_loop_resources()` runs at the end of the loop (`run_sync` calls it).
A client you pass with `client=` is yours: the model never closes it.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

try:
    import openai
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletion, ChatCompletionChunk
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise ImportError(
        'cogent.models.openai needs the openai SDK; install it with: pip install "cogent-context[openai]" '
        '(from a checkout: pip install -e ".[openai]")'
    ) from _exc

from ..exceptions import ModelAPIError, UnexpectedModelBehavior, UserError
from ..messages import Message, ModelResponse
from ._base import Model, ModelRequestParameters, ReasoningDelta, TextDelta
from ._loop import LoopClients, PassedClient
from ._openai_wire import ChunkAssembler, error_details, map_messages, map_tool, parse_message, parse_usage

__all__ = ["OpenAIModel", "OpenAISettings"]

_PREVIEW = 200
"""How many characters of an unusable server answer an error message quotes."""


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
    send_reasoning: bool = True
    """Send each earlier response's reasoning back on its assistant message, in the field it
    came in (`reasoning_content`, `reasoning`, `reasoning_details`, Gemini's `extra_content`).
    DeepSeek's thinking mode requires it after tool calls and Gemini 3 requires its thought
    signatures; turn it off only for a server that rejects those fields."""
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
            `base_url` and `api_key` must not be given). The model never closes it.
        settings: Sampling, timeout, retry, reasoning and extra request options.

    Raises:
        UserError: If `client` is combined with `base_url`/`api_key`, or no API key
            is given and `OPENAI_API_KEY` is not set.
    """

    provider_name = "openai"

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
            self._clients: LoopClients[AsyncOpenAI] | PassedClient[AsyncOpenAI] = PassedClient(
                client if retries is None else client.with_options(max_retries=retries)
            )
            self.base_url = str(client.base_url)
            return
        max_retries = openai.DEFAULT_MAX_RETRIES if retries is None else retries

        def new_client() -> AsyncOpenAI:
            # A plain SDK-default HTTP client: the SDK's own wrapper closes leaked clients on
            # whichever asyncio loop is running at garbage collection, which breaks when
            # the client belonged to another loop or to trio.
            http_client = openai.DefaultAsyncHttpxClient()
            return AsyncOpenAI(api_key=api_key, base_url=base_url, max_retries=max_retries, http_client=http_client)

        try:
            first = new_client()  # validates the configuration now, and serves the first event loop
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
        self.base_url = str(first.base_url)
        self._clients = LoopClients(new_client, AsyncOpenAI.close)
        self._clients.adopt(first)

    def __repr__(self) -> str:
        return f"OpenAIModel({self.model_name!r}, base_url={self.base_url!r})"

    def _current_client(self) -> AsyncOpenAI:
        """The client for the running event loop (the passed client, or this loop's own)."""
        return self._clients.get()

    async def aclose(self) -> None:
        """Close the client this model opened on the running event loop (never a passed `client=`).

        The model stays usable: a later request opens a new client.
        """
        await self._clients.aclose()

    async def request(self, messages: list[Message], params: ModelRequestParameters) -> ModelResponse:
        """Send one Chat Completions request and return the first choice.

        Args:
            messages: The history to send (mapped to Chat Completions messages).
            params: Instructions (a leading system message), tools and output mode.

        Returns:
            The text, tool calls (an empty id becomes `None`, for the run to assign), reasoning,
            finish reason and token usage of the first choice.

        Raises:
            ModelAPIError: If the server answers with an error (an HTTP error, or an error
                object in a 200 answer), or cannot be reached (after the SDK's retries).
            UnexpectedModelBehavior: If the answer is not a Chat Completions object (e.g. a
                proxy's plain-text page) or has no choices.
            UserError: If a tool call in the history has no id.
        """
        try:
            completion = await self._current_client().chat.completions.create(**self._request_kwargs(messages, params))
        except openai.APIError as exc:
            raise self._api_error(exc) from exc
        if not isinstance(completion, ChatCompletion):  # the SDK returns the text of a non-JSON answer
            raise self._unusable(completion)
        extra = completion.model_extra or {}
        if extra.get("error") is not None:
            raise self._reported_error(extra["error"])
        choices = getattr(completion, "choices", None)  # the SDK builds responses without validating them
        if not choices:
            raise UnexpectedModelBehavior(
                f"Model {self.model_name!r} at {self.base_url} answered with no choices; check that the "
                "server supports the Chat Completions API for this model."
            )
        choice = choices[0]
        choice_error = (choice.model_extra or {}).get("error")
        if choice_error is not None:
            raise self._reported_error(choice_error)
        usage = parse_usage(getattr(completion, "usage", None), completion)
        return parse_message(choice.message, choice.finish_reason, usage, completion.model or self.model_name)

    async def request_stream(
        self, messages: list[Message], params: ModelRequestParameters
    ) -> AsyncIterator[TextDelta | ReasoningDelta | ModelResponse]:
        """Stream one Chat Completions request (server-sent events).

        Yields a `ReasoningDelta` per reasoning chunk and a `TextDelta` per text chunk as they
        arrive, then the complete `ModelResponse` (text, tool calls assembled from their
        streamed fragments, reasoning, finish reason, and the usage requested with
        `stream_options={"include_usage": True}`).

        Args:
            messages: As for `request()`.
            params: As for `request()`.

        Raises:
            ModelAPIError: If the server answers with an error, before or during the stream
                (an error event carries the server's own code and type).
            UnexpectedModelBehavior: If the answer is not an event stream, or the stream ends
                without data or before the model finished (no finish reason).
            UserError: If a tool call in the history has no id.
        """
        assembler = ChunkAssembler(model_name=self.model_name)
        try:
            stream = await self._current_client().chat.completions.create(
                **self._request_kwargs(messages, params), stream=True, stream_options={"include_usage": True}
            )
            async with stream:
                content_type = stream.response.headers.get("content-type", "")
                if "event-stream" not in content_type:
                    raise self._not_a_stream(await stream.response.aread())
                async for chunk in stream:
                    if not isinstance(chunk, ChatCompletionChunk):
                        raise self._reported_error(chunk)
                    if str(chunk.object) == "error":  # vLLM's unwrapped error object
                        raise self._reported_error(chunk.model_dump())
                    for delta in assembler.add(chunk):
                        yield delta
        except openai.APIError as exc:
            raise self._api_error(exc) from exc
        if assembler.chunks == 0 or assembler.raw_finish is None:
            what = "without any data" if assembler.chunks == 0 else "before the model finished (no finish_reason)"
            raise UnexpectedModelBehavior(
                f"The stream from {self.base_url} for model {self.model_name!r} ended {what}; the connection "
                "or a proxy cut it short. Retry the request, or use agent.run() instead of run_stream()."
            )
        yield assembler.response()

    def _request_kwargs(self, messages: list[Message], params: ModelRequestParameters) -> dict[str, Any]:
        """Return the keyword arguments of `chat.completions.create` for one request."""
        s = self.settings
        kwargs: dict[str, Any] = {
            "model": self.model_name,
            "messages": map_messages(messages, params.instructions, send_reasoning=s.send_reasoning),
        }
        definitions = [*params.tools, *params.output_tools]
        if definitions:
            kwargs["tools"] = [map_tool(d) for d in definitions]
            kwargs["parallel_tool_calls"] = params.parallel_tool_calls
            if not params.allow_text_output:
                kwargs["tool_choice"] = "required"
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

    def _unusable(self, answer: object) -> UnexpectedModelBehavior:
        """The error for a 200 answer that is not a Chat Completions object."""
        preview = answer if isinstance(answer, str) else repr(answer)
        return UnexpectedModelBehavior(
            f"The server at {self.base_url} answered model {self.model_name!r} with something that is not a "
            f"Chat Completions response: {preview[:_PREVIEW]!r}. Check base_url (it usually ends in /v1) and any "
            "proxy in between."
        )

    def _not_a_stream(self, body: bytes) -> ModelAPIError | UnexpectedModelBehavior:
        """The error for a streamed request answered without an event stream."""
        text = body.decode(errors="replace")
        try:
            data = json.loads(text)
        except ValueError:
            return self._unusable(text)
        if isinstance(data, dict) and data.get("error") is not None:
            return self._reported_error(data)
        return self._unusable(text)

    def _reported_error(self, body: object) -> ModelAPIError:
        """A `ModelAPIError` for an error the server reported inside a 200 answer or stream."""
        message, code, kind = error_details(body)
        return ModelAPIError(
            f"The server at {self.base_url} reported an error for model {self.model_name!r}: "
            f"{message or 'no message'} (code {code!r}, type {kind!r}). Check the request settings, or retry "
            "if the server says it is overloaded.",
            status_code=_status(code),
            body=body,
        )

    def _api_error(self, exc: openai.APIError) -> ModelAPIError:
        """A `ModelAPIError` for an error the SDK raised."""
        if isinstance(exc, openai.APIStatusError):
            what = f"answered HTTP {exc.status_code}"
        elif isinstance(exc, openai.APIConnectionError):
            what = "could not be reached"
        else:  # an error event inside a 200 stream
            return self._reported_error(exc.body if exc.body is not None else exc.message)
        return ModelAPIError(
            f"The server at {self.base_url} {what} for model {self.model_name!r}: {exc.message} "
            "Check the model name, the base URL, the API key and the request settings "
            "(transient errors are retried by the SDK: OpenAISettings(max_retries=...)).",
            status_code=getattr(exc, "status_code", None),
            body=exc.body,
        )


def _status(code: str | None) -> int | None:
    """An error code that is an HTTP status (OpenRouter and vLLM send one), else `None`."""
    if code is not None and code.isdigit() and 100 <= int(code) <= 599:
        return int(code)
    return None
