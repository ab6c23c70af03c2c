"""The seams integrations plug into, so the turn loop never knows about them.

- `Steps`: how the side-effecting steps are performed. The default performs them directly;
  the durable runner (`cogent.durable`) records each model request and tool call as a
  checkpointed step, runs each delegation as a child workflow, and waits for approvals
  durably.
- `Observer`: who watches the run as it happens. The telemetry integration
  (`cogent.telemetry`) opens a span per agent execution, model request and tool call, and
  turns trace events (approvals, retries, refusals, interceptor stops) into span events.
  An `Instrumentation` (`cogent.telemetry.InstrumentationSettings`) makes the observer of a
  run: `observer_for` picks it from the top-level agent's `instrument=`, the run that
  encloses a nested run, or the default `cogent.telemetry.instrument_all()` sets.

A run without integrations has neither (`RunTree.steps` and `RunTree.observer` are `None`):
the loop then performs the steps inline and pays nothing for the seams.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

import anyio

from .._signature import InjectedCall
from ..context import RunContext, ToolApprovalItem
from ..events import TraceEvent
from ..messages import Message, ModelResponse, ToolCall
from ..models import Model, ModelRequestParameters
from ..result import RunState
from ..tools import AnyTool, BaseTool
from . import approvals, context_rules
from .approvals import Decision

if TYPE_CHECKING:
    from ..agent import Agent
    from .execution import Execution
    from .outcomes import CallOutcome, ExecutionOutcome

__all__ = ["Instrumentation", "Observer", "Span", "Steps", "observer_for", "set_default_instrumentation"]


async def call_with_timeout(tool: BaseTool, arguments: dict[str, Any], ctx: RunContext) -> Any:
    """Execute one call of `tool` with validated `arguments` under the tool's `timeout`
    (seconds); return the tool's value.

    Raises:
        TimeoutError: Naming the tool, when its timeout passes (a `TimeoutError` the tool
            raises itself keeps its own message).
    """
    if tool.timeout is None:
        return await tool.start(arguments, ctx)
    with anyio.move_on_after(tool.timeout):
        return await tool.start(arguments, ctx)
    raise TimeoutError(f"Tool {tool.name!r} timed out after {tool.timeout} seconds")


class Steps:
    """How the run loop performs the steps whose outcome a durable runner records.

    Each method performs one step exactly as the plain loop does; a subclass wraps them
    (a checkpointed step, a child workflow, a durable wait) and must return what the plain
    step would, so that the loop stays deterministic given the recorded outcomes.
    """

    async def request(
        self, ex: Execution, model: Model, messages: list[Message], params: ModelRequestParameters
    ) -> ModelResponse:
        """Ask `model` for the next response of `ex`."""
        return await model.request(messages, params)

    async def call_tool(
        self, ex: Execution, tool: BaseTool, call_id: str, arguments: dict[str, Any], ctx: RunContext
    ) -> Any:
        """Execute one tool call of `ex` with validated `arguments` under the tool's timeout;
        return the tool's value.

        Raises:
            TimeoutError: Naming the tool, when its timeout passes.
        """
        return await call_with_timeout(tool, arguments, ctx)

    def child_context(self, ex: Execution, call_id: str, sub: Agent[Any, Any]) -> RunContext:
        """Return the context `sub` executes with when `ex`'s call `call_id` delegates to it
        (see `context_rules.child_context`)."""
        return context_rules.child_context(ex.ctx, sub)

    async def delegate(
        self, ex: Execution, call_id: str, child: Execution, resume: RunState | None
    ) -> ExecutionOutcome:
        """Run the subagent execution `child`, delegated to by `ex`'s call `call_id`."""
        return await child.run(resume)

    async def approval(
        self, ex: Execution, item: ToolApprovalItem, ctx: RunContext, handler: InjectedCall | None
    ) -> Decision:
        """Decide a call that needs approval (see `approvals.ask`)."""
        return await approvals.ask(item, ctx, handler)


class Span:
    """One observed step (an agent execution, a model request or a tool call).

    The base class records nothing; an observer returns its own subclass.
    """

    def response(self, response: ModelResponse) -> None:
        """A model request's response arrived."""

    def outcome(self, outcome: CallOutcome) -> None:
        """A tool call came to `outcome`."""

    def finished(self, outcome: ExecutionOutcome) -> None:
        """An agent execution came to `outcome` (its output, or an interruption for approvals)."""


class Observer(ABC):
    """Watches a run as it happens; every method is called only when an observer is set.

    Each `*_span` method returns a context manager entered around the step, in the task
    that performs it (so spans nest as the steps do: a delegation's execution inside the
    delegating call's span). An exception leaving the step passes through the context
    manager's `__exit__`.
    """

    @abstractmethod
    def execution_span(self, ex: Execution) -> AbstractContextManager[Span]:
        """Around one agent execution (the top-level run, or a delegation's subagent)."""

    @abstractmethod
    def request_span(
        self, ex: Execution, model: Model, messages: list[Message], params: ModelRequestParameters
    ) -> AbstractContextManager[Span]:
        """Around one model request of `messages`."""

    @abstractmethod
    def call_span(self, ex: Execution, call: ToolCall, tool: AnyTool | None) -> AbstractContextManager[Span]:
        """Around one tool call, from validation to its result (`tool` is `None` for an unknown name)."""

    @abstractmethod
    def event(self, ex: Execution, event: TraceEvent) -> None:
        """A trace event was recorded in `ex` (approvals, retries, refusals, interceptor results...)."""


class Instrumentation(ABC):
    """A telemetry configuration: what `Agent(instrument=...)` and `instrument_all()` take."""

    @abstractmethod
    def observer(self) -> Observer:
        """Return the observer of a run instrumented with this configuration."""


_default: list[Instrumentation | None] = [None]
"""The configuration of runs whose agent says nothing (`instrument=None`), set by
`cogent.telemetry.instrument_all()`."""


def set_default_instrumentation(instrumentation: Instrumentation | None) -> None:
    """Instrument the runs of agents with `instrument=None` with `instrumentation` (or none)."""
    _default[0] = instrumentation


def observer_for(setting: Instrumentation | bool | None, enclosing: Observer | None) -> Observer | None:
    """Return the observer of a run whose top-level agent has `instrument=setting`.

    Args:
        setting: The agent's `instrument`: `False` is never, a configuration is that one,
            `None` is the run's that encloses it (a run started inside a tool), else the default.
        enclosing: The observer of the enclosing run, if any.
    """
    if setting is None:
        if enclosing is not None:
            return enclosing
        setting = _default[0]
    if isinstance(setting, Instrumentation):
        return setting.observer()
    return None
