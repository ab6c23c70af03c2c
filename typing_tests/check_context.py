"""Context methods keep the subclass type; tools, interceptors and helpers are typed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, assert_type

import pydantic

from cogent import (
    DelegationContext,
    ExecutionContext,
    RunContext,
    TaskContext,
    TimedContext,
    ToolApprovalItem,
    current_context,
)
from cogent.interceptors import InterceptContext, Interceptor, InterceptResult, Phase, interceptor


@dataclass
class AppContext(RunContext):
    user_id: str


@dataclass(frozen=True)
class FrozenContext(RunContext):
    tenant_id: str


@dataclass
class Execution(ExecutionContext):
    user_id: str = "u"


# Frozen, slotted and pydantic subclasses, also of the helpers, with required fields that
# follow the (keyword-only) base fields.
@dataclass(frozen=True)
class FrozenExecution(ExecutionContext):
    tenant_id: str


@dataclass(frozen=True)
class FrozenHelpers(DelegationContext, TimedContext):
    tenant_id: str


@dataclass(slots=True)
class Slotted(RunContext):
    user_id: str


@pydantic.dataclasses.dataclass
class Validated(RunContext):
    user_id: str
    limit: int = 10


FrozenExecution("acme", depth=1, max_depth=2)
FrozenHelpers(tenant_id="acme", deadline=None)
Slotted("u", query="q", metadata={})
Validated(user_id="u")
FrozenContext(tenant_id="t").tenant_id = "other"  # type: ignore[misc]
AppContext("u", "positional metadata")  # type: ignore[call-arg]


ctx = AppContext(user_id="u")
assert_type(ctx.with_metadata(request_id="r"), AppContext)
assert_type(FrozenContext(tenant_id="t").with_metadata(a=1), FrozenContext)
assert_type(ctx.create_child_context(), AppContext)
assert_type(Execution().create_child_context(), Execution)
assert_type(ctx.get("key"), Any)
assert_type(ctx.metadata, dict[str, Any])
assert_type(ctx.query, str)
assert_type(current_context(), RunContext)

assert_type(DelegationContext().can_delegate, bool)
assert_type(TaskContext().task_chain, list[str])
assert_type(TaskContext().parent_task_id, str | None)
assert_type(TimedContext().remaining_seconds, float | None)
assert_type(Execution().depth, int)

item = ToolApprovalItem(tool_name="t", call_id="c", arguments="{}", agent_name="a")
assert_type(ctx.is_tool_approved("t", "c"), bool | None)
ctx.approve_tool(item, always_approve=True)
ctx.approve_tool("t")  # type: ignore[arg-type]

AppContext()  # type: ignore[call-arg]
AppContext(user_id=1)  # type: ignore[arg-type]


@interceptor(Phase.PRE_ACT)
def gate(call: InterceptContext, ctx: AppContext) -> InterceptResult | None:
    assert_type(call.run_context, RunContext)
    assert_type(call.tool_args, dict[str, Any] | None)
    return InterceptResult.stop("no") if ctx.user_id == "blocked" else None


assert_type(gate, Interceptor)
assert_type(InterceptResult.continue_(), InterceptResult)
assert_type(InterceptResult.modify_args(x=1), InterceptResult)


class Gate(Interceptor):
    def pre_act(self, context: InterceptContext) -> InterceptResult | None:
        return InterceptResult.skip("refused")


class ContextAwareGate(Interceptor):
    async def pre_act(self, call: InterceptContext, ctx: AppContext) -> InterceptResult | None:
        return InterceptResult.stop("no") if ctx.user_id == "blocked" else None


class EveryPhase(Interceptor):
    async def intercept(self, phase: Phase, context: InterceptContext) -> InterceptResult:
        return InterceptResult.continue_()
