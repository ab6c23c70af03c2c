"""`RunContext`: subclassing forms, metadata, children, `current_context()`, repr, per-execution copies."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import threading
from dataclasses import dataclass, field
from typing import Any

import pydantic
import pydantic.dataclasses
import pytest
from helpers import echo_model

from cogent import (
    Agent,
    DelegationContext,
    FunctionModel,
    RunContext,
    ToolApprovalItem,
    ToolCall,
    UserError,
    current_context,
    tool,
)
from cogent.messages import Message, ModelResponse
from cogent.models import ModelRequestParameters

pytestmark = pytest.mark.anyio


class Service:
    """A stand-in for a database handle: identity matters, equality does not."""


@dataclass
class AppContext(RunContext):
    """Required fields after the base class's defaulted ones."""

    user_id: str
    db: Service


@dataclass(frozen=True)
class FrozenContext(RunContext):
    """A frozen subclass of the non-frozen base."""

    tenant_id: str


@dataclass(slots=True)
class SlotsContext(RunContext):
    """A slotted subclass."""

    user_id: str


@dataclass(frozen=True, slots=True)
class FrozenSlotsContext(RunContext):
    """Frozen and slotted."""

    user_id: str


@pydantic.dataclasses.dataclass
class PydanticContext(RunContext):
    """A pydantic dataclass subclass: its own fields are validated."""

    user_id: str
    level: int = 0


def make(cls: type[RunContext]) -> RunContext:
    """Build an instance of one of the subclassing forms above."""
    if cls is AppContext:
        return AppContext(user_id="u1", db=Service(), metadata={"k": "v"})
    if cls is FrozenContext:
        return FrozenContext(tenant_id="t1", metadata={"k": "v"})
    return cls(user_id="u1", metadata={"k": "v"})  # type: ignore[call-arg]


FORMS = [AppContext, FrozenContext, SlotsContext, FrozenSlotsContext, PydanticContext]


# --- construction -------------------------------------------------------------------


async def test_base_fields_are_keyword_only() -> None:
    """`RunContext`'s own fields cannot be passed positionally, so subclasses may add required fields."""
    with pytest.raises(TypeError):
        RunContext("a query")  # type: ignore[misc]
    ctx = RunContext(query="q", metadata={"a": 1})
    assert (ctx.query, ctx.metadata, ctx.agent) == ("q", {"a": 1}, None)
    assert RunContext().metadata is not RunContext().metadata


async def test_required_subclass_fields() -> None:
    """Required subclass fields work positionally and by keyword, and are required."""
    db = Service()
    positional = AppContext("u1", db)
    keyword = AppContext(user_id="u1", db=db)
    assert positional == keyword
    assert positional.query == "" and positional.metadata == {}
    with pytest.raises(TypeError, match="user_id"):
        AppContext(db=db)  # type: ignore[call-arg]


async def test_frozen_subclass_refuses_assignment() -> None:
    """A frozen subclass of the non-frozen base can be built and cannot be assigned to."""
    for ctx in (FrozenContext(tenant_id="t"), FrozenSlotsContext(user_id="u")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            ctx.query = "changed"  # type: ignore[misc]
        with pytest.raises(dataclasses.FrozenInstanceError):
            ctx.metadata = {}  # type: ignore[misc]


async def test_frozen_hierarchy_rules_still_apply_within_user_classes() -> None:
    """Frozen-ness is still checked between a user's own classes; frozen subclasses of helpers work."""

    @dataclass(frozen=True)
    class Deeper(FrozenContext):
        extra: int = 0

    assert Deeper(tenant_id="t", extra=2).extra == 2
    with pytest.raises(TypeError, match="non-frozen dataclass from a frozen one"):

        @dataclass
        class Thawed(FrozenContext):
            extra: int = 0

    @dataclass(frozen=True)
    class FrozenDelegation(DelegationContext):
        tenant_id: str = "t"

    child = FrozenDelegation().create_child_context()
    assert (type(child), child.depth) == (FrozenDelegation, 1)


async def test_slots_subclass_has_slots() -> None:
    """`slots=True` subclasses keep their slots and work as contexts."""
    assert "user_id" in SlotsContext.__slots__
    assert "user_id" in FrozenSlotsContext.__slots__
    assert SlotsContext(user_id="u").user_id == "u"


async def test_pydantic_dataclass_subclass_validates_its_fields() -> None:
    """A pydantic dataclass subclass validates (and coerces) its fields like any pydantic dataclass."""
    assert PydanticContext(user_id="u", level="3").level == 3  # type: ignore[arg-type]
    with pytest.raises(pydantic.ValidationError):
        PydanticContext(user_id="u", level="high")  # type: ignore[arg-type]


# --- get / with_metadata ------------------------------------------------------------


@pytest.mark.parametrize("cls", FORMS, ids=lambda c: c.__name__)
async def test_get_and_with_metadata_for_every_form(cls: type[RunContext]) -> None:
    """`with_metadata` returns a new instance of the same class with a new merged dict; the original is untouched."""
    ctx = make(cls)
    before = dict(ctx.metadata)
    new = ctx.with_metadata(extra=1, k="replaced")
    assert type(new) is cls
    assert new is not ctx
    assert new.metadata == {"k": "replaced", "extra": 1}
    assert new.metadata is not ctx.metadata
    assert ctx.metadata == before
    assert ctx.get("k") == "v" and new.get("k") == "replaced"
    assert ctx.get("missing") is None and ctx.get("missing", 5) == 5
    for f in dataclasses.fields(ctx):
        if f.name != "metadata":
            assert getattr(new, f.name) is getattr(ctx, f.name)


async def test_with_metadata_keeps_the_agent() -> None:
    """Inside a run, `with_metadata` keeps the executing agent on the copy."""
    seen: list[RunContext] = []

    @tool
    def extend(ctx: RunContext) -> str:
        new = ctx.with_metadata(step=1)
        seen.extend([ctx, new])
        return "ok"

    agent = Agent(name="keeper", model=echo_model(ToolCall("extend", {})), tools=[extend])
    await agent.run("go")
    ctx, new = seen
    assert ctx.agent is agent and new.agent is agent
    assert "step" not in ctx.metadata and new.metadata == {"step": 1}


# --- create_child_context -------------------------------------------------------------


@pytest.mark.parametrize("cls", FORMS, ids=lambda c: c.__name__)
async def test_create_child_context(cls: type[RunContext]) -> None:
    """A child is the same class with the query kept, a copied metadata dict, no agent, and shared services."""
    parent = make(cls)
    object.__setattr__(parent, "query", "original question")
    object.__setattr__(parent, "agent", Agent(name="parent", model="test"))
    child = parent.create_child_context()
    assert type(child) is cls
    assert child is not parent
    assert child.query == "original question"
    assert child.metadata == parent.metadata and child.metadata is not parent.metadata
    assert child.agent is None
    assert parent.agent is not None and parent.agent.name == "parent"
    child.metadata["only_child"] = True
    assert "only_child" not in parent.metadata
    if cls is AppContext:
        assert child.db is parent.db  # type: ignore[attr-defined]


async def test_subagent_gets_a_child_and_the_parent_is_untouched() -> None:
    """Delegation runs the subagent on a child context; writes there never reach the parent."""
    seen: dict[str, RunContext] = {}

    @tool
    def child_tool(ctx: AppContext) -> str:
        seen["child"] = ctx
        ctx.metadata["written_by_child"] = True
        return "child done"

    @tool
    def parent_tool(ctx: AppContext) -> str:
        seen["parent"] = ctx
        return "parent done"

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if any(isinstance(m, ModelResponse) for m in messages):
            return "finished"
        if info.agent_name == "boss":
            return [ToolCall("parent_tool", {}), ToolCall("worker", {"task": "do it"})]
        return ToolCall("child_tool", {})

    model = FunctionModel(respond)
    worker = Agent(name="worker", model=model, tools=[child_tool])
    boss = Agent(name="boss", model=model, tools=[parent_tool], subagents=[worker])
    caller = AppContext(user_id="u", db=Service(), metadata={"m": 1})
    result = await boss.run("question", context=caller)
    parent, child = seen["parent"], seen["child"]
    assert parent is result.context
    assert child is not parent and type(child) is AppContext
    assert (child.agent, parent.agent) == (worker, boss)
    assert child.query == parent.query == "question"
    assert child.db is caller.db
    assert "written_by_child" not in parent.metadata and "written_by_child" not in caller.metadata


# --- current_context ---------------------------------------------------------------------


async def test_current_context_in_async_and_threaded_sync_tools() -> None:
    """`current_context()` returns the injected context in async tools and in sync tools on worker threads."""
    loop_thread = threading.get_ident()
    seen: dict[str, Any] = {}

    @tool
    async def in_async(ctx: RunContext) -> str:
        seen["async"] = (current_context(), ctx)
        return "a"

    @tool
    def in_thread(ctx: RunContext) -> str:
        seen["thread"] = (current_context(), ctx, threading.get_ident())
        return "t"

    @tool
    def without_parameter() -> str:
        seen["no_param"] = current_context()
        return "n"

    model = echo_model(ToolCall("in_async", {}), ToolCall("in_thread", {}), ToolCall("without_parameter", {}))
    agent = Agent(name="a", model=model, tools=[in_async, in_thread, without_parameter])
    result = await agent.run("go", context=AppContext(user_id="u", db=Service()))
    assert seen["async"][0] is seen["async"][1] is result.context
    assert seen["thread"][0] is seen["thread"][1] is result.context
    assert seen["thread"][2] != loop_thread
    assert seen["no_param"] is result.context


async def test_current_context_follows_delegation() -> None:
    """Inside a subagent `current_context()` is the child; back in the parent it is the parent's again."""
    seen: list[tuple[str, RunContext]] = []

    @tool
    def probe(label: str) -> str:
        seen.append((label, current_context()))
        return label

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        turns = sum(isinstance(m, ModelResponse) for m in messages)
        if info.agent_name == "sub":
            return ToolCall("probe", {"label": "sub"}) if turns == 0 else "sub done"
        script = [
            ToolCall("probe", {"label": "before"}),
            ToolCall("sub", {"task": "t"}),
            ToolCall("probe", {"label": "after"}),
        ]
        return script[turns] if turns < len(script) else "done"

    sub = Agent(name="sub", model=FunctionModel(respond), tools=[probe])
    top = Agent(name="top", model=FunctionModel(respond), tools=[probe], subagents=[sub])
    result = await top.run("go")
    by_label = dict(seen)
    assert by_label["before"] is result.context and by_label["after"] is result.context
    assert by_label["sub"] is not result.context and by_label["sub"].agent is sub


async def test_current_context_outside_a_run_raises_lookup_error() -> None:
    """Outside a run `current_context()` raises LookupError with an explanation."""
    with pytest.raises(LookupError, match="outside an agent run"):
        current_context()


def test_current_context_outside_a_run_in_a_thread() -> None:
    """A plain thread that is not a tool has no current context."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            current_context()
        except LookupError as exc:
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    assert len(errors) == 1


# --- repr ----------------------------------------------------------------------------


async def test_repr_masks_secrets_and_omits_repr_false_fields() -> None:
    """repr hides secret-named fields and metadata values, and leaves out repr=False fields and the query."""

    @dataclass
    class Credentials(RunContext):
        user_id: str
        api_key: str
        db_password: str
        session_token: str
        internal: str = field(default="hidden-internal", repr=False)

    ctx = Credentials(
        user_id="visible-user",
        api_key="sk-123",
        db_password="hunter2",
        session_token="tok-9",
        query="the user's question",
        metadata={"request_id": "req-1", "client_secret": "shh", "nested": {"x": 1}},
    )
    text = repr(ctx)
    assert text.startswith(f"{Credentials.__qualname__}(")  # like a dataclass repr
    assert "visible-user" in text and "req-1" in text and "'nested': {'x': 1}" in text
    for hidden in ("sk-123", "hunter2", "tok-9", "shh", "hidden-internal", "the user's question"):
        assert hidden not in text
    assert "api_key='***'" in text and "'client_secret': '***'" in text
    assert "internal" not in text and "query" not in text


async def test_the_executing_agent_is_not_data_of_the_context() -> None:
    """The framework-set `agent` is neither in the repr nor compared: the run's copy (with its agent) equals the
    caller's context with the same field values."""
    agent = Agent(name="a", model="test")
    caller = AppContext(user_id="u", db=Service(), query="q")
    result = await agent.run("q", context=caller)
    assert result.context.agent is agent
    assert result.context == caller
    assert repr(result.context) == repr(caller)
    assert "agent" not in repr(result.context)


async def test_a_mixins_init_subclass_runs_for_context_subclasses() -> None:
    """`RunContext.__init_subclass__` cooperates: a mixin's own `__init_subclass__` (e.g. a registry) still runs,
    and class keyword arguments reach it."""
    registry: dict[str, type[Any]] = {}

    class Registered:
        def __init_subclass__(cls, key: str = "", **kwargs: Any) -> None:
            super().__init_subclass__(**kwargs)
            registry[key or cls.__name__] = cls

    @dataclass
    class Tenant(RunContext, Registered, key="tenant"):
        tenant_id: str = "t"

    assert registry == {"tenant": Tenant}
    assert Tenant().tenant_id == "t"


async def test_custom_repr_is_kept() -> None:
    """A subclass that defines its own __repr__ keeps it."""

    @dataclass
    class Custom(RunContext):
        def __repr__(self) -> str:
            return "custom!"

    assert repr(Custom()) == "custom!"


# --- per-execution copies ----------------------------------------------------------------


async def test_result_context_is_a_copy_sharing_services() -> None:
    """The run executes on a copy: same class and values, services shared, metadata dict not shared."""
    seen: list[RunContext] = []

    @tool
    def grab(ctx: AppContext) -> str:
        seen.append(ctx)
        ctx.metadata["tool_wrote"] = True
        return "ok"

    agent = Agent(name="a", model=echo_model(ToolCall("grab", {})), tools=[grab])
    caller = AppContext(user_id="u", db=Service(), metadata={"m": 1})
    result = await agent.run("hello", context=caller)
    assert result.context is seen[0]
    assert result.context is not caller
    assert type(result.context) is AppContext
    assert result.context.db is caller.db and result.context.user_id == "u"
    assert result.context.agent is agent and caller.agent is None
    assert result.context.metadata == {"m": 1, "tool_wrote": True}
    assert caller.metadata == {"m": 1}


async def test_a_run_never_writes_the_callers_query() -> None:
    """The run's input fills the execution copy's empty query, never the caller's object: a context reused by a
    second run (or shared by concurrent runs) never shows another run's input."""
    agent = Agent(name="a", model="test")
    reused = AppContext(user_id="u", db=Service())
    first = await agent.run("first input", context=reused)
    assert reused.query == "" and first.context.query == "first input"
    second = await agent.run("second input", context=reused)
    assert reused.query == "" and second.context.query == "second input"

    frozen = FrozenContext(tenant_id="t")
    result = await agent.run("frozen input", context=frozen)
    assert frozen.query == ""
    assert result.context.query == "frozen input"

    preset = AppContext(user_id="u", db=Service(), query="the user's original question")
    assert (await agent.run("a follow-up", context=preset)).context.query == "the user's original question"


async def test_no_context_gives_a_fresh_context_per_run() -> None:
    """`context=None` gives each run its own RunContext: writes in one run are invisible to the next."""
    seen: list[RunContext] = []

    @tool
    def write(ctx: RunContext) -> str:
        seen.append(ctx)
        previous = ctx.get("count", 0)
        ctx.metadata["count"] = previous + 1
        return str(previous)

    agent = Agent(name="a", model=echo_model(ToolCall("write", {})), tools=[write])
    first = await agent.run("one")
    second = await agent.run("two")
    assert first.output == second.output == "0"
    assert seen[0] is not seen[1]
    assert type(seen[0]) is RunContext
    assert (seen[0].query, seen[1].query) == ("one", "two")


async def test_dict_context_is_metadata() -> None:
    """`context={...}` is accepted as `RunContext(metadata={...})` and the caller's dict is not modified."""
    seen: list[RunContext] = []

    @tool
    def read(ctx: RunContext) -> str:
        seen.append(ctx)
        ctx.metadata["added"] = 1
        return str(ctx.get("request_id"))

    agent = Agent(name="a", model=echo_model(ToolCall("read", {})), tools=[read])
    data = {"request_id": "req-42"}
    result = await agent.run("go", context=data)
    assert result.output == "req-42"
    assert type(seen[0]) is RunContext
    assert data == {"request_id": "req-42"}


async def test_wrong_context_kind_is_a_user_error() -> None:
    """A context that is neither a RunContext, a dict nor None is refused with a helpful message."""
    from cogent import UserError

    agent = Agent(name="a", model="test")
    with pytest.raises(UserError, match="pass a RunContext"):
        await agent.run("go", context="not a context")  # type: ignore[arg-type]


# --- copies, decisions and serialization ---------------------------------------------------------


@pytest.mark.parametrize("cls", FORMS)
async def test_pickle_and_deepcopy_keep_the_fields_and_drop_the_decisions(cls: type[RunContext]) -> None:
    """A pickled or deep-copied context (every subclassing form) has the same fields and none of the original's
    approval decisions."""
    original = make(cls)
    pending = ToolApprovalItem(tool_name="wipe", call_id="c1", arguments="{}", agent_name="a")
    original.approve_tool(pending, always_approve=True)
    for copied in (pickle.loads(pickle.dumps(original)), copy.deepcopy(original)):
        assert type(copied) is cls
        assert {f.name: getattr(copied, f.name) for f in dataclasses.fields(copied) if f.name != "db"} == {
            f.name: getattr(original, f.name) for f in dataclasses.fields(original) if f.name != "db"
        }
        assert copied.approval_status(pending) == "undecided"
    assert original.approval_status(pending) == "approved"


async def test_deciding_something_that_is_not_an_approval_item_is_a_user_error() -> None:
    """`approve_tool` / `reject_tool` need the ToolApprovalItem from `result.interruptions`; anything else (e.g. a
    call id) is refused with a UserError naming the method."""
    ctx = RunContext()
    with pytest.raises(UserError, match=r"RunContext.approve_tool\(\) needs a ToolApprovalItem .* got str"):
        ctx.approve_tool("c1")  # type: ignore[arg-type]
    with pytest.raises(UserError, match=r"RunContext.reject_tool\(\) needs a ToolApprovalItem .* got dict"):
        ctx.reject_tool({"call_id": "c1"})  # type: ignore[arg-type]


async def test_a_context_inside_a_tool_result_is_never_serialized() -> None:
    """A tool that returns its context (or a structure holding it) sends the model a placeholder, never its fields."""

    @tool
    def leak(ctx: AppContext) -> dict[str, Any]:
        return {"user": ctx.user_id, "context": ctx}

    agent = Agent(name="a", model=echo_model(ToolCall("leak", {})), tools=[leak])
    result = await agent.run("go", context=AppContext(user_id="u1", db=Service(), metadata={"secret": "s3cr3t"}))
    assert json.loads(result.output) == {"user": "u1", "context": "<AppContext: a run context is never serialized>"}


async def test_a_context_class_whose_init_skips_runcontexts_is_a_user_error() -> None:
    """A plain (non-dataclass) subclass whose `__init__` does not call `super().__init__()` has no metadata: running
    with it is a UserError saying how to fix the class."""

    class Handmade(RunContext):
        def __init__(self, user_id: str) -> None:
            self.user_id = user_id

    agent = Agent(name="a", model="test")
    match = r"Handmade has no `metadata` or `query` attribute.*call super\(\).__init__\(\)"
    with pytest.raises(UserError, match=match):
        await agent.run("go", context=Handmade("u1"))


async def test_create_child_context_must_return_a_context() -> None:
    """An override of `create_child_context()` that returns something else fails the delegation with a UserError."""

    @dataclass
    class Broken(RunContext):
        def create_child_context(self) -> Any:
            return {"depth": 1}

    sub = Agent(name="sub", model="test", description="Helps.")
    parent = Agent(name="parent", model=echo_model(ToolCall("sub", {"task": "t"})), subagents=[sub])
    with pytest.raises(UserError, match=r"Broken.create_child_context\(\) returned a dict; return a RunContext"):
        await parent.run("go", context=Broken())
