"""What a cogent run puts into the `_meta` of its MCP requests: lineage and trace context.

Only these keys are ever added, and only from cogent's own helper contexts (found with
`isinstance`, never by field names):

| key | value | from |
|---|---|---|
| `cogent/task_id` | the execution's task id | `TaskContext.task_id` |
| `cogent/parent_task_id` | the delegating execution's task id (absent at the top) | `TaskContext.parent_task_id` |
| `cogent/depth` | the delegation depth | `DelegationContext.depth`, else `TaskContext.depth` |
| `traceparent`, `tracestate` | the W3C trace context of the current span | OpenTelemetry, when a span is recording |
"""

from __future__ import annotations

from typing import Any

from ..context import DelegationContext, RunContext, TaskContext

__all__ = ["request_meta"]

TASK_ID_KEY = "cogent/task_id"
"""The `_meta` key of the execution's task id."""
PARENT_TASK_ID_KEY = "cogent/parent_task_id"
"""The `_meta` key of the delegating execution's task id."""
DEPTH_KEY = "cogent/depth"
"""The `_meta` key of the delegation depth."""
TRACE_KEYS = ("traceparent", "tracestate")
"""The W3C trace-context keys copied from OpenTelemetry's propagator (never `baggage`)."""


def request_meta(ctx: RunContext | None) -> dict[str, Any]:
    """Return the `_meta` entries cogent sends with an MCP request made in the context `ctx`.

    Lineage comes from `TaskContext` and `DelegationContext` instances (and so from
    `ExecutionContext`); a context that is neither contributes nothing, whatever its
    fields are called. Nothing else from the context (its other fields, its metadata) is
    sent. When the `opentelemetry` package is importable and the current span is
    recording, its `traceparent` (and `tracestate`) are added.

    Args:
        ctx: The run context of the call, or `None` outside a run.

    Returns:
        A new dict, empty when there is nothing to send.
    """
    meta: dict[str, Any] = {}
    if isinstance(ctx, TaskContext):
        meta[TASK_ID_KEY] = str(ctx.task_id)
        if ctx.parent_task_id is not None:
            meta[PARENT_TASK_ID_KEY] = str(ctx.parent_task_id)
    if isinstance(ctx, DelegationContext):
        meta[DEPTH_KEY] = int(ctx.depth)
    elif isinstance(ctx, TaskContext):
        meta[DEPTH_KEY] = ctx.depth
    meta.update(_trace_context())
    return meta


def _trace_context() -> dict[str, str]:
    """Return the W3C trace context of the current OpenTelemetry span, if one is recording."""
    try:
        from opentelemetry import propagate, trace
    except ImportError:  # pragma: no cover - opentelemetry-api is a dependency of the mcp SDK
        return {}
    if not trace.get_current_span().is_recording():
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return {key: carrier[key] for key in TRACE_KEYS if key in carrier}
