"""Interceptor dispatch: ONE table says what each result kind does in each phase.

`EFFECTS[phase][action]` is the single source of truth; `dispatch()` applies it, and the
table in docs/interceptors.md is checked against it by the test suite.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeAlias

from ..context import RunContext
from ..exceptions import AgentRunError, UserError
from ..interceptors import InterceptContext, Interceptor, InterceptResult, Phase, StopExecution
from ..models import infer_model

__all__ = [
    "EFFECTS",
    "EMPTY_PLAN",
    "PROCEED",
    "Effect",
    "End",
    "Handler",
    "PhaseOutcome",
    "Plan",
    "Proceed",
    "UseValue",
    "build_plan",
    "dispatch",
    "run_phase",
]


class Handler(Protocol):
    """One interceptor's code for one phase (an `InjectedCall` or a phase-bound `intercept`)."""

    owner: str
    """How errors name it."""
    is_async: bool
    """Whether `invoke` returns an awaitable to await."""

    def invoke(self, ctx: RunContext | None, context: InterceptContext) -> Any:
        """Call the interceptor with `context` and the run context."""
        ...


Plan: TypeAlias = dict[Phase, tuple[Handler, ...]]


class Effect(enum.Enum):
    """What a result does in a phase."""

    END = "the agent's execution ends; the value is its output"
    END_OR_KEEP = "the agent's execution ends with the value as its output; None keeps the original"
    USE_VALUE = "the step is not performed (or its result is replaced); the value stands in for its result"
    USE_VALUE_OR_KEEP = "the step's result is replaced by the value; None keeps the original"
    MODIFY = "the modification is applied and the phase goes on"
    INVALID = "a UserError: the result has no meaning in this phase"


_POST_PHASES: Final = frozenset({Phase.POST_THINK, Phase.POST_ACT, Phase.POST_RUN, Phase.ON_ERROR})
_MODIFY_PHASES: Final = {
    "modify_args": frozenset({Phase.PRE_ACT}),
    "modify_messages": frozenset({Phase.PRE_RUN, Phase.PRE_THINK}),
    "modify_tools": frozenset({Phase.PRE_RUN, Phase.PRE_THINK}),
    "use_model": frozenset({Phase.PRE_RUN, Phase.PRE_THINK}),
}

_STOP: Final = {
    Phase.PRE_RUN: Effect.END,
    Phase.PRE_THINK: Effect.END,
    Phase.POST_THINK: Effect.END,
    Phase.PRE_ACT: Effect.USE_VALUE,
    Phase.POST_ACT: Effect.END,
    Phase.POST_RUN: Effect.USE_VALUE,
    Phase.ON_ERROR: Effect.END,
}
_SKIP: Final = {
    Phase.PRE_RUN: Effect.END,
    Phase.PRE_THINK: Effect.END,
    Phase.POST_THINK: Effect.END_OR_KEEP,
    Phase.PRE_ACT: Effect.USE_VALUE,
    Phase.POST_ACT: Effect.USE_VALUE_OR_KEEP,
    Phase.POST_RUN: Effect.USE_VALUE_OR_KEEP,
    Phase.ON_ERROR: Effect.USE_VALUE,
}

EFFECTS: Final[dict[Phase, dict[str, Effect]]] = {
    phase: {
        "stop": _STOP[phase],
        "skip": _SKIP[phase],
        **{action: Effect.MODIFY if phase in phases else Effect.INVALID for action, phases in _MODIFY_PHASES.items()},
    }
    for phase in Phase
}
"""Phase x result kind -> effect (`continue`, or `None`, always proceeds)."""


@dataclass(slots=True)
class Proceed:
    """The phase's step goes on (with any modifications applied to the `InterceptContext`)."""


@dataclass(slots=True)
class End:
    """The agent's execution ends with `output` (POST_RUN still runs, except after POST_RUN)."""

    output: Any
    """The execution's output."""


@dataclass(slots=True)
class UseValue:
    """The step is not performed, or its result is replaced: `value` stands in for it."""

    value: Any
    """The stand-in (`None` in PRE_ACT and ON_ERROR: the caller's standard message)."""


PhaseOutcome: TypeAlias = Proceed | End | UseValue
PROCEED: Final = Proceed()

EMPTY_PLAN: Final[Plan] = {phase: () for phase in Phase}


def build_plan(interceptors: Sequence[Interceptor]) -> Plan:
    """Return, per phase, the handlers in calling order (list order for PRE phases, reverse
    order for POST phases). A phase no interceptor overrides has no handler and costs nothing."""
    plan: Plan = {}
    for phase in Phase:
        handlers: list[Handler] = [i._cogent_handlers()[phase] for i in interceptors if phase in i._cogent_handlers()]
        if phase in _POST_PHASES:
            handlers.reverse()
        plan[phase] = tuple(handlers)
    return plan


OnError: TypeAlias = Callable[[Exception, InterceptContext], Awaitable[PhaseOutcome | None]]


def dispatch(
    phase: Phase,
    handlers: tuple[Handler, ...],
    ic: InterceptContext,
    ctx: RunContext,
    on_error: OnError,
) -> PhaseOutcome | Coroutine[Any, Any, PhaseOutcome]:
    """Call `handlers` for `phase` in order and return the outcome the first deciding result asks
    for: directly while the handlers are sync (no coroutine on the per-call path), else as a
    coroutine to await (an async handler, or an exception that fires ON_ERROR).

    Modifications (`modify_args`, `modify_messages`, `modify_tools`, `use_model`) are applied
    to `ic` and the next handler sees them. An exception other than `StopExecution` raised by
    a handler fires ON_ERROR through `on_error` (not from ON_ERROR itself): an ON_ERROR
    recovery becomes this phase's outcome, else the exception propagates.

    Raises:
        UserError: If a handler returns something other than `None` or an `InterceptResult`,
            or a result kind that has no meaning in `phase`.
    """
    for index, handler in enumerate(handlers):
        if handler.is_async:
            return _dispatch_async(phase, handlers, index, ic, ctx, on_error)
        try:
            result = handler.invoke(ctx, ic)
        except StopExecution as stop:
            result = InterceptResult.stop(stop.response)
        except (AgentRunError, UserError):
            raise
        except Exception as exc:
            if phase is Phase.ON_ERROR:
                raise
            return _recover(exc, ic, on_error)
        if result is not None:
            outcome = _decide(phase, handler, result, ic)
            if outcome is not PROCEED:
                return outcome
    return PROCEED


async def run_phase(
    phase: Phase,
    handlers: tuple[Handler, ...],
    ic: InterceptContext,
    ctx: RunContext,
    on_error: OnError,
) -> PhaseOutcome:
    """`dispatch`, awaited when it needs to be (for the phases off the per-call path)."""
    outcome = dispatch(phase, handlers, ic, ctx, on_error)
    return outcome if isinstance(outcome, Proceed | End | UseValue) else await outcome


async def _dispatch_async(
    phase: Phase,
    handlers: tuple[Handler, ...],
    start: int,
    ic: InterceptContext,
    ctx: RunContext,
    on_error: OnError,
) -> PhaseOutcome:
    for handler in handlers[start:]:
        try:
            result = handler.invoke(ctx, ic)
            if handler.is_async:
                result = await result
        except StopExecution as stop:
            result = InterceptResult.stop(stop.response)
        except (AgentRunError, UserError):
            raise
        except Exception as exc:
            if phase is Phase.ON_ERROR:
                raise
            return await _recover(exc, ic, on_error)
        if result is not None:
            outcome = _decide(phase, handler, result, ic)
            if outcome is not PROCEED:
                return outcome
    return PROCEED


async def _recover(exc: Exception, ic: InterceptContext, on_error: OnError) -> PhaseOutcome:
    recovery = await on_error(exc, ic)
    if recovery is None:
        raise exc
    return recovery


def _decide(phase: Phase, handler: Handler, result: Any, ic: InterceptContext) -> PhaseOutcome:
    """What one handler's result asks for: `PROCEED` (go on with the next handler) or an outcome."""
    if not isinstance(result, InterceptResult):
        raise UserError(
            f"{_owner(handler)} returned {result!r}; return None or an InterceptResult "
            "(e.g. InterceptResult.continue_())."
        )
    action = result.action
    if action == "continue":
        return PROCEED
    effect = EFFECTS[phase][action]
    if effect is Effect.END:
        return End(result.value)
    if effect is Effect.USE_VALUE:
        return UseValue(result.value)
    if effect is Effect.USE_VALUE_OR_KEEP or effect is Effect.END_OR_KEEP:
        if result.value is None:
            return PROCEED
        return UseValue(result.value) if effect is Effect.USE_VALUE_OR_KEEP else End(result.value)
    if effect is Effect.INVALID:
        allowed = " or ".join(p.name for p in Phase if EFFECTS[p][action] is Effect.MODIFY)
        raise UserError(
            f"{_owner(handler)} returned InterceptResult.{action}(), which has no effect in {phase.name}; "
            f"return it from {allowed}."
        )
    _modify(ic, action, result.value)
    return PROCEED


def _modify(ic: InterceptContext, action: str, value: Any) -> None:
    if action == "modify_args":
        ic.tool_args = {**(ic.tool_args or {}), **value}
    elif action == "modify_messages":
        ic.messages = value
    elif action == "modify_tools":
        ic.tools = [t for t in ic.tools or () if t.name in value]
    else:
        ic.model = infer_model(value)


def _owner(handler: Handler) -> str:
    return handler.owner or "An interceptor"
