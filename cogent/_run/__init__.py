"""The run loop, split by responsibility (each module small and testable on its own):

- `tree`: what a run's executions share (`RunTree`) and the run options (`RunOptions`);
- `execution`: the turn loop of one agent execution;
- `phases`: the table phase x interceptor result -> effect, and its dispatch;
- `tool_calls`: one call from arguments to result, as a typed outcome;
- `delegation`: a call to a subagent;
- `approvals`: pending items bound to one call, and the decision;
- `output`: the final answer; `history`: ids and pairs; `results`: text for the model;
- `context_rules`: the only reader of the helper contexts' fields;
- `resume`: checking and claiming a `RunState`.

`run_agent` starts a top-level run.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from .._signature import InjectedCall
from ..context import RunContext, running
from ..exceptions import DelegationDepthExceeded, UserError
from ..result import RunResult, RunState
from ..usage import Usage
from . import context_rules, history, hooks, resume
from .execution import Execution
from .outcomes import Interrupted
from .spec import spec_of
from .tree import RunOptions, RunTree, WorkBudget

if TYPE_CHECKING:
    from ..agent import Agent

__all__ = ["RunOptions", "coerce_context", "run_agent"]


def coerce_context(context: Any, where: str) -> RunContext:
    """Return the context a run starts from: `context`, a fresh `RunContext()` for `None`, or
    `RunContext(metadata=...)` for a dict.

    Raises:
        UserError: If `context` is none of these; `where` names the call in the message.
    """
    if context is None:
        return RunContext()
    if isinstance(context, dict):
        return RunContext(metadata=dict(context))
    if not isinstance(context, RunContext):
        raise UserError(
            f"{where} got context={type(context).__qualname__}; pass a RunContext (or subclass) instance, a dict "
            "of metadata, or None."
        )
    return context


def run_agent(
    agent: Agent[Any, Any],
    input: str | RunState,  # noqa: A002
    options: RunOptions,
) -> Coroutine[Any, Any, RunResult[Any, Any]]:
    """Prepare a top-level run of `agent` and return the coroutine that runs it (see `Agent.run`
    for the arguments and errors; misuse is raised here, before anything runs).

    A run prepared inside a tool of another run (a nested `agent.run()`) continues that run's
    depth and shares its bound on model requests.
    """
    options.check(agent.name)
    ctx = (
        options.context
        if isinstance(options.context, RunContext)
        else coerce_context(options.context, f"Agent {agent.name!r}")
    )
    state: RunState | None = None
    if type(input) is str:
        task = input
    elif isinstance(input, RunState):
        if options.message_history is not None:
            raise UserError(
                f"Agent {agent.name!r}.run() resumes a RunState, which has its own messages; do not pass "
                "message_history."
            )
        state = resume.check_state(agent, input)
        task = state.task
    elif isinstance(input, str):
        task = input
    else:
        raise UserError(
            f"Agent {agent.name!r}.run() needs a str or a RunState as input, got {type(input).__qualname__}."
        )
    messages = (
        history.check_history(options.message_history, f"Agent {agent.name!r}.run()")
        if options.message_history is not None
        else []
    )
    handler = (
        InjectedCall(options.approval_handler, owner="The approval_handler", arity=1)
        if options.approval_handler is not None
        else None
    )
    current = running.get(None)
    enclosing: Execution | None = current.execution if current is not None else None
    tree = RunTree(
        run_id=state.run_id if state is not None else None,
        usage=copy.copy(state.usage) if state is not None else Usage(),
        limits=options.usage_limits,
        budget=WorkBudget(limit=options.max_requests, enclosing=enclosing.tree.budget if enclosing else None),
        interceptors=tuple(options.interceptors),
        approval_handler=handler,
        max_depth=min(options.max_depth, enclosing.tree.max_depth) if enclosing is not None else options.max_depth,
        emit=options.emit,
        observer=hooks.observer_for(agent.instrument, enclosing.tree.observer if enclosing is not None else None),
    )
    depth = 0 if enclosing is None else enclosing.depth + 1
    if depth > tree.max_depth:
        raise DelegationDepthExceeded(
            f"Agent {agent.name!r} was run inside a tool at depth {depth}, beyond max_depth={tree.max_depth}; a "
            "cycle of nested agent.run() calls? Check the tools that start runs."
        )
    exec_ctx = context_rules.execution_copy(ctx, agent, task)
    if state is not None:
        # A context that cannot serve the agent fails before the state is claimed: it stays resumable.
        spec = spec_of(agent)
        context_rules.check_context(agent, exec_ctx, spec, spec.tools)
    return _run(Execution(agent, exec_ctx, tree, task, messages, depth=depth, path=(), trace=[]), state)


async def _run(execution: Execution, state: RunState | None) -> RunResult[Any, Any]:
    """Run the prepared top-level execution (a small frame: every waiting run holds it)."""
    if state is not None:
        await resume.claim(state)
    outcome = await execution.run(state)
    usage = execution.tree.usage
    if isinstance(outcome, Interrupted):
        paused = dataclasses.replace(outcome.state, usage=copy.copy(usage))
        return RunResult(
            output=None,
            messages=execution.messages,
            usage=usage,
            context=execution.ctx,
            trace=execution.trace,
            interruptions=paused.interruptions,
            state=paused,
            new_message_index=execution.start,
        )
    result: RunResult[Any, Any] = object.__new__(RunResult)  # skips a class call's keyword dict (once per run)
    RunResult.__init__(
        result,
        output=outcome.output,
        messages=execution.messages,
        usage=usage,
        context=execution.ctx,
        trace=execution.trace,
        new_message_index=execution.start,
    )
    return result
