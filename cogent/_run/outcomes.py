"""The typed outcomes the run loop's steps return to each other (not frozen: built on every step,
and a frozen dataclass's `__init__` costs twice as much)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from ..context import ToolApprovalItem
from ..messages import RetryPrompt, ToolReturn
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
    "TurnOutcome",
]


@dataclass(slots=True)
class Pending:
    """The call waits for a decision: its own approval, or one inside the subagent it delegated to."""

    item: ToolApprovalItem | None = None
    """The call's own approval item."""
    child: RunState | None = None
    """The interrupted subagent's state."""


@dataclass(slots=True)
class Ended:
    """An interceptor (or `StopExecution` in a tool) ended the agent's execution."""

    output: Any
    """The execution's output."""


CallOutcome: TypeAlias = ToolReturn | RetryPrompt | Pending | Ended
"""What one tool call comes to: the message the model receives (its result, a refusal or an
error as a `ToolReturn`; a `RetryPrompt` when the model should try again), `Pending` when it
waits for a decision, or `Ended` when an interceptor ended the execution."""


@dataclass(slots=True)
class Finished:
    """The execution produced its output."""

    output: Any
    """The output (after POST_RUN)."""


@dataclass(slots=True)
class Interrupted:
    """Calls of the execution (or of its subagents) wait for approval."""

    state: RunState
    """Where to resume."""


@dataclass(slots=True)
class NextTurn:
    """The turn's calls are done: the model gets their results in the next request."""


NEXT_TURN: Final = NextTurn()

ExecutionOutcome: TypeAlias = Finished | Interrupted
"""What an execution comes to."""

TurnOutcome: TypeAlias = Finished | Interrupted | NextTurn
"""What one turn comes to."""
