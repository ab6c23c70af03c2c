"""What a run reports as it goes: the trace (`result.trace`) and the stream events
(`agent.run_stream()`).

Neither ever contains a run context value: only names, ids, what the model sent and
received, and the lineage ids (`task_id`, `parent_task_id`) of `TaskContext` contexts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeAlias

from typing_extensions import TypeVar

from .context import RunContext
from .messages import FinishReason
from .usage import Usage

if TYPE_CHECKING:
    from .result import RunResult

__all__ = [
    "ApprovalDecision",
    "DelegationEndEvent",
    "DelegationStartEvent",
    "FinalResultEvent",
    "ReasoningDeltaEvent",
    "StreamEvent",
    "TextDeltaEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "TraceEvent",
    "TraceKind",
    "format_trace",
]

ContextT = TypeVar("ContextT", bound=RunContext, default=RunContext)
OutputT = TypeVar("OutputT", default=str)

TraceKind: TypeAlias = Literal[
    "model_request",
    "tool_call",
    "tool_error",
    "retry",
    "delegation",
    "delegation_refused",
    "approval",
    "interceptor",
]
"""What a `TraceEvent` records."""

ApprovalDecision: TypeAlias = Literal["approved", "rejected", "pending"]
"""The outcome of an approval check: `"pending"` when the run was interrupted to wait for it."""


@dataclass(kw_only=True, slots=True)
class TraceEvent:
    """One step of a run. Delegations hold their subagent's events in `children`.

    Events never contain run context values; only the lineage ids of `TaskContext` contexts.
    """

    kind: TraceKind
    """What happened."""
    agent: str
    """The agent that did it."""
    depth: int
    """How many delegations above this agent (0 at the top level)."""
    tool_name: str | None = None
    """The tool (or subagent) concerned."""
    call_id: str | None = None
    """The tool call's id."""
    task_id: str | None = None
    """The context's `task_id`, when it is a `TaskContext` (or `ExecutionContext`)."""
    parent_task_id: str | None = None
    """The context's `parent_task_id`, when it is a `TaskContext`."""
    started: float = 0.0
    """`time.perf_counter()` when the step started (seconds)."""
    duration: float = 0.0
    """How long the step took (seconds)."""
    detail: str | None = None
    """The text of the step as the model saw it: the response text, the tool result, the
    refusal or error message."""
    decision: ApprovalDecision | None = None
    """`approval` events: whether the call was approved, rejected, or is pending."""
    finish_reason: FinishReason | None = None
    """`model_request` events: why the model stopped, when it said."""
    usage: Usage | None = None
    """`model_request` events: the tokens of this response."""
    error: BaseException | None = None
    """The exception, for `tool_error` events."""
    children: Sequence[TraceEvent] = ()
    """The subagent's events, for `delegation` events (a list, in the order they happened)."""


def format_trace(events: Sequence[TraceEvent], *, indent: str = "  ", width: int = 80) -> str:
    """Render a trace as an indented tree, one line per event.

    Args:
        events: `result.trace`.
        indent: The text added per nesting level.
        width: The most characters of each event's detail (result, error) to show.

    Returns:
        Lines like `tool_call lookup agent=desk depth=1 call=c1 task=ab12cd34 (0.05 ms) -> ok`.
    """
    lines: list[str] = []

    def walk(items: Sequence[TraceEvent], level: int) -> None:
        for e in items:
            parts = [e.kind, e.tool_name or e.agent, f"agent={e.agent}", f"depth={e.depth}"]
            if e.call_id:
                parts.append(f"call={e.call_id}")
            if e.task_id:
                parts.append(f"task={e.task_id}")
            if e.parent_task_id:
                parts.append(f"parent={e.parent_task_id}")
            if e.decision:
                parts.append(e.decision)
            if e.finish_reason and e.finish_reason != "stop":
                parts.append(f"finish={e.finish_reason}")
            line = f"{indent * level}{' '.join(parts)} ({e.duration * 1000:.2f} ms)"
            if e.detail:
                detail = " ".join(e.detail.split())
                line += f" -> {detail[: width - 3] + '...' if len(detail) > width else detail}"
            lines.append(line)
            walk(e.children, level + 1)

    walk(events, 0)
    return "\n".join(lines)


@dataclass(kw_only=True, frozen=True, slots=True)
class TextDeltaEvent:
    """Text the model produced (one delta per response for non-streaming models)."""

    agent: str
    """The agent whose model produced it."""
    depth: int
    """The agent's delegation depth."""
    text: str
    """The new text."""


@dataclass(kw_only=True, frozen=True, slots=True)
class ReasoningDeltaEvent:
    """Reasoning ("thinking") the model produced; never part of the output."""

    agent: str
    """The agent whose model produced it."""
    depth: int
    """The agent's delegation depth."""
    text: str
    """The new reasoning text."""


@dataclass(kw_only=True, frozen=True, slots=True)
class ToolCallEvent:
    """A tool call is about to run (its arguments are validated)."""

    agent: str
    """The agent calling the tool."""
    depth: int
    """The agent's delegation depth."""
    tool_name: str
    """The tool."""
    call_id: str
    """The call's id."""
    arguments: str
    """The arguments as JSON text, as the model sent them."""


@dataclass(kw_only=True, frozen=True, slots=True)
class ToolResultEvent:
    """A tool call finished; `result` is what the model receives."""

    agent: str
    """The agent that called the tool."""
    depth: int
    """The agent's delegation depth."""
    tool_name: str
    """The tool."""
    call_id: str
    """The call's id."""
    result: str
    """The result as the model sees it."""


@dataclass(kw_only=True, frozen=True, slots=True)
class DelegationStartEvent:
    """A subagent starts working on a delegated task."""

    agent: str
    """The subagent."""
    parent: str
    """The delegating agent."""
    depth: int
    """The subagent's delegation depth."""
    task: str
    """The delegated task."""
    task_id: str | None
    """The child context's `task_id`, if it is a `TaskContext`."""
    parent_task_id: str | None
    """The child context's `parent_task_id`, if it is a `TaskContext`."""


@dataclass(kw_only=True, frozen=True, slots=True)
class DelegationEndEvent:
    """A subagent finished its delegated task."""

    agent: str
    """The subagent."""
    parent: str
    """The delegating agent."""
    depth: int
    """The subagent's delegation depth."""
    output: str
    """The subagent's output as the delegating model receives it."""
    task_id: str | None
    """The child context's `task_id`, if it is a `TaskContext`."""
    parent_task_id: str | None
    """The child context's `parent_task_id`, if it is a `TaskContext`."""


@dataclass(kw_only=True, frozen=True, slots=True)
class FinalResultEvent(Generic[ContextT, OutputT]):
    """The last event of a stream."""

    result: RunResult[ContextT, OutputT]
    """The run's result."""


StreamEvent: TypeAlias = (
    TextDeltaEvent
    | ReasoningDeltaEvent
    | ToolCallEvent
    | ToolResultEvent
    | DelegationStartEvent
    | DelegationEndEvent
    | FinalResultEvent[Any, Any]
)
"""Any event `Agent.run_stream()` yields."""
