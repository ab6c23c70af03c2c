"""`AnthropicModel`: the Anthropic Messages API through the official `anthropic` SDK.

```python
from cogent import Agent
from cogent.models.anthropic import AnthropicModel, AnthropicSettings

model = AnthropicModel("claude-sonnet-5", settings=AnthropicSettings(max_tokens=2048, temperature=0))
agent = Agent(name="assistant", model=model, instructions="Be brief.")
```

It sends the instructions as `system`, offers tools as custom tools, runs parallel tool
calls (their results go back in one user turn), streams text, thinking and tool input
(`input_json_delta`), and reports usage (input tokens include cache reads and writes) and
the stop reason (`max_tokens` -> `"length"`, `tool_use` -> `"tool_call"`, `end_turn` and
`stop_sequence` -> `"stop"`, `refusal` -> `"content_filter"`). Extended thinking
(`AnthropicSettings(thinking={"type": "enabled", "budget_tokens": 2048})`) comes back as
`ModelResponse.reasoning` and is sent back as the API requires: `thinking` blocks with their
signatures, `redacted_thinking` blocks as they came.

Retries of failed requests (429, 5xx, 529 overloaded, connection errors) are the SDK's:
`AnthropicSettings(max_retries=...)`. Errors that remain are `ModelAPIError` with the HTTP
status (for an error event inside a stream, the status its type stands for, e.g. 529 for
`overloaded_error`).

Life cycle: as `OpenAIModel`, the model opens one `AsyncAnthropic` client per event loop on
first use and closes it in `aclose()`, at the end of `async with model:`, and in
`cogent.models.close_loop_resources()`; a client you pass with `client=` is never closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

try:
    import anthropic
    from anthropic import AsyncAnthropic
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise ImportError(
        'cogent.models.anthropic needs the anthropic SDK; install it with: pip install "cogent-context[anthropic]" '
        '(from a checkout: pip install -e ".[anthropic]")'
    ) from _exc

from ..exceptions import ModelAPIError, UnexpectedModelBehavior, UserError
from ..messages import Message, ModelResponse
from ._anthropic_wire import EventAssembler, map_messages, map_tool, parse_message
from ._base import Model, ModelRequestParameters, ReasoningDelta, TextDelta
from ._loop import LoopClients, PassedClient

__all__ = ["AnthropicModel", "AnthropicSettings"]

_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
"""Anthropic error types -> the HTTP status they stand for (an error event in a 200 stream has none)."""


@dataclass(kw_only=True, frozen=True, slots=True)
class AnthropicSettings:
    """Request settings for `AnthropicModel`; `None` leaves a setting to the API or SDK."""

    max_tokens: int = 4096
    """Cap on the tokens generated per response (the Messages API requires one)."""
    temperature: float | None = None
    """Sampling temperature (0 to 1), sent in the request body (the SDK has no parameter for it;
    models that do not accept sampling settings refuse it)."""
    top_p: float | None = None
    """Nucleus sampling probability mass (sent as `temperature` is)."""
    top_k: int | None = None
    """Sample only from the `top_k` most likely tokens (sent as `temperature` is)."""
    stop_sequences: list[str] | None = None
    """Sequences at which the model stops generating."""
    thinking: dict[str, Any] | None = None
    """Extended thinking, e.g. `{"type": "enabled", "budget_tokens": 2048}` (below `max_tokens`)."""
    timeout: float | None = None
    """Timeout per HTTP request, in seconds (the SDK's default when `None`)."""
    max_retries: int | None = None
    """How often the SDK retries a failed request; the SDK's default (2) when `None`."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Extra JSON fields merged into every request body."""
    extra_headers: dict[str, str] = field(default_factory=dict)
    """Extra HTTP headers sent with every request (e.g. `anthropic-beta`)."""


class AnthropicModel(Model):
    """A Claude model served through the Anthropic Messages API.

    `Agent(model="anthropic:claude-sonnet-5")` is `AnthropicModel("claude-sonnet-5")`,
    configured from the environment (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`).

    Args:
        model_name: The model, e.g. `"claude-sonnet-5"`.
        base_url: The API's base URL; defaults to `ANTHROPIC_BASE_URL`, then Anthropic's.
        api_key: The API key (sent as `x-api-key`); defaults to `ANTHROPIC_API_KEY`.
        auth_token: A bearer token instead of an API key (gateways such as Snowflake
            Cortex); defaults to `ANTHROPIC_AUTH_TOKEN`.
        client: An `anthropic.AsyncAnthropic` to use instead of creating one (then
            `base_url`, `api_key` and `auth_token` must not be given). The model never closes it.
        settings: Token cap, sampling, thinking, timeout, retry and extra request options.

    Raises:
        UserError: If `client` is combined with `base_url`/`api_key`/`auth_token`, or no
            credentials are given and none are set in the environment.
    """

    provider_name = "anthropic"

    def __init__(
        self,
        model_name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        auth_token: str | None = None,
        client: AsyncAnthropic | None = None,
        settings: AnthropicSettings | None = None,
    ) -> None:
        self.model_name = model_name
        self.name = model_name
        self.settings = settings if settings is not None else AnthropicSettings()
        retries = self.settings.max_retries
        if client is not None:
            if base_url is not None or api_key is not None or auth_token is not None:
                raise UserError(
                    f"AnthropicModel({model_name!r}) got client= together with base_url=, api_key= or auth_token=; "
                    "configure the client instead, or pass those without a client."
                )
            self._clients: LoopClients[AsyncAnthropic] | PassedClient[AsyncAnthropic] = PassedClient(
                client if retries is None else client.with_options(max_retries=retries)
            )
            self.base_url = str(client.base_url)
            return
        max_retries = anthropic.DEFAULT_MAX_RETRIES if retries is None else retries

        def new_client() -> AsyncAnthropic:
            http_client = anthropic.DefaultAsyncHttpxClient()  # no SDK wrapper closing it on a foreign loop
            return AsyncAnthropic(
                api_key=api_key,
                auth_token=auth_token,
                base_url=base_url,
                max_retries=max_retries,
                http_client=http_client,
            )

        first = new_client()  # validates the configuration now, and serves the first event loop
        if first.api_key is None and first.auth_token is None and first.credentials is None:
            raise UserError(
                f"AnthropicModel({model_name!r}) has no credentials: pass api_key=... (or auth_token=...), set the "
                "ANTHROPIC_API_KEY environment variable, or pass client=anthropic.AsyncAnthropic(...)."
            )
        self.base_url = str(first.base_url)
        self._clients = LoopClients(new_client, AsyncAnthropic.close)
        self._clients.adopt(first)

    def __repr__(self) -> str:
        return f"AnthropicModel({self.model_name!r}, base_url={self.base_url!r})"

    def _current_client(self) -> AsyncAnthropic:
        """The client for the running event loop (the passed client, or this loop's own)."""
        return self._clients.get()

    async def aclose(self) -> None:
        """Close the client this model opened on the running event loop (never a passed `client=`).

        The model stays usable: a later request opens a new client.
        """
        await self._clients.aclose()

    async def request(self, messages: list[Message], params: ModelRequestParameters) -> ModelResponse:
        """Send one Messages API request.

        Args:
            messages: The history to send (mapped to Messages API turns).
            params: Instructions (`system`), tools and output mode.

        Returns:
            The text, tool calls, thinking, stop reason and token usage of the answer.

        Raises:
            ModelAPIError: If the API answers with an error or cannot be reached (after the
                SDK's retries).
            UnexpectedModelBehavior: If the answer is not a Messages API message.
            UserError: If a tool call in the history has no id.
        """
        try:
            message = await self._current_client().messages.create(**self._request_kwargs(messages, params))
        except anthropic.APIError as exc:
            raise self._api_error(exc) from exc
        if not isinstance(message, anthropic.types.Message) or getattr(message, "content", None) is None:
            preview = message if isinstance(message, str) else repr(message)
            raise UnexpectedModelBehavior(
                f"The server at {self.base_url} answered model {self.model_name!r} with something that is not a "
                f"Messages API response: {preview[:200]!r}. Check base_url and any proxy in between."
            )
        return parse_message(message, self.model_name)

    async def request_stream(
        self, messages: list[Message], params: ModelRequestParameters
    ) -> AsyncIterator[TextDelta | ReasoningDelta | ModelResponse]:
        """Stream one Messages API request (server-sent events).

        Yields a `ReasoningDelta` per thinking delta and a `TextDelta` per text delta as they
        arrive, then the complete `ModelResponse` (tool inputs assembled from their
        `input_json_delta` fragments).

        Args:
            messages: As for `request()`.
            params: As for `request()`.

        Raises:
            ModelAPIError: If the API answers with an error, before or during the stream.
            UnexpectedModelBehavior: If the stream ends before the message is complete.
        """
        assembler = EventAssembler(model_name=self.model_name)
        try:
            stream = await self._current_client().messages.create(**self._request_kwargs(messages, params), stream=True)
            async with stream:
                async for event in stream:
                    for delta in assembler.add(event):
                        yield delta
        except anthropic.APIError as exc:
            raise self._api_error(exc) from exc
        if assembler.raw_finish is None:
            raise UnexpectedModelBehavior(
                f"The stream from {self.base_url} for model {self.model_name!r} ended before the message was "
                "complete (no stop reason); the connection or a proxy cut it short. Retry the request."
            )
        yield assembler.response()

    def _request_kwargs(self, messages: list[Message], params: ModelRequestParameters) -> dict[str, Any]:
        """Return the keyword arguments of `messages.create` for one request."""
        s = self.settings
        system, turns = map_messages(messages, params.instructions)
        kwargs: dict[str, Any] = {"model": self.model_name, "max_tokens": s.max_tokens, "messages": turns}
        if system:
            kwargs["system"] = system
        definitions = [*params.tools, *params.output_tools]
        if definitions:
            kwargs["tools"] = [map_tool(d) for d in definitions]
            choice: dict[str, Any] = {"type": "auto" if params.allow_text_output else "any"}
            if not params.parallel_tool_calls:
                choice["disable_parallel_tool_use"] = True
            if choice != {"type": "auto"}:
                kwargs["tool_choice"] = choice
        sampling = {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k}
        body = {**{k: v for k, v in sampling.items() if v is not None}, **s.extra_body}  # no SDK parameters
        for name, value in (
            ("stop_sequences", s.stop_sequences),
            ("thinking", s.thinking),
            ("timeout", s.timeout),
            ("extra_body", body or None),
            ("extra_headers", s.extra_headers or None),
        ):
            if value is not None:
                kwargs[name] = value
        return kwargs

    def _api_error(self, exc: anthropic.APIError) -> ModelAPIError:
        """A `ModelAPIError` for an error the SDK raised."""
        status: int | None = None
        if isinstance(exc, anthropic.APIStatusError):
            kind = exc.type
            status = exc.status_code if exc.status_code >= 400 else _ERROR_STATUS.get(str(kind))
            message = exc.api_message or exc.message
            what = f"answered HTTP {status}" if exc.status_code >= 400 else f"reported {kind!r} during the stream"
        elif isinstance(exc, anthropic.APIConnectionError):
            what, message = "could not be reached", exc.message
        else:
            what, message = "reported an error", exc.message
        return ModelAPIError(
            f"The Anthropic API at {self.base_url} {what} for model {self.model_name!r}: {message} "
            "Check the model name, the API key and the request settings (transient errors are retried "
            "by the SDK: AnthropicSettings(max_retries=...)).",
            status_code=status,
            body=exc.body,
        )
