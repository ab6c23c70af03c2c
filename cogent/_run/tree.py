"""What one run's executions share, and the options a run is started with."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
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
    from .hooks import Observer, Steps

__all__ = ["DEFAULT_MAX_REQUESTS", "Emit", "RunOptions", "RunTree", "WorkBudget"]

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
        for name, value, low in (("max_depth", self.max_depth, 0), ("max_requests", self.max_requests, 1)):
            if type(value) is not int or value < low:
                raise UserError(f"{where} got {name}={value!r}; pass an int of {low} or more.")
        interceptors = self.interceptors
        if interceptors:
            if isinstance(interceptors, Interceptor | str | bytes) or not isinstance(interceptors, Sequence):
                raise UserError(f"{where} got interceptors={interceptors!r}; pass a list of Interceptor instances.")
            for i in interceptors:
                if not isinstance(i, Interceptor):
                    raise UserError(
                        f"{where} got {i!r} in interceptors=; pass Interceptor instances (subclass Interceptor or "
                        "decorate a function with @interceptor)."
                    )
        elif not isinstance(interceptors, Sequence):
            raise UserError(f"{where} got interceptors={interceptors!r}; pass a list of Interceptor instances.")
        if self.usage_limits is not None and not isinstance(self.usage_limits, UsageLimits):
            raise UserError(
                f"{where} got usage_limits={type(self.usage_limits).__qualname__}; pass "
                "cogent.UsageLimits(request_limit=..., ...) or None."
            )
        if self.approval_handler is not None and not callable(self.approval_handler):
            raise UserError(f"{where} got approval_handler={self.approval_handler!r}; pass a function or None.")


@dataclass(kw_only=True, slots=True)
class WorkBudget:
    """The model requests a run tree may make; a run started inside a tool of another run has its
    own budget and spends from its enclosing run's too (the smaller bound applies)."""

    limit: int
    """The most requests (this run's `max_requests`)."""
    spent: int = 0
    """Requests made so far."""
    enclosing: WorkBudget | None = None
    """The budget of the run this one was started inside, if any."""

    def spend(self) -> None:
        """Count one request here and in every enclosing budget.

        Raises:
            UsageLimitExceeded: If this budget or an enclosing one is used up.
        """
        budget: WorkBudget | None = self
        while budget is not None:
            if budget.spent >= budget.limit:
                raise UsageLimitExceeded(
                    f"The run tree made {budget.spent} model requests, its bound (run(max_requests={budget.limit})), "
                    "counting subagents and runs started inside its tools; check for an agent that delegates to "
                    "itself or a cycle of nested runs, or pass a larger max_requests."
                )
            budget = budget.enclosing
        budget = self
        while budget is not None:
            budget.spent += 1
            budget = budget.enclosing


class RunTree:
    """What all executions of one top-level run share.

    Args:
        usage: The usage of the whole tree (a resumed run continues its state's).
        limits: The user's hard caps.
        budget: The bound on model requests, shared with enclosing and nested runs.
        interceptors: Interceptors for every agent of the tree.
        approval_handler: Decides calls that need approval, or `None` to interrupt.
        max_depth: The hard delegation limit, counted from the outermost run.
        emit: Where stream events go.
        run_id: The run's id when it resumes a state (else made on first use).
        steps: How steps are performed (durable runs), or `None` for inline.
        observer: Who watches the run (telemetry), or `None`.
    """

    __slots__ = (
        "_plans",
        "_reported",
        "_run_id",
        "_state",
        "approval_handler",
        "budget",
        "emit",
        "interceptors",
        "limits",
        "max_depth",
        "observer",
        "steps",
        "usage",
    )

    def __init__(
        self,
        *,
        usage: Usage,
        limits: UsageLimits | None,
        budget: WorkBudget,
        interceptors: tuple[Interceptor, ...],
        approval_handler: InjectedCall | None,
        max_depth: int,
        emit: Emit | None,
        run_id: str | None = None,
        steps: Steps | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.usage = usage
        self.limits = limits
        self.budget = budget
        self.interceptors = interceptors
        self.approval_handler = approval_handler
        self.max_depth = max_depth
        self.emit = emit
        self.steps = steps
        self.observer = observer
        self._run_id = run_id
        self._state: dict[str, Any] | None = None
        self._reported: list[BaseException] | None = None
        self._plans: dict[int, Plan] | None = None

    @property
    def run_id(self) -> str:
        """The run's id (stable across resumes; approvals are bound to it), made on first use."""
        if self._run_id is None:
            self._run_id = secrets.token_hex(16)
        return self._run_id

    @property
    def state(self) -> dict[str, Any]:
        """The interceptors' shared state (one dict per run)."""
        if self._state is None:
            self._state = {}
        return self._state

    def plan_for(self, agent: Agent[Any, Any], own: Plan) -> Plan:
        """Return the handlers per phase for `agent`, whose own plan is `own`: its interceptors,
        then the run's (the tree keeps the agents alive, so their ids are stable)."""
        if not self.interceptors:
            return own
        if self._plans is None:
            self._plans = {}
        plan = self._plans.get(id(agent))
        if plan is None:
            plan = self._plans[id(agent)] = build_plan((*agent.interceptors, *self.interceptors))
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
        if self._reported is None:
            self._reported = []
        if any(seen is exc for seen in self._reported):
            return False
        self._reported.append(exc)
        return True
