"""Tool calls, start to end: validate, gate, PRE_ACT, approve, execute (or delegate), retry,
POST_ACT; each call comes to one typed outcome (`Returned | Retry | Pending | Ended`).

A call is counted in the usage (and checked against `tool_calls_limit`) when it executes,
never before: a refused, rejected or pending call is not a tool call made.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import secrets
import time
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.abc
from pydantic import ValidationError

from ..context import RunContext, ToolApprovalItem, _current
from ..events import ToolCallEvent, ToolResultEvent
from ..exceptions import AgentRunError, ModelRetry, RunStateError, ToolRetriesExceeded, UserError
from ..interceptors import Phase, StopExecution
from ..messages import Message, RetryPrompt, ToolCall, ToolReturn
from ..result import RunState
from ..tools import AgentTool, AnyTool
from . import approvals, context_rules, delegation, history, output
from .outcomes import NEXT_TURN, CallOutcome, Ended, Interrupted, Pending, Retry, Returned, TurnOutcome
from .phases import End, UseValue
from .results import error_text, to_text, validation_problem
from .spec import OUTPUT_TOOL_NAME

if TYPE_CHECKING:
    from .execution import Execution

__all__ = ["count_failure", "new_state_id", "run_call", "run_calls"]


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


# --- one response's calls ------------------------------------------------------------


async def run_calls(
    ex: Execution, calls: list[ToolCall], gate: frozenset[str] | None, resume: RunState | None
) -> TurnOutcome:
    """Run the calls of one response (concurrently unless `parallel_tool_calls=False`).

    On resume, calls with a result in the state keep it, pending calls go straight to their
    approval with the arguments the approver saw, and interrupted subagents resume.
    """
    if ex.spec.output is not None and any(c.name == OUTPUT_TOOL_NAME for c in calls):
        return await output.final_call(ex, calls)
    results: list[Message | None] = [None] * len(calls)
    outcomes: list[CallOutcome | None] = [None] * len(calls)
    completed = resume.completed if resume is not None else {}
    waiting = {item.call_id: item for item in resume.pending} if resume is not None else {}
    children = resume.children if resume is not None else {}

    async def one(i: int, call: ToolCall) -> None:
        call_id = cast(str, call.id)
        done = completed.get(call_id)
        if done is not None:
            results[i] = done
            return
        outcomes[i] = await run_call(ex, call, gate, waiting.get(call_id), children.get(call_id))

    if len(calls) == 1 or not ex.agent.parallel_tool_calls:
        for i, call in enumerate(calls):
            await one(i, call)
            if isinstance(outcomes[i], Pending | Ended):
                break  # later calls wait for the decision (or the end)
    else:
        failures: list[Exception] = []

        async def guarded(i: int, call: ToolCall, group: anyio.abc.TaskGroup) -> None:
            try:
                await one(i, call)
            except Exception as exc:  # the first failure ends the turn; raised as itself, not in a group
                failures.append(exc)
                group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            for i, call in enumerate(calls):
                group.start_soon(guarded, i, call, group)
        if failures:
            raise failures[0]
    return await _conclude(ex, calls, results, outcomes)


async def _conclude(
    ex: Execution, calls: list[ToolCall], results: list[Message | None], outcomes: list[CallOutcome | None]
) -> TurnOutcome:
    pending: list[Pending] = []
    ended: Ended | None = None
    for i, (call, outcome) in enumerate(zip(calls, outcomes, strict=True)):
        call_id = cast(str, call.id)
        if isinstance(outcome, Returned):
            results[i] = ToolReturn(tool_name=call.name, tool_call_id=call_id, content=outcome.content)
        elif isinstance(outcome, Retry):
            results[i] = RetryPrompt(content=outcome.content, tool_name=call.name, tool_call_id=call_id)
        elif isinstance(outcome, Pending):
            pending.append(outcome)
        elif isinstance(outcome, Ended) and ended is None:
            ended = outcome
    if ended is not None:
        ex.messages.extend(r for r in results if r is not None)
        ex.messages = history.repair_pairing(ex.messages)  # calls left without a result are dropped
        return await ex.finish(ended.output)
    if pending:
        done = {cast(str, c.id): r for c, r in zip(calls, results, strict=True) if r is not None}
        state = RunState(
            agent_name=ex.agent.name,
            task=ex.task,
            messages=list(ex.messages),
            run_id=ex.tree.run_id,
            state_id=new_state_id(),
            completed=cast("dict[str, ToolReturn | RetryPrompt]", done),
            pending=[p.item for p in pending if p.item is not None],
            children={
                cast(str, c.id): o.child
                for c, o in zip(calls, outcomes, strict=True)
                if isinstance(o, Pending) and o.child is not None
            },
            new_message_index=ex.start,
        )
        return Interrupted(state)
    ex.messages.extend(r for r in results if r is not None)
    return NEXT_TURN


def new_state_id() -> str:
    """Return a fresh, unguessable state id."""
    return secrets.token_hex(16)


# --- one call ------------------------------------------------------------------------


async def run_call(
    ex: Execution,
    call: ToolCall,
    gate: frozenset[str] | None,
    waiting: ToolApprovalItem | None = None,
    child: RunState | None = None,
) -> CallOutcome:
    """Run one tool call from the model's arguments to its result.

    Args:
        ex: The execution whose model made the call.
        call: The call (its id is unique in the execution).
        gate: The tool names calls are allowed to, when interceptors narrowed the offer.
        waiting: On resume, the call's pending `ToolApprovalItem` (its arguments are the ones
            the approver saw; validation and PRE_ACT already ran).
        child: On resume, the state of the subagent this call delegated to.
    """
    name, call_id = call.name, cast(str, call.id)
    started = time.perf_counter()
    tool = ex.tools.get(name)
    if tool is None:
        ex.note_failure(name)
        ex.record("retry", started, tool_name=name, call_id=call_id, detail="unknown tool")
        available = ", ".join(sorted(ex.tools)) or "none"
        return Retry(f"Unknown tool name: {name!r}. Available tools: {available}.")
    if gate is not None and name not in gate:
        content = f"Error: Tool {name!r} is not available now; use one of the tools offered."
        ex.record("tool_error", started, tool_name=name, call_id=call_id, detail=content)
        return Returned(content)
    failures = ex.retries.get(name, 0)
    ctx = context_rules.retry_view(ex.ctx, failures) if failures else ex.ctx
    if waiting is not None or child is not None:
        args = _resumed_arguments(tool, waiting.arguments if waiting is not None else call.arguments)
    else:
        prepared = await _prepare(ex, tool, call, ctx, started)
        if not isinstance(prepared, dict):
            return prepared
        args = prepared
    if tool.requires_approval and child is None:
        refusal = await _approve(ex, tool, call_id, args, ctx, waiting, started)
        if refusal is not None:
            return refusal
    if child is None:  # a resumed delegation was counted (and announced) when it started
        ex.tree.reserve_tool_call()
    if ex.tree.emit is not None and child is None:
        await ex.emit(
            ToolCallEvent(
                agent=ex.agent.name, depth=ex.depth, tool_name=name, call_id=call_id, arguments=call.arguments_json()
            )
        )
    executed = await _execute(ex, tool, call_id, args, ctx, started, child)
    if not isinstance(executed, str):
        return executed
    content = executed
    # A delegation has its own trace event (with the subagent's events in it).
    event = (
        None
        if isinstance(tool, AgentTool)
        else ex.record("tool_call", started, tool_name=name, call_id=call_id, detail=content)
    )
    ex.retries.pop(name, None)
    if ex.plan[Phase.POST_ACT]:
        ic = ex.intercept_context(
            Phase.POST_ACT, ctx, tool_name=name, tool_call_id=call_id, tool_args=args, tool_result=content
        )
        outcome = await ex.phase(Phase.POST_ACT, ic)
        if isinstance(outcome, End):
            return Ended(outcome.output)
        if isinstance(outcome, UseValue):
            content = to_text(outcome.value)
            if event is not None:
                event.detail = content
    if ex.tree.emit is not None:
        await ex.emit(
            ToolResultEvent(agent=ex.agent.name, depth=ex.depth, tool_name=name, call_id=call_id, result=content)
        )
    return Returned(content)


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


async def _prepare(
    ex: Execution, tool: AnyTool, call: ToolCall, ctx: RunContext, started: float
) -> dict[str, Any] | CallOutcome:
    """Validate the arguments and run PRE_ACT; return the arguments, or the call's outcome."""
    name, call_id = tool.name, cast(str, call.id)
    try:
        args = tool.validate_arguments(call.arguments)
    except UserError:
        raise
    except Exception as exc:  # ValidationError, or text pydantic cannot even read
        ex.note_failure(name)
        content = validation_problem(name, exc)
        ex.record("retry", started, tool_name=name, call_id=call_id, detail=content)
        return Retry(content)
    if not ex.plan[Phase.PRE_ACT]:
        return args
    ic = ex.intercept_context(Phase.PRE_ACT, ctx, tool_name=name, tool_call_id=call_id, tool_args=args)
    outcome = await ex.phase(Phase.PRE_ACT, ic)
    if isinstance(outcome, End):
        return Ended(outcome.output)
    if isinstance(outcome, UseValue):
        value = outcome.value
        content = to_text(value) if value is not None else f"Tool call {name!r} was skipped by an interceptor."
        ex.record("interceptor", started, tool_name=name, call_id=call_id, detail=content)
        return Returned(content)
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


async def _approve(
    ex: Execution,
    tool: AnyTool,
    call_id: str,
    args: dict[str, Any],
    ctx: RunContext,
    waiting: ToolApprovalItem | None,
    started: float,
) -> CallOutcome | None:
    """Decide a call that needs approval; return `None` when it may run, else its outcome."""
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
    decision = await approvals.ask(item, ctx, ex.tree.approval_handler)
    ex.record("approval", started, tool_name=tool.name, call_id=call_id, decision=decision)
    if decision == "approved":
        return None
    if decision == "pending":
        return Pending(item=item)
    return Returned(f"Tool call {tool.name!r} was rejected; do not retry it.")


async def _execute(
    ex: Execution,
    tool: AnyTool,
    call_id: str,
    args: dict[str, Any],
    ctx: RunContext,
    started: float,
    child: RunState | None,
) -> str | CallOutcome:
    """Execute a call (under its timeout) or delegate it; return its result text, or its outcome.

    A failure becomes an error result for the model (after ON_ERROR), or propagates with
    `Agent(tool_errors="raise")`; framework errors (`AgentRunError`, `UserError`) propagate.
    """
    name = tool.name
    token = _current.set(ctx) if ctx is not ex.ctx else None
    try:
        if isinstance(tool, AgentTool):
            return await delegation.delegate(ex, tool, call_id, args["task"], child)
        if tool.timeout is not None:
            with anyio.move_on_after(tool.timeout) as timer:
                value = await tool.execute(args, ctx)
            if timer.cancelled_caught:  # only our timer: a TimeoutError the tool raises keeps its message
                raise TimeoutError(f"Tool {name!r} timed out after {tool.timeout} seconds")
        else:
            value = await tool.execute(args, ctx)
        if inspect.iscoroutine(value):
            value.close()
            raise UserError(
                f"Tool {name!r} returned a coroutine that nobody awaited; make the tool `async def` and await it, "
                "or call the synchronous API (e.g. agent.run_sync() instead of agent.run())."
            )
        return to_text(value)
    except ModelRetry as retry:
        ex.note_failure(name)
        ex.record("retry", started, tool_name=name, call_id=call_id, detail=retry.message)
        return Retry(retry.message)
    except StopExecution as stopped:
        return Ended(stopped.response)
    except anyio.get_cancelled_exc_class():
        # Cancelled (a sibling call failed, the deadline passed, the caller cancelled): the trace still
        # shows that the call started and did not finish.
        ex.record("tool_error", started, tool_name=name, call_id=call_id, detail="Cancelled before it finished.")
        raise
    except (AgentRunError, UserError):
        raise
    except Exception as exc:
        _raise_for_unawaited_run(exc, name)
        recovery = await ex.on_error(exc, ctx, name, call_id, args)
        if isinstance(recovery, End):
            return Ended(recovery.output)
        if isinstance(recovery, UseValue):
            content = to_text(recovery.value) if recovery.value is not None else error_text(exc)
        elif ex.agent.tool_errors == "raise":
            raise  # the tool's own exception; for a timeout, the TimeoutError naming the tool
        else:
            content = error_text(exc)
        ex.record("tool_error", started, tool_name=name, call_id=call_id, detail=content, error=exc)
        return Returned(content)
    finally:
        if token is not None:
            _current.reset(token)


def _raise_for_unawaited_run(exc: Exception, tool_name: str) -> None:
    """Turn "'coroutine' object has no attribute 'output'" into an error naming `run_sync`."""
    obj = getattr(exc, "obj", None) if isinstance(exc, AttributeError) else None
    if inspect.iscoroutine(obj) and obj.cr_code.co_qualname.startswith("Agent.run"):
        obj.close()
        raise UserError(
            f"Tool {tool_name!r} called agent.run(...) without awaiting it. In a sync tool use "
            "agent.run_sync(...); in an async tool, `await agent.run(...)`."
        ) from None
