"""`@tool`: context parameter detection, schemas, descriptions, options and execution."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Generic, NewType, Optional, Protocol, TypeVar, runtime_checkable

import anyio
import anyio.lowlevel
import pytest
from helpers import echo_model as call_then_echo
from pydantic import Field

from cogent import (
    Agent,
    BaseTool,
    ContextTypeError,
    FunctionModel,
    RunContext,
    ScriptedModel,
    Tool,
    ToolCall,
    ToolDefinition,
    UserError,
    tool,
)
from cogent.messages import Message, RetryPrompt, ToolReturn
from cogent.models import ModelRequestParameters


@dataclass
class AppContext(RunContext):
    """A context with a required field, as applications write them."""

    user_id: str


@dataclass
class OtherContext(RunContext):
    """A context class unrelated to `AppContext`."""

    tenant: str = "t"


def context_of(t: Tool[Any, Any]) -> tuple[str, type[Any]] | None:
    """Return (name, class) of a tool's injected parameter, or None."""
    c = t.schema.context
    return None if c is None else (c.name, c.cls)


def properties(t: Tool[Any, Any]) -> dict[str, Any]:
    """Return the JSON schema properties the model sees for `t`."""
    return dict(t.definition.parameters_json_schema.get("properties", {}))


# --- context parameter detection ------------------------------------------------------


def test_context_first_last_middle_any_name() -> None:
    """The context parameter is found by annotation at any position and under any name."""

    @tool
    def first(c: RunContext, a: int) -> str:
        return ""

    @tool
    def last(a: int, b: str, session: AppContext) -> str:
        return ""

    @tool
    def middle(a: int, run_ctx: AppContext, b: str) -> str:
        return ""

    assert context_of(first) == ("c", RunContext)
    assert context_of(last) == ("session", AppContext)
    assert context_of(middle) == ("run_ctx", AppContext)
    assert first.schema.parameters == ("a",)
    assert last.schema.parameters == ("a", "b")
    assert middle.schema.parameters == ("a", "b")


def test_context_inside_optional_union_and_annotated() -> None:
    """`Optional[X]`, `X | None`, `Annotated[X, ...]` and `Optional[Annotated[X, ...]]` are context parameters."""

    @tool
    def opt(x: int, ctx: Optional[AppContext] = None) -> str:  # noqa: UP045 - the form under test
        return ""

    @tool
    def pipe(x: int, context: AppContext | None = None) -> str:
        return ""

    @tool
    def annotated(deps: Annotated[AppContext, "injected"], x: int) -> str:
        return ""

    @tool
    def opt_annotated(x: int, deps: Optional[Annotated[AppContext, "injected"]] = None) -> str:  # noqa: UP045
        return ""

    assert context_of(opt) == ("ctx", AppContext)
    assert context_of(pipe) == ("context", AppContext)
    assert context_of(annotated) == ("deps", AppContext)
    assert context_of(opt_annotated) == ("deps", AppContext)
    for t in (opt, pipe, annotated, opt_annotated):
        assert list(properties(t)) == ["x"]


T = TypeVar("T")


@dataclass
class Tenant(RunContext, Generic[T]):
    """A generic context class."""

    quota: T | None = None


AdminContext = NewType("AdminContext", AppContext)


class HasUser(Protocol):
    """A structural description of a context with a user id (not runtime-checkable)."""

    user_id: str


@runtime_checkable
class ChecksUser(Protocol):
    """The same, checked with isinstance."""

    user_id: str


@pytest.mark.anyio
async def test_generic_newtype_and_protocol_context_annotations() -> None:
    """A parameterized generic context (`Tenant[int]`) and a NewType of a context class are injected under any name;
    a Protocol annotation is injected on the parameter named `ctx`, and a runtime-checkable one is isinstance-checked
    before the tool runs."""

    @tool
    def quota(deps: Tenant[int], resource: str) -> str:
        return f"{deps.quota} {resource}"

    @tool
    def report(admin: AdminContext, day: str) -> str:
        return f"{admin.user_id} {day}"

    @tool
    def who(ctx: HasUser, shout: bool = False) -> str:
        return ctx.user_id.upper() if shout else ctx.user_id

    @tool
    def checked(ctx: ChecksUser) -> str:
        return ctx.user_id

    assert context_of(quota) == ("deps", Tenant)
    assert context_of(report) == ("admin", AppContext)
    assert context_of(who) == ("ctx", RunContext)
    assert context_of(checked) == ("ctx", ChecksUser)
    assert [list(properties(t)) for t in (quota, report, who, checked)] == [["resource"], ["day"], ["shout"], []]
    assert (
        await Agent(name="a", model=call_then_echo(ToolCall("quota", {"resource": "GB"})), tools=[quota]).run(
            "go", context=Tenant(quota=5)
        )
    ).output == "5 GB"
    agent = Agent(name="a", model=call_then_echo(ToolCall("who", {}), ToolCall("checked", {})), tools=[who, checked])
    assert (await agent.run("go", context=AppContext(user_id="u1"))).output == "u1|u1"
    with pytest.raises(ContextTypeError, match="ChecksUser"):
        await agent.run("go", context=OtherContext())


def test_a_parameter_named_ctx_with_a_loose_annotation_is_the_context() -> None:
    """`ctx` annotated `Any`, `object` or a Protocol (each also `| None`) receives the context; `ctx` annotated with
    an ordinary type, or a union of two, is a model argument like any other."""

    @tool
    def any_ctx(ctx: Any, q: str) -> str:
        return q

    @tool
    def object_ctx(q: str, ctx: object | None = None) -> str:
        return q

    @tool
    def protocol_ctx(q: str, ctx: ChecksUser | None = None) -> str:
        return q

    @tool
    def typed_ctx(ctx: int, q: str) -> str:
        return q

    @tool
    def union_ctx(ctx: int | str, q: str) -> str:
        return q

    assert [context_of(t) for t in (any_ctx, object_ctx, protocol_ctx)] == [
        ("ctx", RunContext),
        ("ctx", RunContext),
        ("ctx", ChecksUser),
    ]
    for t in (typed_ctx, union_ctx):
        assert context_of(t) is None
        assert list(properties(t)) == ["ctx", "q"]


def test_unannotated_ctx_fallback_and_no_context() -> None:
    """An unannotated parameter named `ctx` is the context; a function without one has none."""

    @tool
    def fallback(query: str, ctx) -> str:  # type: ignore[no-untyped-def]
        return ""

    @tool
    def plain(query: str, limit: int = 3) -> str:
        return ""

    assert context_of(fallback) == ("ctx", RunContext)
    assert list(properties(fallback)) == ["query"]
    assert context_of(plain) is None
    assert list(properties(plain)) == ["query", "limit"]


def test_two_context_parameters_is_a_user_error_at_decoration() -> None:
    """Two context parameters are refused when the tool is decorated, naming both."""
    with pytest.raises(UserError, match=r"2 run context parameters \('a', 'b'\)"):

        @tool
        def twice(a: RunContext, b: AppContext) -> str:
            return ""


def test_variadic_parameters_are_user_errors() -> None:
    """`*args` and `**kwargs` are refused at decoration with the parameter named."""
    with pytest.raises(UserError, match="'args' is variadic"):

        @tool
        def star(*args: int) -> str:
            return ""

    with pytest.raises(UserError, match="'kwargs' is variadic"):

        @tool
        def double_star(ctx: RunContext, **kwargs: int) -> str:
            return ""


def test_schema_never_contains_the_context_parameter() -> None:
    """The context parameter appears nowhere in the JSON schema, even its name or class."""

    @tool
    def search(user_query: str, secret_ctx: AppContext, limit: int = 10) -> str:
        """Search things."""
        return ""

    schema = search.definition.parameters_json_schema
    text = repr(schema)
    assert "secret_ctx" not in text
    assert "AppContext" not in text
    assert schema == {
        "type": "object",
        "properties": {
            "user_query": {"type": "string", "title": "User Query"},
            "limit": {"type": "integer", "title": "Limit", "default": 10},
        },
        "required": ["user_query"],
        "additionalProperties": False,
    }


# --- descriptions -----------------------------------------------------------------------


def test_google_docstring_descriptions() -> None:
    """Google-style `Args:` sections describe parameters; the summary describes the tool."""

    @tool
    def lookup(ctx: RunContext, order_id: int, verbose: bool = False) -> str:
        """Look up an order.

        Args:
            order_id: The order's number.
            verbose: Include the line items.
        """
        return ""

    props = properties(lookup)
    assert lookup.description == "Look up an order."
    assert props["order_id"]["description"] == "The order's number."
    assert props["verbose"]["description"] == "Include the line items."
    assert "Args" not in lookup.description


def test_numpy_docstring_descriptions() -> None:
    """NumPy-style `Parameters` sections describe parameters."""

    @tool
    def convert(amount: float, currency: str) -> str:
        """Convert money.

        Parameters
        ----------
        amount : float
            How much to convert.
        currency : str
            The target currency code.
        """
        return ""

    props = properties(convert)
    assert convert.description == "Convert money."
    assert props["amount"]["description"] == "How much to convert."
    assert props["currency"]["description"] == "The target currency code."


def test_sphinx_docstring_descriptions() -> None:
    """Sphinx-style `:param x:` fields describe parameters."""

    @tool
    def greet(name: str, ctx: RunContext) -> str:
        """Greet someone.

        :param name: Who to greet.
        """
        return ""

    assert greet.description == "Greet someone."
    assert properties(greet)["name"]["description"] == "Who to greet."


def test_annotated_field_description_and_constraints() -> None:
    """`Annotated[T, Field(description=...)]` describes a parameter, and its constraints are in the schema."""

    @tool
    def pick(count: Annotated[int, Field(description="How many to pick.", ge=1)]) -> str:
        """Pick items."""
        return ""

    prop = properties(pick)["count"]
    assert prop["description"] == "How many to pick."
    assert prop["minimum"] == 1


def test_defaults_are_optional_in_the_schema() -> None:
    """Parameters with defaults are not required and show their default."""

    @tool
    def page(query: str, limit: int = 10, cursor: str | None = None) -> str:
        return ""

    schema = page.definition.parameters_json_schema
    assert schema["required"] == ["query"]
    assert schema["properties"]["limit"]["default"] == 10
    assert schema["properties"]["cursor"]["default"] is None


# --- decorator options and the Tool object ---------------------------------------------


def test_tool_options() -> None:
    """`@tool(name=, description=, requires_approval=, timeout=, threaded=)` are all applied."""

    def original(x: int) -> str:
        """Docstring description."""
        return str(x)

    t = tool(name="renamed", description="Given description.", requires_approval=True, timeout=2.5, threaded=False)(
        original
    )
    assert isinstance(t, Tool)
    assert (t.name, t.description, t.requires_approval, t.timeout, t.threaded) == (
        "renamed",
        "Given description.",
        True,
        2.5,
        False,
    )
    assert t.definition.name == "renamed"
    assert t.definition.description == "Given description."
    bare = tool(original)
    assert (bare.name, bare.description, bare.requires_approval, bare.timeout, bare.threaded) == (
        "original",
        "Docstring description.",
        False,
        None,
        True,
    )


def test_non_positive_timeout_is_refused() -> None:
    """A timeout that is not a positive number of seconds is a UserError."""
    with pytest.raises(UserError, match="timeout=0"):
        tool(timeout=0)(lambda: "x")


@pytest.mark.anyio
async def test_call_and_wrapped_call_the_function_as_written() -> None:
    """Calling a Tool calls the function (sync returns, async returns a coroutine); `__wrapped__` is the function."""

    def sync_fn(a: int, ctx: RunContext | None = None) -> str:
        return f"{a}:{ctx is None}"

    async def async_fn(a: int, ctx: RunContext) -> str:
        return f"{a}:{ctx.get('k')}"

    s, a = tool(sync_fn), tool(async_fn)
    assert s.__wrapped__ is sync_fn
    assert a.__wrapped__ is async_fn
    assert s(1) == "1:True"
    assert await a(2, RunContext(metadata={"k": "v"})) == "2:v"
    assert await a.__wrapped__(3, ctx=RunContext(metadata={"k": "w"})) == "3:w"
    assert s.__name__ == "sync_fn"


@pytest.mark.anyio
async def test_plain_callables_in_tools_are_wrapped() -> None:
    """A plain function passed in `tools=` becomes a Tool with the context injected."""

    def where(ctx: AppContext) -> str:
        """Where am I."""
        return ctx.user_id

    agent = Agent(name="a", model=call_then_echo(ToolCall("where", {})), tools=[where])
    assert isinstance(agent.tools[0], Tool)
    result = await agent.run("go", context=AppContext(user_id="u-7"))
    assert result.output == "u-7"


# --- lazy resolution ------------------------------------------------------------------


@tool
def uses_later_context(ctx: DefinedLater, word: str) -> str:
    """Uses a context class defined below this function."""
    return f"{ctx.label}:{word}"


@dataclass
class DefinedLater(RunContext):
    """Defined after the tool that names it."""

    label: str = "later"


@pytest.mark.anyio
async def test_forward_reference_resolved_on_first_use() -> None:
    """A context class defined after the tool is resolved when the tool is first used."""
    assert context_of(uses_later_context) == ("ctx", DefinedLater)
    agent = Agent(name="a", model=call_then_echo(ToolCall("uses_later_context", {"word": "hi"})))
    agent.add_tools(uses_later_context)
    result = await agent.run("go", context=DefinedLater(label="L"))
    assert result.output == "L:hi"


@pytest.mark.anyio
async def test_locally_defined_context_class() -> None:
    """A context class defined inside a function is resolved from the defining scope."""

    @dataclass
    class LocalContext(RunContext):
        secret_word: str

    @tool
    def reveal(ctx: LocalContext) -> str:
        return ctx.secret_word

    assert context_of(reveal) == ("ctx", LocalContext)
    agent = Agent(name="a", model=call_then_echo(ToolCall("reveal", {})), tools=[reveal])
    result = await agent.run("go", context=LocalContext(secret_word="swordfish"))
    assert result.output == "swordfish"


@pytest.mark.anyio
async def test_unresolvable_annotation_is_a_user_error_naming_the_parameter() -> None:
    """An annotation that never resolves fails on first use with a UserError naming the parameter."""

    @tool
    def broken(item: NoSuchType, ctx: RunContext) -> str:  # type: ignore[name-defined]  # noqa: F821
        return ""

    with pytest.raises(UserError, match=r"parameter 'item'.*NoSuchType"):
        _ = broken.definition
    agent = Agent(name="a", model=call_then_echo(ToolCall("broken", {"item": 1})), tools=[broken])
    with pytest.raises(UserError, match="parameter 'item'"):
        await agent.run("go")


@tool(description="Book a slot.")
def book_later(slot: LaterSlot) -> str:
    """Its schema is read before anything else (the description is given)."""
    return slot.day


@tool
def describe_later(slot: LaterSlot) -> str:
    """Describe a slot."""
    return slot.day


@dataclass
class LaterSlot:
    """An argument type defined after the tools that name it."""

    day: str


def test_forward_references_are_resolved_whatever_is_read_first() -> None:
    """A tool whose argument type is defined after it shows the complete schema and its docstring description,
    whichever of them is read first."""
    schema = book_later.definition.parameters_json_schema
    assert schema["required"] == ["slot"]
    assert schema["$defs"]["LaterSlot"]["properties"] == {"day": {"title": "Day", "type": "string"}}
    assert describe_later.description == "Describe a slot."
    assert describe_later.validate_arguments({"slot": {"day": "mon"}}) == {"slot": LaterSlot(day="mon")}


def test_an_unresolvable_annotation_error_names_the_parameter_that_fails() -> None:
    """The error names the parameter whose annotation cannot be resolved, not one annotated with a class local to
    the defining function."""

    @dataclass
    class LocalThing:
        size: int

    @tool
    def broken(item: LocalThing, other: NoSuchType) -> str:  # type: ignore[name-defined]  # noqa: F821
        return ""

    with pytest.raises(UserError, match="parameter 'other'"):
        _ = broken.definition


def test_an_unresolvable_return_annotation_is_a_user_error() -> None:
    """A return annotation that names something undefined fails on first use with the name in the message."""

    @tool
    def answer(q: str) -> Missing:  # type: ignore[name-defined]  # noqa: F821
        return q

    with pytest.raises(UserError, match=r"Tool 'answer' has a type annotation that cannot be resolved: name 'Missing'"):
        _ = answer.definition


DEFAULT_CONTEXT = RunContext()


@pytest.mark.anyio
async def test_a_parameter_whose_default_is_a_context_receives_the_context() -> None:
    """A parameter whose default is a context instance is the context parameter when it is unannotated or annotated
    `Any`/`object` (the default is never shown to the model, and the run's context replaces it); annotated with
    another type it is a UserError."""

    @tool
    def bare(topic: str, context=DEFAULT_CONTEXT) -> str:  # type: ignore[no-untyped-def]
        return f"{topic}:{context.get('who')}"

    @tool
    def loose(topic: str, deps: object = DEFAULT_CONTEXT) -> str:
        assert isinstance(deps, RunContext)
        return f"{topic}:{deps.get('who')}"

    for t in (bare, loose):
        assert list(properties(t)) == ["topic"]
        assert await t.execute({"topic": "tea"}, RunContext(metadata={"who": "ada"})) == "tea:ada"
    with pytest.raises(UserError, match="'deps' of Tool 'wrong' has a run context instance as its default"):

        @tool
        def wrong(topic: str, deps: str = DEFAULT_CONTEXT) -> str:  # type: ignore[assignment]
            return topic


# --- context type checks --------------------------------------------------------------


@pytest.mark.anyio
async def test_context_type_error_before_the_body_runs() -> None:
    """A run whose context is not the annotated class raises ContextTypeError and the body never runs."""
    ran: list[str] = []

    @tool
    def needs_app(ctx: AppContext) -> str:
        ran.append(ctx.user_id)
        return "ran"

    agent = Agent(name="a", model=call_then_echo(ToolCall("needs_app", {})), tools=[needs_app])
    with pytest.raises(ContextTypeError, match=r"needs an instance of AppContext.*is an instance of OtherContext"):
        await agent.run("go", context=OtherContext())
    with pytest.raises(ContextTypeError):
        await agent.run("go")  # the default RunContext() is not an AppContext either
    assert ran == []
    assert (await agent.run("go", context=AppContext(user_id="ok"))).output == "ran"
    assert ran == ["ok"]


@pytest.mark.anyio
async def test_a_tools_context_class_is_checked_before_any_model_request() -> None:
    """A run whose context cannot serve one of the agent's tools fails with ContextTypeError before the model is asked
    anything, in every run (the check is not skipped once another context class passed it)."""
    requests: list[int] = []

    def respond(messages: list[Message], info: ModelRequestParameters) -> str:
        requests.append(1)
        return "done"

    @tool
    def needs_app(ctx: AppContext) -> str:
        return ctx.user_id

    agent = Agent(name="a", model=FunctionModel(respond), tools=[needs_app])
    for _ in range(2):
        with pytest.raises(ContextTypeError, match="needs_app"):
            await agent.run("go", context=OtherContext())
        assert requests == []
    assert (await agent.run("go", context=AppContext(user_id="u"))).output == "done"
    with pytest.raises(ContextTypeError, match="needs_app"):
        await agent.run("go", context=OtherContext())
    assert requests == [1]


def test_agent_context_type_rejects_incompatible_tools_and_subagents() -> None:
    """`Agent(context_type=...)` checks every tool and subagent when the agent is built."""

    @tool
    def needs_app(ctx: AppContext) -> str:
        return ""

    @tool
    def needs_base(ctx: RunContext) -> str:
        return ""

    with pytest.raises(ContextTypeError, match="needs_app"):
        Agent(name="a", model="test", tools=[needs_app], context_type=OtherContext)
    Agent(name="ok", model="test", tools=[needs_app, needs_base], context_type=AppContext)

    sub = Agent(name="sub", model="test", context_type=AppContext)
    with pytest.raises(ContextTypeError, match="'sub' requires AppContext"):
        Agent(name="parent", model="test", subagents=[sub], context_type=OtherContext)
    Agent(name="parent", model="test", subagents=[sub], context_type=AppContext)


@pytest.mark.anyio
async def test_agent_context_type_rejects_a_wrong_run_context() -> None:
    """An agent with `context_type` refuses a run context of another class before any model request."""
    requests: list[int] = []

    def respond(messages: list[Message], info: ModelRequestParameters) -> str:
        requests.append(1)
        return "x"

    agent = Agent(name="a", model=FunctionModel(respond), context_type=AppContext)
    with pytest.raises(ContextTypeError, match="requires a AppContext"):
        await agent.run("go", context=OtherContext())
    assert requests == []


# --- where tools run --------------------------------------------------------------------


@pytest.mark.anyio
async def test_sync_tools_run_in_a_worker_thread_by_default_and_inline_when_not_threaded() -> None:
    """A sync tool runs off the event loop's thread unless `threaded=False`; async tools run on the loop."""
    loop_thread = threading.get_ident()
    seen: dict[str, int] = {}

    @tool
    def threaded(ctx: RunContext) -> str:
        seen["threaded"] = threading.get_ident()
        return "t"

    @tool(threaded=False)
    def inline(ctx: RunContext) -> str:
        seen["inline"] = threading.get_ident()
        return "i"

    @tool
    async def on_loop() -> str:
        seen["async"] = threading.get_ident()
        return "a"

    model = call_then_echo(ToolCall("threaded", {}), ToolCall("inline", {}), ToolCall("on_loop", {}))
    agent = Agent(name="a", model=model, tools=[threaded, inline, on_loop])
    assert (await agent.run("go")).output == "t|i|a"
    assert seen["threaded"] != loop_thread
    assert seen["inline"] == loop_thread
    assert seen["async"] == loop_thread


@pytest.mark.anyio
async def test_blocking_sync_tool_does_not_block_the_event_loop() -> None:
    """A threaded sync tool may block on a threading.Event that an async tool sets on the loop."""
    released = threading.Event()

    @tool
    def waits() -> str:
        return "released" if released.wait(timeout=5) else "timed out"

    @tool
    async def releases() -> str:
        await anyio.sleep(0.01)
        released.set()
        return "set"

    agent = Agent(
        name="a", model=call_then_echo(ToolCall("waits", {}), ToolCall("releases", {})), tools=[waits, releases]
    )
    with anyio.fail_after(10):
        assert (await agent.run("go")).output == "released|set"


@pytest.mark.anyio
async def test_tool_timeout_becomes_an_error_result() -> None:
    """A call that outlives `@tool(timeout=...)` is cancelled and the model gets an error result."""

    @tool(timeout=0.05)
    async def slow() -> str:
        await anyio.sleep(10)
        return "never"

    agent = Agent(name="a", model=call_then_echo(ToolCall("slow", {})), tools=[slow])
    with anyio.fail_after(5):
        result = await agent.run("go")
    assert result.output == "Error: Tool 'slow' timed out after 0.05 seconds"


@pytest.mark.anyio
async def test_requires_approval_interrupts_without_a_handler() -> None:
    """A `requires_approval=True` tool does not run without a decision; the run reports the pending call."""
    ran: list[int] = []

    @tool(requires_approval=True)
    def delete(path: str) -> str:
        ran.append(1)
        return "deleted"

    agent = Agent(name="a", model=ScriptedModel([ToolCall("delete", {"path": "/x"}, "c1"), "done"]), tools=[delete])
    result = await agent.run("go")
    assert ran == []
    assert [(i.tool_name, i.call_id) for i in result.interruptions] == [("delete", "c1")]
    approved = await agent.run("go", approval_handler=lambda item: True)
    assert approved.output == "done"
    assert ran == [1]


@pytest.mark.anyio
async def test_the_tool_class_runs_sync_functions_in_a_worker_thread_by_default() -> None:
    """`Tool(func)` built directly, like `@tool`, runs a sync function off the event loop's thread."""

    def where() -> str:
        return str(threading.get_ident())

    direct = Tool(where)
    agent = Agent(name="a", model=call_then_echo(ToolCall("where", {})), tools=[direct])
    assert (await agent.run("go")).output != str(threading.get_ident())


# --- signatures that cannot work are refused ------------------------------------------------


def test_a_union_of_a_context_and_another_type_is_refused() -> None:
    """A parameter annotated with a run context class in a union with another type is a UserError, not a model
    argument that would silently receive nothing."""
    with pytest.raises(UserError, match=r"Parameter 'ctx' of Tool 'mixed'.*union of a run context and other types"):

        @tool
        def mixed(ctx: AppContext | int, q: str) -> str:
            return q

    with pytest.raises(UserError, match="union of a run context and other types"):

        @tool
        def either(deps: AppContext | OtherContext | None = None) -> str:
            return ""

    @tool
    def plain_union(q: int | str) -> str:
        return str(q)

    assert context_of(plain_union) is None
    assert list(properties(plain_union)) == ["q"]


def test_positional_only_parameters_are_refused() -> None:
    """A tool with a positional-only parameter is refused at decoration: the model passes arguments by name."""
    with pytest.raises(UserError, match="'q' is positional-only; remove the '/'"):

        @tool
        def search(q: str, /, ctx: RunContext) -> str:
            return q


def test_a_method_decorated_in_its_class_is_refused_and_a_bound_method_works() -> None:
    """`@tool` on a method inside a class body (first parameter `self`) is a UserError; `tool(instance.method)` is the
    fix, and `self` is then never a model argument."""
    with pytest.raises(UserError, match=r"first parameter is 'self'.*tool\(instance\.method\)"):

        class Catalog:
            @tool
            def lookup(self, key: str) -> str:
                return key

    class Shelf:
        def __init__(self) -> None:
            self.items = {"a": "apple"}

        def lookup(self, key: str, ctx: RunContext) -> str:
            """Look an item up."""
            return self.items[key]

    with pytest.raises(UserError, match="'self'"):
        tool(Shelf.lookup)
    bound = tool(Shelf().lookup)
    assert list(properties(bound)) == ["key"]
    assert context_of(bound) == ("ctx", RunContext)


def test_an_annotation_that_cannot_be_evaluated_is_a_user_error() -> None:
    """An annotation that raises when evaluated (not a missing name) is reported at decoration as a UserError."""
    with pytest.raises(UserError, match="Tool 'broken' has an annotation that cannot be evaluated"):

        @tool
        def broken(x: int | 3) -> str:  # type: ignore[operator]
            return ""


class Opaque:
    """A class pydantic has no schema for."""


def test_parameter_types_pydantic_cannot_validate_are_refused() -> None:
    """A model argument of a type pydantic cannot validate is a UserError at decoration; for a parameter named `ctx`
    the error explains how to have the context injected instead."""
    with pytest.raises(UserError, match="Tool 'use' has parameters pydantic cannot validate") as plain:

        @tool
        def use(thing: Opaque) -> str:
            return ""

    assert "ctx" not in str(plain.value)
    with pytest.raises(UserError, match="Its parameter 'ctx' is annotated with a type that is not a RunContext"):

        @tool
        def use_ctx(ctx: Opaque) -> str:
            return ""


@pytest.mark.anyio
async def test_an_object_with_an_async_call_method_is_an_async_tool() -> None:
    """A callable object whose `__call__` is `async def` is awaited on the event loop like an async function."""
    loop_thread = threading.get_ident()

    class Lookup:
        async def __call__(self, key: str) -> str:
            await anyio.lowlevel.checkpoint()
            return f"{key}:{threading.get_ident() == loop_thread}"

    lookup = tool(Lookup(), name="lookup")
    agent = Agent(name="a", model=call_then_echo(ToolCall("lookup", {"key": "k"})), tools=[lookup])
    assert (await agent.run("go")).output == "k:True"


def test_tool_definitions_are_immutable_and_keyword_only() -> None:
    """A `ToolDefinition` (shared by every request that offers the tool) cannot be changed after it is built, and is
    built from keyword arguments only."""

    @tool
    def ping() -> str:
        """Ping."""
        return "pong"

    with pytest.raises(dataclasses.FrozenInstanceError):
        ping.definition.description = "changed"  # type: ignore[misc]
    assert ping.definition.description == "Ping."
    with pytest.raises(TypeError):
        ToolDefinition("ping", "Ping.")  # type: ignore[misc]


# --- thread pools of nested runs --------------------------------------------------------------


def relay(name: str, inner: Agent[Any, Any] | None) -> Agent[Any, Any]:
    """An agent whose sync tool `step` runs `inner` with `run_sync` (or answers "leaf" when there is none)."""

    @tool
    def step() -> str:
        return inner.run_sync("go").output if inner is not None else "leaf"

    return Agent(name=name, model=call_then_echo(ToolCall("step", {})), tools=[step])


@pytest.mark.anyio
async def test_nested_sync_runs_never_wait_for_threads_held_by_the_level_above() -> None:
    """With anyio's default pool shrunk to one thread, a sync tool running an agent whose sync tool runs another agent
    finishes: each nesting level draws its threads from its own pool."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = 1  # this test's event loop only
    top = relay("top", relay("mid", relay("leaf", None)))
    with anyio.fail_after(20):
        assert (await top.run("go")).output == "leaf"


@pytest.mark.anyio
async def test_top_level_sync_tools_use_anyios_default_thread_pool() -> None:
    """A run's own sync tools draw from anyio's default thread limiter, so the application's pool size (and other
    users of the pool) bound them: while the only thread is taken, the tool does not start."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    limiter.total_tokens = 1
    agent = relay("top", None)
    outputs: list[str] = []

    async def run() -> None:
        outputs.append((await agent.run("go")).output)

    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            await limiter.acquire()
            group.start_soon(run)
            await anyio.sleep(0.3)
            assert outputs == []  # waits for the thread this test holds
            limiter.release()
    assert outputs == ["leaf"]


@pytest.mark.anyio
async def test_a_nested_levels_pool_is_shared_by_its_tools() -> None:
    """The sync tools of nested runs share their level's pool (as large as anyio's default one): with one thread,
    two parallel nested sync tools run one after the other."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = 1
    running = threading.Semaphore(1)
    overlaps: list[str] = []

    @tool
    def work(label: str) -> str:
        if not running.acquire(blocking=False):
            overlaps.append(label)
            return label
        try:
            threading.Event().wait(0.2)  # long enough for a concurrent sibling to start
            return label
        finally:
            running.release()

    inner = Agent(
        name="inner",
        model=call_then_echo(ToolCall("work", {"label": "a"}), ToolCall("work", {"label": "b"})),
        tools=[work],
    )

    @tool
    def delegate() -> str:
        return inner.run_sync("go").output

    outer = Agent(name="outer", model=call_then_echo(ToolCall("delegate", {})), tools=[delegate])
    with anyio.fail_after(20):
        assert (await outer.run("go")).output == "a|b"
    assert overlaps == []


# --- the Tool object outside a run -------------------------------------------------------------


def test_generator_functions_are_refused() -> None:
    """A generator or async generator function cannot be a tool (a tool returns its result once)."""

    def numbers() -> Iterator[int]:
        yield 1

    async def stream() -> AsyncIterator[int]:
        yield 1

    for func in (numbers, stream):
        with pytest.raises(UserError, match="is a generator function"):
            tool(func)


@pytest.mark.anyio
async def test_execute_runs_the_function_with_the_context_and_leaves_the_arguments_alone() -> None:
    """`Tool.execute(arguments, ctx)`, called directly, injects the context, does not modify `arguments`, and raises
    ContextTypeError (without running the function) for a context of the wrong class."""
    ran: list[str] = []

    @tool
    async def greet(name: str, ctx: AppContext) -> str:
        ran.append(name)
        return f"hello {name} from {ctx.user_id}"

    arguments = {"name": "ada"}
    assert await greet.execute(arguments, AppContext(user_id="u1")) == "hello ada from u1"
    assert arguments == {"name": "ada"}
    with pytest.raises(ContextTypeError, match="needs an instance of AppContext"):
        await greet.execute(arguments, OtherContext())
    assert ran == ["ada"]


def test_misused_tool_arguments_are_user_errors() -> None:
    """`tool()` refuses a non-callable and a `requires_approval` that is not a bool, naming the fix; the reprs of a
    tool and of a subagent tool name them."""
    with pytest.raises(UserError, match="tool\\(\\) needs a function, got 5"):
        tool(5)  # type: ignore[call-overload]
    with pytest.raises(UserError, match="requires_approval='yes'; pass True or False"):
        tool(requires_approval="yes")(lambda: "x")  # type: ignore[arg-type]

    @tool
    def ping() -> str:
        return "pong"

    sub = Agent(name="helper", model="test", description="Helps.")
    assert (repr(ping), repr(sub.as_tool(name="ask_helper"))) == (
        "Tool(name='ping')",
        "AgentTool(name='ask_helper', agent='helper')",
    )


@pytest.mark.anyio
async def test_subagent_arguments_as_json_text() -> None:
    """A delegation's arguments may come as JSON text; empty text asks the model for the missing `task`."""
    helper = Agent(name="helper", model=ScriptedModel(["helped"]), description="Helps.")
    delegate = helper.as_tool()
    assert delegate.validate_arguments('{"task": "sum it up"}') == {"task": "sum it up"}
    result = await Agent(name="lead", model=ScriptedModel([ToolCall("helper", ""), "ok"]), subagents=[helper]).run("go")
    (retry,) = [m for m in result.messages if isinstance(m, RetryPrompt)]
    assert "task: Field required" in retry.content


class Shout(BaseTool):
    """A tool written as a BaseTool subclass (as a toolset provides them), with its own validation."""

    name = "shout"
    requires_approval = False
    timeout = None

    @property
    def definition(self) -> ToolDefinition:
        return ToolDefinition(name="shout", description="Shout a word.", parameters_json_schema={"type": "object"})

    def validate_arguments(self, arguments: str | dict[str, Any]) -> dict[str, Any]:
        args = json.loads(arguments) if isinstance(arguments, str) else dict(arguments)
        if args.get("word") == "misconfigured":
            raise UserError("Tool 'shout' is misconfigured.")
        if not isinstance(args.get("word"), str):
            raise ValueError("word must be a string")
        return args

    async def execute(self, arguments: dict[str, Any], ctx: RunContext) -> str:
        return f"{arguments['word'].upper()} ({ctx.get('tenant')})"


@pytest.mark.anyio
async def test_a_base_tool_subclass_is_validated_and_executed() -> None:
    """A BaseTool subclass is executed through its `execute` with the context; its ValueError is a retry prompt for
    the model, while a UserError it raises (a programming error) ends the run."""
    model = ScriptedModel([[ToolCall("shout", {"word": "hi"}), ToolCall("shout", {"word": 3})], "ok"])
    result = await Agent(name="a", model=model, tools=[Shout()]).run("go", context={"tenant": "acme"})
    shouted, retry = result.messages[2:4]
    assert isinstance(shouted, ToolReturn) and shouted.content == "HI (acme)"
    assert isinstance(retry, RetryPrompt) and "word must be a string" in retry.content
    misconfigured = Agent(name="a", model=call_then_echo(ToolCall("shout", {"word": "misconfigured"})), tools=[Shout()])
    with pytest.raises(UserError, match="misconfigured"):
        await misconfigured.run("go")
