"""`Auditor`: one structured record per phase, without any context values."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..core import now_utc
from ..exceptions import UserError
from ._base import InterceptContext, Interceptor, Phase

__all__ = ["AuditRecord", "Auditor"]


@dataclass(kw_only=True, frozen=True, slots=True)
class AuditRecord:
    """One phase of one agent execution, as the `Auditor` records it.

    It holds names, ids and counts only: never a run context field value (except the
    lineage ids `task_id` and `parent_task_id`), tool arguments, tool results or
    messages.
    """

    at: datetime
    """When the phase fired (UTC)."""
    phase: Phase
    """The phase."""
    agent: str
    """The name of the agent being executed."""
    depth: int
    """How many delegations separate the agent from the top-level run (0 at the top)."""
    tool_name: str | None = None
    """The tool (or subagent) concerned, in the tool phases."""
    tool_call_id: str | None = None
    """The tool call's id, in the tool phases."""
    task_id: str | None = None
    """The context's `task_id`, when the context has one (`TaskContext`, `ExecutionContext`)."""
    parent_task_id: str | None = None
    """The context's `parent_task_id`, when it has one."""
    error_type: str | None = None
    """`ON_ERROR`: the exception's class name (its message may contain data, so it is left out)."""


class Auditor(Interceptor):
    """Record every phase of every agent it applies to as an `AuditRecord`.

    Pass it to `run(interceptors=[...])` to audit the whole agent tree, or to
    `Agent(interceptors=[...])` to audit one agent. The records carry the agent name,
    phase, tool name and call id, depth and the lineage ids (`task_id`,
    `parent_task_id`, when the context has them), and never any other context value.
    The auditor only observes: it never changes the run.

    Example:
        ```python
        records: list[AuditRecord] = []
        result = await agent.run("Hi", context=ExecutionContext(), interceptors=[Auditor(records)])
        [(r.phase.name, r.agent, r.tool_name) for r in records]
        # [('PRE_RUN', 'assistant', None), ('PRE_THINK', 'assistant', None), ...]
        ```

    Args:
        sink: A list the records are appended to, or a callable (sync or async) that
            receives each record, e.g. a function writing to your audit log.

    Raises:
        UserError: If `sink` is neither a list nor callable.
    """

    def __init__(self, sink: list[AuditRecord] | Callable[[AuditRecord], Any]) -> None:
        if isinstance(sink, list):
            self._write: Callable[[AuditRecord], Any] = sink.append
        elif callable(sink):
            self._write = sink
        else:
            raise UserError(f"Auditor(sink={sink!r}) needs a list or a callable that receives each AuditRecord.")
        self.sink = sink

    def __repr__(self) -> str:
        return f"Auditor({self.sink!r})"

    async def intercept(self, phase: Phase, context: InterceptContext) -> None:
        """Write the record of this phase to the sink."""
        ctx = context.run_context
        error = context.error
        written = self._write(
            AuditRecord(
                at=now_utc(),
                phase=phase,
                agent=context.agent.name,
                depth=context.depth,
                tool_name=context.tool_name,
                tool_call_id=context.tool_call_id,
                task_id=_id_or_none(getattr(ctx, "task_id", None)),
                parent_task_id=_id_or_none(getattr(ctx, "parent_task_id", None)),
                error_type=type(error).__qualname__ if error is not None else None,
            )
        )
        if inspect.isawaitable(written):
            await written


def _id_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None
