"""The run loop: turns, tool execution, delegation, interceptors, approvals, deadlines.

One `_Execution` runs one agent with one context (the top-level run, or a
subagent's delegated task). All executions of a run share one `_Tree`: the usage
accumulator and limits, the run-level interceptors, the approval handler, the hard
delegation limit, the interceptors' state dict and the stream sink.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

import anyio
import anyio.abc
import anyio.lowlevel
from pydantic import ValidationError
from pydantic_core import to_json

from ._signature import InjectedCall
from .agent import (
    APPROVED,
    OUTPUT_TOOL_NAME,
    Agent,
    DelegationEndEvent,
    DelegationStartEvent,
    RunResult,
    RunState,
    StreamEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
    TraceEvent,
    TraceKind,
)
from .context import RetryContext, RunContext, ToolApprovalItem, _current, _execution_copy
from .core import generate_id, now_utc
from .exceptions import (
    AgentRunError,
    ContextTypeError,
    DeadlineExceeded,
    DelegationDepthExceeded,
    MaxTurnsExceeded,
    ModelRetry,
    ToolRetriesExceeded,
    UnexpectedModelBehavior,
    UserError,
)
from .interceptors import InterceptContext, Interceptor, InterceptResult, Phase, StopExecution
from .messages import Message, ModelResponse, RetryPrompt, ToolCall, ToolReturn, UserPrompt
from .models import Model, ModelRequestParameters, TextDelta, infer_model
from .tools import Tool, ToolDefinition
from .usage import Usage, UsageLimits

Emit = Callable[[StreamEvent], Awaitable[None]]
Handler = Callable[[RunContext | None, InterceptContext], Awaitable[Any]]

_POST_PHASES = frozenset({Phase.POST_THINK, Phase.POST_ACT, Phase.POST_RUN, Phase.ON_ERROR})


@dataclass(kw_only=True, slots=True)
class _Tree:
    """What all executions of one top-level run share."""

    usage: Usage
    limits: UsageLimits | None
    interceptors: tuple[Interceptor, ...]
    approval_handler: InjectedCall | None
    max_depth: int
    state: dict[str, Any] = field(default_factory=dict)
    emit: Emit | None = None
    plans: dict[int, dict[Phase, tuple[Handler, ...]]] = field(default_factory=dict)
    """Interceptor plans per agent (by id; the tree keeps the agents alive)."""

    def plan_for(self, agent: Agent[Any, Any]) -> dict[Phase, tuple[Handler, ...]]:
        """Return the handlers per phase for `agent`: its own interceptors, then the run's."""
        if not self.interceptors:
            return agent.interceptor_plan()
        plan = self.plans.get(id(agent))
        if plan is None:
            plan = self.plans[id(agent)] = _plan(agent.interceptors + self.interceptors)
        return plan


class _Interrupted(Exception):
    """Unwinds an execution whose tool calls wait for approval."""

    def __init__(self, state: RunState) -> None:
        super().__init__("interrupted")
        self.state = state


class _EndRun(Exception):
    """Ends an execution early with `output` (an interceptor's stop or skip)."""

    def __init__(self, output: Any) -> None:
        super().__init__("end run")
        self.output = output


_REPORTED = "__cogent_on_error_reported__"


def _plan(interceptors: Sequence[Interceptor]) -> dict[Phase, tuple[Handler, ...]]:
    """Return, per phase, the handlers in calling order (reverse for POST phases)."""
    plan: dict[Phase, tuple[Handler, ...]] = {}
    for phase in Phase:
        handlers = [i._cogent_handlers()[phase] for i in interceptors if phase in i._cogent_handlers()]
        if phase in _POST_PHASES:
            handlers.reverse()
        plan[phase] = tuple(handlers)
    return plan


def _lineage(ctx: RunContext) -> tuple[str | None, str | None]:
    return getattr(ctx, "task_id", None), getattr(ctx, "parent_task_id", None)


def _tracks_retries(ctx: RunContext) -> bool:
    """Whether the context has `retry_count` and `is_retry` fields, so a retry gets a marked copy.

    True for `RetryContext` and for the spec's own `ExecutionContext`, which declares the
    fields without inheriting `RetryContext`.
    """
    names = ctx.__dataclass_fields__
    return "retry_count" in names and "is_retry" in names


def _serialize(value: Any) -> str:
    if isinstance(value, str):
        return value
    return to_json(value).decode()


def _format_validation_error(name: str, exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        lines = [
            f"- {'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        ]
        detail = "\n".join(lines)
    else:
        detail = f"- {type(exc).__name__}: {exc}"
    return f"The arguments for {name!r} are invalid:\n{detail}\nFix the errors and try again."


def _check_response(model: Model, response: Any) -> None:
    """Raise `UnexpectedModelBehavior` unless `response` is a well-formed `ModelResponse`."""
    if not isinstance(response, ModelResponse):
        problem = f"returned a {type(response).__qualname__} instead of a ModelResponse"
    elif not isinstance(response.text, str | None) or not isinstance(response.usage, Usage):
        problem = "returned a ModelResponse whose text is not a str or None, or whose usage is not a Usage"
    elif not isinstance(response.tool_calls, list) or not all(
        isinstance(c, ToolCall)
        and isinstance(c.name, str)
        and isinstance(c.arguments, str | dict)
        and isinstance(c.id, str | None)
        for c in response.tool_calls
    ):
        problem = "returned tool calls that are not ToolCall(name: str, arguments: str | dict, id: str | None)"
    else:
        return
    raise UnexpectedModelBehavior(
        f"Model {getattr(model, 'name', model)!r} {problem}; fix the model so that request() returns a valid "
        "ModelResponse."
    )


def _repair_pairing(messages: list[Message]) -> list[Message]:
    """Drop tool returns without their call and tool calls without their return."""
    returned = {m.tool_call_id for m in messages if isinstance(m, ToolReturn | RetryPrompt) and m.tool_call_id}
    called: set[str] = set()
    repaired: list[Message] = []
    for m in messages:
        if isinstance(m, ModelResponse) and m.tool_calls:
            kept = [c for c in m.tool_calls if c.id in returned]
            called.update(c.id for c in kept if c.id)
            if kept != m.tool_calls:
                if not kept and not m.text:
                    continue
                m = copy.copy(m)
                m.tool_calls = kept
        elif isinstance(m, ToolReturn | RetryPrompt) and m.tool_call_id and m.tool_call_id not in called:
            continue
        repaired.append(m)
    return repaired


def _deadline_scope(ctx: RunContext) -> anyio.CancelScope | nullcontext[None]:
    deadline = getattr(ctx, "deadline", None)
    if not isinstance(deadline, datetime):
        return nullcontext()
    if deadline.tzinfo is None:
        raise UserError(
            f"The context's deadline {deadline} has no timezone; use a timezone-aware datetime, "
            "e.g. cogent.core.now_utc() + timedelta(seconds=30)."
        )
    remaining = (deadline - now_utc()).total_seconds()
    return anyio.CancelScope(deadline=anyio.current_time() + remaining)


def _coerce_context(agent: Agent[Any, Any], context: Any) -> RunContext:
    if context is None:
        context = RunContext()
    elif isinstance(context, dict):
        context = RunContext(metadata=dict(context))
    elif not isinstance(context, RunContext):
        raise UserError(
            f"Agent {agent.name!r} got context={type(context).__qualname__}; pass a RunContext (or subclass) "
            "instance, a dict of metadata, or None."
        )
    if not isinstance(context, agent.context_type):
        _raise_context_type(agent, context)
    coerced: RunContext = context
    return coerced


def _raise_context_type(agent: Agent[Any, Any], context: RunContext) -> None:
    raise ContextTypeError(
        f"Agent {agent.name!r} requires a {agent.context_type.__qualname__} context, got "
        f"{type(context).__qualname__}; pass an instance of {agent.context_type.__qualname__}."
    )


async def run_agent(
    agent: Agent[Any, Any],
    input: str | RunState,  # noqa: A002
    *,
    context: Any,
    message_history: Sequence[Message] | None,
    interceptors: Sequence[Interceptor],
    usage_limits: UsageLimits | None,
    approval_handler: Callable[..., Any] | None,
    max_depth: int,
    emit: Emit | None = None,
) -> RunResult[Any, Any]:
    """Run `agent` as a top-level run (see `Agent.run` for the arguments)."""
    if max_depth < 0:
        raise UserError(f"run(max_depth={max_depth}) must be 0 or more.")
    for i in interceptors:
        if not isinstance(i, Interceptor):
            raise UserError(f"run(interceptors=...) got {i!r}; pass Interceptor instances.")
    ctx = _coerce_context(agent, context)
    resume = input if isinstance(input, RunState) else None
    if resume is not None:
        if resume.agent_name != agent.name:
            raise UserError(
                f"This RunState belongs to agent {resume.agent_name!r}, not {agent.name!r}; resume it with "
                f"the agent named {resume.agent_name!r}."
            )
        if message_history is not None:
            raise UserError("Resuming a RunState uses its own messages; do not pass message_history as well.")
        task = resume.task
    elif isinstance(input, str):
        task = input
    else:
        raise UserError(
            f"Agent {agent.name!r}.run() needs a str or a RunState as input, got {type(input).__qualname__}."
        )
    handler = (
        InjectedCall(approval_handler, owner="The approval_handler", arity=1) if approval_handler is not None else None
    )
    tree = _Tree(
        usage=copy.copy(resume.usage) if resume else Usage(),
        limits=usage_limits,
        interceptors=tuple(interceptors),
        approval_handler=handler,
        max_depth=max_depth,
        emit=emit,
    )
    exec_ctx = _execution_copy(ctx, agent, task)
    if resume is not None:
        exec_ctx._import_approvals(resume.approvals)
    history = list(message_history) if message_history is not None else []
    trace: list[TraceEvent] = []
    execution = _Execution(agent, exec_ctx, tree, task, history, depth=0, trace=trace)
    try:
        output = await execution.run(resume)
    except _Interrupted as interrupted:
        state = interrupted.state
        state.usage = copy.copy(tree.usage)
        state.__dict__["_live_context"] = exec_ctx  # not a field: to_json() exports its live approvals
        return RunResult(
            output=None,
            messages=execution.messages,
            usage=tree.usage,
            context=exec_ctx,
            trace=trace,
            interruptions=state.interruptions,
            state=state,
            new_message_index=execution.start,
        )
    return RunResult(
        output=output,
        messages=execution.messages,
        usage=tree.usage,
        context=exec_ctx,
        trace=trace,
        new_message_index=execution.start,
    )


class _Execution:
    """One agent executing one task with one context."""

    def __init__(
        self,
        agent: Agent[Any, Any],
        ctx: RunContext,
        tree: _Tree,
        task: str,
        history: list[Message],
        *,
        depth: int,
        trace: list[TraceEvent],
    ) -> None:
        self.agent = agent
        self.ctx = ctx
        self.tree = tree
        self.task = task
        self.messages = history
        self.start = len(history)
        self.depth = depth
        self.trace = trace
        self.retries: dict[str, int] = {}
        self.task_id, self.parent_task_id = _lineage(ctx)
        self.plan = tree.plan_for(agent)
        self.model: Model = agent.model
        self.allowed: frozenset[str] | None = None  # tool names allowed for the whole run (PRE_RUN)
        self.instructions: str | None = None
        self.output: Any = None
        self.pending: list[ToolApprovalItem] = []
        self.children: dict[str, RunState] = {}

    # --- helpers -------------------------------------------------------------------

    def _event(
        self,
        kind: TraceKind,
        started: float,
        *,
        tool_name: str | None = None,
        call_id: str | None = None,
        detail: str | None = None,
        error: BaseException | None = None,
    ) -> TraceEvent:
        # Half the cost of `TraceEvent(...)` (one per tool call and model request): calling
        # a class packs the keywords into a dict before `__init__` runs.
        event = object.__new__(TraceEvent)
        TraceEvent.__init__(
            event,
            kind=kind,
            agent=self.agent.name,
            depth=self.depth,
            tool_name=tool_name,
            call_id=call_id,
            task_id=self.task_id,
            parent_task_id=self.parent_task_id,
            started=started,
            duration=time.perf_counter() - started,
            detail=detail,
            error=error,
        )
        self.trace.append(event)
        return event

    def _intercept_context(self, phase: Phase, **fields: Any) -> InterceptContext:
        return InterceptContext(
            phase=phase,
            agent=self.agent,
            run_context=self.ctx,
            task=self.task,
            messages=self.messages,
            usage=self.tree.usage,
            state=self.tree.state,
            depth=self.depth,
            **fields,
        )

    async def _phase(self, phase: Phase, ic: InterceptContext, ctx: RunContext | None = None) -> InterceptResult | None:
        """Run the phase's handlers in order; apply modifications to `ic`; return a stop or skip."""
        ctx = ctx if ctx is not None else self.ctx
        ic.run_context = ctx  # a retried call's RetryContext copy: handlers see what the tool receives
        for handler in self.plan[phase]:
            try:
                result = await handler(ctx, ic)
            except StopExecution as stop:
                return InterceptResult.stop(stop.response)
            except (AgentRunError, UserError, _Interrupted, _EndRun):
                raise
            except Exception as exc:
                if phase is Phase.ON_ERROR:
                    raise
                return await self._interceptor_failed(phase, exc)
            if result is None:
                continue
            if not isinstance(result, InterceptResult):
                owner = getattr(handler, "owner", None) or getattr(getattr(handler, "call", None), "owner", "")
                raise UserError(
                    f"{owner or 'An interceptor'} returned {result!r} in {phase.name}; return None or an "
                    "InterceptResult (e.g. InterceptResult.continue_())."
                )
            if result.action == "continue":
                continue
            if result.action in ("stop", "skip"):
                return result
            self._apply(phase, ic, result)
        return None

    async def _interceptor_failed(self, phase: Phase, exc: Exception) -> InterceptResult | None:
        recovery = await self._on_error(exc)
        if recovery is None:
            raise exc
        return recovery

    def _apply(self, phase: Phase, ic: InterceptContext, result: InterceptResult) -> None:
        action, value = result.action, result.value
        allowed = {
            "modify_args": (Phase.PRE_ACT,),
            "modify_messages": (Phase.PRE_RUN, Phase.PRE_THINK),
            "modify_tools": (Phase.PRE_RUN, Phase.PRE_THINK),
            "use_model": (Phase.PRE_RUN, Phase.PRE_THINK),
        }[action]
        if phase not in allowed:
            raise UserError(
                f"InterceptResult.{action}() has no effect in {phase.name}; return it from "
                f"{' or '.join(p.name for p in allowed)}."
            )
        if action == "modify_args":
            ic.tool_args = {**(ic.tool_args or {}), **value}
        elif action == "modify_messages":
            ic.messages = value
        elif action == "modify_tools":
            ic.tools = [t for t in ic.tools or () if t.name in value]
        else:
            ic.model = infer_model(value)

    async def _on_error(self, exc: BaseException, **fields: Any) -> InterceptResult | None:
        """Fire ON_ERROR once per exception; return the handlers' stop or skip, if any."""
        if getattr(exc, _REPORTED, False) or not self.plan[Phase.ON_ERROR]:
            return None
        with contextlib.suppress(AttributeError):  # exceptions with __slots__
            setattr(exc, _REPORTED, True)
        return await self._phase(Phase.ON_ERROR, self._intercept_context(Phase.ON_ERROR, error=exc, **fields))

    async def _emit(self, event: StreamEvent) -> None:
        if self.tree.emit is not None:
            await self.tree.emit(event)

    # --- the execution -------------------------------------------------------------

    async def run(self, resume: RunState | None = None) -> Any:
        """Execute the agent; return its output (raises `_Interrupted` when waiting)."""
        scope = _deadline_scope(self.ctx)
        token = _current.set(self.ctx)
        try:
            with scope:
                if isinstance(scope, anyio.CancelScope):
                    await anyio.lowlevel.checkpoint_if_cancelled()  # a deadline already passed: do no work
                output = await self._run(resume)
            if isinstance(scope, anyio.CancelScope) and scope.cancelled_caught:
                raise DeadlineExceeded(
                    f"Agent {self.agent.name!r} did not finish before its context's deadline "
                    f"({getattr(self.ctx, 'deadline', None)}); allow more time or do less per run."
                )
            return output
        finally:
            _current.reset(token)

    async def _run(self, resume: RunState | None) -> Any:
        try:
            self.instructions = await self.agent.instructions_for(self.ctx)
            if self.plan[Phase.PRE_RUN]:
                ic = self._intercept_context(Phase.PRE_RUN, tools=self._definitions(), model=self.model)
                stop = await self._phase(Phase.PRE_RUN, ic)
                if stop is not None:
                    return await self._finish(stop.value)
                if ic.messages is not self.messages:
                    self.messages = _repair_pairing(ic.messages)
                    self.start = len(self.messages)
                if ic.tools is not None:
                    self.allowed = frozenset(t.name for t in ic.tools)
                self.model = ic.model or self.model
            if resume is None:
                self.messages.append(UserPrompt(content=self.task))
            else:
                self.messages = list(resume.messages)
                self.start = resume.new_message_index
                last = self.messages[-1]
                assert isinstance(last, ModelResponse)
                done = await self._call_tools(last.tool_calls, self.allowed, resume)
                if done:
                    return await self._finish(self.output)
            for _ in range(self.agent.max_turns):
                if await self._turn():
                    return await self._finish(self.output)
            raise MaxTurnsExceeded(
                f"Agent {self.agent.name!r} made {self.agent.max_turns} model requests without a final answer; "
                "raise Agent(max_turns=...) or check why the model keeps calling tools."
            )
        except _EndRun as end:
            self.messages = _repair_pairing(self.messages)  # ended mid-turn: no tool call without its result
            return end.output
        except (_Interrupted, anyio.get_cancelled_exc_class()):
            raise
        except Exception as exc:
            recovery = await self._on_error(exc)
            if recovery is None:
                raise
            self.messages = _repair_pairing(self.messages)
            return await self._finish(recovery.value)

    async def _finish(self, output: Any) -> Any:
        if self.plan[Phase.POST_RUN]:
            ic = self._intercept_context(Phase.POST_RUN, output=output)
            result = await self._phase(Phase.POST_RUN, ic)
            if result is not None and (result.action == "stop" or result.value is not None):
                output = result.value
        return output

    def _definitions(self) -> list[ToolDefinition]:
        definitions = self.agent.tool_definitions()
        if self.allowed is not None:
            definitions = [d for d in definitions if d.name in self.allowed]
        return definitions

    async def _turn(self) -> bool:
        """One model request and its tool calls; return whether the output is final."""
        tree = self.tree
        if tree.limits is not None:
            tree.limits.check_before_request(tree.usage)
        messages = self.messages
        offered = self._definitions()
        model = self.model
        allowed = self.allowed
        if self.plan[Phase.PRE_THINK]:
            ic = self._intercept_context(Phase.PRE_THINK, tools=offered, model=model)
            stop = await self._phase(Phase.PRE_THINK, ic)
            if stop is not None:  # stop or skip: no model request, the value is the answer
                raise _EndRun(await self._finish(stop.value))
            if ic.messages is not messages:
                messages = _repair_pairing(ic.messages)
            if ic.tools is not offered:
                offered = ic.tools or []
                allowed = frozenset(t.name for t in offered)
            model = ic.model or model
        agent = self.agent
        params = ModelRequestParameters(
            agent_name=agent.name,
            instructions=self.instructions,
            tools=offered,
            output_tools=[agent.output_definition] if agent.output_definition else [],
            allow_text_output=agent.output_definition is None,
            parallel_tool_calls=agent.parallel_tool_calls,
        )
        started = time.perf_counter()
        if tree.emit is None:
            response = await model.request(messages, params)
        else:
            response = await self._stream_request(model, messages, params)
        _check_response(model, response)
        tree.usage.requests += 1
        tree.usage.input_tokens += response.usage.input_tokens
        tree.usage.output_tokens += response.usage.output_tokens
        response = self._unique_call_ids(response)
        self.messages.append(response)
        self._event("model_request", started, detail=response.text)
        if self.plan[Phase.POST_THINK]:
            ic = self._intercept_context(Phase.POST_THINK, model_response=response)
            stop = await self._phase(Phase.POST_THINK, ic)
            if stop is not None and (stop.action == "stop" or stop.value is not None):
                raise _EndRun(await self._finish(stop.value))
        if response.tool_calls:
            return await self._call_tools(response.tool_calls, allowed)
        return self._text_output(response)

    def _unique_call_ids(self, response: ModelResponse) -> ModelResponse:
        """Give each call an id no other call of this execution has and no decision is recorded for.

        Approvals and results are keyed by call id: a reused id (twice in one response, from an
        earlier turn, or approved in an earlier run on the same context) could ride on another
        call's approval.
        """
        ids = [c.id for c in response.tool_calls]
        if not ids:
            return response
        seen = {c.id for m in self.messages if isinstance(m, ModelResponse) for c in m.tool_calls}
        records = self.ctx._approval_records()

        def taken(call: ToolCall) -> bool:
            record = records.get(call.name)
            decided = record is not None and any(
                isinstance(decided_ids, list) and call.id in decided_ids
                for decided_ids in (record.approved, record.rejected)
            )
            return call.id is None or call.id in seen or decided

        if len(set(ids)) == len(ids) and not any(taken(c) for c in response.tool_calls):
            return response
        calls = []
        for c in response.tool_calls:
            if taken(c):
                c = ToolCall(c.name, c.arguments, generate_id("call_"))
            seen.add(c.id)
            calls.append(c)
        return replace(response, tool_calls=calls)  # the model's object may be shared (ScriptedModel)

    async def _stream_request(
        self, model: Model, messages: list[Message], params: ModelRequestParameters
    ) -> ModelResponse:
        response: ModelResponse | None = None
        stream = model.request_stream(messages, params)
        try:
            async for item in stream:
                if isinstance(item, TextDelta):
                    await self._emit(TextDeltaEvent(agent=self.agent.name, depth=self.depth, text=item.text))
                else:
                    response = item
        finally:  # close the model's stream (and its HTTP response) now, even when cancelled
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
        if response is None:
            raise UnexpectedModelBehavior(f"Model {model.name!r} ended its stream without a response.")
        return response

    def _text_output(self, response: ModelResponse) -> bool:
        if self.agent.output_definition is None and response.text:
            self.output = response.text
            return True
        if self.agent.output_definition is None:
            problem = "Your response was empty. Answer with text or call a tool."
        else:
            problem = f"Answer by calling the {OUTPUT_TOOL_NAME!r} tool; plain text is not accepted."
        self._note_failure(OUTPUT_TOOL_NAME)
        self.messages.append(RetryPrompt(content=problem))
        return False

    def _note_failure(self, name: str) -> int:
        """Count a failed call of tool `name`; raise when its retries are exhausted."""
        tool = self.agent._tools_by_name().get(name)
        limit = self.ctx.max_retries if isinstance(self.ctx, RetryContext) else self.agent.tool_retries
        count = self.retries.get(name, 0) + 1
        if count > limit:
            what = f"Tool {name!r}" if tool is not None or name != OUTPUT_TOOL_NAME else "The final answer"
            raise ToolRetriesExceeded(
                f"{what} failed validation or asked for a retry {count} times in agent {self.agent.name!r}, more "
                f"than the {limit} retries allowed; raise Agent(tool_retries=...) (or RetryContext.max_retries) "
                "or make the tool's schema and errors clearer to the model."
            )
        self.retries[name] = count
        return count

    # --- tool calls ------------------------------------------------------------------

    async def _call_tools(
        self, calls: list[ToolCall], allowed: frozenset[str] | None, resume: RunState | None = None
    ) -> bool:
        results: list[Message | None] = [None] * len(calls)
        failures: list[BaseException] = []
        final = [c for c in calls if c.name == OUTPUT_TOOL_NAME and self.agent.output_definition is not None]
        if final:
            return self._output_call(final[0], calls)

        if len(calls) == 1 or not self.agent.parallel_tool_calls:
            for i, call in enumerate(calls):
                await self._call_one(call, i, allowed, resume, results, failures, None)
                if failures:
                    break
        else:
            async with anyio.create_task_group() as group:
                for i, call in enumerate(calls):
                    group.start_soon(self._call_one, call, i, allowed, resume, results, failures, group)
        if failures:  # a real error wins over an interceptor's request to end the run
            raise next((f for f in failures if not isinstance(f, _EndRun)), failures[0])
        if self.pending or self.children:
            completed = {cast(str, c.id): r for c, r in zip(calls, results, strict=True) if r is not None}
            raise _Interrupted(
                RunState(
                    agent_name=self.agent.name,
                    task=self.task,
                    messages=self.messages,
                    completed=completed,
                    children=self.children,
                    interruptions=self.pending,
                    approvals=self.ctx._export_approvals(),
                    new_message_index=self.start,
                )
            )
        self.messages.extend(r for r in results if r is not None)
        return False

    async def _call_one(
        self,
        call: ToolCall,
        i: int,
        allowed: frozenset[str] | None,
        resume: RunState | None,
        results: list[Message | None],
        failures: list[BaseException],
        group: anyio.abc.TaskGroup | None,
    ) -> None:
        """Put the result of `call` in `results[i]`; on an exception, record it and cancel `group`.

        A method rather than a closure in `_call_tools`: no function object and cells per turn.
        """
        if resume is not None and call.id in resume.completed:
            results[i] = resume.completed[call.id]
            return
        try:
            results[i] = await self._call_tool(
                call, allowed, resume.children.get(cast(str, call.id)) if resume else None
            )
        except Exception as exc:
            failures.append(exc)
            if group is not None:
                group.cancel_scope.cancel()

    def _output_call(self, call: ToolCall, calls: list[ToolCall]) -> bool:
        agent = self.agent
        assert agent.output_adapter is not None
        try:
            data = call.arguments if isinstance(call.arguments, dict) else json.loads(call.arguments)
            value = agent.output_adapter.validate_python(data["response"] if agent.output_wrapped else data)
        except Exception as exc:
            self._note_failure(OUTPUT_TOOL_NAME)
            self.messages.append(
                RetryPrompt(
                    content=_format_validation_error(OUTPUT_TOOL_NAME, exc), tool_name=call.name, tool_call_id=call.id
                )
            )
            for other in calls:
                if other is not call:
                    self.messages.append(
                        ToolReturn(
                            tool_name=other.name,
                            tool_call_id=cast(str, other.id),
                            content="Tool not executed: the final answer was invalid.",
                        )
                    )
            return False
        for other in calls:
            content = "Final answer received." if other is call else "Tool not executed: a final answer was given."
            self.messages.append(ToolReturn(tool_name=other.name, tool_call_id=cast(str, other.id), content=content))
        self.output = value
        return True

    async def _call_tool(
        self, call: ToolCall, allowed: frozenset[str] | None, child_state: RunState | None
    ) -> Message | None:
        """Execute one tool call; return the message for the model (None when pending)."""
        name, call_id = call.name, cast(str, call.id)
        tool = self.agent._tools_by_name().get(name)
        started = time.perf_counter()
        if tool is None:
            self._note_failure(name)
            available = ", ".join(sorted(self.agent._tools_by_name())) or "none"
            self._event("retry", started, tool_name=name, call_id=call_id, detail="unknown tool")
            return RetryPrompt(
                content=f"Unknown tool name: {name!r}. Available tools: {available}.",
                tool_name=name,
                tool_call_id=call_id,
            )
        if allowed is not None and name not in allowed:
            content = f"Error: Tool {name!r} is not available now; use one of the tools offered."
            self._event("tool_error", started, tool_name=name, call_id=call_id, detail=content)
            return ToolReturn(tool_name=name, tool_call_id=call_id, content=content)
        tree = self.tree
        if tree.limits is not None:
            tree.limits.check_before_tool_call(tree.usage)
        try:
            args = tool.schema.validate(call.arguments)
        except UserError:
            raise
        except Exception as exc:  # ValidationError, or text pydantic cannot even read
            self._note_failure(name)
            content = _format_validation_error(name, exc)
            self._event("retry", started, tool_name=name, call_id=call_id, detail=content)
            return RetryPrompt(content=content, tool_name=name, tool_call_id=call_id)
        tree.usage.tool_calls += 1
        ctx = self.ctx
        retry_count = self.retries.get(name, 0)
        if retry_count and _tracks_retries(ctx):
            ctx = copy.copy(ctx)
            object.__setattr__(ctx, "retry_count", retry_count)
            object.__setattr__(ctx, "is_retry", True)
        if tree.emit is not None:
            await self._emit(
                ToolCallEvent(
                    agent=self.agent.name,
                    depth=self.depth,
                    tool_name=name,
                    call_id=call_id,
                    arguments=call.arguments_json(),
                )
            )
        outcome = await self._act(tool, call_id, args, ctx, started, child_state)
        if outcome is None:  # waiting for approval: counted when it runs on resume
            tree.usage.tool_calls -= 1
            return None
        if isinstance(outcome, RetryPrompt):
            return outcome
        if tree.emit is not None:
            await self._emit(
                ToolResultEvent(
                    agent=self.agent.name, depth=self.depth, tool_name=name, call_id=call_id, result=outcome
                )
            )
        return ToolReturn(tool_name=name, tool_call_id=call_id, content=outcome)

    async def _act(
        self,
        tool: Tool[Any, Any],
        call_id: str,
        args: dict[str, Any],
        ctx: RunContext,
        started: float,
        child_state: RunState | None,
    ) -> str | RetryPrompt | None:
        name = tool.name
        if self.plan[Phase.PRE_ACT]:
            ic = self._intercept_context(Phase.PRE_ACT, tool_name=name, tool_call_id=call_id, tool_args=args)
            stop = await self._phase(Phase.PRE_ACT, ic, ctx)
            if stop is not None:
                value = stop.value
                if value is None:
                    value = f"Tool call {name!r} was skipped by an interceptor."
                content = _serialize(value)
                self._event("interceptor", started, tool_name=name, call_id=call_id, detail=content)
                return content
            if ic.tool_args is not args:
                try:
                    args = tool.schema.validate(ic.tool_args or {})
                except ValidationError as exc:
                    problems = "; ".join(
                        f"{'.'.join(map(str, e['loc'])) or '(arguments)'}: {e['msg']}"
                        for e in exc.errors(include_url=False, include_input=False)
                    )
                    raise UserError(
                        f"A PRE_ACT interceptor's InterceptResult.modify_args() gave tool {name!r} invalid arguments "
                        f"({problems}); return arguments that match the tool's signature."
                    ) from exc
        if tool.requires_approval and child_state is None:
            decision = await self._approval(tool, call_id, args, ctx)
            if decision is None:
                return None
            if not decision:
                content = f"Tool call {name!r} was rejected; do not retry it."
                self._event("approval", started, tool_name=name, call_id=call_id, detail=content)
                return content
            self._event("approval", started, tool_name=name, call_id=call_id, detail=APPROVED)
        token = _current.set(ctx) if ctx is not self.ctx else None
        try:
            if tool.agent is not None:
                result: Any = await self._delegate(tool, call_id, args["task"], child_state)
                if result is None:
                    return None
            elif tool.timeout is not None:
                with anyio.move_on_after(tool.timeout) as timer:
                    result = await tool.invoke(args, ctx)
                if timer.cancelled_caught:  # only our timer: a TimeoutError the tool raises keeps its message
                    raise TimeoutError(f"Tool {name!r} timed out after {tool.timeout} seconds")
            else:
                result = await tool.invoke(args, ctx)
            content = _serialize(result)
        except ModelRetry as retry:
            self._note_failure(name)
            self._event("retry", started, tool_name=name, call_id=call_id, detail=retry.message)
            return RetryPrompt(content=retry.message, tool_name=name, tool_call_id=call_id)
        except StopExecution as stopped:
            raise _EndRun(await self._finish(stopped.response)) from None
        except (AgentRunError, UserError, _Interrupted, _EndRun):
            raise
        except Exception as exc:
            recovery = await self._on_error(exc, tool_name=name, tool_call_id=call_id, tool_args=args)
            if recovery is not None:
                if recovery.action == "stop":
                    raise _EndRun(await self._finish(recovery.value)) from None
                content = _serialize(recovery.value if recovery.value is not None else f"Error: {exc}")
            elif self.agent.tool_errors == "raise":
                raise exc  # the tool's own exception; for a timeout, the TimeoutError naming the tool
            else:
                content = f"Error: {exc}"
            self._event("tool_error", started, tool_name=name, call_id=call_id, detail=content, error=exc)
            return content
        finally:
            if token is not None:
                _current.reset(token)
        self.retries.pop(name, None)
        # Recorded before POST_ACT, so a tool that ran has its event even if POST_ACT stops or raises.
        event = None
        if tool.agent is None:
            event = self._event("tool_call", started, tool_name=name, call_id=call_id, detail=content)
        if self.plan[Phase.POST_ACT]:
            ic = self._intercept_context(
                Phase.POST_ACT, tool_name=name, tool_call_id=call_id, tool_args=args, tool_result=content
            )
            stop = await self._phase(Phase.POST_ACT, ic, ctx)
            if stop is not None:
                if stop.action == "stop":
                    raise _EndRun(await self._finish(stop.value))
                if stop.value is not None:
                    content = _serialize(stop.value)
                    if event is not None:
                        event.detail = content
        return content

    async def _approval(self, tool: Tool[Any, Any], call_id: str, args: dict[str, Any], ctx: RunContext) -> bool | None:
        status = ctx.is_tool_approved(tool.name, call_id)
        if status is not None:
            return status
        item = ToolApprovalItem(
            tool_name=tool.name, call_id=call_id, arguments=_serialize(args), agent_name=self.agent.name
        )
        handler = self.tree.approval_handler
        if handler is None:
            self.pending.append(item)
            return None
        decision = bool(await handler(ctx, item))
        if decision:
            ctx.approve_tool(item)
        else:
            ctx.reject_tool(item)
        return decision

    async def _delegate(self, tool: Tool[Any, Any], call_id: str, task: str, child_state: RunState | None) -> Any:
        sub = cast("Agent[Any, Any]", tool.agent)
        started = time.perf_counter()
        if self.depth + 1 > self.tree.max_depth:
            raise DelegationDepthExceeded(
                f"Agent {self.agent.name!r} tried to delegate to {sub.name!r} at depth {self.depth + 1}, beyond the "
                f"run's max_depth={self.tree.max_depth}; check the agents for a delegation cycle or pass a larger "
                "run(max_depth=...)."
            )
        if not getattr(self.ctx, "can_delegate", True):
            depth = getattr(self.ctx, "depth", self.depth)
            limit = getattr(self.ctx, "max_depth", None)
            refused = f"Error: Delegation to {sub.name!r} was refused: "
            detail = f"{refused}the context is at delegation depth {depth} and max_depth is {limit}."
            self._event("delegation_refused", started, tool_name=sub.name, call_id=call_id, detail=detail)
            # The trace shows the values; the model only learns that the limit is reached (no context data).
            return f"{refused}the delegation depth limit is reached. Handle the task directly."
        child = self.ctx.create_child_context()
        if not isinstance(child, RunContext):
            raise UserError(
                f"{type(self.ctx).__qualname__}.create_child_context() returned a {type(child).__qualname__}; "
                "return a RunContext instance (e.g. a copy of self) for the subagent."
            )
        if child is self.ctx:  # an override returning its own object: never modify the parent
            child = copy.copy(child)
        if child.metadata is self.ctx.metadata:  # an override sharing the dict (the spec's example does)
            object.__setattr__(child, "metadata", dict(child.metadata))
        object.__setattr__(child, "agent", sub)
        if not isinstance(child, sub.context_type):
            _raise_context_type(sub, child)
        event = TraceEvent(
            kind="delegation",
            agent=sub.name,
            depth=self.depth + 1,
            tool_name=sub.name,
            call_id=call_id,
            started=started,
        )
        event.task_id, event.parent_task_id = _lineage(child)
        self.trace.append(event)
        await self._emit(
            DelegationStartEvent(
                agent=sub.name,
                parent=self.agent.name,
                depth=self.depth + 1,
                task=task,
                task_id=event.task_id,
                parent_task_id=event.parent_task_id,
            )
        )
        execution = _Execution(sub, child, self.tree, task, [], depth=self.depth + 1, trace=event.children)
        try:
            output = await execution.run(child_state)
        except _Interrupted as interrupted:
            self.children[call_id] = interrupted.state
            self.pending.extend(interrupted.state.interruptions)
            return None
        finally:
            event.duration = time.perf_counter() - started
        content = _serialize(output)
        await self._emit(
            DelegationEndEvent(
                agent=sub.name,
                parent=self.agent.name,
                depth=self.depth + 1,
                output=content,
                task_id=event.task_id,
                parent_task_id=event.parent_task_id,
            )
        )
        event.detail = content
        return content
