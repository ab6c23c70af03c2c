"""The run context of the retail support desk: the task's database and the conversation's session.

One `RetailContext` is created per conversation (per tau2 task). The framework copies it
shallowly for every agent execution and every delegation, so the database and the
`Session` object are shared by reference: when the front desk authenticates the
customer, a specialist it delegates to sees the same `session.user_id`, and a
specialist's writes land in the same database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cogent.context import ExecutionContext

from .store import RetailDB

__all__ = ["RetailContext", "Session"]


@dataclass(kw_only=True)
class Session:
    """The state of one conversation that every agent of the desk shares."""

    user_id: str | None = None
    """The authenticated customer, set by a successful identification tool call."""


@dataclass(kw_only=True)
class RetailContext(ExecutionContext):
    """What the retail tools and the policy interceptors receive; never sent to the model.

    Inherits the task lineage, delegation depth and deadline of `ExecutionContext`,
    which the framework maintains.
    """

    db: RetailDB
    """The task's database (a copy-on-write view of `data/db.json`)."""
    session: Session = field(default_factory=Session)
    """The conversation's session, shared with every child context."""
