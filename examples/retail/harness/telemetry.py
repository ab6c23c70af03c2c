"""`--otel`: the replay's OpenTelemetry spans, exported to a file and checked against every task's trace.

`exporting(path)` instruments every run (`cogent.telemetry.instrument_all`) into an SDK
`TracerProvider` whose `ConsoleSpanExporter` writes each span, as it ends, to `path` as one
line of JSON (the SDK's `ReadableSpan.to_json()`). `read_spans(path)` reads them back and
`check_export(spans, reports)` checks, from the file alone, that the spans of each task are
one tree equal to its `RunResult.trace`: each agent execution an `invoke_agent` span whose
`chat` children are its model requests and whose `execute_tool` children are its tool calls
(by call id), each delegation's `invoke_agent` under the delegating call. It also checks that
no authenticated user id (context data the desk holds in `RetailContext.session`) appears
anywhere in the file. `span_tree(spans, task_id)` renders one task's tree.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from cogent import TraceEvent
from cogent.telemetry import InstrumentationSettings, instrument_all

from .replay import TaskReport

__all__ = ["ExportCheck", "check_export", "exporting", "read_spans", "span_tree"]

SERVICE = "retail-desk"
"""The `service.name` of the exported spans."""
_CALL_KINDS = frozenset(
    {"tool_call", "tool_error", "retry", "delegation", "delegation_refused", "approval", "interceptor"}
)
"""The trace events that belong to one tool call, and so to one `execute_tool` span."""

Span = dict[str, Any]
"""One exported span, as the SDK's `to_json()` writes it."""


@contextmanager
def exporting(path: Path) -> Iterator[None]:
    """Instrument every run started inside the block; each span goes to `path` (one JSON line) as it ends."""
    with path.open("w", encoding="utf-8") as stream:
        provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
        exporter = ConsoleSpanExporter(out=stream, formatter=lambda span: span.to_json(indent=None) + "\n")
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        instrument_all(InstrumentationSettings(tracer_provider=provider))
        try:
            yield
        finally:
            instrument_all(False)
            provider.shutdown()


def read_spans(path: Path) -> list[Span]:
    """Return the spans written by `exporting`, in the order they ended."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


class ExportCheck:
    """What `check_export` found: the spans per task, and every difference from the traces."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        """One sentence per difference; empty when the export equals the traces."""
        self.spans_per_task: dict[str, int] = {}
        """The number of spans of each task's tree, by task id."""


def _operation(span: Span) -> Any:
    return span["attributes"].get("gen_ai.operation.name")


def _children(spans: Sequence[Span]) -> dict[str, list[Span]]:
    kids: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        if span["parent_id"] is not None:
            kids[span["parent_id"]].append(span)
    for group in kids.values():
        group.sort(key=lambda s: (s["start_time"], s["end_time"]))
    return kids


def _roots(spans: Sequence[Span]) -> dict[str, Span]:
    """The root `invoke_agent` span of each task, by the front desk's task id."""
    return {s["attributes"]["cogent.task.id"]: s for s in spans if s["parent_id"] is None}


def check_export(spans: Sequence[Span], reports: Sequence[TaskReport]) -> ExportCheck:
    """Check that the exported spans are, task by task, the trees of the runs' traces.

    Args:
        spans: The exported spans (`read_spans`).
        reports: The replay's reports (each holds its run's trace and the authenticated user).

    Returns:
        The spans per task and the problems found (none when everything matches).
    """
    check = ExportCheck()
    kids, roots = _children(spans), _roots(spans)
    for report in reports:
        task_id = report.trace[0].task_id if report.trace else None
        root = roots.get(str(task_id))
        if root is None:
            check.problems.append(f"task {report.plan.task_id}: no root span with cogent.task.id={task_id}")
            continue
        problems: list[str] = []
        count = _compare(kids, root, "front_desk", report.trace, problems)
        check.problems.extend(f"task {report.plan.task_id}: {p}" for p in problems)
        check.spans_per_task[report.plan.task_id] = count
    if sum(check.spans_per_task.values()) != len(spans):
        check.problems.append(
            f"{len(spans)} spans were exported and the task trees hold {sum(check.spans_per_task.values())}"
        )
    text = json.dumps(spans)
    leaked = sorted({r.user_id for r in reports if r.user_id and r.user_id in text})
    if leaked:
        check.problems.append(f"the export holds authenticated user ids (context data): {leaked[:3]}")
    return check


def _compare(
    kids: dict[str, list[Span]], span: Span, agent: str, trace: Sequence[TraceEvent], problems: list[str]
) -> int:
    """Compare the `invoke_agent` span `span` (and its subtree) with an execution's events; return its size."""
    if span["name"] != f"invoke_agent {agent}":
        problems.append(f"span {span['name']!r} where the trace has agent {agent!r}")
        return 1
    children = kids.get(span["context"]["span_id"], [])
    chats = [c for c in children if _operation(c) == "chat"]
    tools = {c["attributes"]["gen_ai.tool.call.id"]: c for c in children if _operation(c) == "execute_tool"}
    requests = [e for e in trace if e.kind == "model_request"]
    if len(chats) != len(requests):
        problems.append(f"{agent}: {len(chats)} chat spans for {len(requests)} model requests")
    if len(chats) + len(tools) != len(children):
        problems.append(f"{agent}: spans other than chat and execute_tool (or two for one call) under the agent")
    calls = {e.call_id for e in trace if e.kind in _CALL_KINDS}
    if set(tools) != calls:
        problems.append(f"{agent}: execute_tool spans for calls {sorted(tools)}, trace calls {sorted(map(str, calls))}")
    count = 1 + len(chats) + len(tools)
    for event in trace:
        if event.kind != "delegation" or event.call_id not in tools:
            continue
        under = kids.get(tools[event.call_id]["context"]["span_id"], [])
        nested = [n for n in under if _operation(n) == "invoke_agent"]
        if len(nested) != 1:
            problems.append(f"{agent}: delegation {event.call_id} has {len(nested)} invoke_agent spans")
            continue
        count += _compare(kids, nested[0], event.agent, event.children, problems)
    return count


def span_tree(spans: Sequence[Span], task_id: str) -> str:
    """Render the span tree whose root has `cogent.task.id` `task_id`, one indented line per span."""
    kids, lines = _children(spans), []

    def walk(span: Span, level: int) -> None:
        attributes = span["attributes"]
        parts = [span["name"]]
        for key, label in (
            ("gen_ai.tool.call.id", "call"),
            ("cogent.task.id", "task"),
            ("cogent.task.parent_id", "parent"),
            ("gen_ai.response.finish_reasons", "finish"),
            ("cogent.approval.decision", "approval"),
            ("error.type", "error"),
        ):
            if key in attributes:
                value = attributes[key]
                parts.append(f"{label}={','.join(value) if isinstance(value, list) else value}")
        lines.append("  " * level + " ".join(parts))
        for child in kids.get(span["context"]["span_id"], []):
            walk(child, level + 1)

    walk(_roots(spans)[task_id], 0)
    return "\n".join(lines)
