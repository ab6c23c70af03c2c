"""What the run loop derives from an agent's configuration, once per configuration change."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from pydantic import TypeAdapter

from .._signature import InjectedCall
from ..context import RunContext
from ..exceptions import UserError
from ..interceptors import Interceptor
from ..models import ModelRequestParameters
from ..tools import AnyTool, ToolDefinition, Toolset
from .phases import Plan, build_plan

if TYPE_CHECKING:
    from ..agent import Agent

__all__ = ["OUTPUT_TOOL_NAME", "AgentSpec", "OutputSpec", "build_output", "build_spec", "spec_of"]

OUTPUT_TOOL_NAME: Final = "final_result"
"""The name of the tool that delivers a structured final answer."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OutputSpec:
    """How a structured final answer is asked for and validated."""

    adapter: TypeAdapter[Any]
    """Validates the answer into the agent's `output_type`."""
    definition: ToolDefinition
    """The `final_result` tool offered to the model."""
    wrapped: bool
    """Whether the schema wraps a non-object type in `{"response": ...}`."""


@dataclass(kw_only=True)
class AgentSpec:
    """An agent's tools, output, interceptor plan and instructions, ready for the run loop.

    Built again whenever the agent's configuration changes; its last fields are caches the
    run loop fills on first use."""

    tools: dict[str, AnyTool]
    """The agent's own tools and its subagents, by name."""
    toolsets: tuple[Toolset, ...]
    """Toolsets opened per execution (e.g. MCP servers)."""
    output: OutputSpec | None
    """The structured output, or `None` for text."""
    plan: Plan
    """The agent's own interceptors' handlers per phase."""
    instructions: InjectedCall | str | None
    """The instructions: text, or a callable receiving the context."""
    checked_contexts: set[type[RunContext]] = field(default_factory=set)
    """Context classes already checked against the tools' annotations."""
    params: ModelRequestParameters | None = None
    """The request parameters executions share while nothing changes them (set on first use)."""

    @functools.cached_property
    def definitions(self) -> list[ToolDefinition]:
        """What the model is offered (without the output tool); built on first use, so annotations
        that name classes defined after the agent resolve."""
        return [t.definition for t in self.tools.values()]


def build_output(name: str, output_type: type[Any]) -> OutputSpec | None:
    """Return the output spec for `output_type` (`None` for `str`).

    Raises:
        UserError: If pydantic cannot validate `output_type`.
    """
    if output_type is str:
        return None
    try:
        adapter: TypeAdapter[Any] = TypeAdapter(output_type)
        schema = adapter.json_schema()
    except Exception as exc:
        raise UserError(f"Agent {name!r} has an output_type pydantic cannot validate: {exc}") from exc
    wrapped = schema.get("type") != "object"
    if wrapped:
        schema = {"type": "object", "properties": {"response": schema}, "required": ["response"]}
    definition = ToolDefinition(
        name=OUTPUT_TOOL_NAME,
        description="Give the final answer. Calling this ends the conversation.",
        parameters_json_schema=schema,
    )
    return OutputSpec(adapter=adapter, definition=definition, wrapped=wrapped)


def build_spec(
    *,
    name: str,
    tools: Sequence[AnyTool],
    toolsets: Sequence[Toolset],
    output: OutputSpec | None,
    interceptors: Sequence[Interceptor],
    instructions: InjectedCall | str | None,
) -> AgentSpec:
    """Return the spec of an agent.

    Raises:
        UserError: If two tools share a name (or one is named like the output tool).
    """
    by_name: dict[str, AnyTool] = {}
    for t in tools:
        if t.name in by_name or (output is not None and t.name == OUTPUT_TOOL_NAME):
            raise UserError(
                f"Agent {name!r} has two tools named {t.name!r}; give one of them another name "
                "(@tool(name=...) or agent.as_tool(name=...))."
            )
        by_name[t.name] = t
    return AgentSpec(
        tools=by_name,
        toolsets=tuple(toolsets),
        output=output,
        plan=build_plan(interceptors),
        instructions=instructions,
    )


def spec_of(agent: Agent[Any, Any]) -> AgentSpec:
    """Return the spec `agent` keeps for the run loop (the one place the loop reads it)."""
    return agent._spec


async def instructions_for(instructions: InjectedCall, ctx: RunContext) -> str | None:
    """Return the instructions a callable gives for one execution's context."""
    text = await instructions(ctx)
    return None if text is None else str(text)
