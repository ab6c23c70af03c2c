"""The typed outcomes the run loop's steps return to each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ..context import ToolApprovalItem
from ..result import RunState

__all__ = [
    "NEXT_TURN",
    "CallOutcome",
    "Ended",
    "ExecutionOutcome",
    "Finished",
    "Interrupted",
    "NextTurn",
    "Pending",
    "Retry",
    "Returned",
    "TurnOutcome",
]


@dataclass(frozen=True, slots=True)
class Returned:
    """The call has a result for the model (its own, a refusal, or an error message)."""

    content: str
    """The result as the model sees it."""


@dataclass(frozen=True, slots=True)
class Retry:
    """The call failed in a way the model can fix (invalid arguments, `ModelRetry`, unknown tool)."""

    content: str
    """What the model should do differently."""


@dataclass(frozen=True, slots=True)
class Pending:
    """The call waits for a decision: its own approval, or one inside the subagent it delegated to."""

    item: ToolApprovalItem | None = None
    """The call's own approval item."""
    child: RunState | None = None
    """The interrupted subagent's state."""


@dataclass(frozen=True, slots=True)
class Ended:
    """An interceptor (or `StopExecution` in a tool) ended the agent's execution."""

    output: Any
    """The execution's output."""


CallOutcome: TypeAlias = Returned | Retry | Pending | Ended
"""What one tool call comes to."""


@dataclass(frozen=True, slots=True)
class Finished:
    """The execution produced its output."""

    output: Any
    """The output (after POST_RUN)."""


@dataclass(frozen=True, slots=True)
class Interrupted:
    """Calls of the execution (or of its subagents) wait for approval."""

    state: RunState
    """Where to resume."""


@dataclass(frozen=True, slots=True)
class NextTurn:
    """The turn's calls are done: the model gets their results in the next request."""


NEXT_TURN: Final = NextTurn()

ExecutionOutcome: TypeAlias = Finished | Interrupted
"""What an execution comes to."""

TurnOutcome: TypeAlias = Finished | Interrupted | NextTurn
"""What one turn comes to."""
