"""The exceptions raised by cogent.

Every exception the framework raises on purpose derives from `CogentError`, so one
`except CogentError` catches them all. The tree::

    CogentError
    ├── UserError                   misuse of the API, raised where the mistake is made
    │   └── ContextTypeError        a context is not an instance of the annotated class
    ├── RunStateError               a saved RunState is malformed, edited, or already resumed
    └── AgentRunError               a run could not produce an output
        ├── MaxTurnsExceeded        more model requests than `Agent(max_turns=...)`
        ├── DeadlineExceeded        the context's deadline passed
        ├── DelegationDepthExceeded the hard delegation limit `run(max_depth=...)` was hit
        ├── UsageLimitExceeded      a `UsageLimits` cap would be exceeded
        ├── ToolRetriesExceeded     a tool (or the output) failed validation too often
        ├── UnexpectedModelBehavior the model answered with something unusable
        └── ModelAPIError           the model provider returned an error

    ModelRetry                      control flow: a tool asks the model to try again

`ModelRetry` is deliberately outside the tree: it is raised by user code to steer the
model, not by the framework to report a failure.
"""

from __future__ import annotations

__all__ = [
    "AgentRunError",
    "CogentError",
    "ContextTypeError",
    "DeadlineExceeded",
    "DelegationDepthExceeded",
    "MaxTurnsExceeded",
    "ModelAPIError",
    "ModelRetry",
    "RunStateError",
    "ToolRetriesExceeded",
    "UnexpectedModelBehavior",
    "UsageLimitExceeded",
    "UserError",
]


class CogentError(Exception):
    """Base class of every exception raised by cogent."""


class UserError(CogentError):
    """The API was used in a way that cannot work; the message says how to fix it."""


class ContextTypeError(UserError, TypeError):
    """A run context is not an instance of the class a tool, interceptor or agent requires."""


class RunStateError(CogentError):
    """A `RunState` cannot be resumed: it is malformed, was edited after it was saved, was
    signed with another key, does not belong to the agent, or was already resumed."""


class AgentRunError(CogentError):
    """A run ended without an output."""


class MaxTurnsExceeded(AgentRunError):
    """An agent made more model requests than its `max_turns` allows."""


class DeadlineExceeded(AgentRunError, TimeoutError):
    """The run context's `deadline` passed before the run finished."""


class DelegationDepthExceeded(AgentRunError):
    """A delegation would nest deeper than the run's hard `max_depth`."""


class UsageLimitExceeded(AgentRunError):
    """The next request or tool call would exceed a `UsageLimits` cap."""


class ToolRetriesExceeded(AgentRunError):
    """A tool (or the structured output) was retried more often than allowed."""


class UnexpectedModelBehavior(AgentRunError):
    """The model's response cannot be used (for example, it was empty too many times)."""


class ModelAPIError(AgentRunError):
    """The model provider answered with an error.

    Attributes:
        status_code: The HTTP status code, when the provider sent one.
        body: The provider's error body, when it sent one.
    """

    def __init__(self, message: str, *, status_code: int | None = None, body: object = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class ModelRetry(Exception):
    """Raised by a tool to send `message` back to the model and ask it to try again.

    The retry counts toward the tool's retry budget (`Agent(tool_retries=...)`, or
    `RetryContext.max_retries` when the run context is one).

    Args:
        message: What the model should do differently; it is sent to the model verbatim.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
