"""The only reader of the helper contexts' fields: deadline, lineage, depth, retries.

The rule, one for all four helpers (docs/subagents.md "Which contexts the framework
enforces"): the framework maintains and enforces a helper's fields when the context is an
instance of cogent's helper class (`DelegationContext`, `TaskContext`, `RetryContext`,
`TimedContext`, or `ExecutionContext`, which is all four), and never because a field merely
has the same name. A hand-written class that inherits only `RunContext` (like the spec's own
examples) keeps its fields as plain data that its tools read; inheriting from cogent's class
instead is the one-line change that gives it framework tracking.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from ..context import (
    DelegationContext,
    RetryContext,
    RunContext,
    TaskContext,
    TimedContext,
    share_approvals,
)
from ..core import now_utc
from ..exceptions import ContextTypeError, UserError
from ..tools import AnyTool, Tool
from .spec import AgentSpec

if TYPE_CHECKING:
    from ..agent import Agent

__all__ = [
    "check_context",
    "child_context",
    "deadline_of",
    "deadline_scope",
    "delegation_refusal",
    "execution_copy",
    "lineage",
    "remaining_seconds",
    "retry_limit",
    "retry_view",
]


def execution_copy(context: RunContext, agent: Agent[Any, Any], task: str) -> RunContext:
    """Return the context a top-level run executes with: a shallow copy of the caller's.

    The caller's object is never written: its `query`, metadata and fields stay as they were.
    The copy has its own metadata dict, `agent` set, `query` set to the run's input when the
    caller's is empty, and shares the caller's approval decisions.
    """
    try:
        execution = context.__copy__()  # copy.copy() would find and call the same method, slower
        metadata = dict(context.metadata)
    except AttributeError:
        raise UserError(
            f"The context {type(context).__qualname__} has no `metadata` attribute: its __init__ does not run "
            "RunContext's. Make it a dataclass (@dataclass class ...(RunContext)) or call super().__init__()."
        ) from None
    object.__setattr__(execution, "metadata", metadata)
    object.__setattr__(execution, "agent", agent)
    if not getattr(execution, "query", ""):
        object.__setattr__(execution, "query", task)
    share_approvals(execution, context)
    return execution


def check_context(agent: Agent[Any, Any], ctx: RunContext, spec: AgentSpec, tools: dict[str, AnyTool]) -> None:
    """Raise `ContextTypeError` before any request if `ctx` cannot serve `agent` or its tools.

    Checked once per context class for the agent's own tools (`spec`), every time for the
    tools a toolset adds.

    Raises:
        ContextTypeError: If `ctx` is not an instance of the agent's `context_type`, or of the
            class a tool's context parameter is annotated with.
    """
    if not isinstance(ctx, agent.context_type):
        raise ContextTypeError(
            f"Agent {agent.name!r} requires a {agent.context_type.__qualname__} context, got "
            f"{type(ctx).__qualname__}; pass an instance of {agent.context_type.__qualname__}."
        )
    cls = type(ctx)
    if tools is spec.tools and cls in spec.checked_contexts:
        return
    for t in tools.values():
        if isinstance(t, Tool):
            param = t.schema.context
            if param is not None and not isinstance(ctx, param.cls):
                param.check(ctx, f"Tool {t.name!r} of agent {agent.name!r}")
    if tools is spec.tools:
        spec.checked_contexts.add(cls)


def child_context(parent: RunContext, sub: Agent[Any, Any]) -> RunContext:
    """Return the context `sub` executes a delegated task with.

    It is `parent.create_child_context()` (a subclass's override included), made safe: an
    override that returns the parent itself gets a copy, one that shares the parent's
    metadata dict gets its own; `agent` is set to `sub` and the approval decisions are shared.

    Raises:
        UserError: If `create_child_context()` returns something other than a context.
        ContextTypeError: If the child is not an instance of `sub`'s `context_type`.
    """
    child = parent.create_child_context()
    if not isinstance(child, RunContext):
        raise UserError(
            f"{type(parent).__qualname__}.create_child_context() returned a {type(child).__qualname__}; "
            "return a RunContext instance (e.g. a copy of self) for the subagent."
        )
    if child is parent:
        child = copy.copy(child)
    if child.metadata is parent.metadata:
        object.__setattr__(child, "metadata", dict(child.metadata))
    object.__setattr__(child, "agent", sub)
    share_approvals(child, parent)
    return child


def delegation_refusal(ctx: RunContext) -> tuple[int, int] | None:
    """Return `(depth, max_depth)` when a `DelegationContext` may not delegate, else `None`."""
    if isinstance(ctx, DelegationContext) and not ctx.can_delegate:
        return ctx.depth, ctx.max_depth
    return None


def lineage(ctx: RunContext) -> tuple[str | None, str | None]:
    """Return `(task_id, parent_task_id)` of a `TaskContext`, else `(None, None)`."""
    if isinstance(ctx, TaskContext):
        return ctx.task_id, ctx.parent_task_id
    return None, None


def deadline_of(ctx: RunContext) -> datetime | None:
    """Return the deadline of a `TimedContext`, else `None`.

    Raises:
        UserError: If the deadline is not a timezone-aware datetime.
    """
    if not isinstance(ctx, TimedContext) or ctx.deadline is None:
        return None
    deadline = ctx.deadline
    if not isinstance(deadline, datetime) or deadline.tzinfo is None:
        raise UserError(
            f"The context's deadline {deadline!r} is not a timezone-aware datetime; use e.g. "
            "cogent.core.now_utc() + timedelta(seconds=30)."
        )
    return deadline


def remaining_seconds(ctx: RunContext) -> float | None:
    """Return the seconds until a `TimedContext`'s deadline (negative when past), else `None`.

    Raises:
        UserError: If the deadline is not a timezone-aware datetime.
    """
    deadline = deadline_of(ctx)
    return None if deadline is None else (deadline - now_utc()).total_seconds()


def deadline_scope(deadline: datetime) -> anyio.CancelScope:
    """Return a cancel scope that ends at `deadline`."""
    return anyio.CancelScope(deadline=anyio.current_time() + (deadline - now_utc()).total_seconds())


def retry_view(ctx: RunContext, failures: int) -> RunContext:
    """Return the context a call of a tool that failed `failures` times before receives.

    A `RetryContext` gets a copy with `retry_count = failures` and `is_retry = True` (sharing
    everything else); any other context, or a first attempt, is returned as it is.
    """
    if not failures or not isinstance(ctx, RetryContext):
        return ctx
    view = copy.copy(ctx)
    object.__setattr__(view, "retry_count", failures)
    object.__setattr__(view, "is_retry", True)
    share_approvals(view, ctx)
    return view


def retry_limit(ctx: RunContext, default: int) -> int:
    """Return the retries allowed per tool: a `RetryContext`'s `max_retries`, else `default`."""
    if isinstance(ctx, RetryContext):
        return ctx.max_retries
    return default
