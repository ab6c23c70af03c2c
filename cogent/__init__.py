"""cogent: a typed, subclassable run context for LLM agents.

Subclass `RunContext`, pass an instance to `agent.run(..., context=...)`, and every
`@tool`, interceptor and subagent that declares a parameter annotated with it receives
it. The context is never sent to the model.
"""

from __future__ import annotations

from .agent import Agent
from .context import (
    ApprovalStatus,
    DelegationContext,
    ExecutionContext,
    Resource,
    RetryContext,
    RunContext,
    SpanAttribute,
    TaskContext,
    TimedContext,
    ToolApprovalItem,
    current_context,
)
from .events import (
    ApprovalDecision,
    DelegationEndEvent,
    DelegationStartEvent,
    FinalResultEvent,
    ReasoningDeltaEvent,
    StreamEvent,
    TextDeltaEvent,
    ToolCallEvent,
    ToolResultEvent,
    TraceEvent,
    format_trace,
)
from .exceptions import (
    AgentRunError,
    CogentError,
    ContextTypeError,
    DeadlineExceeded,
    DelegationDepthExceeded,
    MaxTurnsExceeded,
    ModelAPIError,
    ModelRetry,
    RunStateError,
    ToolRetriesExceeded,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)
from .interceptors import InterceptContext, Interceptor, InterceptResult, Phase, StopExecution, interceptor
from .messages import ToolCall
from .models import FunctionModel, Model, ScriptedModel, TestModel
from .result import RunResult, RunState
from .tools import AgentTool, BaseTool, Tool, ToolDefinition, Toolset, tool
from .usage import Usage, UsageLimits

__all__ = [
    "Agent",
    "AgentRunError",
    "AgentTool",
    "ApprovalDecision",
    "ApprovalStatus",
    "BaseTool",
    "CogentError",
    "ContextTypeError",
    "DeadlineExceeded",
    "DelegationContext",
    "DelegationDepthExceeded",
    "DelegationEndEvent",
    "DelegationStartEvent",
    "ExecutionContext",
    "FinalResultEvent",
    "FunctionModel",
    "InterceptContext",
    "InterceptResult",
    "Interceptor",
    "MaxTurnsExceeded",
    "Model",
    "ModelAPIError",
    "ModelRetry",
    "Phase",
    "ReasoningDeltaEvent",
    "Resource",
    "RetryContext",
    "RunContext",
    "RunResult",
    "RunState",
    "RunStateError",
    "ScriptedModel",
    "SpanAttribute",
    "StopExecution",
    "StreamEvent",
    "TaskContext",
    "TestModel",
    "TextDeltaEvent",
    "TimedContext",
    "Tool",
    "ToolApprovalItem",
    "ToolCall",
    "ToolCallEvent",
    "ToolDefinition",
    "ToolResultEvent",
    "ToolRetriesExceeded",
    "Toolset",
    "TraceEvent",
    "UnexpectedModelBehavior",
    "Usage",
    "UsageLimitExceeded",
    "UsageLimits",
    "UserError",
    "current_context",
    "format_trace",
    "interceptor",
    "tool",
]
