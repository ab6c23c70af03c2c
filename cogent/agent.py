"""`Agent`: an agent's configuration, and the facades that run it (`run`, `run_sync`,
`run_stream`). The run loop itself lives in `cogent._run`; results in `cogent.result`;
trace and stream events in `cogent.events`."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, Literal

import anyio
import anyio.from_thread
import sniffio
from typing_extensions import TypeVar

from . import _run
from ._run.hooks import Instrumentation
from ._run.spec import build_output, build_spec
from ._run.tree import DEFAULT_MAX_REQUESTS, RunOptions
from ._signature import InjectedCall, caller_namespace
from .context import RunContext
from .events import FinalResultEvent, StreamEvent
from .exceptions import AgentRunError, ContextTypeError, UserError
from .interceptors import Interceptor
from .messages import Message
from .models import Model, close_loop_resources, infer_model
from .result import RunResult, RunState
from .tools import AgentTool, AnyTool, BaseTool, NestedRuns, Tool, Toolset, nested_runs
from .usage import UsageLimits

if TYPE_CHECKING:
    from .telemetry import InstrumentationSettings

__all__ = ["Agent"]

ContextT = TypeVar("ContextT", bound=RunContext, default=RunContext)
OutputT = TypeVar("OutputT", default=str)


class Agent(Generic[ContextT, OutputT]):
    """An LLM agent: a model, instructions, tools, subagents and interceptors.

    The agent is configuration only; each `run()` has its own state, so one agent
    serves any number of concurrent runs.

    Args:
        name: The agent's name; subagents are offered to their parent under it.
        model: A `Model` or a model string (`"test"`, `"openai:gpt-4o-mini"`).
        instructions: System instructions: a string, or a callable (sync or async)
            that receives the run context by injection and returns a string. This is
            the only way context-derived text reaches the model.
        description: What the agent does; the tool description when it is a subagent.
        tools: Tools (`@tool` functions, plain callables, which are wrapped with `tool()`,
            `BaseTool`s, `agent.as_tool()`) and toolsets (e.g. MCP servers).
        subagents: Agents offered to the model as tools named after them.
        interceptors: Interceptors applied to this agent's executions.
        context_type: The class every run context must be an instance of. When given,
            every tool and subagent is checked against it here; otherwise each execution
            checks its tools against its context before its first model request.
        output_type: `str`, or a type pydantic validates the final answer into.
        max_turns: Model requests allowed per execution of this agent.
        tool_retries: Retries allowed per tool after `ModelRetry` or invalid arguments
            (`RetryContext.max_retries` overrides it).
        tool_errors: `"model"` turns a tool's exception into an `Error: <message>`
            result; `"raise"` lets it propagate out of `run()`.
        parallel_tool_calls: Run the tool calls of one response concurrently.
        allow_truncated_output: Accept a final answer the model cut off at its token limit
            (`result.finish_reason == "length"`); by default it is an `UnexpectedModelBehavior`.
        instrument: OpenTelemetry spans for this agent's runs (see `cogent.telemetry`): `True`
            (the global tracer provider, no message content), `InstrumentationSettings(...)`,
            `False` (never), or `None` to follow `cogent.telemetry.instrument_all()` (and, for
            a run started inside an instrumented run's tool, that run). The top-level agent's
            setting applies to its whole run tree. Needs `cogent-context[otel]`.

    Raises:
        UserError: If the configuration cannot work (a wrong type, duplicate tool names,
            bad values); the message names the argument and the fix.
        ContextTypeError: If a tool or subagent needs a context class that
            `context_type` is not a subclass of.
    """

    def __init__(
        self,
        *,
        name: str,
        model: Model | str,
        instructions: str | Callable[..., Any] | None = None,
        description: str | None = None,
        tools: Sequence[AnyTool | Toolset | Callable[..., Any]] = (),
        subagents: Sequence[Agent[Any, Any]] = (),
        interceptors: Sequence[Interceptor] = (),
        context_type: type[ContextT] = RunContext,  # type: ignore[assignment]
        output_type: type[OutputT] = str,  # type: ignore[assignment]
        max_turns: int = 10,
        tool_retries: int = 1,
        tool_errors: Literal["model", "raise"] = "model",
        parallel_tool_calls: bool = True,
        allow_truncated_output: bool = False,
        instrument: bool | InstrumentationSettings | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise UserError("Agent needs a non-empty name= string; it names the agent in traces and delegations.")
        where = f"Agent {name!r}"
        _check_int(where, "max_turns", max_turns, 1)
        _check_int(where, "tool_retries", tool_retries, 0)
        if tool_errors not in ("model", "raise"):
            raise UserError(f"{where} has tool_errors={tool_errors!r}; use 'model' or 'raise'.")
        for flag, value in (
            ("parallel_tool_calls", parallel_tool_calls),
            ("allow_truncated_output", allow_truncated_output),
        ):
            if not isinstance(value, bool):
                raise UserError(f"{where} has {flag}={value!r}; pass True or False.")
        if not (isinstance(context_type, type) and issubclass(context_type, RunContext)):
            raise UserError(f"{where} has context_type={context_type!r}; pass RunContext or a subclass.")
        if not isinstance(model, Model | str):
            raise UserError(
                f"{where} has model={model!r}; pass a Model instance or a model string such as 'openai:gpt-4o-mini' "
                "(or 'test' for an offline TestModel)."
            )
        if instructions is not None and not isinstance(instructions, str) and not callable(instructions):
            raise UserError(
                f"{where} has instructions={instructions!r}; pass a string, a callable returning one, or None."
            )
        if description is not None and not isinstance(description, str):
            raise UserError(f"{where} has description={description!r}; pass a string or None.")
        self.name = name
        self.model: Model = infer_model(model)
        self.description = description
        self.context_type: type[ContextT] = context_type
        self.output_type: type[OutputT] = output_type
        self.max_turns = max_turns
        self.tool_retries = tool_retries
        self.tool_errors = tool_errors
        self.parallel_tool_calls = parallel_tool_calls
        self.allow_truncated_output = allow_truncated_output
        self._instrument = _instrumentation(where, instrument)
        self.instructions = instructions
        self.interceptors: tuple[Interceptor, ...] = _interceptors(where, interceptors)
        self._instructions: InjectedCall | str | None = (
            InjectedCall(instructions, owner=f"{where} instructions", arity=0, localns=caller_namespace(1))
            if callable(instructions)
            else instructions
        )
        self._output = build_output(name, output_type)
        self._own_tools: list[AnyTool] = []
        self._toolsets: list[Toolset] = []
        self._subagents: list[Agent[Any, Any]] = []
        self._delegation_tool: AgentTool | None = None
        self._spec = self._build_spec()
        self.add_tools(*_sequence(where, "tools", tools))
        self.add_subagents(*_sequence(where, "subagents", subagents))

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r}, model={self.model.name!r})"

    @property
    def tools(self) -> tuple[AnyTool, ...]:
        """The agent's tools: its own, then one `AgentTool` per subagent (toolsets' tools are
        listed when an execution opens them)."""
        return tuple(self._spec.tools.values())

    @property
    def instrument(self) -> Instrumentation | Literal[False] | None:
        """The agent's telemetry setting (`instrument=`; `True` reads back as `InstrumentationSettings()`).

        Assigning it takes what `instrument=` takes, checked the same way.
        """
        return self._instrument

    @instrument.setter
    def instrument(self, value: bool | InstrumentationSettings | None) -> None:
        self._instrument = _instrumentation(f"Agent {self.name!r}", value)

    @property
    def toolsets(self) -> tuple[Toolset, ...]:
        """The toolsets opened per execution (e.g. MCP servers)."""
        return tuple(self._toolsets)

    @property
    def subagents(self) -> tuple[Agent[Any, Any], ...]:
        """The agents this agent can delegate to."""
        return tuple(self._subagents)

    def add_tools(self, *tools: AnyTool | Toolset | Callable[..., Any]) -> None:
        """Add tools and toolsets (plain callables are wrapped with `tool()`).

        Raises:
            UserError: If an entry is not a tool, toolset or callable, or a name is taken.
            ContextTypeError: If a tool needs a context class `context_type` does not satisfy.
        """
        where = f"Agent {self.name!r}"
        new: list[AnyTool] = []
        toolsets: list[Toolset] = []
        for t in tools:
            if isinstance(t, BaseTool | AgentTool):
                new.append(t)
            elif isinstance(t, Toolset):
                toolsets.append(t)
            elif isinstance(t, Agent):
                raise UserError(f"{where} got agent {t.name!r} in tools=; pass it in subagents= (or agent.as_tool()).")
            elif callable(t):
                new.append(Tool(t))
            else:
                raise UserError(
                    f"{where} got {t!r} in tools=; pass @tool functions, plain functions, tools or toolsets."
                )
        for t in new:
            self._check_tool_context(t)
        self._own_tools.extend(new)
        self._toolsets.extend(toolsets)
        self._spec = self._build_spec()

    def add_subagents(self, *agents: Agent[Any, Any]) -> None:
        """Add subagents; this is also how an agent can (indirectly) delegate to itself.

        Raises:
            UserError: If an entry is not an `Agent`, or its name is already taken.
            ContextTypeError: If a subagent needs a context class `context_type` does not satisfy.
        """
        for a in agents:
            if not isinstance(a, Agent):
                raise UserError(f"Agent {self.name!r} got {a!r} in subagents=; pass Agent instances.")
            self._check_subagent_context(a)
        self._subagents.extend(agents)
        self._spec = self._build_spec()

    def _build_spec(self) -> _run.spec.AgentSpec:
        return build_spec(
            name=self.name,
            tools=[*self._own_tools, *(a.as_tool() for a in self._subagents)],
            toolsets=self._toolsets,
            output=self._output,
            interceptors=self.interceptors,
            instructions=self._instructions,
        )

    def _check_subagent_context(self, sub: Agent[Any, Any]) -> None:
        if self.context_type is not RunContext and not issubclass(self.context_type, sub.context_type):
            raise ContextTypeError(
                f"Agent {self.name!r} runs with {self.context_type.__qualname__} contexts, but its subagent "
                f"{sub.name!r} requires {sub.context_type.__qualname__}; make the parent's context_type a subclass "
                "of the subagent's."
            )

    def _check_tool_context(self, t: AnyTool) -> None:
        if isinstance(t, AgentTool):
            self._check_subagent_context(t.agent)
            return
        if self.context_type is RunContext or not isinstance(t, Tool):
            return  # no promise about the context class: each execution checks its tools
        try:
            context = t.schema.context
        except UserError:
            return  # unresolvable yet: checked when an execution starts
        if context is not None and not (
            isinstance(self.context_type, type) and issubclass(self.context_type, context.cls)
        ):
            raise ContextTypeError(
                f"Tool {t.name!r} needs an instance of {context.cls.__qualname__} but agent {self.name!r} runs with "
                f"context_type={self.context_type.__qualname__}; pass context_type={context.cls.__qualname__} "
                "(or a subclass) to the Agent, or annotate the tool with a base class."
            )

    def as_tool(
        self, name: str | None = None, description: str | None = None, *, requires_approval: bool = False
    ) -> AgentTool:
        """Return a tool that delegates to this agent.

        The tool takes one required string parameter `task`; the subagent runs it with
        the caller's `create_child_context()`, and its output is the tool's result.

        Args:
            name: The tool's name; defaults to the agent's name.
            description: The tool's description; defaults to the agent's `description`.
            requires_approval: Whether each delegation must be approved first.
        """
        if name is None and description is None and not requires_approval:
            if self._delegation_tool is None:
                self._delegation_tool = AgentTool(self)
            return self._delegation_tool
        return AgentTool(self, name=name, description=description, requires_approval=requires_approval)

    def run(
        self,
        input: str | RunState,  # noqa: A002 - the peers' name
        *,
        context: ContextT | dict[str, Any] | None = None,
        message_history: Sequence[Message] | None = None,
        interceptors: Sequence[Interceptor] = (),
        usage_limits: UsageLimits | None = None,
        approval_handler: Callable[..., Any] | None = None,
        max_depth: int = 16,
        max_requests: int = DEFAULT_MAX_REQUESTS,
    ) -> Coroutine[Any, Any, RunResult[ContextT, OutputT]]:
        """Run the agent until it produces an output: `result = await agent.run(...)`.

        `run()` returns the run's coroutine (so each waiting run holds one frame less); await it,
        or hand it to `asyncio.create_task()` / a task group like any coroutine.

        Args:
            input: The user's message, or a `RunState` to resume an interrupted run.
            context: The run context (an instance of `context_type`); a dict becomes
                `RunContext(metadata=dict)`; `None` gives a fresh `RunContext()`. The run
                executes on a copy; your object is never modified.
            message_history: Earlier messages (e.g. `previous.messages`).
            interceptors: Interceptors applied to every agent of this run's tree.
            usage_limits: Caps checked before each model request and tool call.
            approval_handler: Decides calls of tools with `requires_approval=True`:
                called with the `ToolApprovalItem` (and the context by injection), it
                must return a `bool` (or an awaitable of one). Without it, such calls
                interrupt the run.
            max_depth: The hard delegation limit for this run's tree. A run started inside
                a tool of another run counts its depth from that run, and the smaller of the
                two limits applies.
            max_requests: The hard bound on model requests of this run's tree, subagents
                and runs started inside its tools included. A run started inside a tool of
                another run also spends from that run's bound.

        Returns:
            The `RunResult`; when interrupted, `result.interruptions` and `result.state`.

        Raises:
            ContextTypeError: If the context is not an instance of `context_type`, or a
                tool needs a context class the run's context is not an instance of.
            UserError: For misuse detected at run time (bad arguments, a tool with an
                unresolvable annotation, a handler that answers something but a bool).
            RunStateError: If a `RunState` to resume is malformed, belongs to another
                agent, or was resumed before.
            MaxTurnsExceeded: If an agent needs more than `max_turns` model requests.
            ToolRetriesExceeded: If a tool's retries are exhausted.
            UsageLimitExceeded: If a `usage_limits` cap or `max_requests` would be exceeded.
            DeadlineExceeded: If the context's deadline passes (a `TimedContext`).
            DelegationDepthExceeded: If delegations nest deeper than `max_depth`.
            UnexpectedModelBehavior: If the model's answer is unusable (e.g. truncated).
            ModelAPIError: If the model provider returns an error.
            Exception: A tool's own exception, with `tool_errors="raise"`.
        """
        options = RunOptions(
            context=context,
            message_history=message_history,
            interceptors=interceptors,
            usage_limits=usage_limits,
            approval_handler=approval_handler,
            max_depth=max_depth,
            max_requests=max_requests,
        )
        return _run.run_agent(self, input, options)

    def run_sync(
        self,
        input: str | RunState,  # noqa: A002
        *,
        context: ContextT | dict[str, Any] | None = None,
        message_history: Sequence[Message] | None = None,
        interceptors: Sequence[Interceptor] = (),
        usage_limits: UsageLimits | None = None,
        approval_handler: Callable[..., Any] | None = None,
        max_depth: int = 16,
        max_requests: int = DEFAULT_MAX_REQUESTS,
    ) -> RunResult[ContextT, OutputT]:
        """Run the agent from synchronous code; arguments and errors as `run()`.

        Inside a sync tool (which runs in an anyio worker thread) the run executes on the
        caller's event loop, and its own sync tools draw threads from a separate pool, so
        nested runs never deadlock; it ends with the tool call (a cancellation, timeout or
        deadline of the call cancels it, on asyncio and trio); elsewhere it starts an event loop of its own and
        closes the model clients it opened on it before returning.

        Raises:
            UserError: If called from async code on an event loop's thread; use
                `await agent.run(...)` there.
            AgentRunError: Inside a sync tool, if the tool call ended before the run finished.
        """
        options = RunOptions(
            context=context,
            message_history=message_history,
            interceptors=interceptors,
            usage_limits=usage_limits,
            approval_handler=approval_handler,
            max_depth=max_depth,
            max_requests=max_requests,
        )
        where = _thread_kind()
        if where == "worker":
            result: RunResult[ContextT, OutputT] = anyio.from_thread.run(
                _run_nested, self, input, options, nested_runs()
            )
            return result
        if where == "loop":
            raise UserError(
                f"Agent {self.name!r}.run_sync() was called on an event loop's thread; use `await agent.run(...)` "
                "in async code (run_sync() works in sync code and in sync tools)."
            )
        return anyio.run(_run_owning_loop, self, input, options)

    @asynccontextmanager
    async def run_stream(
        self,
        input: str | RunState,  # noqa: A002
        *,
        context: ContextT | dict[str, Any] | None = None,
        message_history: Sequence[Message] | None = None,
        interceptors: Sequence[Interceptor] = (),
        usage_limits: UsageLimits | None = None,
        approval_handler: Callable[..., Any] | None = None,
        max_depth: int = 16,
        max_requests: int = DEFAULT_MAX_REQUESTS,
    ) -> AsyncIterator[AsyncIterator[StreamEvent]]:
        """Run the agent and stream its events; arguments and errors as `run()`.

        ```python
        async with agent.run_stream("Hi", context=ctx) as events:
            async for event in events:
                ...  # TextDeltaEvent, ToolCallEvent, ..., FinalResultEvent last
        ```

        Leaving the block early cancels the run.
        """
        send, receive = anyio.create_memory_object_stream[StreamEvent](math.inf)
        failure: list[BaseException] = []
        options = RunOptions(
            context=context,
            message_history=message_history,
            interceptors=interceptors,
            usage_limits=usage_limits,
            approval_handler=approval_handler,
            max_depth=max_depth,
            max_requests=max_requests,
            emit=send.send,
        )

        async def produce() -> None:
            async with send:
                try:
                    result = await _run.run_agent(self, input, options)
                except Exception as exc:
                    failure.append(exc)
                    return
                await send.send(FinalResultEvent(result=result))

        async def consume() -> AsyncIterator[StreamEvent]:
            async with receive:
                async for event in receive:
                    yield event
            if failure:
                raise failure[0]

        raised: Exception | None = None  # raised in the block: re-raised unwrapped, not as an ExceptionGroup
        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            events = consume()
            try:
                yield events
            except Exception as exc:
                raised = exc
            finally:
                await events.aclose()  # type: ignore[attr-defined]
                tg.cancel_scope.cancel()
        if raised is not None:
            raise raised
        if failure:
            raise failure[0]


async def _run_nested(
    agent: Agent[Any, Any],
    input: str | RunState,  # noqa: A002
    options: RunOptions,
    nested: NestedRuns | None,
) -> Any:
    """Run on the event loop for `run_sync` called in a sync tool's worker thread; the run ends
    with the tool call that started it (see `NestedRuns`).

    Raises:
        AgentRunError: If the tool call ended (cancelled, timed out) before this run finished.
    """
    if nested is None:  # a worker thread the application started itself
        return await _run.run_agent(agent, input, options)
    with nested.track():
        return await _run.run_agent(agent, input, options)
    raise AgentRunError(
        f"Agent {agent.name!r}.run_sync() was cancelled: the tool call that started it ended (cancelled, or past "
        "its timeout or deadline) before the nested run finished."
    )


async def _run_owning_loop(agent: Agent[Any, Any], input: str | RunState, options: RunOptions) -> Any:  # noqa: A002
    """Run on an event loop `run_sync` started, then close the model clients opened on it (their
    sockets must not outlive the loop). A failure to close never hides the run's own error."""
    try:
        result = await _run.run_agent(agent, input, options)
    except BaseException:
        with contextlib.suppress(Exception):
            await close_loop_resources()
        raise
    await close_loop_resources()
    return result


def _thread_kind() -> Literal["worker", "loop", "plain"]:
    """Whether this thread is an anyio worker thread, runs an event loop, or neither."""
    try:
        anyio.from_thread.check_cancelled()
    except anyio.NoEventLoopError:
        pass
    else:
        return "worker"
    try:
        sniffio.current_async_library()
    except sniffio.AsyncLibraryNotFoundError:
        return "plain"
    return "loop"


def _instrumentation(where: str, instrument: Any) -> Instrumentation | Literal[False] | None:
    if instrument is None or instrument is False or isinstance(instrument, Instrumentation):
        return instrument
    if instrument is True:
        from .telemetry import InstrumentationSettings  # OpenTelemetry is imported only when asked for

        return InstrumentationSettings()
    raise UserError(
        f"{where} has instrument={instrument!r}; pass True, False, None or "
        "cogent.telemetry.InstrumentationSettings(...)."
    )


def _check_int(where: str, name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise UserError(f"{where} has {name}={value!r}; pass an int of {low} or more.")


def _sequence(where: str, name: str, value: Any) -> Sequence[Any]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        raise UserError(f"{where} got {name}={value!r}; pass a list (or tuple).")
    return value


def _interceptors(where: str, interceptors: Any) -> tuple[Interceptor, ...]:
    for i in _sequence(where, "interceptors", interceptors):
        if not isinstance(i, Interceptor):
            raise UserError(
                f"{where} got {i!r} in interceptors=; pass Interceptor instances (subclass Interceptor or decorate "
                "a function with @interceptor)."
            )
    return tuple(interceptors)
