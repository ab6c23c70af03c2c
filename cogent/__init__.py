"""cogent: a typed, subclassable run context for LLM agents.

Subclass `RunContext`, pass an instance to `agent.run(..., context=...)`, and every
`@tool`, interceptor and subagent that declares a parameter annotated with it receives
it. The context is never sent to the model.
"""

from __future__ import annotations

from .agent import Agent, RunResult, RunState, TraceEvent, format_trace
from .context import (
    DelegationContext,
    ExecutionContext,
    RetryContext,
    RunContext,
    TaskContext,
    TimedContext,
    ToolApprovalItem,
    current_context,
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
    ToolRetriesExceeded,
    UnexpectedModelBehavior,
    UsageLimitExceeded,
    UserError,
)
from .interceptors import InterceptContext, Interceptor, InterceptResult, Phase, StopExecution, interceptor
from .messages import ToolCall
from .models import FunctionModel, Model, ScriptedModel, TestModel
from .tools import Tool, ToolDefinition, tool
from .usage import Usage, UsageLimits

__all__ = [
    "Agent",
    "AgentRunError",
    "CogentError",
    "ContextTypeError",
    "DeadlineExceeded",
    "DelegationContext",
    "DelegationDepthExceeded",
    "ExecutionContext",
    "FunctionModel",
    "InterceptContext",
    "InterceptResult",
    "Interceptor",
    "MaxTurnsExceeded",
    "Model",
    "ModelAPIError",
    "ModelRetry",
    "Phase",
    "RetryContext",
    "RunContext",
    "RunResult",
    "RunState",
    "ScriptedModel",
    "StopExecution",
    "TaskContext",
    "TestModel",
    "TimedContext",
    "Tool",
    "ToolApprovalItem",
    "ToolCall",
    "ToolDefinition",
    "ToolRetriesExceeded",
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
