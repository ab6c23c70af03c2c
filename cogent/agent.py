"""`Agent` (configuration) and what a run returns: `RunResult`, `RunState`, the trace and stream events."""

from __future__ import annotations

import functools
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, cast

import anyio
from pydantic import TypeAdapter
from typing_extensions import TypeVar

from ._signature import InjectedCall, caller_namespace
from .context import RunContext, ToolApprovalItem
from .exceptions import ContextTypeError, UserError
from .interceptors import Interceptor
from .messages import Message
from .models import Model, infer_model
from .tools import Tool, ToolDefinition, ensure_tool
from .usage import Usage, UsageLimits

__all__ = [
    "APPROVED",
    "Agent",
    "DelegationEndEvent",
    "DelegationStartEvent",
    "FinalResultEvent",
    "RunResult",
    "RunState",
    "StreamEvent",
    "TextDeltaEvent",
    "ToolCallEvent",
    "ToolResultEvent",
    "TraceEvent",
    "format_trace",
]

ContextT = TypeVar("ContextT", bound=RunContext, default=RunContext)
OutputT = TypeVar("OutputT", default=str)

OUTPUT_TOOL_NAME = "final_result"

APPROVED = "approved"
"""The `detail` of an `approval` trace event for an approved call (a rejection's is the message)."""

# anyio >= 4.? raises this precise error from from_thread.run() outside worker threads.
_NO_EVENT_LOOP: type[RuntimeError] = getattr(anyio, "NoEventLoopError", RuntimeError)


# --- Trace ---------------------------------------------------------------------------

TraceKind = Literal[
    "model_request",
    "tool_call",
    "tool_error",
    "retry",
    "delegation",
    "delegation_refused",
    "approval",
    "interceptor",
]


@dataclass(kw_only=True, slots=True)
class TraceEvent:
    """One step of a run. Delegations hold their subagent's events in `children`.

    Events never contain run context fields; only the lineage ids of helper contexts.
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
    """The context's `task_id`, when it has one (`TaskContext`, `ExecutionContext`)."""
    parent_task_id: str | None = None
    """The context's `parent_task_id`, when it has one."""
    started: float = 0.0
    """`time.perf_counter()` when the step started (seconds)."""
    duration: float = 0.0
    """How long the step took (seconds)."""
    detail: str | None = None
    """The result, refusal reason or error message as the model saw it (`APPROVED` for approved calls)."""
    error: BaseException | None = None
    """The exception, for `tool_error` events."""
    children: list[TraceEvent] = field(default_factory=list)
    """The subagent's events, for `delegation` events."""


def format_trace(events: Sequence[TraceEvent], *, indent: str = "  ", width: int = 80) -> str:
    """Render a trace as an indented tree, one line per event.

    Args:
        events: `result.trace`.
        indent: The text added per nesting level.
        width: The most characters of each event's detail (result, error) to show.

    Returns:
        Lines like `tool_call lookup agent=desk depth=1 call=c1 task=ab12cd34 parent=9f8e7d6c (0.05 ms) -> ok`.
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
            line = f"{indent * level}{' '.join(parts)} ({e.duration * 1000:.2f} ms)"
            if e.detail:
                detail = " ".join(e.detail.split())
                line += f" -> {detail[: width - 3] + '...' if len(detail) > width else detail}"
            lines.append(line)
            walk(e.children, level + 1)

    walk(events, 0)
    return "\n".join(lines)


# --- Stream events -------------------------------------------------------------------


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
    """The child context's `task_id`, if it has one."""
    parent_task_id: str | None
    """The child context's `parent_task_id`, if it has one."""


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
    """The child context's `task_id`, if it has one."""
    parent_task_id: str | None
    """The child context's `parent_task_id`, if it has one."""


@dataclass(kw_only=True, frozen=True, slots=True)
class FinalResultEvent(Generic[ContextT, OutputT]):
    """The last event of a stream."""

    result: RunResult[ContextT, OutputT]
    """The run's result."""


StreamEvent = (
    TextDeltaEvent
    | ToolCallEvent
    | ToolResultEvent
    | DelegationStartEvent
    | DelegationEndEvent
    | FinalResultEvent[Any, Any]
)
"""Any event `Agent.run_stream()` yields."""


# --- Results and resumable state -----------------------------------------------------


@dataclass(kw_only=True)
class RunState:
    """Where an interrupted run stopped, so it can resume: `agent.run(state, context=...)`.

    It round-trips through JSON (`to_json` / `from_json`), so a web application can
    resume in another request. It holds the conversation, the pending approvals, the
    results of the interrupted turn's finished calls, the nested states of interrupted
    subagents, and the approval decisions recorded on the context.
    """

    agent_name: str
    """The agent that was interrupted."""
    task: str
    """That agent's input."""
    messages: list[Message]
    """The history, ending with the response whose tool calls are pending."""
    completed: dict[str, Message] = field(default_factory=dict)
    """Results of that response's calls that already finished, by call id."""
    children: dict[str, RunState] = field(default_factory=dict)
    """States of interrupted subagents, by the id of the delegating call."""
    interruptions: list[ToolApprovalItem] = field(default_factory=list)
    """Every pending approval in this state and its children."""
    approvals: dict[str, Any] = field(default_factory=dict)
    """The context's approval records when the run stopped."""
    usage: Usage = field(default_factory=Usage)
    """The usage of the run up to the interruption."""
    new_message_index: int = 0
    """Where this run's new messages begin in `messages`."""

    def to_json(self) -> str:
        """Serialize the state to JSON text.

        The approval records are read at this moment from the interrupted run's context
        (which shares them with the context you passed in), so decisions recorded with
        `result.context.approve_tool(...)` or `your_context.approve_tool(...)` after the
        interruption are included.
        """
        live = self.__dict__.get("_live_context")
        if live is not None:
            self.approvals = {**self.approvals, **live._export_approvals()}
        return _run_state_adapter().dump_json(self).decode()

    @classmethod
    def from_json(cls, data: str | bytes) -> RunState:
        """Parse a state written by `to_json`.

        Raises:
            pydantic.ValidationError: If `data` is not a valid state.
        """
        return _run_state_adapter().validate_json(data)


@functools.cache
def _run_state_adapter() -> TypeAdapter[RunState]:
    """The state's validator, built on first use rather than at import (`import cogent` stays fast)."""
    return TypeAdapter(RunState)


@dataclass(kw_only=True)
class RunResult(Generic[ContextT, OutputT]):
    """The outcome of `Agent.run()`."""

    output: OutputT
    """The final output (a validated `output_type` instance), or `None` if interrupted."""
    messages: list[Message]
    """The full history, usable as the next run's `message_history`."""
    usage: Usage
    """Requests, tokens and tool calls, summed over the whole agent tree."""
    context: ContextT
    """The context the top-level agent executed with (a copy of the one passed in)."""
    trace: list[TraceEvent]
    """What happened, in order; delegations nest their subagent's events."""
    interruptions: list[ToolApprovalItem] = field(default_factory=list)
    """Tool calls waiting for approval; non-empty only when the run was interrupted."""
    state: RunState | None = None
    """The state to resume from when interrupted: `agent.run(result.state, context=...)`."""
    new_message_index: int = 0
    """Where this run's messages begin in `messages`."""

    def new_messages(self) -> list[Message]:
        """Return the messages of this run only (without the `message_history` passed in)."""
        return self.messages[self.new_message_index :]


# --- Agent ---------------------------------------------------------------------------


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
        tools: Tools (plain callables are wrapped with `tool()`).
        subagents: Agents offered to the model as tools named after them.
        interceptors: Interceptors applied to this agent's executions.
        context_type: The class every run context must be an instance of. When given,
            every tool and subagent is checked against it here; with the default, tools
            check the context when they run.
        output_type: `str`, or a type pydantic validates the final answer into.
        max_turns: Model requests allowed per execution of this agent.
        tool_retries: Retries allowed per tool after `ModelRetry` or invalid arguments
            (`RetryContext.max_retries` overrides it).
        tool_errors: `"model"` turns a tool's exception into an `Error: <message>`
            result; `"raise"` lets it propagate out of `run()`.
        parallel_tool_calls: Run the tool calls of one response concurrently.

    Raises:
        UserError: If the configuration cannot work (duplicate tool names, bad values).
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
        tools: Sequence[Tool[Any, Any] | Callable[..., Any]] = (),
        subagents: Sequence[Agent[Any, Any]] = (),
        interceptors: Sequence[Interceptor] = (),
        context_type: type[ContextT] = RunContext,  # type: ignore[assignment]
        output_type: type[OutputT] = str,  # type: ignore[assignment]
        max_turns: int = 10,
        tool_retries: int = 1,
        tool_errors: Literal["model", "raise"] = "model",
        parallel_tool_calls: bool = True,
    ) -> None:
        if not name or not isinstance(name, str):
            raise UserError("Agent needs a non-empty name= string; it names the agent in traces and delegations.")
        if max_turns < 1:
            raise UserError(f"Agent {name!r} has max_turns={max_turns}; allow at least 1 turn.")
        if tool_retries < 0:
            raise UserError(f"Agent {name!r} has tool_retries={tool_retries}; use 0 or more.")
        if tool_errors not in ("model", "raise"):
            raise UserError(f"Agent {name!r} has tool_errors={tool_errors!r}; use 'model' or 'raise'.")
        if not (isinstance(context_type, type) and issubclass(context_type, RunContext)):
            raise UserError(f"Agent {name!r} has context_type={context_type!r}; pass RunContext or a subclass.")
        for i in interceptors:
            if not isinstance(i, Interceptor):
                raise UserError(
                    f"Agent {name!r} got {i!r} in interceptors=; pass Interceptor instances "
                    "(subclass Interceptor or decorate a function with @interceptor)."
                )
        self.name = name
        self.model: Model = infer_model(model)
        self.description = description
        self.context_type: type[ContextT] = context_type
        self.output_type: type[OutputT] = output_type
        self.max_turns = max_turns
        self.tool_retries = tool_retries
        self.tool_errors = tool_errors
        self.parallel_tool_calls = parallel_tool_calls
        self.interceptors: tuple[Interceptor, ...] = tuple(interceptors)
        self._interceptor_plan: dict[Any, Any] | None = None
        self.instructions = instructions
        self._instructions_call: InjectedCall | None = None
        if callable(instructions):
            self._instructions_call = InjectedCall(
                instructions, owner=f"Agent {name!r} instructions", arity=0, localns=caller_namespace(1)
            )
        self._delegation_tool: Tool[Any, Any] | None = None
        self._own_tools: list[Tool[Any, Any]] = []
        self._subagents: list[Agent[Any, Any]] = []
        self._tool_map: dict[str, Tool[Any, Any]] | None = None
        self._definitions: list[ToolDefinition] | None = None
        self.output_adapter: TypeAdapter[Any] | None = None
        self.output_definition: ToolDefinition | None = None
        self.output_wrapped = False
        if output_type is not str:
            self._build_output(output_type)
        self.add_tools(*tools)
        self.add_subagents(*subagents)

    def _build_output(self, output_type: type[Any]) -> None:
        try:
            adapter: TypeAdapter[Any] = TypeAdapter(output_type)
            schema = adapter.json_schema()
        except Exception as exc:
            raise UserError(f"Agent {self.name!r} has an output_type pydantic cannot validate: {exc}") from exc
        if schema.get("type") != "object":
            schema = {"type": "object", "properties": {"response": schema}, "required": ["response"]}
            self.output_wrapped = True
        self.output_adapter = adapter
        self.output_definition = ToolDefinition(
            name=OUTPUT_TOOL_NAME,
            description="Give the final answer. Calling this ends the conversation.",
            parameters_json_schema=schema,
        )

    def __repr__(self) -> str:
        return f"Agent(name={self.name!r}, model={self.model.name!r})"

    @property
    def tools(self) -> tuple[Tool[Any, Any], ...]:
        """The agent's tools: its own, then one per subagent."""
        return tuple(self._tools_by_name().values())

    @property
    def subagents(self) -> tuple[Agent[Any, Any], ...]:
        """The agents this agent can delegate to."""
        return tuple(self._subagents)

    def add_tools(self, *tools: Tool[Any, Any] | Callable[..., Any]) -> None:
        """Add tools (plain callables are wrapped with `tool()`).

        Raises:
            UserError: If a name is already taken by a tool or subagent of this agent.
            ContextTypeError: If a tool needs a context class `context_type` does not satisfy.
        """
        new = [ensure_tool(t) for t in tools]
        for t in new:
            self._check_tool_context(t)
        self._own_tools.extend(new)
        self._refresh()

    def add_subagents(self, *agents: Agent[Any, Any]) -> None:
        """Add subagents; this is also how an agent can (indirectly) delegate to itself.

        Raises:
            UserError: If a name is already taken.
            ContextTypeError: If a subagent needs a context class `context_type` does not satisfy.
        """
        for a in agents:
            if not isinstance(a, Agent):
                raise UserError(f"Agent {self.name!r} got {a!r} in subagents=; pass Agent instances.")
            if self.context_type is not RunContext and not issubclass(self.context_type, a.context_type):
                raise ContextTypeError(
                    f"Agent {self.name!r} runs with {self.context_type.__qualname__} contexts, but its subagent "
                    f"{a.name!r} requires {a.context_type.__qualname__}; make the parent's context_type a subclass "
                    "of the subagent's."
                )
        self._subagents.extend(agents)
        self._refresh()

    def _check_tool_context(self, t: Tool[Any, Any]) -> None:
        try:
            context = t.schema.context
        except UserError:
            return  # unresolvable yet: checked when the tool is first used
        if self.context_type is RunContext:
            return  # no promise about the context class: tools check it when they run
        if context is not None and not issubclass(self.context_type, context.cls):
            raise ContextTypeError(
                f"Tool {t.name!r} needs an instance of {context.cls.__qualname__} but agent {self.name!r} runs with "
                f"context_type={self.context_type.__qualname__}; pass context_type={context.cls.__qualname__} "
                "(or a subclass) to the Agent, or annotate the tool with a base class."
            )

    def _refresh(self) -> None:
        self._tool_map = None
        self._definitions = None
        self._tools_by_name()

    def _tools_by_name(self) -> dict[str, Tool[Any, Any]]:
        if self._tool_map is None:
            tool_map: dict[str, Tool[Any, Any]] = {}
            for t in [*self._own_tools, *(a.as_tool() for a in self._subagents)]:
                if t.name in tool_map or (t.name == OUTPUT_TOOL_NAME and self.output_definition is not None):
                    raise UserError(
                        f"Agent {self.name!r} has two tools named {t.name!r}; give one of them another name "
                        "(@tool(name=...) or agent.as_tool(name=...))."
                    )
                tool_map[t.name] = t
            self._tool_map = tool_map
        return self._tool_map

    def interceptor_plan(self) -> dict[Any, Any]:
        """The agent's interceptor handlers per phase, in calling order (computed once)."""
        if self._interceptor_plan is None:
            self._interceptor_plan = _run._plan(self.interceptors)
        return self._interceptor_plan

    def tool_definitions(self) -> list[ToolDefinition]:
        """The `ToolDefinition`s offered to the model (without the output tool)."""
        if self._definitions is None:
            self._definitions = [t.definition for t in self._tools_by_name().values()]
        return self._definitions

    def as_tool(self, name: str | None = None, description: str | None = None) -> Tool[Any, Any]:
        """Return a tool that delegates to this agent.

        The tool takes one required string parameter `task`; the subagent runs it with
        the caller's `create_child_context()`, and its output is the tool's result.

        Args:
            name: The tool's name; defaults to the agent's name.
            description: The tool's description; defaults to the agent's `description`.
        """
        if name is None and description is None and self._delegation_tool is not None:
            return self._delegation_tool
        agent = self

        async def delegate(task: str) -> Any:
            """Delegate a task.

            Args:
                task: The task for the subagent, stated completely.
            """
            return (await agent.run(task)).output

        delegation = Tool(
            delegate,
            name=name or self.name,
            description=description or self.description or f"Delegate a task to the {self.name} agent.",
            agent=self,
        )
        if name is None and description is None:
            self._delegation_tool = delegation  # built once: subagents are offered under it
        return delegation

    async def instructions_for(self, ctx: RunContext) -> str | None:
        """Return the instructions for one execution (calling the callable, if any)."""
        if self._instructions_call is not None:
            text = await self._instructions_call(ctx)
            return None if text is None else str(text)
        return cast("str | None", self.instructions)

    async def run(
        self,
        input: str | RunState,  # noqa: A002 - the peers' name
        *,
        context: ContextT | dict[str, Any] | None = None,
        message_history: Sequence[Message] | None = None,
        interceptors: Sequence[Interceptor] = (),
        usage_limits: UsageLimits | None = None,
        approval_handler: Callable[..., Any] | None = None,
        max_depth: int = 16,
    ) -> RunResult[ContextT, OutputT]:
        """Run the agent until it produces an output.

        Args:
            input: The user's message, or a `RunState` to resume an interrupted run.
            context: The run context (an instance of `context_type`); a dict becomes
                `RunContext(metadata=dict)`; `None` gives a fresh `RunContext()`.
            message_history: Earlier messages (e.g. `previous.messages`).
            interceptors: Interceptors applied to every agent of this run's tree.
            usage_limits: Caps checked before each model request and tool call.
            approval_handler: Decides calls of tools with `requires_approval=True`:
                called with the `ToolApprovalItem` (and the context by injection),
                returns `True` to approve. Without it, such calls interrupt the run.
            max_depth: The hard delegation limit for this run's tree.

        Returns:
            The `RunResult`; when interrupted, `result.interruptions` and `result.state`.

        Raises:
            ContextTypeError: If the context is not an instance of `context_type`, or a
                tool needs a context class the run's context is not an instance of.
            UserError: For misuse detected at run time (bad arguments, a tool with an
                unresolvable annotation, a state for another agent).
            MaxTurnsExceeded: If an agent needs more than `max_turns` model requests.
            ToolRetriesExceeded: If a tool's retries are exhausted.
            UsageLimitExceeded: If a `usage_limits` cap would be exceeded.
            DeadlineExceeded: If the context's `deadline` passes.
            DelegationDepthExceeded: If delegations nest deeper than `max_depth`.
            ModelAPIError: If the model provider returns an error.
            Exception: A tool's own exception, with `tool_errors="raise"`.
        """
        return await _run.run_agent(
            self,
            input,
            context=context,
            message_history=message_history,
            interceptors=interceptors,
            usage_limits=usage_limits,
            approval_handler=approval_handler,
            max_depth=max_depth,
        )

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
    ) -> RunResult[ContextT, OutputT]:
        """Run the agent from synchronous code; arguments and errors as `run()`.

        Inside a sync tool (which runs in an anyio worker thread) the run executes on
        the caller's event loop; elsewhere it starts a new event loop.

        Raises:
            UserError: If called from async code on an event loop's thread; use
                `await agent.run(...)` there.
        """

        async def main() -> RunResult[ContextT, OutputT]:
            return await self.run(
                input,
                context=context,
                message_history=message_history,
                interceptors=interceptors,
                usage_limits=usage_limits,
                approval_handler=approval_handler,
                max_depth=max_depth,
            )

        try:
            return anyio.from_thread.run(main)
        except _NO_EVENT_LOOP as exc:  # not in a worker thread: raised before anything ran
            if _NO_EVENT_LOOP is RuntimeError and "worker thread" not in str(exc):
                raise
        try:
            import sniffio

            sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            return anyio.run(main)
        raise UserError(
            f"Agent {self.name!r}.run_sync() was called on an event loop's thread; use `await agent.run(...)` "
            "in async code (run_sync() works in sync code and in sync tools)."
        )

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

        async def produce() -> None:
            async with send:
                try:
                    result = await _run.run_agent(
                        self,
                        input,
                        context=context,
                        message_history=message_history,
                        interceptors=interceptors,
                        usage_limits=usage_limits,
                        approval_handler=approval_handler,
                        max_depth=max_depth,
                        emit=send.send,
                    )
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


from . import _run  # noqa: E402 - _run needs the classes above
