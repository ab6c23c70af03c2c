"""The run context: typed dependencies for tools, interceptors and subagents.

Subclass `RunContext` with your own fields (ids, permissions, database handles, API
clients) and pass an instance to `agent.run(..., context=...)`. Every tool,
interceptor, approval handler or instructions callable that declares a parameter
annotated with `RunContext` (or a subclass) receives the run's context. Nothing in
the context is ever sent to the model.

The helper contexts (`DelegationContext`, `TaskContext`, `RetryContext`,
`TimedContext`, `ExecutionContext`) carry fields the framework itself maintains:
delegation depth, task lineage, retry counts and deadlines.
"""

from __future__ import annotations

import copy
import functools
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from pydantic_core import SchemaSerializer, core_schema
from typing_extensions import dataclass_transform

from ._decisions import (
    APPROVALS_ATTR,
    ApprovalRecord,
    ApprovalStatus,
    ApprovalStore,
    ToolApprovalItem,
    decision_key,
)
from ._resources import Resource, SpanAttribute
from ._secrets import MASK, is_secret_name, masked_repr
from .core import generate_id, now_utc
from .exceptions import UserError

if TYPE_CHECKING:
    from .agent import Agent

__all__ = [
    "ApprovalStatus",
    "DelegationContext",
    "ExecutionContext",
    "Resource",
    "RetryContext",
    "RunContext",
    "SpanAttribute",
    "TaskContext",
    "TimedContext",
    "ToolApprovalItem",
    "current_context",
    "is_secret_name",
]

# --- Frozen subclasses -------------------------------------------------------------
#
# `dataclasses` refuses a frozen subclass of a non-frozen dataclass (and the reverse).
# The context classes below must accept both, so their `__dataclass_params__` is
# replaced by `_NeutralParams`, whose `frozen` reports the frozen flag of the subclass
# that `@dataclass` is processing at that moment. `dataclasses` stores a class's own
# parameters before it checks its bases, and `RunContext.__init_subclass__` records
# the class being created in this thread, so the check always compares the subclass
# with itself. Frozen-ness within a user's own hierarchy is still checked as usual.

_being_defined = threading.local()


class _NeutralParams:
    """Dataclass parameters that agree with whichever subclass is being decorated."""

    def __init__(self, params: Any) -> None:
        self._params = params

    def __getattr__(self, name: str) -> Any:
        return getattr(self._params, name)

    @property
    def frozen(self) -> bool:
        cls = getattr(_being_defined, "cls", None)
        if cls is not None and "__dataclass_fields__" not in cls.__dict__:
            own = cls.__dict__.get("__dataclass_params__")
            if own is not None:
                return bool(own.frozen)
        return False

    def __repr__(self) -> str:
        return repr(self._params)


def _neutral(cls: type[Any]) -> type[Any]:
    cls.__dataclass_params__ = _NeutralParams(cls.__dataclass_params__)
    return cls


class Running(NamedTuple):
    """What runs in the current task or thread: the context, and the run loop's execution."""

    ctx: RunContext
    """The context of the innermost executing agent or tool (what `current_context()` returns)."""
    execution: Any
    """The run loop's execution (opaque here), so a run started inside a tool can find its parent."""


running: ContextVar[Running] = ContextVar("cogent_running")
"""Set by the run loop for each execution (and each retried tool call's context view)."""

if TYPE_CHECKING:
    # For type checkers only (a no-op `type` at run time): a class that names a
    # dataclass_transform metaclass directly is "neither frozen nor non-frozen" (PEP 681),
    # so mypy accepts both frozen and non-frozen subclasses, as the runtime mechanism
    # above does. Type checkers then ignore these classes' own `@dataclass(kw_only=True)`,
    # so each field of theirs also says `kw_only=True` (a no-op at run time).

    @dataclass_transform(field_specifiers=(field,))
    class _ContextMeta(type):
        """Marks the context classes as dataclass-like for type checkers."""

else:
    _ContextMeta = type


@_neutral
@dataclass(kw_only=True)
class RunContext(metaclass=_ContextMeta):
    """The context of one agent execution: your dependencies, never the model's input.

    Subclass it with `@dataclass` (required fields, `frozen=True`, `slots=True` and
    pydantic dataclasses all work) and add your own fields. The base fields are
    keyword-only.
    """

    query: str = field(default="", repr=False, kw_only=True)
    """The input of the top-level run; filled in by the first `agent.run()` when empty."""
    metadata: dict[str, Any] = field(default_factory=dict, kw_only=True)
    """Untyped extension data. Copied (not shared) into child contexts."""
    if TYPE_CHECKING:
        agent: Agent[Any, Any] | None = field(default=None, init=False, repr=False, compare=False)
        """The agent executing this context (set by the framework)."""
    else:
        agent: Any = field(default=None, init=False, repr=False, compare=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _being_defined.cls = cls
        if "__repr__" not in cls.__dict__:
            # Claim __repr__ before @dataclass runs, so the secret-masking one is kept.
            cls.__repr__ = RunContext.__repr__  # type: ignore[method-assign]
        mro = cls.__mro__
        task, delegation = globals().get("TaskContext"), globals().get("DelegationContext")
        if task in mro and delegation in mro and mro.index(task) < mro.index(delegation):
            raise UserError(
                f"{cls.__name__} lists TaskContext before DelegationContext; both define `depth`. "
                "List DelegationContext first (or inherit from ExecutionContext)."
            )

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            if not f.repr:
                continue
            value: Any = getattr(self, f.name, None)
            text = MASK if is_secret_name(f.name) else masked_repr(value)
            parts.append(f"{f.name}={text}")
        return f"{type(self).__qualname__}({', '.join(parts)})"

    def get(self, key: str, default: Any = None) -> Any:
        """Return `metadata[key]`, or `default` when the key is absent.

        Args:
            key: The metadata key.
            default: What to return when `key` is not in the metadata.
        """
        return self.metadata.get(key, default)

    def with_metadata(self, **kwargs: Any) -> Self:
        """Return a copy of this context with `kwargs` merged into a new metadata dict.

        The original context and its metadata dict are left untouched; every other
        field is shared with the copy (a shallow copy).

        Args:
            **kwargs: Metadata entries to add or replace.

        Returns:
            A new instance of the same class.
        """
        new = copy.copy(self)
        object.__setattr__(new, "metadata", {**self.metadata, **kwargs})
        return new

    def create_child_context(self) -> Self:
        """Return the context a subagent executes with when this context delegates.

        The child is a shallow copy of the same class: `query` is preserved, `metadata`
        is copied (writes in the child never reach the parent), and the helper fields
        advance (depth + 1, new task id with the lineage extended, retry counters reset,
        deadline inherited). The framework sets `agent` on the result. Override it to
        build children your own way; the framework calls your override (and still
        copies the metadata dict, or the object, if your override hands over the
        parent's own, so delegation never modifies the parent).

        Returns:
            A new instance of the same class.
        """
        child = copy.copy(self)
        for name, value in self._child_updates().items():
            object.__setattr__(child, name, value)
        return child

    def _child_updates(self) -> dict[str, Any]:
        """Return the field values a child context gets; helpers extend it cooperatively."""
        return {"metadata": dict(self.metadata), "agent": None}

    def __copy__(self) -> Self:
        """Return a shallow copy: same field values, but none of this context's approval decisions."""
        cls = type(self)
        new = cls.__new__(cls)
        state = new.__dict__
        state.update(self.__dict__)
        state.pop(APPROVALS_ATTR, None)
        for name in _slot_names(cls):
            if hasattr(self, name):
                object.__setattr__(new, name, getattr(self, name))
        return new

    def __getstate__(self) -> Any:
        """The state `pickle` and `copy.deepcopy()` copy: the fields, never the approval decisions."""
        state = super().__getstate__()
        attributes = state[0] if isinstance(state, tuple) else state
        if isinstance(attributes, dict) and APPROVALS_ATTR in attributes:
            attributes = {k: v for k, v in attributes.items() if k != APPROVALS_ATTR}
            state = (attributes, state[1]) if isinstance(state, tuple) else attributes
        return state

    # --- approvals (the OpenAI Agents SDK's RunContextWrapper API) ---
    #
    # Decisions live in a store attached to this object. `copy.copy()`, `with_metadata()` and
    # `dataclasses.replace()` copies start without decisions; the run loop shares the store
    # with the execution copy of a run (`result.context`) and with child contexts.

    def _approvals(self) -> ApprovalStore:
        held: ApprovalStore | RunContext | None = self.__dict__.get(APPROVALS_ATTR)
        if held is None:
            held = ApprovalStore()
            object.__setattr__(self, APPROVALS_ATTR, held)
        elif isinstance(held, RunContext):  # shares the decisions of the context it was made from
            return held._approvals()
        return held

    def approval_status(self, item: ToolApprovalItem) -> ApprovalStatus:
        """Return the decision that applies to one pending call: what the run loop asks.

        A permanent decision for the tool applies first (approval wins when both a permanent
        approval and a permanent rejection exist); otherwise the per-call decision recorded
        for exactly this item (same run, delegation path, call id, tool and arguments).

        Args:
            item: The pending call.

        Returns:
            `"approved"`, `"rejected"` or `"undecided"`.
        """
        store = self._approvals()
        record = store.records.get(item.tool_name)
        if record is not None and record.approved is True:
            return "approved"
        if record is not None and record.rejected is True:
            return "rejected"
        decision = store.per_item.get(decision_key(item))
        if decision is None:
            return "undecided"
        return "approved" if decision else "rejected"

    def is_tool_approved(self, tool_name: str, call_id: str) -> bool | None:
        """Return the recorded decision for a tool call, by tool name and call id.

        Semantics of the OpenAI Agents SDK's `RunContextWrapper.is_tool_approved`: a
        permanent decision applies to every call of the tool (approval wins when both
        exist); otherwise the per-call decision for `call_id`. The run loop itself matches
        per-call decisions on the whole item (`approval_status`), so a decision never covers
        another run's call that reuses the call id.

        Args:
            tool_name: The tool's name.
            call_id: The tool call's id.

        Returns:
            `True` (approved), `False` (rejected) or `None` (not decided yet).
        """
        record = self._approvals().records.get(tool_name)
        if record is None:
            return None
        if record.approved is True:
            return True
        if record.rejected is True:
            return False
        if isinstance(record.approved, list) and call_id in record.approved:
            return True
        if isinstance(record.rejected, list) and call_id in record.rejected:
            return False
        return None

    def get_approval_status(
        self, tool_name: str, call_id: str, *, existing_pending: ToolApprovalItem | None = None
    ) -> bool | None:
        """Return the decision for a call, also trying the pending item's tool name.

        Args:
            tool_name: The tool's name.
            call_id: The tool call's id.
            existing_pending: A pending item whose `tool_name` is tried when `tool_name`
                has no decision.

        Returns:
            `True`, `False` or `None` as `is_tool_approved`.
        """
        status = self.is_tool_approved(tool_name, call_id)
        if status is None and existing_pending is not None:
            status = self.is_tool_approved(existing_pending.tool_name, call_id)
        return status

    def approve_tool(self, approval_item: ToolApprovalItem, always_approve: bool = False) -> None:
        """Approve a pending tool call, or every call of that tool with `always_approve`.

        Args:
            approval_item: The pending call, from `result.interruptions`.
            always_approve: Approve all future calls of the tool in runs using this context
                (and its execution copies and child contexts; not `with_metadata()` copies).
        """
        self._decide(approval_item, always=always_approve, approve=True)

    def reject_tool(self, approval_item: ToolApprovalItem, always_reject: bool = False) -> None:
        """Reject a pending tool call, or every call of that tool with `always_reject`.

        A rejected call does not run; the model receives a rejection message instead.

        Args:
            approval_item: The pending call.
            always_reject: Reject all future calls of the tool in runs using this context.
        """
        self._decide(approval_item, always=always_reject, approve=False)

    def _decide(self, item: ToolApprovalItem, *, always: bool, approve: bool) -> None:
        if not isinstance(item, ToolApprovalItem):
            verb = "approve_tool" if approve else "reject_tool"
            raise UserError(
                f"{type(self).__qualname__}.{verb}() needs a ToolApprovalItem (from result.interruptions), "
                f"got {type(item).__qualname__}."
            )
        store = self._approvals()
        record = store.records.setdefault(item.tool_name, ApprovalRecord())
        if always:
            record.approved = approve
            record.rejected = [] if approve else True
            return
        store.per_item[decision_key(item)] = approve
        opposite = record.rejected if approve else record.approved
        if isinstance(opposite, list) and item.call_id in opposite:
            opposite.remove(item.call_id)
        target = record.approved if approve else record.rejected
        if isinstance(target, list) and item.call_id not in target:
            target.append(item.call_id)


def _never_serialized(value: Any) -> str:
    return f"<{type(value).__qualname__}: a run context is never serialized>"


# pydantic serializes unknown objects it meets inside a tool's result (nested in lists,
# dicts, dataclasses) by asking for this attribute: a context placed in a result is written
# as a placeholder, never with its fields. Serialization by type (a TypeAdapter of the
# context class) is not affected.
RunContext.__pydantic_serializer__ = SchemaSerializer(  # type: ignore[attr-defined]
    core_schema.any_schema(serialization=core_schema.plain_serializer_function_ser_schema(_never_serialized))
)


@functools.cache
def _slot_names(cls: type[Any]) -> tuple[str, ...]:
    """Return the names of every `__slots__` entry of `cls` and its bases."""
    names: list[str] = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        names.extend((slots,) if isinstance(slots, str) else slots)
    return tuple(n for n in names if n not in ("__dict__", "__weakref__"))


def consume_decision(ctx: RunContext, item: ToolApprovalItem) -> None:
    """Forget the per-call decision for `item` once the run loop acted on it (it covers one call)."""
    store = ctx._approvals()
    if store.per_item.pop(decision_key(item), None) is None:
        return
    record = store.records.get(item.tool_name)
    if record is not None:
        for ids in (record.approved, record.rejected):
            if isinstance(ids, list) and item.call_id in ids:
                ids.remove(item.call_id)


def share_approvals(target: RunContext, source: RunContext) -> None:
    """Make `target` use `source`'s approval decisions (an execution copy, a child or retry view).

    Nothing is allocated until a decision is recorded or asked for: `target` refers to the
    context that owns (or will own) the decisions.
    """
    held = source.__dict__.get(APPROVALS_ATTR)
    object.__setattr__(target, APPROVALS_ATTR, held if isinstance(held, RunContext) else source)


def current_context() -> RunContext:
    """Return the context of the innermost executing agent or tool.

    Works in async code and in sync tools running in worker threads.

    Raises:
        LookupError: If called outside a run.
    """
    try:
        return running.get().ctx
    except LookupError:
        raise LookupError(
            "current_context() was called outside an agent run; call it from a tool, an "
            "interceptor or code that a run executes, or pass the context explicitly."
        ) from None


# --- Helper contexts: fields the framework maintains --------------------------------


@_neutral
@dataclass(kw_only=True)
class DelegationContext(RunContext, metaclass=_ContextMeta):
    """Delegation depth, enforced by the framework.

    Each delegation gives the child `depth + 1`. A delegation from a context whose
    `depth >= max_depth` is refused: the subagent does not run, the model receives an
    error tool result, and the trace records a `delegation_refused` event.
    """

    depth: int = field(default=0, kw_only=True)
    """How many delegations separate this context from the top-level run."""
    max_depth: int = field(default=3, kw_only=True)
    """The depth from which delegations are refused."""

    @property
    def can_delegate(self) -> bool:
        """Whether a delegation from this context is allowed (`depth < max_depth`)."""
        return self.depth < self.max_depth

    def _child_updates(self) -> dict[str, Any]:
        updates = super()._child_updates()
        updates["depth"] = self.depth + 1
        return updates


@_neutral
@dataclass(kw_only=True)
class TaskContext(RunContext, metaclass=_ContextMeta):
    """Task lineage, maintained by the framework.

    Each delegation gives the child a new `task_id`, sets its `parent_task_id` to the
    parent's `task_id` and appends the parent's id to `task_chain`.
    """

    task_id: str = field(default_factory=generate_id, kw_only=True)
    """This execution's task id."""
    parent_task_id: str | None = field(default=None, kw_only=True)
    """The delegating execution's task id, `None` at the top level."""
    task_chain: list[str] = field(default_factory=list, kw_only=True)
    """The task ids from the root down to (excluding) this one."""

    @property
    def is_root_task(self) -> bool:
        """Whether this is the top-level task."""
        return self.parent_task_id is None

    @property
    def depth(self) -> int:
        """The number of ancestors (`len(task_chain)`)."""
        return len(self.task_chain)

    def _child_updates(self) -> dict[str, Any]:
        updates = super()._child_updates()
        updates.update(task_id=generate_id(), parent_task_id=self.task_id, task_chain=[*self.task_chain, self.task_id])
        return updates


@_neutral
@dataclass(kw_only=True)
class RetryContext(RunContext, metaclass=_ContextMeta):
    """Retry tracking, maintained by the framework.

    A tool call that retries an earlier failed call of the same tool (after
    `ModelRetry` or an argument validation error) receives a copy of the context with
    `retry_count` set to the number of failures so far and `is_retry=True`.
    `max_retries` bounds the retries of each tool in runs using this context. Only
    instances of this class (and its subclasses, `ExecutionContext` included) get this
    behaviour: a hand-written class that merely has fields of these names (like the
    spec's own `RetryContext`) keeps them as plain data; inherit from this class instead.
    """

    retry_count: int = field(default=0, kw_only=True)
    """How many times the current tool call has failed before."""
    max_retries: int = field(default=3, kw_only=True)
    """The number of retries allowed per tool."""
    is_retry: bool = field(default=False, kw_only=True)
    """Whether the current tool call is a retry."""

    def _child_updates(self) -> dict[str, Any]:
        updates = super()._child_updates()
        updates.update(retry_count=0, is_retry=False)
        return updates


@_neutral
@dataclass(kw_only=True)
class TimedContext(RunContext, metaclass=_ContextMeta):
    """A deadline, enforced by the framework.

    Model requests, tool calls and subagents run inside an anyio cancel scope that
    ends at `deadline`; when it passes, `run()` raises `DeadlineExceeded`. Children
    inherit the deadline and get their own `started_at`.
    """

    started_at: datetime = field(default_factory=now_utc, kw_only=True)
    """When this execution started (UTC)."""
    deadline: datetime | None = field(default=None, kw_only=True)
    """When the run must be finished (timezone-aware), or `None`."""

    @property
    def elapsed_seconds(self) -> float:
        """Seconds since `started_at`."""
        return (now_utc() - self.started_at).total_seconds()

    @property
    def is_overdue(self) -> bool:
        """Whether the deadline has passed."""
        return self.deadline is not None and now_utc() > self.deadline

    @property
    def remaining_seconds(self) -> float | None:
        """Seconds until the deadline (negative when overdue), or `None` without one."""
        if self.deadline is None:
            return None
        return (self.deadline - now_utc()).total_seconds()

    def _child_updates(self) -> dict[str, Any]:
        updates = super()._child_updates()
        updates["started_at"] = now_utc()
        return updates


@_neutral
@dataclass(kw_only=True)
class ExecutionContext(DelegationContext, TaskContext, RetryContext, TimedContext, metaclass=_ContextMeta):
    """The spec's combined context: lineage, depth, retries and a deadline.

    All the helper behaviours apply; `create_child_context()` produces what the spec's
    `ExecutionContext.create_child_context()` does (new task id, parent id, depth + 1,
    metadata, fresh `started_at`, inherited deadline), plus the extended `task_chain`.
    """

    max_depth: int = field(default=5, kw_only=True)
    """The depth from which delegations are refused (the spec's default: 5)."""
