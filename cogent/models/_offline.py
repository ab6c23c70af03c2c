"""Offline models: deterministic, no network, for tests, examples and benchmarks."""

from __future__ import annotations

import inspect
import json
import operator
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeAlias

from ..exceptions import UnexpectedModelBehavior
from ..messages import Message, ModelResponse, RetryPrompt, ToolCall, ToolReturn
from ._base import Model, ModelRequestParameters

__all__ = ["FunctionModel", "ScriptedModel", "TestModel"]

Reply: TypeAlias = ModelResponse | str | ToolCall | list[ToolCall]
"""What an offline model may produce: a response, final text, or tool calls."""


def _to_response(reply: Reply, model_name: str) -> ModelResponse:
    if isinstance(reply, ModelResponse):
        return reply
    if isinstance(reply, str):
        return ModelResponse(text=reply, model_name=model_name)
    if isinstance(reply, ToolCall):
        return ModelResponse(tool_calls=[reply], model_name=model_name)
    if isinstance(reply, list) and all(isinstance(call, ToolCall) for call in reply):
        return ModelResponse(tool_calls=list(reply), model_name=model_name)
    raise UnexpectedModelBehavior(
        f"An offline model produced {reply!r}; return a ModelResponse, a str, a ToolCall or a list of ToolCalls."
    )


class FunctionModel(Model):
    """A model whose responses are computed by your function.

    `fn(messages, info)` (sync or async) returns a `ModelResponse`, a `str` (the final
    text), a `ToolCall` or a list of `ToolCall`s. `info` is the request's
    `ModelRequestParameters`: `info.tools` lists the `ToolDefinition`s offered this turn,
    `info.agent_name` names the agent.

    Args:
        fn: The function.
        name: The model name recorded in responses.
    """

    provider_name = "cogent"  # an offline model of cogent's own

    def __init__(
        self,
        fn: Callable[[list[Message], ModelRequestParameters], Reply | Awaitable[Reply]],
        *,
        name: str = "function",
    ) -> None:
        self.fn = fn
        self.name = name
        self._is_async = inspect.iscoroutinefunction(fn)

    async def request(self, messages: list[Message], params: ModelRequestParameters) -> ModelResponse:
        """Return what `fn(messages, params)` answers (awaited if `fn` is async), as a response.

        Raises:
            UnexpectedModelBehavior: If `fn` returns something other than a `ModelResponse`,
                a `str`, a `ToolCall` or a list of `ToolCall`s.
        """
        reply = self.fn(messages, params)
        if self._is_async:
            reply = await reply  # type: ignore[misc]
        return _to_response(reply, self.name)  # type: ignore[arg-type]


class ScriptedModel(Model):
    """A model that plays a fixed script of responses.

    Each step is a `str` (final text), a `ToolCall`, a list of `ToolCall`s or a
    `ModelResponse`. The model is stateless: the step it plays is the number of model
    responses already in the request's message history, so one instance serves any
    number of concurrent runs.

    Args:
        steps: The script.
        name: The model name recorded in responses.

    Raises:
        UnexpectedModelBehavior: (from `request`) when the history is longer than the script.
    """

    provider_name = "cogent"  # an offline model of cogent's own

    def __init__(self, steps: Sequence[Reply], *, name: str = "scripted") -> None:
        self.steps = [_to_response(step, name) for step in steps]
        self.name = name

    async def request(self, messages: list[Message], params: ModelRequestParameters) -> ModelResponse:
        """Return the script's step numbered by the model responses already in `messages`.

        Raises:
            UnexpectedModelBehavior: If the history has as many model responses as the script
                has steps.
        """
        step = operator.countOf(map(type, messages), ModelResponse)  # in C: one script step per response
        if step >= len(self.steps):
            raise UnexpectedModelBehavior(
                f"ScriptedModel {self.name!r} has {len(self.steps)} steps but was asked for step {step + 1} "
                f"by agent {params.agent_name!r}; add steps to the script."
            )
        reply = self.steps[step]  # a fresh response (and call list) per request: runs never share one
        return reply.with_tool_calls(list(reply.tool_calls))


class TestModel(Model):
    """A model that exercises every tool: it calls each offered tool once, then answers.

    The arguments are generated from each tool's JSON schema (deterministically from
    `seed`). The final answer summarizes the tool results as JSON. With a structured
    output type it calls the output tool instead of answering with text.

    Args:
        seed: Seed for the generated arguments.
        name: The model name recorded in responses.
    """

    __test__ = False  # not a pytest test class

    provider_name = "cogent"  # an offline model of cogent's own

    def __init__(self, *, seed: int = 0, name: str = "test") -> None:
        self.seed = seed
        self.name = name

    async def request(self, messages: list[Message], params: ModelRequestParameters) -> ModelResponse:
        """Call every offered tool once (first request), then answer with the results as JSON,
        or call the output tool when the agent has a structured output type."""
        rng = random.Random(self.seed)
        if not any(isinstance(m, ModelResponse) for m in messages) and params.tools:
            calls = [
                ToolCall(t.name, _example(t.parameters_json_schema, t.parameters_json_schema, rng), f"test_{i}")
                for i, t in enumerate(params.tools)
            ]
            return ModelResponse(tool_calls=calls, model_name=self.name)
        last = messages[-1] if messages else None
        results: dict[str, str] = {}
        if isinstance(last, ToolReturn | RetryPrompt):
            for m in reversed(messages):
                if isinstance(m, ToolReturn):
                    results[m.tool_name] = m.content
                elif isinstance(m, ModelResponse):
                    break
        if params.output_tools:
            out = params.output_tools[0]
            schema = out.parameters_json_schema
            return ModelResponse(tool_calls=[ToolCall(out.name, _example(schema, schema, rng), "test_out")])
        return ModelResponse(text=json.dumps(results) if results else "success (no tool calls)", model_name=self.name)


def _example(schema: dict[str, Any], root: dict[str, Any], rng: random.Random) -> Any:
    """Return a value that satisfies a (pydantic-generated) JSON schema."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _example(root.get("$defs", {})[name], root, rng)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return _example(options[0], root, rng)
    kind = schema.get("type", "object")
    if kind == "object":
        props = schema.get("properties", {})
        return {k: _example(v, root, rng) for k, v in props.items() if k in schema.get("required", ())}
    if kind == "array":
        return [_example(schema.get("items", {}), root, rng) for _ in range(schema.get("minItems", 1))]
    if kind == "string":
        fmt = schema.get("format")
        if fmt == "date-time":
            return "2024-01-01T00:00:00Z"
        if fmt == "date":
            return "2024-01-01"
        return "a" * max(schema.get("minLength", 1), 1)
    if kind == "integer":
        return max(schema.get("minimum", 0), rng.randint(0, 9))
    if kind == "number":
        return float(max(schema.get("minimum", 0), rng.randint(0, 9)))
    if kind == "boolean":
        return rng.random() < 0.5
    return None
