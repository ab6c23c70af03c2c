"""The JSON forms a durable run checkpoints: a run's input and output, errors, trace events.

Nothing here pickles: every value is written as JSON text that the run loop can read back
in any process (DBOS stores it as it is, with its portable JSON serializer).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from .. import exceptions
from ..events import TraceEvent
from ..usage import Usage, UsageLimits

__all__ = [
    "ErrorInfo",
    "RunReply",
    "RunRequest",
    "StepError",
    "describe",
    "rebuild",
    "trace_from_data",
    "trace_to_data",
    "usage_delta",
]

_CONFIG = ConfigDict(extra="forbid", frozen=True)


class StepError(Exception):
    """A step of a durable run failed with an exception that cannot be rebuilt as its own class.

    A durable run continues from what its steps recorded, in any process, so the exception
    a tool (or a model) raised is recorded as its type name and message and rebuilt from
    them: cogent's exceptions and the built-in ones as themselves, any other as a
    `StepError`. Its text is the original message (the type name when the message was
    empty), so the model receives the same `Error: ...` result as in a plain run.

    Attributes:
        type_name: The original exception's class, as `module.QualifiedName`.
        message: The original exception's message.
    """

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.message = message

    def __str__(self) -> str:
        return self.message or self.type_name.rsplit(".", 1)[-1]


class ErrorInfo(BaseModel):
    """An exception as a step records it."""

    model_config = _CONFIG

    type: str
    """The class's name (qualified name for classes outside builtins and cogent)."""
    module: str | None = None
    """The class's module, when known (a DBOS portable error only carries the name)."""
    message: str
    """`str(exc)` (a `__str__` that raises gives a placeholder)."""
    status_code: int | None = None
    """A `ModelAPIError`'s status code."""


def describe(exc: BaseException) -> ErrorInfo:
    """Return what a step records of `exc` (a DBOS portable error keeps its original name)."""
    if isinstance(exc, StepError):
        module, _, name = exc.type_name.rpartition(".")
        return ErrorInfo(type=name, module=module or None, message=exc.message)
    if type(exc).__name__ == "PortableWorkflowError" and hasattr(exc, "name"):
        return ErrorInfo(type=str(exc.name), message=str(getattr(exc, "message", "")))
    try:
        message = str(exc)
    except Exception:
        message = f"<{type(exc).__qualname__} that cannot be shown>"
    status = exc.status_code if isinstance(exc, exceptions.ModelAPIError) else None
    return ErrorInfo(type=type(exc).__qualname__, module=type(exc).__module__, message=message, status_code=status)


def rebuild(info: ErrorInfo) -> Exception:
    """Return the exception `info` describes: cogent's and built-in classes as themselves, others as `StepError`."""
    if info.module in (None, exceptions.__name__) and info.type in exceptions.__all__:
        cls = getattr(exceptions, info.type)
        if cls is exceptions.ModelAPIError:
            return exceptions.ModelAPIError(info.message, status_code=info.status_code)
        return cls(info.message)  # type: ignore[no-any-return]
    if info.module in (None, "builtins"):
        cls = getattr(builtins, info.type, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            try:
                candidate = cls(info.message)
                if str(candidate) == info.message:
                    return candidate
            except Exception:  # noqa: S110 - a class that takes other arguments: rebuilt as a StepError
                pass
    module = info.module or "builtins"
    return StepError(f"{module}.{info.type}", info.message)


# --- The workflow's input and output -----------------------------------------------------


class RunRequest(BaseModel):
    """What one durable agent execution starts from (the top-level run, or a delegation's child)."""

    model_config = _CONFIG

    durable: str
    """The `DurableAgent`'s name (its registry key)."""
    agent: str
    """The agent to execute: the durable agent's own, or one of its subagents by name."""
    task: str
    """The agent's input."""
    context_class: str
    """The context's class as `module:QualifiedName`."""
    state: str
    """The context's state (`dump_state`)."""
    decisions: dict[str, Any]
    """The approval decisions recorded on the context (`export_decisions`)."""
    history: str | None = None
    """Earlier messages (`messages_to_json`), top-level runs only."""
    run_id: str
    """The top-level run's workflow id: approvals are bound to it."""
    call_path: tuple[str, ...] = ()
    """The delegating call ids from the top-level run down to this execution."""
    depth: int = 0
    """How many delegations above this execution."""
    usage: Usage
    """The whole tree's usage when this execution starts."""
    spent: int = 0
    """Model requests the tree had made when this execution starts (its `max_requests` budget)."""
    limits: UsageLimits | None = None
    """The run's usage limits."""
    max_requests: int
    """The bound on the tree's model requests."""
    max_depth: int
    """The hard delegation limit."""


class RunReply(BaseModel):
    """What one durable agent execution produced."""

    model_config = _CONFIG

    output: str
    """The output as JSON text."""
    typed: bool
    """Whether `output` is the agent's `output_type` (else a plain JSON value an interceptor or
    `StopExecution` ended the execution with)."""
    text: str
    """The output as the delegating model receives it (`to_text`)."""
    messages: str
    """The execution's messages (`messages_to_json`)."""
    new_message_index: int
    """Where the run's own messages begin."""
    usage: Usage
    """The whole tree's usage when this execution ended."""
    spent: int
    """Model requests of the tree when this execution ended."""
    trace: list[dict[str, Any]]
    """The execution's trace events (`trace_to_data`)."""
    context_class: str
    """The context's class as `module:QualifiedName`."""
    state: str
    """The context's final state."""
    decisions: dict[str, Any]
    """The approval decisions after the execution."""


def usage_delta(before: Usage, after: Usage) -> Usage:
    """Return what was used between two snapshots of one tree's usage."""
    return Usage(
        requests=after.requests - before.requests,
        input_tokens=after.input_tokens - before.input_tokens,
        output_tokens=after.output_tokens - before.output_tokens,
        tool_calls=after.tool_calls - before.tool_calls,
    )


# --- Trace events -------------------------------------------------------------------------

_SCALARS = (
    "kind",
    "agent",
    "depth",
    "tool_name",
    "call_id",
    "task_id",
    "parent_task_id",
    "started",
    "duration",
    "detail",
    "decision",
    "finish_reason",
)


def trace_to_data(events: Sequence[TraceEvent]) -> list[dict[str, Any]]:
    """Return trace events as JSON-able dicts (errors as `ErrorInfo`, children nested)."""
    data = []
    for e in events:
        item: dict[str, Any] = {name: getattr(e, name) for name in _SCALARS}
        if e.usage is not None:
            item["usage"] = {
                "requests": e.usage.requests,
                "input_tokens": e.usage.input_tokens,
                "output_tokens": e.usage.output_tokens,
                "tool_calls": e.usage.tool_calls,
            }
        if e.error is not None:
            item["error"] = describe(e.error).model_dump()
        if e.children:
            item["children"] = trace_to_data(e.children)
        data.append(item)
    return data


def trace_from_data(data: Sequence[dict[str, Any]]) -> list[TraceEvent]:
    """Return the trace events `trace_to_data` wrote (errors rebuilt with `rebuild`)."""
    events = []
    for item in data:
        fields = {name: item[name] for name in _SCALARS}
        usage = item.get("usage")
        error = item.get("error")
        events.append(
            TraceEvent(
                **fields,
                usage=Usage(**usage) if usage is not None else None,
                error=rebuild(ErrorInfo(**error)) if error is not None else None,
                children=trace_from_data(item.get("children", ())),
            )
        )
    return events
