"""Tool calls, start to end: validate, gate, PRE_ACT, approve, execute (or delegate), retry,
POST_ACT. Each call comes to one typed outcome (`outcomes.CallOutcome`): the `ToolReturn` or
`RetryPrompt` the model receives, `Pending`, or `Ended`.

A call is counted in the usage (and checked against `tool_calls_limit`) when it executes,
never before: a refused, rejected, skipped or pending call is not a tool call made.

This is the per-call hot path: it avoids coroutine frames, allocations and lookups it does
not need (see docs/performance.md).
"""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Coroutine
from time import perf_counter
from types import CoroutineType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
from pydantic import ValidationError

from ..context import RunContext, Running, ToolApprovalItem, running
from ..events import ToolCallEvent, ToolResultEvent, TraceEvent
from ..exceptions import AgentRunError, ModelRetry, RunStateError, ToolRetriesExceeded, UserError
from ..interceptors import InterceptContext, Phase, StopExecution
from ..messages import RetryPrompt, ToolCall, ToolReturn
from ..result import RunState
from ..tools import AgentTool, AnyTool, BaseTool
from . import approvals, context_rules, delegation, history, output
from .hooks import call_with_timeout
from .outcomes import NEXT_TURN, CallOutcome, Ended, Interrupted, Pending, TurnOutcome
from .phases import PHASE_OUTCOMES, End, PhaseOutcome, UseValue, dispatch
from .results import error_text, to_text, validation_problem
from .spec import OUTPUT_TOOL_NAME

if TYPE_CHECKING:
    from .execution import Execution

__all__ = ["count_failure", "new_state_id", "run_call", "run_calls"]

# `isinstance` tuples and enum members as module constants: `A | B` builds a union object and
# `Phase.X` is a class attribute lookup (~65 ns) on every step.
_WAITING = (Pending, Ended)
_MESSAGES = (ToolReturn, RetryPrompt)
_PREPARED = (dict, ToolReturn, RetryPrompt, Pending, Ended)
_PRE_ACT = Phase.PRE_ACT
_POST_ACT = Phase.POST_ACT

_CANCELLED = "Cancelled before it finished."


def count_failure(ex: Execution, name: str) -> None:
    """Count a failed call of tool `name` (or of the final answer) in `ex`.

    Raises:
        ToolRetriesExceeded: When the count exceeds the retries allowed (the context's
            `RetryContext.max_retries`, else `Agent(tool_retries=...)`).
    """
    limit = context_rules.retry_limit(ex.ctx, ex.agent.tool_retries)
    count = ex.retries.get(name, 0) + 1
    if count > limit:
        what = "The final answer" if name == OUTPUT_TOOL_NAME and name not in ex.tools else f"Tool {name!r}"
        raise ToolRetriesExceeded(
            f"{what} failed validation or asked for a retry {count} times in agent {ex.agent.name!r}, more than the "
            f"{limit} retries allowed; raise Agent(tool_retries=...) (or RetryContext.max_retries) or make the "
            "tool's schema and errors clearer to the model."
        )
    ex.retries[name] = count


def new_state_id() -> str:
    """Return a fresh, unguessable state id."""
    return secrets.token_hex(16)


def _tool_return(name: str, call_id: str, content: str) -> ToolReturn:
    # `object.__new__` + `__init__` skips the keyword dict a class call builds (one per call).
    message = object.__new__(ToolReturn)
    ToolReturn.__init__(message, tool_name=name, tool_call_id=call_id, content=content)
    return message


def _retry(name: str | None, call_id: str | None, content: str) -> RetryPrompt:
    return RetryPrompt(content=content, tool_name=name, tool_call_id=call_id)


# --- one response's calls ------------------------------------------------------------


async def run_calls(
    ex: Execution, calls: list[ToolCall], gate: frozenset[str] | None, resume: RunState | None
) -> TurnOutcome:
    """Run the calls of one response (concurrently unless `parallel_tool_calls=False`; one
    after another in a run with `Steps`, whose checkpoints must come in a deterministic order).

    With sequential calls, the calls after one that waits for a decision (or ends the
    execution) do not run. On resume, calls with a result in the state keep it, pending
    calls go straight to their approval with the arguments the approver saw, and
    interrupted subagents resume.

    Raises:
        Exception: The first failure among the calls, as itself (never an exception group).
    """
    if ex.spec.output is not None and any(c.name == OUTPUT_TOOL_NAME for c in calls):
        return await output.final_call(ex, calls)
    outcomes: list[CallOutcome | None] = [None] * len(calls)
    sequential = len(calls) == 1 or not ex.agent.parallel_tool_calls
    if not sequential and ex.tree.steps is None:  # a run with Steps checkpoints its calls in order
        await _run_parallel(ex, calls, gate, resume, outcomes)
    else:
        call_one = _call if ex.tree.observer is None else run_call
        for i, call in enumerate(calls):
            if resume is None:
                outcome = outcomes[i] = await call_one(ex, call, gate, None, None)
            else:
                outcome = outcomes[i] = await _resumed_call(ex, call, gate, resume)
            if sequential and isinstance(outcome, _WAITING):
                break  # later calls wait for the decision (or the end)
    return await _conclude(ex, calls, outcomes)


async def _run_parallel(
    ex: Execution,
    calls: list[ToolCall],
    gate: frozenset[str] | None,
    resume: RunState | None,
    outcomes: list[CallOutcome | None],
) -> None:
    """Run `calls` concurrently, each outcome into `outcomes`.

    Raises:
        Exception: The first failure, as itself (never an exception group); it cancels the others.
    """
    failures: list[Exception] = []
    call_one = _call if ex.tree.observer is None else run_call

    async def one(i: int, call: ToolCall, group: anyio.abc.TaskGroup) -> None:
        try:
            if resume is None:
                outcomes[i] = await call_one(ex, call, gate, None, None)
            else:
                outcomes[i] = await _resumed_call(ex, call, gate, resume)
        except Exception as exc:
            failures.append(exc)
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        for i, call in enumerate(calls):
            group.start_soon(one, i, call, group)
    if failures:
        raise failures[0]


async def _resumed_call(ex: Execution, call: ToolCall, gate: frozenset[str] | None, resume: RunState) -> CallOutcome:
    call_id = call.id or ""  # ids are unique and non-empty before calls run (history.unique_call_ids)
    done = resume.completed.get(call_id)
    if done is not None:
        return done
    waiting = next((item for item in resume.pending if item.call_id == call_id), None)
    return await run_call(ex, call, gate, waiting, resume.children.get(call_id))


async def _conclude(ex: Execution, calls: list[ToolCall], outcomes: list[CallOutcome | None]) -> TurnOutcome:
    done: list[ToolReturn | RetryPrompt] = []
    pending: dict[str, Pending] = {}
    ended: Ended | None = None
    for call, outcome in zip(calls, outcomes, strict=True):
        if isinstance(outcome, _MESSAGES):
            done.append(outcome)
        elif isinstance(outcome, Pending):
            pending[call.id or ""] = outcome
        elif isinstance(outcome, Ended) and ended is None:
            ended = outcome
    if ended is not None:
        ex.messages.extend(done)
        ex.messages = history.repair_pairing(ex.messages)  # calls left without a result are dropped
        return await ex.finish(ended.output)
    if not pending:
        ex.messages.extend(done)
        return NEXT_TURN
    state = RunState(
        agent_name=ex.agent.name,
        task=ex.task,
        messages=list(ex.messages),
        run_id=ex.tree.run_id,
        state_id=new_state_id(),
        completed={m.tool_call_id or "": m for m in done},
        pending=[p.item for p in pending.values() if p.item is not None],
        children={call_id: p.child for call_id, p in pending.items() if p.child is not None},
        new_message_index=ex.start,
    )
    return Interrupted(state)


# --- one call ------------------------------------------------------------------------


async def run_call(
    ex: Execution,
    call: ToolCall,
    gate: frozenset[str] | None,
    waiting: ToolApprovalItem | None = None,
    child: RunState | None = None,
) -> CallOutcome:
    """Run one tool call from the model's arguments to its outcome.

    Args:
        ex: The execution whose model made the call.
        call: The call (its id is unique in the execution).
        gate: The tool names calls are allowed to, when interceptors narrowed the offer.
        waiting: On resume, the call's pending `ToolApprovalItem` (its arguments are the ones
            the approver saw; validation and PRE_ACT already ran).
        child: On resume, the state of the subagent this call delegated to.
    """
    observer = ex.tree.observer
    if observer is None:
        return await _call(ex, call, gate, waiting, child)
    with observer.call_span(ex, call, ex.tools.get(call.name)) as span:
        outcome = await _call(ex, call, gate, waiting, child)
        span.outcome(outcome)
        return outcome


async def _call(
    ex: Execution,
    call: ToolCall,
    gate: frozenset[str] | None,
    waiting: ToolApprovalItem | None,
    child: RunState | None,
) -> CallOutcome:
    name = call.name
    call_id = call.id or ""  # ids are unique and non-empty before calls run (history.unique_call_ids)
    started = perf_counter()
    tool = ex.tools.get(name)
    ctx = ex.ctx
    if ex.retries:
        failures = ex.retries.get(name)
        if failures:
            ctx = context_rules.retry_view(ctx, failures)
    # Everything before execution, without a coroutine unless an interceptor, an approval or a
    # resumed call needs one (and without its locals in this frame while the tool runs).
    if waiting is None and child is None:
        prepared = _prepare(ex, call, tool, gate, ctx, started)
    else:
        prepared = _resumed(ex, call, tool, ctx, waiting, child, started)
    if not isinstance(prepared, _PREPARED):
        prepared = await prepared
    if not isinstance(prepared, dict):
        return prepared
    args = prepared
    assert tool is not None  # `_prepare` refused an unknown tool
    tree = ex.tree
    if child is None:  # a resumed delegation was counted (and announced) when it started
        if tree.limits is None:
            tree.usage.tool_calls += 1
        else:
            tree.reserve_tool_call()
        if tree.emit is not None:
            await ex.emit(
                ToolCallEvent(
                    agent=ex.agent.name,
                    depth=ex.depth,
                    tool_name=name,
                    call_id=call_id,
                    arguments=call.arguments_json(),
                )
            )
    token = running.set(Running(ctx, ex)) if ctx is not ex.ctx else None
    try:
        event: TraceEvent | None = None
        if isinstance(tool, AgentTool):
            delegated = await delegation.delegate(ex, tool, call_id, args["task"], child)
            if not isinstance(delegated, str):
                return delegated
            content = delegated  # a delegation has its own trace event, with the subagent's events in it
        else:
            if tool.timeout is None and tree.steps is None:
                value = await tool.start(args, ctx)
            else:
                value = await _timed(ex, tool, call_id, args, ctx)
            content = value if type(value) is str and value.isascii() else _value_text(value, name)
            event = ex.record("tool_call", started, tool_name=name, call_id=call_id, detail=content)
    except ModelRetry as retry:
        ex.note_failure(name)
        ex.record("retry", started, tool_name=name, call_id=call_id, detail=retry.message)
        return _retry(name, call_id, retry.message)
    except StopExecution as stopped:
        return Ended(stopped.response)
    except anyio.get_cancelled_exc_class():
        # Cancelled (a sibling call failed, the deadline passed, the caller cancelled): the trace
        # still shows that the call started and did not finish.
        ex.record("tool_error", started, tool_name=name, call_id=call_id, detail=_CANCELLED)
        raise
    except (AgentRunError, UserError):
        raise
    except Exception as exc:
        return await _failed(ex, exc, name, call_id, args, ctx, started)
    finally:
        if token is not None:
            running.reset(token)
    if ex.retries:
        ex.retries.pop(name, None)
    if ex.plan[_POST_ACT]:
        ic = ex.intercept_context(
            _POST_ACT, ctx, tool_name=name, tool_call_id=call_id, tool_args=args, tool_result=content
        )
        outcome = dispatch(_POST_ACT, ex.plan[_POST_ACT], ic, ctx, ex.interceptor_failed)
        if not isinstance(outcome, PHASE_OUTCOMES):
            outcome = await outcome
        if isinstance(outcome, End):
            return Ended(outcome.output)
        if isinstance(outcome, UseValue):
            content = to_text(outcome.value)
            if event is not None:
                event.detail = content
    if tree.emit is not None:
        await ex.emit(
            ToolResultEvent(agent=ex.agent.name, depth=ex.depth, tool_name=name, call_id=call_id, result=content)
        )
    message = object.__new__(ToolReturn)  # as `_tool_return`, inline on the per-call path
    ToolReturn.__init__(message, tool_name=name, tool_call_id=call_id, content=content)
    return message


Prepared = dict[str, Any] | CallOutcome
"""What a call comes to before it executes: its arguments, or its outcome (refused, retried...)."""


def _prepare(
    ex: Execution,
    call: ToolCall,
    tool: AnyTool | None,
    gate: frozenset[str] | None,
    ctx: RunContext,
    started: float,
) -> Prepared | Coroutine[Any, Any, Prepared]:
    """Find the tool, validate the arguments, run PRE_ACT and the approval: the arguments to run
    with, the call's outcome, or a coroutine to await for either (async interceptors, approvals)."""
    name = call.name
    call_id = call.id or ""
    if tool is None:
        ex.note_failure(name)
        ex.record("retry", started, tool_name=name, call_id=call_id, detail="unknown tool")
        available = ", ".join(sorted(ex.tools)) or "none"
        return _retry(name, call_id, f"Unknown tool name: {name!r}. Available tools: {available}.")
    if gate is not None and name not in gate:
        content = f"Error: Tool {name!r} is not available now; use one of the tools offered."
        ex.record("tool_error", started, tool_name=name, call_id=call_id, detail=content)
        return _tool_return(name, call_id, content)
    try:
        args = tool.validate_arguments(call.arguments)
    except UserError:
        raise
    except Exception as exc:  # ValidationError, or text pydantic cannot even read
        ex.note_failure(name)
        content = validation_problem(name, exc)
        ex.record("retry", started, tool_name=name, call_id=call_id, detail=content)
        return _retry(name, call_id, content)
    pre_act = ex.plan[_PRE_ACT]
    if pre_act:
        ic = ex.intercept_context(_PRE_ACT, ctx, tool_name=name, tool_call_id=call_id, tool_args=args)
        decided = dispatch(_PRE_ACT, pre_act, ic, ctx, ex.interceptor_failed)
        if not isinstance(decided, PHASE_OUTCOMES):
            return _pre_act_then_approve(ex, tool, call_id, args, ic, decided, ctx, started)
        prepared = _after_pre_act(ex, tool, call_id, args, ic, decided, started)
        if not isinstance(prepared, dict):
            return prepared
        args = prepared
    if tool.requires_approval:
        return _approved(ex, tool, call_id, args, ctx, None, started)
    return args


async def _pre_act_then_approve(
    ex: Execution,
    tool: AnyTool,
    call_id: str,
    args: dict[str, Any],
    ic: InterceptContext,
    decided: Coroutine[Any, Any, PhaseOutcome],
    ctx: RunContext,
    started: float,
) -> Prepared:
    prepared = _after_pre_act(ex, tool, call_id, args, ic, await decided, started)
    if not isinstance(prepared, dict) or not tool.requires_approval:
        return prepared
    return await _approved(ex, tool, call_id, prepared, ctx, None, started)


def _resumed(
    ex: Execution,
    call: ToolCall,
    tool: AnyTool | None,
    ctx: RunContext,
    waiting: ToolApprovalItem | None,
    child: RunState | None,
    started: float,
) -> Prepared | Coroutine[Any, Any, Prepared]:
    """A call resumed from a state: a pending one goes to its approval with the arguments the
    approver saw; an interrupted delegation resumes (it was approved and counted before)."""
    if tool is None:  # `resume.check_state` checked the tool names
        raise RunStateError(f"The RunState names tool {call.name!r}, which the agent does not have.")
    args = _resumed_arguments(tool, waiting.arguments if waiting is not None else call.arguments)
    if tool.requires_approval and child is None:
        return _approved(ex, tool, call.id or "", args, ctx, waiting, started)
    return args


def _resumed_arguments(tool: AnyTool, arguments: str | dict[str, Any]) -> dict[str, Any]:
    try:
        return tool.validate_arguments(arguments)
    except ValueError as exc:
        problem = exc
    if isinstance(arguments, str):  # lone surrogates, JSON-escaped by `approvals.arguments_text`, which
        with contextlib.suppress(ValueError):  # pydantic's JSON parser refuses and Python's reads
            return tool.validate_arguments(json.loads(arguments))
    raise RunStateError(
        f"The RunState's pending call of tool {tool.name!r} has arguments the tool does not accept ({problem}); "
        "the state does not belong to this agent's tools."
    ) from None


def _after_pre_act(
    ex: Execution,
    tool: AnyTool,
    call_id: str,
    args: dict[str, Any],
    ic: InterceptContext,
    decided: PhaseOutcome,
    started: float,
) -> dict[str, Any] | CallOutcome:
    """Apply PRE_ACT's outcome: the (possibly modified, re-validated) arguments, or the call's outcome.

    Raises:
        UserError: If `modify_args()` gave arguments the tool does not accept.
    """
    name = tool.name
    if isinstance(decided, End):
        return Ended(decided.output)
    if isinstance(decided, UseValue):
        value = decided.value
        content = to_text(value) if value is not None else f"Tool call {name!r} was skipped by an interceptor."
        ex.record("interceptor", started, tool_name=name, call_id=call_id, detail=content)
        return _tool_return(name, call_id, content)
    if ic.tool_args is args:
        return args
    try:
        return tool.validate_arguments(ic.tool_args or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(arguments)'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise UserError(
            f"A PRE_ACT interceptor's InterceptResult.modify_args() gave tool {name!r} invalid arguments "
            f"({problems}); return arguments that match the tool's signature."
        ) from exc


async def _approved(
    ex: Execution,
    tool: AnyTool,
    call_id: str,
    args: dict[str, Any],
    ctx: RunContext,
    waiting: ToolApprovalItem | None,
    started: float,
) -> Prepared:
    """Decide a call that needs approval: its arguments when it may run, else its outcome."""
    item = approvals.pending_item(
        run_id=ex.tree.run_id,
        path=ex.path,
        agent_name=ex.agent.name,
        tool_name=tool.name,
        call_id=call_id,
        arguments=approvals.arguments_text(args),
    )
    if waiting is not None and waiting.approval_id != item.approval_id:
        raise RunStateError(
            f"The RunState's pending call {call_id!r} of tool {tool.name!r} does not match its approval item; "
            "the state was altered. Start a new run."
        )
    steps = ex.tree.steps
    handler = ex.tree.approval_handler
    if steps is None:
        decision = await approvals.ask(item, ctx, handler)
    else:
        decision = await steps.approval(ex, item, ctx, handler)
    ex.record("approval", started, tool_name=tool.name, call_id=call_id, decision=decision)
    if decision == "approved":
        return args
    if decision == "pending":
        return Pending(item=item)
    return _tool_return(tool.name, call_id, f"Tool call {tool.name!r} was rejected; do not retry it.")


async def _timed(ex: Execution, tool: BaseTool, call_id: str, args: dict[str, Any], ctx: RunContext) -> Any:
    """Execute a call under the tool's timeout, through the run's `Steps` when it has them
    (which apply the timeout themselves, so that a durable step records the timeout).

    Raises:
        TimeoutError: Naming the tool, when its timeout passes (a `TimeoutError` the tool
            raises itself keeps its own message).
    """
    steps = ex.tree.steps
    if steps is not None:
        return await steps.call_tool(ex, tool, call_id, args, ctx)  # the steps apply the timeout
    return await call_with_timeout(tool, args, ctx)


def _value_text(value: Any, tool_name: str) -> str:
    """The text of a tool's value for the model (see `results.to_text`).

    Raises:
        UserError: If the value is a coroutine nobody awaited (a sync tool that called an async API).
    """
    if isinstance(value, CoroutineType):
        value.close()
        raise UserError(
            f"Tool {tool_name!r} returned a coroutine that nobody awaited; make the tool `async def` and await it, "
            "or call the synchronous API (e.g. agent.run_sync() instead of agent.run())."
        )
    return to_text(value)


async def _failed(
    ex: Execution,
    exc: Exception,
    name: str,
    call_id: str,
    args: dict[str, Any],
    ctx: RunContext,
    started: float,
) -> CallOutcome:
    """A call's tool raised `exc`: fire ON_ERROR, then give the model an error result.

    Raises:
        Exception: `exc` itself with `Agent(tool_errors="raise")` (unless ON_ERROR recovered).
        UserError: For a sync tool that called `agent.run(...)` without awaiting it.
    """
    _raise_for_unawaited_run(exc, name)
    recovery = await ex.on_error(exc, ctx, name, call_id, args)
    if isinstance(recovery, End):
        return Ended(recovery.output)
    if isinstance(recovery, UseValue):
        content = to_text(recovery.value) if recovery.value is not None else error_text(exc)
    elif ex.agent.tool_errors == "raise":
        raise exc  # the tool's own exception; for a timeout, the TimeoutError naming the tool
    else:
        content = error_text(exc)
    ex.record("tool_error", started, tool_name=name, call_id=call_id, detail=content, error=exc)
    return _tool_return(name, call_id, content)


def _raise_for_unawaited_run(exc: Exception, tool_name: str) -> None:
    """Turn "'coroutine' object has no attribute 'output'" into an error naming `run_sync`."""
    obj = getattr(exc, "obj", None) if isinstance(exc, AttributeError) else None
    if (
        isinstance(obj, CoroutineType)
        and obj.cr_code.co_name == "_run"
        and obj.cr_frame is not None
        and obj.cr_frame.f_globals.get("__name__") == "cogent._run"
    ):
        obj.close()
        raise UserError(
            f"Tool {tool_name!r} called agent.run(...) without awaiting it. In a sync tool use "
            "agent.run_sync(...); in an async tool, `await agent.run(...)`."
        ) from None
