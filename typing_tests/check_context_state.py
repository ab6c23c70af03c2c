"""The Resource marker leaves a field's type intact; dump/restore keep the context class."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, assert_type

from cogent import RunContext
from cogent._context_state import ContextLayout, context_layout, dump_state, restore
from cogent.context import Resource


@dataclass
class AppContext(RunContext):
    user_id: str
    db: Annotated[sqlite3.Connection, Resource]
    cache: Annotated[dict[str, str], Resource] = field(default_factory=dict)


@dataclass(frozen=True)
class FrozenContext(RunContext):
    tenant_id: str
    client: Annotated[sqlite3.Connection | None, Resource] = None


def reconnect(state: Mapping[str, Any]) -> dict[str, Any]:
    return {"db": sqlite3.connect(str(state["user_id"]))}


ctx = AppContext(user_id="u", db=sqlite3.connect(":memory:"))
assert_type(ctx.db, sqlite3.Connection)
assert_type(ctx.cache, dict[str, str])
assert_type(FrozenContext(tenant_id="t").client, sqlite3.Connection | None)
assert_type(dump_state(ctx), str)
assert_type(restore(AppContext, dump_state(ctx), resources=reconnect), AppContext)
assert_type(restore(FrozenContext, b"{}"), FrozenContext)
assert_type(context_layout(AppContext), ContextLayout)
assert_type(context_layout(AppContext).state_fields, tuple[str, ...])

AppContext(user_id="u", db="not a connection")  # type: ignore[arg-type]
ctx.db.no_such_method()  # type: ignore[attr-defined]
restore(AppContext, "{}", resources=lambda: {})  # type: ignore[arg-type,misc]
restore(AppContext, {"user_id": "u"})  # type: ignore[arg-type]
restore(AppContext, "{}", reconnect)  # type: ignore[call-arg]
dump_state("not a context")  # type: ignore[arg-type]
Resource()  # type: ignore[operator]
