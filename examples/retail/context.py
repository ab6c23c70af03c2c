"""The run context of the retail desk: the conversation's database and its session.

One `RetailContext` is made per conversation. The framework copies it shallowly for
every agent execution and delegation (and maintains the lineage, depth and deadline it
inherits from `ExecutionContext`), so every agent of the conversation shares:

- `db`, a *resource* (`Annotated[..., Resource]`): the SQLAlchemy engine of the
  conversation's database. A durable run never checkpoints it; a run resumed in another
  process gets a new engine from its resource factory (see `harness.durable`).
- `session`, plain data: who the customer is once they are authenticated. It is one
  object shared by reference, so a specialist sees the user the front desk identified.
- `write_key`, a resource set only in durable runs: it returns the running tool call's
  idempotency key, which makes each write exactly-once (see `tools.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated

import sqlalchemy as sa

from cogent.context import ExecutionContext, Resource

__all__ = ["RetailContext", "Session"]


@dataclass(kw_only=True)
class Session:
    """The state of one conversation (plain data), shared by every agent of the desk."""

    user_id: str | None = None
    """The authenticated customer, set by the first successful identification call."""


@dataclass(kw_only=True)
class RetailContext(ExecutionContext):
    """What the retail tools and policy interceptors receive; never sent to the model."""

    db: Annotated[sa.Engine, Resource]
    """The conversation's database; each write tool changes it in one transaction."""
    session: Session = field(default_factory=Session)
    """The conversation's session, shared with every child context."""
    write_key: Annotated[Callable[[], str] | None, Resource] = None
    """In a durable run, `cogent.durable.idempotency_key`: the key under which a write is made once."""
