"""The observer that turns a run into OpenTelemetry spans (the `cogent._run.hooks` seam).

One span per agent execution (`invoke_agent {agent}`), per model request (`chat {model}`)
and per tool call (`execute_tool {tool}`); each is the current span while its step runs,
so a delegation's `invoke_agent` nests under the delegating call's `execute_tool`, and
whatever the application traces inside a tool nests under that. Trace events become span
events of the step they belong to (approvals, retries, interceptor skips, refusals).

What a span may hold (see docs/observability.md): names, ids, counts, the lineage of a
`TaskContext`, the deadline's remaining seconds, and the context fields marked
`SpanAttribute`. Exception messages are never recorded (they can quote any value): an
error is its `error.type`. Message content only with `include_content=True`.
"""

from __future__ import annotations

from contextvars import ContextVar
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from .._run import context_rules
from .._run.hooks import Observer, Span
from .._run.outcomes import Ended, ExecutionOutcome, Interrupted, Pending
from ..events import TraceEvent
from ..messages import Message, ModelResponse, RetryPrompt, ToolCall, ToolReturn
from ..models import Model, ModelRequestParameters
from ..tools import AnyTool
from . import _content
from ._context import context_attributes

if TYPE_CHECKING:
    from .._run.execution import Execution
    from .._run.outcomes import CallOutcome

__all__ = ["SpanObserver", "error_type"]

_ERROR = Status(StatusCode.ERROR)  # never a description: an error's message can quote any value
_current: ContextVar[_OpenSpan] = ContextVar("cogent_telemetry_span")
"""The innermost cogent span of the running task (trace events are recorded on it)."""


def error_type(exc: BaseException) -> str:
    """Return the `error.type` of `exc`: `cancelled`, else its class's qualified name (`builtins` omitted)."""
    if isinstance(exc, anyio.get_cancelled_exc_class()):
        return "cancelled"
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class SpanObserver(Observer):
    """Opens the spans of the runs instrumented with one `InstrumentationSettings`.

    Args:
        tracer: Where spans go.
        include_content: Record prompts, responses, tool arguments and results.
    """

    __slots__ = ("include_content", "tracer")

    def __init__(self, tracer: Tracer, include_content: bool) -> None:
        self.tracer = tracer
        self.include_content = include_content

    def execution_span(self, ex: Execution) -> _AgentSpan:
        """Around one agent execution: an `invoke_agent` span."""
        return _AgentSpan(self, ex)

    def request_span(
        self, ex: Execution, model: Model, messages: list[Message], params: ModelRequestParameters
    ) -> _ChatSpan:
        """Around one model request: a `chat` span."""
        return _ChatSpan(self, model, messages, params)

    def call_span(self, ex: Execution, call: ToolCall, tool: AnyTool | None) -> _ToolSpan:
        """Around one tool call: an `execute_tool` span."""
        return _ToolSpan(self, call, tool)

    def event(self, ex: Execution, event: TraceEvent) -> None:
        """Record a trace event on the span of the step it belongs to."""
        span = _current.get(None)
        if span is not None:
            span.record(event)


class _OpenSpan(Span):
    """A cogent step's span: current (for OpenTelemetry and for trace events) while the step runs."""

    __slots__ = ("_failed", "_observer", "_otel", "_tokens")
    kind: ClassVar[SpanKind] = SpanKind.INTERNAL

    def __init__(self, observer: SpanObserver) -> None:
        self._observer = observer
        self._failed = False

    def _begin(self, name: str, attributes: dict[str, Any]) -> None:
        otel = self._otel = self._observer.tracer.start_span(name, kind=self.kind, attributes=attributes)
        self._tokens = (otel_context.attach(trace.set_span_in_context(otel)), _current.set(self))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is not None:
                self.fail(error_type(exc), exception=True)
            self._closing()
        finally:
            attached, current = self._tokens
            _current.reset(current)
            otel_context.detach(attached)
            self._otel.end()

    def _closing(self) -> None:
        """Set what is known only at the end (before the span ends)."""

    def fail(self, kind: str, *, exception: bool = False) -> None:
        """Mark the step failed with `error.type` `kind` (an `exception` event too, for a raised one)."""
        self._failed = True
        otel = self._otel
        otel.set_attribute("error.type", kind)
        otel.set_status(_ERROR)
        if exception and kind != "cancelled":
            otel.add_event("exception", {"exception.type": kind})

    def record(self, event: TraceEvent) -> None:
        """Turn a trace event of this step into span events and attributes."""
        kind = event.kind
        otel = self._otel
        if kind == "approval":
            decision = str(event.decision)
            otel.add_event("cogent.approval", {"cogent.approval.decision": decision})
            otel.set_attribute("cogent.approval.decision", decision)
        elif kind == "retry":
            detail = event.detail if self._observer.include_content and event.detail else None
            otel.add_event("cogent.retry", {"cogent.retry.message": detail} if detail is not None else None)
            self.fail("tool_retry")
        elif kind == "tool_error":
            if event.error is not None:
                self.fail(error_type(event.error), exception=True)
            else:  # a call refused by an interceptor's narrowed offer, or cancelled (then `cancelled` wins)
                self.fail("tool_error")
        elif kind == "interceptor":
            otel.add_event("cogent.interceptor.skip")
        elif kind == "delegation_refused":
            otel.add_event("cogent.delegation.refused")
            self.fail("delegation_refused")


class _AgentSpan(_OpenSpan):
    """`invoke_agent {agent}`: one agent execution (the top-level run, or a delegation's subagent)."""

    __slots__ = ("_ex", "_outcome")

    def __init__(self, observer: SpanObserver, ex: Execution) -> None:
        super().__init__(observer)
        self._ex = ex
        self._outcome = "error"

    def __enter__(self) -> _AgentSpan:
        ex = self._ex
        agent, model = ex.agent, ex.model
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": model.provider_name,
            "gen_ai.agent.name": agent.name,
            "gen_ai.request.model": model.name,
            "cogent.run_id": ex.tree.run_id,
            "cogent.depth": ex.depth,
        }
        if agent.description:
            attributes["gen_ai.agent.description"] = agent.description
        if ex.task_id is not None:
            attributes["cogent.task.id"] = str(ex.task_id)
        if ex.parent_task_id is not None:
            attributes["cogent.task.parent_id"] = str(ex.parent_task_id)
        remaining = context_rules.remaining_seconds(ex.ctx)
        if remaining is not None:
            attributes["cogent.deadline.remaining_seconds"] = remaining
        attributes.update(context_attributes(ex.ctx))
        if self._observer.include_content:
            attributes["gen_ai.input.messages"] = _content.task_messages(ex.task)
        self._begin(f"invoke_agent {agent.name}", attributes)
        return self

    def finished(self, outcome: ExecutionOutcome) -> None:
        """Record how the execution ended: its output, or an interruption for approvals."""
        if isinstance(outcome, Interrupted):
            self._outcome = "interrupted"
            self._otel.set_attribute("cogent.approvals.pending", len(outcome.state.interruptions))
            return
        self._outcome = "finished"
        if self._observer.include_content:
            self._otel.set_attribute("gen_ai.output.messages", _content.result_messages(outcome.output))

    def _closing(self) -> None:
        ex = self._ex
        if ex.path:
            self._otel.set_attribute("cogent.outcome", self._outcome)
            return
        usage = ex.tree.usage  # the root of its run tree: the run's usage (subagents included)
        self._otel.set_attributes(
            {
                "cogent.outcome": self._outcome,
                "cogent.usage.requests": usage.requests,
                "cogent.usage.input_tokens": usage.input_tokens,
                "cogent.usage.output_tokens": usage.output_tokens,
                "cogent.usage.tool_calls": usage.tool_calls,
            }
        )


class _ChatSpan(_OpenSpan):
    """`chat {model}`: one model request."""

    __slots__ = ("_messages", "_model", "_params")
    kind = SpanKind.CLIENT

    def __init__(
        self, observer: SpanObserver, model: Model, messages: list[Message], params: ModelRequestParameters
    ) -> None:
        super().__init__(observer)
        self._model = model
        self._messages = messages
        self._params = params

    def __enter__(self) -> _ChatSpan:
        model = self._model
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": model.provider_name,
            "gen_ai.request.model": model.name,
        }
        if self._observer.include_content:
            if self._params.instructions:
                attributes["gen_ai.system_instructions"] = _content.instructions(self._params.instructions)
            attributes["gen_ai.input.messages"] = _content.input_messages(self._messages)
        self._begin(f"chat {model.name}", attributes)
        return self

    def response(self, response: ModelResponse) -> None:
        """Record the response's model, finish reason and token usage (and content, when on)."""
        attributes: dict[str, Any] = {
            "gen_ai.usage.input_tokens": response.usage.input_tokens,
            "gen_ai.usage.output_tokens": response.usage.output_tokens,
        }
        if response.model_name:
            attributes["gen_ai.response.model"] = response.model_name
        if response.finish_reason:
            attributes["gen_ai.response.finish_reasons"] = (response.finish_reason,)
        if self._observer.include_content:
            attributes["gen_ai.output.messages"] = _content.output_messages(response)
        self._otel.set_attributes(attributes)


class _ToolSpan(_OpenSpan):
    """`execute_tool {tool}`: one tool call, from validation to its result (a delegation included)."""

    __slots__ = ("_call", "_tool")

    def __init__(self, observer: SpanObserver, call: ToolCall, tool: AnyTool | None) -> None:
        super().__init__(observer)
        self._call = call
        self._tool = tool

    def __enter__(self) -> _ToolSpan:
        call, tool = self._call, self._tool
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.id or "",
        }
        if tool is not None:
            attributes["gen_ai.tool.type"] = tool.tool_type
            attributes["gen_ai.tool.description"] = tool.definition.description
            if tool.requires_approval:
                attributes["cogent.tool.requires_approval"] = True
        if self._observer.include_content:
            attributes["gen_ai.tool.call.arguments"] = call.arguments_json()
        self._begin(f"execute_tool {call.name}", attributes)
        return self

    def outcome(self, outcome: CallOutcome) -> None:
        """Record what the call came to (its result only when it succeeded and content is on)."""
        otel = self._otel
        if isinstance(outcome, ToolReturn):
            otel.set_attribute("cogent.outcome", "returned")
            if self._observer.include_content and not self._failed:
                otel.set_attribute("gen_ai.tool.call.result", outcome.content)
        elif isinstance(outcome, RetryPrompt):
            otel.set_attribute("cogent.outcome", "retry")
        elif isinstance(outcome, Pending):
            otel.set_attribute("cogent.outcome", "pending")
        elif isinstance(outcome, Ended):
            otel.set_attribute("cogent.outcome", "ended")
            otel.add_event("cogent.stop")
