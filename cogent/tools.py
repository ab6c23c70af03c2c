"""Tools: Python functions the model can call, with the run context injected.

```python
@tool
def get_user_orders(ctx: AppContext, status: str = "open") -> str:
    \"\"\"Get orders for the current user.

    Args:
        status: Only orders with this status.
    \"\"\"
```
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Generic, TypeAlias, overload

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from pydantic import ConfigDict, Field, TypeAdapter
from typing_extensions import ParamSpec, TypedDict, TypeVar

from ._signature import ContextParam, FunctionSchema, caller_namespace
from .context import RunContext
from .exceptions import UserError

if TYPE_CHECKING:
    from .agent import Agent

__all__ = ["AgentTool", "AnyTool", "BaseTool", "Tool", "ToolDefinition", "Toolset", "tool"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(kw_only=True, frozen=True, slots=True)
class ToolDefinition:
    """A tool as the model sees it. Nothing from any run context is in it."""

    name: str
    """The name the model calls it by."""
    description: str
    """What the tool does, for the model."""
    parameters_json_schema: dict[str, Any] = field(default_factory=dict)
    """The JSON schema of the arguments (the context parameter is never in it)."""


class BaseTool(ABC):
    """A tool the model can call and the run loop executes: a function (`Tool`) or a tool a
    `Toolset` provides (e.g. one of an MCP server's tools).

    The run loop treats every `BaseTool` alike: it validates the model's arguments with
    `validate_arguments`, applies interceptors, the usage limits and approvals, then awaits
    `execute` under the call's timeout and the context's deadline. A subagent is not a
    `BaseTool` but an `AgentTool`: the run loop delegates to it.
    """

    tool_type: ClassVar[str] = "function"
    """What kind of tool this is, as the OpenTelemetry GenAI conventions' `gen_ai.tool.type`
    names it (`"function"`, `"extension"`, `"datastore"`)."""

    name: str
    """The name the model calls it by."""
    requires_approval: bool
    """Whether each call must be approved before it runs (see Approvals)."""
    timeout: float | None
    """Seconds a call may take before it fails, or `None` for no limit."""

    @property
    @abstractmethod
    def definition(self) -> ToolDefinition:
        """The `ToolDefinition` sent to the model."""

    @abstractmethod
    def validate_arguments(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """Turn the model's arguments (JSON text or a dict) into keyword arguments for `execute`.

        Raises:
            ValueError: If the arguments are invalid (`pydantic.ValidationError` is one); the
                model receives the message as a retry prompt and the tool does not run.
        """

    @abstractmethod
    async def execute(self, arguments: dict[str, Any], ctx: RunContext) -> Any:
        """Run one call with validated `arguments` in the run context `ctx`; return its result.

        A returned `str` reaches the model as it is, other values as JSON. An exception
        becomes an error result for the model (or propagates with `Agent(tool_errors="raise")`).
        """

    def start(self, arguments: dict[str, Any], ctx: RunContext) -> Awaitable[Any]:
        """Begin one call and return the awaitable of its result; the run loop awaits this.

        The default is `execute(arguments, ctx)`. A tool may return its function's own
        awaitable instead, saving a coroutine per call (`Tool` does).
        """
        return self.execute(arguments, ctx)


class Toolset(ABC):
    """A source of tools opened when an agent execution starts, in that execution's context.

    `Agent(tools=[...])` accepts toolsets next to tools; each execution of the agent enters
    `open(ctx)` before its first model request and leaves it when the execution ends, and
    offers the tools it yields next to the agent's own. An MCP server is a toolset: its tools
    are listed per execution, with the credentials of that execution's context.
    """

    @abstractmethod
    def open(self, ctx: RunContext) -> AbstractAsyncContextManager[Sequence[BaseTool]]:
        """Open the toolset for one agent execution and yield its tools.

        Args:
            ctx: The context of the execution (for per-user credentials or filtering).

        Returns:
            An async context manager yielding the tools; leaving it releases what it opened.
        """


class Tool(BaseTool, Generic[P, R]):
    """A function offered to the model, made by `@tool`.

    Calling a `Tool` calls the function as written (sync or async), so tools stay
    testable as plain functions; `__wrapped__` is the original function.

    Attributes:
        name: The tool's name.
        description: The description the model sees.
        requires_approval: Whether each call needs an approval (see Approvals).
        timeout: Seconds a call may take before it fails, or `None`.
        threaded: Whether a sync function runs in a worker thread.
    """

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
        timeout: float | None = None,
        threaded: bool = True,
        localns: dict[str, Any] | None = None,
    ) -> None:
        if not callable(func):
            raise UserError(f"tool() needs a function, got {func!r}; decorate a def or async def.")
        label: str = name or getattr(func, "__name__", None) or repr(func)
        if inspect.isasyncgenfunction(inspect.unwrap(func)) or inspect.isgeneratorfunction(inspect.unwrap(func)):
            raise UserError(
                f"Tool {label!r} is a generator function; a tool returns its result once: return a value "
                "(e.g. a list) instead of yielding."
            )
        if not isinstance(requires_approval, bool):
            raise UserError(f"Tool {label!r} has requires_approval={requires_approval!r}; pass True or False.")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise UserError(f"Tool {label!r} has timeout={timeout!r}; use a positive number of seconds or None.")
        self.__wrapped__ = func
        self.name: str = label
        self.requires_approval = requires_approval
        self.timeout = timeout
        self.threaded = threaded
        self._description = description
        self._definition: ToolDefinition | None = None
        self._call: _CallPlan | None = None
        self.schema = FunctionSchema(func, owner=f"Tool {self.name!r}", localns=localns, with_arguments=True)
        functools.update_wrapper(self, func)

    @property
    def description(self) -> str:
        """The description the model sees: the one given, else the docstring."""
        if self._description is not None:
            return self._description
        return self.schema.docstring_description

    @property
    def definition(self) -> ToolDefinition:
        """The `ToolDefinition` sent to the model."""
        if self._definition is None:
            self._definition = ToolDefinition(
                name=self.name, description=self.description, parameters_json_schema=self.schema.json_schema
            )
        return self._definition

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.__wrapped__(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Tool(name={self.name!r})"

    def validate_arguments(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """Validate the model's arguments against the function's signature (one pydantic call).

        Raises:
            pydantic.ValidationError: If the arguments do not match the signature.
            UserError: If an annotation of the function cannot be resolved.
        """
        if self._call is None:
            self._call = self._call_plan()
        if type(arguments) is str and arguments:
            validated: dict[str, Any] = self._call.validate_json(arguments)
            return validated
        return self.schema.validate(arguments)

    def _call_plan(self) -> _CallPlan:
        """What every call needs, read from the signature analysis once it is resolved."""
        schema = self.schema
        context = schema.context  # resolves the annotations (a UserError if they cannot be)
        return _CallPlan(
            validate_json=schema.validate_json,
            context=context,
            is_async=schema.is_async,
        )

    async def execute(self, arguments: dict[str, Any], ctx: RunContext) -> Any:
        """Call the function with validated `arguments` and the run context injected.

        `arguments` is not modified. A sync function runs in a worker thread unless
        `threaded=False`; a sync tool that calls `agent.run_sync()` gets its threads from a
        separate pool per nesting level, so nested runs never wait for a thread their
        caller holds.

        Args:
            arguments: Keyword arguments, as returned by `validate_arguments()`.
            ctx: The run context to inject.

        Returns:
            What the function returned.

        Raises:
            ContextTypeError: If the function's context parameter is annotated with a
                class `ctx` is not an instance of; the function does not run.
        """
        return await self.start(arguments, ctx)

    def start(self, arguments: dict[str, Any], ctx: RunContext) -> Awaitable[Any]:
        """Begin one call (see `execute`): an `async def` function's own coroutine, without a
        coroutine of the tool's around it."""
        plan = self._call
        if plan is None:
            plan = self._call = self._call_plan()
        context = plan.context
        if context is not None:
            if not isinstance(ctx, context.cls):
                context.check(ctx, f"Tool {self.name!r}")  # raises ContextTypeError
            arguments = {**arguments, context.name: ctx}
        func: Callable[..., Any] = self.__wrapped__
        if plan.is_async:
            awaitable: Awaitable[Any] = func(**arguments)
            return awaitable
        return self._run_sync(arguments)

    async def _run_sync(self, arguments: dict[str, Any]) -> Any:
        func: Callable[..., Any] = self.__wrapped__
        if not self.threaded:
            return func(**arguments)
        level = _thread_level.get()
        nested = NestedRuns()

        def in_thread() -> tuple[Any]:
            _thread_level.set(level + 1)  # this thread's copy of the context: nested runs see it
            _nested_runs.set(nested)
            # In a 1-tuple: trio refuses a coroutine as a thread's result with its own TypeError, and
            # the run loop should name the mistake (a sync tool that returned `agent.run(...)`) itself.
            return (func(**arguments),)

        try:
            (value,) = await anyio.to_thread.run_sync(in_thread, abandon_on_cancel=True, limiter=_thread_limiter(level))
        finally:
            nested.close()  # the call is over (or cancelled and its thread abandoned): so are its nested runs
        return value


@dataclass(frozen=True, slots=True)
class _CallPlan:
    """What a `Tool` needs on every call, read once from its resolved signature analysis."""

    validate_json: Callable[[str], dict[str, Any]]
    """pydantic's validator for JSON arguments."""
    context: ContextParam | None
    """The injected context parameter."""
    is_async: bool
    """Whether the function is `async def`."""


_thread_level: ContextVar[int] = ContextVar("cogent_tool_thread_level", default=0)


class NestedRuns:
    """The runs a sync tool's thread started with `agent.run_sync()`, which end with the tool call.

    On trio, a thread that its caller abandoned (the call was cancelled, or its deadline or
    timeout passed) runs its calls into the event loop in the system nursery, outside the
    cancelled task; without this, a nested run would go on (requests, tool side effects)
    after the run that started it ended. Used on the event loop's thread only.
    """

    __slots__ = ("scopes",)

    def __init__(self) -> None:
        self.scopes: set[anyio.CancelScope] = set()
        """The cancel scopes of the nested runs in progress."""

    @contextlib.contextmanager
    def track(self) -> Iterator[anyio.CancelScope]:
        """Run a nested run inside the yielded cancel scope, cancelled when the tool call ends."""
        with anyio.CancelScope() as scope:
            self.scopes.add(scope)
            try:
                yield scope
            finally:
                self.scopes.discard(scope)

    def close(self) -> None:
        """Cancel the nested runs still in progress. (A thread that calls `run_sync()` after
        the call ended gets anyio's cancellation at once: the call's cancel scope is cancelled.)"""
        for scope in self.scopes:
            scope.cancel()


_nested_runs: ContextVar[NestedRuns | None] = ContextVar("cogent_nested_runs", default=None)


def nested_runs() -> NestedRuns | None:
    """Return the nested runs of the sync tool call this worker thread runs, if it runs one."""
    return _nested_runs.get()


_level_limiters: RunVar[dict[int, anyio.CapacityLimiter]] = RunVar("cogent_tool_thread_limiters")


def _thread_limiter(level: int) -> anyio.CapacityLimiter | None:
    """Return the thread limiter for sync tools at nesting `level` (anyio's default at level 0).

    A sync tool that runs `agent.run_sync()` holds its worker thread while the nested run's
    sync tools need threads of their own: each nesting level draws from its own pool (as
    large as the default one), so no level waits for threads held by the level above.
    """
    if level == 0:
        return None
    try:
        limiters = _level_limiters.get()
    except LookupError:
        limiters = {}
        _level_limiters.set(limiters)
    limiter = limiters.get(level)
    if limiter is None:
        total = anyio.to_thread.current_default_thread_limiter().total_tokens
        limiter = limiters[level] = anyio.CapacityLimiter(total)
    return limiter


class _DelegationArguments(TypedDict):
    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    task: Annotated[str, Field(description="The task for the subagent, stated completely.")]


@functools.cache
def _delegation_adapter() -> TypeAdapter[_DelegationArguments]:
    """The arguments' validator, built on first use (`import cogent` stays fast)."""
    return TypeAdapter(_DelegationArguments)


class AgentTool:
    """A subagent offered to its parent's model as a tool with one required string parameter
    `task`, made by `Agent.as_tool()` or `Agent(subagents=[...])`.

    The run loop delegates a call to the subagent: it runs with the caller's
    `create_child_context()`, its output is the call's result, and its usage counts toward
    the run's.

    Attributes:
        name: The tool's name (the agent's name by default).
        description: The tool's description (the agent's `description` by default).
        agent: The subagent.
        requires_approval: Whether each delegation needs an approval.
    """

    tool_type: ClassVar[str] = "agent"
    """What kind of tool this is (`gen_ai.tool.type`)."""
    timeout: float | None = None
    """Delegations have no timeout of their own (the context's deadline applies)."""

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        name: str | None = None,
        description: str | None = None,
        requires_approval: bool = False,
    ) -> None:
        self.agent = agent
        self.name: str = name or agent.name
        self.description: str = description or agent.description or f"Delegate a task to the {agent.name} agent."
        self.requires_approval = requires_approval
        schema = _delegation_adapter().json_schema()
        schema.pop("title", None)
        self._definition = ToolDefinition(name=self.name, description=self.description, parameters_json_schema=schema)

    def __repr__(self) -> str:
        return f"AgentTool(name={self.name!r}, agent={self.agent.name!r})"

    @property
    def definition(self) -> ToolDefinition:
        """The `ToolDefinition` sent to the model."""
        return self._definition

    def validate_arguments(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        """Validate the model's arguments: exactly one string `task`.

        Raises:
            pydantic.ValidationError: If the arguments are not `{"task": "<text>"}`.
        """
        validator = _delegation_adapter().validator
        if isinstance(arguments, dict):
            return dict(validator.validate_python(arguments))
        return dict(validator.validate_json(arguments or "{}"))


AnyTool: TypeAlias = BaseTool | AgentTool
"""What an agent offers its model: tools it executes, and subagents it delegates to."""


@overload
def tool(func: Callable[P, R], /) -> Tool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
    timeout: float | None = None,
    threaded: bool = True,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    requires_approval: bool = False,
    timeout: float | None = None,
    threaded: bool = True,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Turn a function into a `Tool`: `@tool` or `@tool(name=..., ...)`.

    One parameter receives the run's context and is hidden from the model: the one
    annotated with `RunContext` or a subclass (also inside `Optional`, `X | None` or
    `Annotated`, as a parameterized generic such as `Tenant[int]`, or as a `NewType` of
    one) or with a `typing.Protocol` class; else a parameter named `ctx` that is
    unannotated or annotated `Any` or `object`; else a parameter whose default is a
    context instance. The other parameters are validated by pydantic and described to
    the model from the docstring and `Annotated[T, Field(description=...)]`.

    Args:
        func: The function, when used as `@tool` without parentheses.
        name: The tool's name; defaults to the function's name.
        description: The description; defaults to the docstring without its parameter
            sections.
        requires_approval: Whether each call must be approved first (see Approvals).
        timeout: Seconds a call may take; a call that takes longer fails with an error
            result for the model.
        threaded: Run a sync function in a worker thread (the default, so it may block);
            `False` runs it inline on the event loop.

    Returns:
        A `Tool`, or a decorator that makes one.

    Raises:
        UserError: If the function cannot be a tool (two context parameters,
            `*args`/`**kwargs`, positional-only parameters, types pydantic cannot validate,
            a first parameter `self` of an unbound method, a generator function).
    """
    localns = caller_namespace(1)

    def decorate(f: Callable[P, R]) -> Tool[P, R]:
        return Tool(
            f,
            name=name,
            description=description,
            requires_approval=requires_approval,
            timeout=timeout,
            threaded=threaded,
            localns=localns,
        )

    return decorate(func) if func is not None else decorate
