"""Interceptors: code that runs at fixed phases of a run and can change its course."""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from .._signature import InjectedCall, caller_namespace
from ..exceptions import UserError
from ..messages import Message, ModelResponse
from ..usage import Usage

if TYPE_CHECKING:
    from ..agent import Agent
    from ..context import RunContext
    from ..models import Model
    from ..tools import Tool, ToolDefinition

__all__ = [
    "InterceptContext",
    "InterceptResult",
    "Interceptor",
    "Phase",
    "StopExecution",
    "interceptor",
]


class Phase(enum.Enum):
    """The points of a run where interceptors are called."""

    PRE_RUN = "pre_run"
    """Once, before an agent's first model request (for every agent of the tree)."""
    PRE_THINK = "pre_think"
    """Before each model request."""
    POST_THINK = "post_think"
    """After each model response."""
    PRE_ACT = "pre_act"
    """Before each tool call (arguments already validated)."""
    POST_ACT = "post_act"
    """After each tool call, with its result."""
    POST_RUN = "post_run"
    """Once, after an agent produced its output."""
    ON_ERROR = "on_error"
    """When a tool, the model or an interceptor raised."""

    # Members are singletons compared by identity; the C-level identity hash makes the
    # run loop's per-phase plan lookups cheap (`Enum.__hash__` is a Python function).
    __hash__ = object.__hash__


@dataclass(kw_only=True, slots=True)
class InterceptContext:
    """What an interceptor sees. Fields that do not apply to a phase are `None`."""

    phase: Phase
    """The current phase."""
    agent: Agent[Any, Any]
    """The agent being executed."""
    run_context: RunContext
    """The run context of this execution (the same object tools receive)."""
    task: str
    """The input of this agent execution (the run's input, or a delegation's task)."""
    messages: list[Message]
    """The message history (PRE_THINK: what this request will send)."""
    usage: Usage
    """The usage so far, summed over the agent tree."""
    state: dict[str, Any]
    """One dict per run, shared by the run's interceptors, for their own bookkeeping."""
    depth: int = 0
    """How many delegations separate this agent from the top-level run (0 at the top)."""
    tools: list[ToolDefinition] | None = None
    """PRE_RUN and PRE_THINK: the tools offered to the model."""
    model: Model | None = None
    """PRE_RUN and PRE_THINK: the model that will answer."""
    tool_name: str | None = None
    """PRE_ACT, POST_ACT, ON_ERROR of a tool: the tool's name."""
    tool_call_id: str | None = None
    """PRE_ACT, POST_ACT, ON_ERROR of a tool: the tool call's id."""
    tool_args: dict[str, Any] | None = None
    """PRE_ACT, POST_ACT: the validated arguments."""
    tool_result: str | None = None
    """POST_ACT: the result as the model will see it."""
    error: BaseException | None = None
    """ON_ERROR: the exception."""
    model_response: ModelResponse | None = None
    """POST_THINK: the model's response."""
    output: Any = None
    """POST_RUN: the agent's output."""


Action = Literal["continue", "stop", "skip", "modify_args", "modify_messages", "modify_tools", "use_model"]


@dataclass(kw_only=True, frozen=True, slots=True)
class InterceptResult:
    """What an interceptor wants to happen. Build it with the class methods."""

    action: Action = "continue"
    """The kind of result."""
    value: Any = None
    """The result's payload (response, result, arguments, messages, tools or model)."""

    @classmethod
    def continue_(cls) -> InterceptResult:
        """Go on as if the interceptor were not there."""
        return _CONTINUE

    ok = continue_

    @classmethod
    def stop(cls, response: Any) -> InterceptResult:
        """End the run with `response` as its output.

        In PRE_ACT the run goes on: the tool does not run and `response` is its result.
        """
        return cls(action="stop", value=response)

    @classmethod
    def skip(cls, result: Any = None) -> InterceptResult:
        """Do not perform this phase's step; use `result` in its place.

        PRE_RUN: the agent does not run, `result` is its output. PRE_THINK: no model
        request, `result` is the final answer. POST_THINK: the response is replaced by
        the final answer `result`. PRE_ACT: the tool does not run, `result` is its
        result. POST_ACT: the tool's result is replaced by `result`. POST_RUN: the output
        is replaced by `result`. ON_ERROR: the error is swallowed; `result` replaces the
        failed tool's result, or becomes the output for other errors. With
        `result=None`, PRE_ACT and ON_ERROR use a standard message and the result-replacing
        phases keep the original.
        """
        return cls(action="skip", value=result)

    @classmethod
    def modify_args(cls, **args: Any) -> InterceptResult:
        """PRE_ACT: change (merge into) the tool call's arguments; they are re-validated."""
        return cls(action="modify_args", value=args)

    @classmethod
    def modify_messages(cls, messages: Sequence[Message]) -> InterceptResult:
        """PRE_RUN: replace the history. PRE_THINK: replace what this request sends.

        Tool returns whose call is gone, and tool calls whose return is gone, are
        dropped from the request so the history stays well formed.
        """
        return cls(action="modify_messages", value=list(messages))

    @classmethod
    def modify_tools(cls, tools: Sequence[str | Tool[Any, Any] | ToolDefinition]) -> InterceptResult:
        """PRE_RUN (whole run) or PRE_THINK (this turn): offer only `tools`.

        Tools not listed are removed from the model request, and calls to them are
        refused with an error result.
        """
        return cls(action="modify_tools", value=frozenset(t if isinstance(t, str) else t.name for t in tools))

    @classmethod
    def use_model(cls, model: Model | str) -> InterceptResult:
        """PRE_RUN (whole run) or PRE_THINK (this request): ask another model."""
        return cls(action="use_model", value=model)


_CONTINUE = InterceptResult()


class StopExecution(Exception):
    """Raise in an interceptor (or tool) to end the run; same as `InterceptResult.stop`.

    Args:
        response: The run's output (in PRE_ACT: the tool's result).
    """

    def __init__(self, response: Any = None) -> None:
        super().__init__(response)
        self.response = response


_PHASE_NAMES = tuple(p.value for p in Phase)


class Interceptor:
    """Base class for interceptors.

    Override `intercept(phase, context)` to see every phase, or override only the
    phase methods you need (`pre_run`, `pre_think`, `post_think`, `pre_act`,
    `post_act`, `post_run`, `on_error`): phases you do not override cost nothing. Both
    may be sync or async, may return `None` (continue) or an `InterceptResult`, and
    may declare a run context parameter to receive the context by injection, exactly
    like tools.
    """

    _cogent_localns: ClassVar[dict[str, Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The defining scope's locals, so method annotations may name classes defined there.
        cls._cogent_localns = caller_namespace(1)

    # The base methods take `*args, **kwargs` so that type checkers accept every override
    # form the framework supports: sync or async, with or without an injected context
    # parameter (`def pre_act(self, context: InterceptContext, ctx: AppContext)`).

    async def intercept(self, *args: Any, **kwargs: Any) -> Any:
        """Handle one phase: override as `intercept(self, phase, context)`.

        The default calls the method named after the phase.
        """
        return None

    def pre_run(self, *args: Any, **kwargs: Any) -> Any:
        """Called once before an agent's first model request: override as `pre_run(self, context)`."""
        return None

    def pre_think(self, *args: Any, **kwargs: Any) -> Any:
        """Called before each model request: override as `pre_think(self, context)`."""
        return None

    def post_think(self, *args: Any, **kwargs: Any) -> Any:
        """Called after each model response: override as `post_think(self, context)`."""
        return None

    def pre_act(self, *args: Any, **kwargs: Any) -> Any:
        """Called before each tool call: override as `pre_act(self, context)`."""
        return None

    def post_act(self, *args: Any, **kwargs: Any) -> Any:
        """Called after each tool call: override as `post_act(self, context)`."""
        return None

    def post_run(self, *args: Any, **kwargs: Any) -> Any:
        """Called once after an agent produced its output: override as `post_run(self, context)`."""
        return None

    def on_error(self, *args: Any, **kwargs: Any) -> Any:
        """Called when a tool, the model or an interceptor raised: override as `on_error(self, context)`."""
        return None

    def _cogent_handlers(self) -> dict[Phase, InjectedCall]:
        """Return the injected callables for the phases this interceptor handles (cached)."""
        cached: dict[Phase, InjectedCall] | None = self.__dict__.get("_cogent_handlers_cache")
        if cached is not None:
            return cached
        handlers: dict[Phase, InjectedCall] = {}
        cls = type(self)
        name = cls.__qualname__
        localns = cls.__dict__.get("_cogent_localns")
        if cls.intercept is not Interceptor.intercept:
            call = InjectedCall(self.intercept, owner=f"Interceptor {name}.intercept", arity=2, localns=localns)
            handlers = {phase: _PhaseBound(call, phase) for phase in Phase}  # type: ignore[misc]
        else:
            for phase in Phase:
                method = getattr(cls, phase.value)
                if method is not getattr(Interceptor, phase.value):
                    handlers[phase] = InjectedCall(
                        getattr(self, phase.value), owner=f"Interceptor {name}.{phase.value}", arity=1, localns=localns
                    )
        self.__dict__["_cogent_handlers_cache"] = handlers
        return handlers


def context_allows(ctx: RunContext, value: str, *, method: str, attribute: str, owner: str, what: str) -> bool:
    """Ask the context whether `value` is allowed: `ctx.<method>(value)` if it has that method,
    else `value in ctx.<attribute>` (the rule shared by `PermissionGate` and `ToolGate`).

    Raises:
        UserError: If the context has neither the method nor a collection in the attribute.
    """
    check: Any = getattr(ctx, method, None)
    if callable(check):
        return bool(check(value))
    granted: Any = getattr(ctx, attribute, None)
    if granted is None or isinstance(granted, str) or not hasattr(granted, "__contains__"):
        raise UserError(
            f"{owner} cannot read {what} from {type(ctx).__qualname__}: it has no {method}() method and its "
            f"{attribute!r} attribute is not a collection of names; add one of them to the context class or pass "
            f"{owner}(attribute=...)."
        )
    return value in granted


class _PhaseBound:
    """Adapts `intercept(phase, context)` to the one-argument handler shape of one phase."""

    __slots__ = ("call", "is_async", "owner", "phase")

    def __init__(self, call: InjectedCall, phase: Phase) -> None:
        self.call = call
        self.phase = phase
        self.is_async = call.is_async
        self.owner = f"{call.owner} (in {phase.name})"

    def invoke(self, ctx: RunContext | None, context: InterceptContext) -> Any:
        """Call `intercept(phase, context)`; for an async method, return the awaitable."""
        return self.call.invoke(ctx, self.phase, context)


class _FunctionInterceptor(Interceptor):
    """An interceptor made from a function by `@interceptor`."""

    def __init__(self, func: Callable[..., Any], phases: tuple[Phase, ...], localns: dict[str, Any] | None) -> None:
        self.func = func
        self.phases = phases
        name = func.__qualname__
        handlers = {
            # One call per phase, so that an error names the phase it happened in.
            phase: InjectedCall(func, owner=f"Interceptor {name} (in {phase.name})", arity=1, localns=localns)
            for phase in phases
        }
        self.__dict__["_cogent_handlers_cache"] = handlers
        self.__wrapped__ = func

    def __repr__(self) -> str:
        phases = ", ".join(p.name for p in self.phases)
        return f"interceptor({phases})({self.func.__qualname__})"


def interceptor(*phases: Phase) -> Callable[[Callable[..., Any]], Interceptor]:
    """Turn a function into an interceptor for `phases`.

    The function (sync or async) receives the `InterceptContext` and, if it declares
    one, the run context by injection: `def gate(call: InterceptContext, ctx: AppContext)`.
    It returns `None` or an `InterceptResult`.

    Args:
        *phases: The phases to handle (at least one).

    Returns:
        A decorator that returns an `Interceptor`.

    Raises:
        UserError: If no phase is given, or the function's signature does not fit.
    """
    if not phases or not all(isinstance(p, Phase) for p in phases):
        raise UserError("@interceptor needs one or more Phase values, e.g. @interceptor(Phase.PRE_ACT).")
    localns = caller_namespace(1)

    def decorate(func: Callable[..., Any]) -> Interceptor:
        if inspect.isclass(func):
            raise UserError(f"@interceptor decorates functions; subclass Interceptor for {func.__name__} instead.")
        return _FunctionInterceptor(func, phases, localns)

    return decorate
