"""What one run's executions share, and the options a run is started with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._signature import InjectedCall
from ..events import StreamEvent
from ..exceptions import UsageLimitExceeded, UserError
from ..interceptors import Interceptor
from ..messages import Message
from ..usage import Usage, UsageLimits
from .phases import Plan, build_plan

if TYPE_CHECKING:
    from ..agent import Agent

__all__ = ["DEFAULT_MAX_REQUESTS", "Emit", "Enclosing", "RunOptions", "RunTree", "WorkBudget", "enclosing_run"]

Emit = Callable[[StreamEvent], Awaitable[None]]

DEFAULT_MAX_REQUESTS = 200
"""The default bound on the model requests of a run tree, nested runs included."""


@dataclass(kw_only=True, slots=True)
class RunOptions:
    """The keyword arguments of `Agent.run()`, checked once and handed down as one object."""

    context: Any = None
    """The caller's context (a `RunContext`, a dict of metadata, or `None`)."""
    message_history: Sequence[Message] | None = None
    """Earlier messages."""
    interceptors: Sequence[Interceptor] = ()
    """Interceptors for every agent of the tree."""
    usage_limits: UsageLimits | None = None
    """Hard caps on the run's usage."""
    approval_handler: Callable[..., Any] | None = None
    """Decides calls that need approval."""
    max_depth: int = 16
    """The hard delegation limit."""
    max_requests: int = DEFAULT_MAX_REQUESTS
    """The hard bound on the model requests of the whole tree, nested runs included."""
    emit: Emit | None = None
    """Where stream events go (`run_stream`)."""

    def check(self, agent_name: str) -> None:
        """Raise `UserError` for any argument that cannot work, naming it and the fix."""
        where = f"Agent {agent_name!r}.run()"
        for name in ("max_depth", "max_requests"):
            value = getattr(self, name)
            low = 0 if name == "max_depth" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"{where} got {name}={value!r}; pass an int of {low} or more.")
        if isinstance(self.interceptors, Interceptor) or not isinstance(self.interceptors, Sequence):
            raise UserError(f"{where} got interceptors={self.interceptors!r}; pass a list of Interceptor instances.")
        for i in self.interceptors:
            if not isinstance(i, Interceptor):
                raise UserError(
                    f"{where} got {i!r} in interceptors=; pass Interceptor instances (subclass Interceptor or "
                    "decorate a function with @interceptor)."
                )
        if self.usage_limits is not None and not isinstance(self.usage_limits, UsageLimits):
            raise UserError(
                f"{where} got usage_limits={type(self.usage_limits).__qualname__}; pass "
                "cogent.UsageLimits(request_limit=..., ...) or None."
            )
        if self.approval_handler is not None and not callable(self.approval_handler):
            raise UserError(f"{where} got approval_handler={self.approval_handler!r}; pass a function or None.")


@dataclass(kw_only=True, slots=True)
class WorkBudget:
    """The model requests a run tree may make, shared with the runs started inside its tools."""

    limit: int
    """The most requests."""
    spent: int = 0
    """Requests made so far."""

    def spend(self) -> None:
        """Count one request.

        Raises:
            UsageLimitExceeded: If the budget is used up.
        """
        if self.spent >= self.limit:
            raise UsageLimitExceeded(
                f"The run tree made {self.spent} model requests, its bound (run(max_requests={self.limit})), "
                "counting subagents and runs started inside tools; check for an agent that delegates to itself "
                "or a cycle of nested runs, or pass a larger max_requests."
            )
        self.spent += 1


@dataclass(kw_only=True, slots=True)
class RunTree:
    """What all executions of one top-level run share."""

    run_id: str
    """The run's id (stable across resumes; approvals are bound to it)."""
    usage: Usage
    """The usage of the whole tree."""
    limits: UsageLimits | None
    """The user's hard caps."""
    budget: WorkBudget
    """The bound on model requests, shared with enclosing and nested runs."""
    interceptors: tuple[Interceptor, ...]
    """Interceptors for every agent of the tree."""
    approval_handler: InjectedCall | None
    """Decides calls that need approval, or `None` to interrupt."""
    max_depth: int
    """The hard delegation limit, counted from the outermost run."""
    emit: Emit | None
    """Where stream events go."""
    state: dict[str, Any] = field(default_factory=dict)
    """The interceptors' shared state."""
    reported: list[BaseException] = field(default_factory=list)
    """Exceptions ON_ERROR has already seen (each fires it once)."""
    plans: dict[int, Plan] = field(default_factory=dict)
    """Per agent (by id; the tree keeps the agents alive): its interceptors, then the run's."""

    def plan_for(self, agent: Agent[Any, Any], own: Plan) -> Plan:
        """Return the handlers per phase for `agent`, whose own plan is `own`."""
        if not self.interceptors:
            return own
        plan = self.plans.get(id(agent))
        if plan is None:
            plan = self.plans[id(agent)] = build_plan((*agent.interceptors, *self.interceptors))
        return plan

    def reserve_request(self) -> None:
        """Check the caps and count one model request, atomically (no other task runs in between).

        Raises:
            UsageLimitExceeded: If a cap would be exceeded.
        """
        if self.limits is not None:
            self.limits.check_before_request(self.usage)
        self.budget.spend()
        self.usage.requests += 1

    def reserve_tool_call(self) -> None:
        """Check the tool-call cap and count one tool call, atomically.

        Raises:
            UsageLimitExceeded: If `tool_calls_limit` would be exceeded.
        """
        if self.limits is not None:
            self.limits.check_before_tool_call(self.usage)
        self.usage.tool_calls += 1

    def first_report(self, exc: BaseException) -> bool:
        """Return whether ON_ERROR has not seen `exc` yet, and remember it."""
        if any(seen is exc for seen in self.reported):
            return False
        self.reported.append(exc)
        return True


@dataclass(frozen=True, slots=True)
class Enclosing:
    """The execution a nested `agent.run()` (inside a tool) was started from."""

    budget: WorkBudget
    """The enclosing tree's request budget."""
    depth: int
    """The enclosing execution's depth."""
    max_depth: int
    """The enclosing tree's hard delegation limit."""


enclosing_run: ContextVar[Enclosing] = ContextVar("cogent_enclosing_run")
"""Set while an execution runs, so that a run started inside one of its tools continues its
depth and shares its request budget."""
