"""Reading exported spans as a tree, and checking it against a run's trace."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cogent import TraceEvent

CALL_KINDS = frozenset(
    {"tool_call", "tool_error", "retry", "delegation", "delegation_refused", "approval", "interceptor"}
)
"""Trace event kinds that belong to one tool call (and so to one `execute_tool` span)."""


def op(span: ReadableSpan) -> Any:
    """The span's `gen_ai.operation.name`."""
    return (span.attributes or {}).get("gen_ai.operation.name")


class Spans:
    """The finished spans of a test, with their parent links."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter = exporter

    @property
    def all(self) -> list[ReadableSpan]:
        """Every finished span, in the order they ended."""
        return list(self._exporter.get_finished_spans())

    def children(self, span: ReadableSpan) -> list[ReadableSpan]:
        """The spans whose parent is `span`, by start time."""
        assert span.context is not None
        kids = [s for s in self.all if s.parent is not None and s.parent.span_id == span.context.span_id]
        return sorted(kids, key=lambda s: s.start_time or 0)

    def roots(self) -> list[ReadableSpan]:
        """The spans without a parent among the exported ones, by start time."""
        ids = {s.context.span_id for s in self.all if s.context is not None}
        found = [s for s in self.all if s.parent is None or s.parent.span_id not in ids]
        return sorted(found, key=lambda s: s.start_time or 0)

    def by_operation(self, name: str) -> list[ReadableSpan]:
        """The spans of one GenAI operation (`invoke_agent`, `chat`, `execute_tool`), by start time."""
        return sorted((s for s in self.all if op(s) == name), key=lambda s: s.start_time or 0)

    def index(self) -> dict[int, list[ReadableSpan]]:
        """Children by parent span id (for walking many trees at once)."""
        kids: dict[int, list[ReadableSpan]] = defaultdict(list)
        for s in self.all:
            if s.parent is not None:
                kids[s.parent.span_id].append(s)
        for group in kids.values():
            group.sort(key=lambda s: s.start_time or 0)
        return kids


def assert_tree_matches(
    kids: dict[int, list[ReadableSpan]], span: ReadableSpan, agent: str, trace: Sequence[TraceEvent]
) -> int:
    """Check that the `invoke_agent` span `span` and its descendants are the execution whose events are `trace`.

    Model requests are `chat` children in the same order with the same finish reasons and
    tokens; every tool call of the trace (by call id) is exactly one `execute_tool` child;
    a delegation's `execute_tool` holds exactly one `invoke_agent` child, which matches the
    delegation's children events. Returns the number of spans of the subtree.
    """
    attributes = span.attributes or {}
    assert span.name == f"invoke_agent {agent}", span.name
    assert attributes["gen_ai.agent.name"] == agent
    for event in trace:
        assert event.agent == agent or event.kind == "delegation"
        if event.kind != "delegation":
            assert attributes["cogent.depth"] == event.depth
            assert attributes.get("cogent.task.id") == event.task_id
            assert attributes.get("cogent.task.parent_id") == event.parent_task_id
    assert span.context is not None
    children = kids.get(span.context.span_id, [])
    chats = [c for c in children if op(c) == "chat"]
    tools = [c for c in children if op(c) == "execute_tool"]
    assert len(chats) + len(tools) == len(children), [c.name for c in children]
    requests = [e for e in trace if e.kind == "model_request"]
    assert len(chats) == len(requests)
    for chat, request in zip(chats, requests, strict=True):
        chat_attributes = chat.attributes or {}
        assert request.usage is not None
        assert chat_attributes["gen_ai.usage.input_tokens"] == request.usage.input_tokens
        assert chat_attributes["gen_ai.usage.output_tokens"] == request.usage.output_tokens
        reasons = chat_attributes.get("gen_ai.response.finish_reasons")
        assert (tuple(reasons) if reasons else None) == ((request.finish_reason,) if request.finish_reason else None)
    by_call = {(t.attributes or {})["gen_ai.tool.call.id"]: t for t in tools}
    assert len(by_call) == len(tools), "two execute_tool spans for one call"
    assert set(by_call) == {e.call_id for e in trace if e.kind in CALL_KINDS}
    count = 1 + len(chats) + len(tools)
    delegated = {e.call_id: e for e in trace if e.kind == "delegation"}
    for call_id, tool in by_call.items():
        assert tool.context is not None
        nested = kids.get(tool.context.span_id, [])
        if call_id in delegated:
            assert [op(n) for n in nested] == ["invoke_agent"]
            event = delegated[call_id]
            count += assert_tree_matches(kids, nested[0], event.agent, event.children)
        else:
            assert not [n for n in nested if op(n) == "invoke_agent"]
    return count
