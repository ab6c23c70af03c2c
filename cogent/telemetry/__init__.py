"""OpenTelemetry spans for agent runs, following the GenAI semantic conventions.

```python
from cogent import Agent
from cogent.telemetry import InstrumentationSettings, instrument_all

agent = Agent(name="desk", model=model, instrument=True)  # the global tracer provider
agent = Agent(name="desk", model=model, instrument=InstrumentationSettings(tracer_provider=provider))
instrument_all()  # every agent created with instrument=None (the default)
```

A run becomes an `invoke_agent {agent}` span per agent execution (subagents nested under
the delegating call), a `chat {model}` span per model request and an `execute_tool {tool}`
span per tool call; approvals, retries, interceptor skips and refused delegations are span
events. A run started inside an existing span (a web request's) is its child.

Nothing from the run context is exported except the task lineage of a `TaskContext`, the
deadline's remaining seconds, and the fields the context class marks
`Annotated[T, SpanAttribute]` (never a secret-named one). Exception messages are never
exported. Message content only with `include_content=True`. See docs/observability.md.

Needs the extra: `pip install "cogent-context[otel]"`.
"""

from __future__ import annotations

try:
    import opentelemetry.trace as _trace  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised by the missing-extra test
    raise ImportError(
        'cogent.telemetry needs the OpenTelemetry API; install it with: pip install "cogent-context[otel]"'
    ) from _exc

from ._settings import InstrumentationSettings, instrument_all

__all__ = ["InstrumentationSettings", "instrument_all"]
