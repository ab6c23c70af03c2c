"""Delegation: a call to an `AgentTool` runs its subagent with a child context.

The subagent's execution shares the run tree (usage, limits, interceptors, approval handler,
request budget), nests its trace events under the delegation's, and can be interrupted for
an approval and resumed from the parent's state.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..events import DelegationEndEvent, DelegationStartEvent, TraceEvent
from ..exceptions import DelegationDepthExceeded
from ..result import RunState
from ..tools import AgentTool
from . import context_rules
from .outcomes import Interrupted, Pending
from .results import to_text

if TYPE_CHECKING:
    from .execution import Execution

__all__ = ["delegate"]


async def delegate(ex: Execution, tool: AgentTool, call_id: str, task: str, resume: RunState | None) -> str | Pending:
    """Run `tool`'s subagent on `task` for the call `call_id` of `ex`; return its output as the
    call's result text, a refusal, or `Pending` when the subagent waits for an approval.

    Raises:
        DelegationDepthExceeded: If the delegation would nest deeper than the run's `max_depth`.
        ContextTypeError: If the child context does not suit the subagent.
    """
    sub = tool.agent
    started = time.perf_counter()
    depth = ex.depth + 1
    if depth > ex.tree.max_depth:
        raise DelegationDepthExceeded(
            f"Agent {ex.agent.name!r} tried to delegate to {sub.name!r} at depth {depth}, beyond the run's "
            f"max_depth={ex.tree.max_depth}; check the agents for a delegation cycle or pass a larger "
            "run(max_depth=...)."
        )
    refusal = context_rules.delegation_refusal(ex.ctx)
    if refusal is not None:
        refused = f"Error: Delegation to {sub.name!r} was refused: "
        ex.record(
            "delegation_refused",
            started,
            tool_name=tool.name,
            call_id=call_id,
            detail=f"{refused}the context is at delegation depth {refusal[0]} and max_depth is {refusal[1]}.",
        )
        # The trace shows the values; the model only learns that the limit is reached (no context data).
        return f"{refused}the delegation depth limit is reached. Handle the task directly."
    steps = ex.tree.steps
    child_ctx = context_rules.child_context(ex.ctx, sub) if steps is None else steps.child_context(ex, call_id, sub)
    task_id, parent_task_id = context_rules.lineage(child_ctx)
    children: list[TraceEvent] = []
    event = TraceEvent(
        kind="delegation",
        agent=sub.name,
        depth=depth,
        tool_name=tool.name,
        call_id=call_id,
        task_id=task_id,
        parent_task_id=parent_task_id,
        started=started,
        children=children,
    )
    ex.trace.append(event)
    if ex.tree.emit is not None:
        await ex.emit(
            DelegationStartEvent(
                agent=sub.name,
                parent=ex.agent.name,
                depth=depth,
                task=task,
                task_id=task_id,
                parent_task_id=parent_task_id,
            )
        )
    try:
        child = ex.spawn(sub, child_ctx, task, call_id, children)
        outcome = await (child.run(resume) if steps is None else steps.delegate(ex, call_id, child, resume))
    finally:
        event.duration = time.perf_counter() - started
    if isinstance(outcome, Interrupted):
        return Pending(child=outcome.state)
    content = to_text(outcome.output)
    event.detail = content
    if ex.tree.emit is not None:
        await ex.emit(
            DelegationEndEvent(
                agent=sub.name,
                parent=ex.agent.name,
                depth=depth,
                output=content,
                task_id=task_id,
                parent_task_id=parent_task_id,
            )
        )
    return content
