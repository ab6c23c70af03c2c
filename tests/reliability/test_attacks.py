"""Adversarial tests: what an attacker (or an unlucky application) does to approvals, concurrent
runs, resources, limits, saved states and cancellation.

- Approval integrity: a decision covers exactly the call it was made for, whatever else is
  equal (tool, call id, arguments), and stays on the context object it was recorded on.
- Cross-run leaks: concurrent runs, sharing one context object or not, see only their own input.
- Resource life cycles: tasks and threads return to their baseline after many runs.
- Limits under parallelism: caps hold when calls and nested runs race for them.
- Malformed input: every byte string or re-signed edit of a saved state ends in `RunStateError`
  (or a resume that runs nothing unapproved), never an internal exception.
- Cancellation and deadlines through nested runs, on asyncio and trio.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

import anyio
import anyio.lowlevel
import pytest
import sniffio
from chat_server import ChatServer, Reply
from helpers import first_prompt, last_result_texts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cogent import (
    Agent,
    ContextTypeError,
    DeadlineExceeded,
    FunctionModel,
    RetryContext,
    RunContext,
    RunState,
    TimedContext,
    ToolApprovalItem,
    ToolCall,
    UsageLimitExceeded,
    UsageLimits,
    current_context,
    tool,
)
from cogent.core import now_utc
from cogent.exceptions import CogentError, RunStateError, UserError
from cogent.messages import Message, ModelResponse, UserPrompt
from cogent.models import ModelRequestParameters

pytestmark = pytest.mark.anyio

KEY = "attack-test-key"
HANG_GUARD = 30  # seconds: only so that a deadlock fails instead of hanging the suite
LIMIT = 1.0  # seconds: a deadline or tool timeout that a loaded machine reaches only after the hanging tool started


# --- shared pieces ----------------------------------------------------------------------


@dataclass
class FsContext(RunContext):
    """A context with a file system stand-in: the paths deleted (shared with child contexts)."""

    deleted: list[str] = field(default_factory=list)


@dataclass
class RetryFsContext(RetryContext):
    """cogent's RetryContext with the same file system stand-in."""

    deleted: list[str] = field(default_factory=list)


class HasDeleted(Protocol):
    """What `delete` needs from a context."""

    deleted: list[str]


@tool(requires_approval=True)
def delete(ctx: HasDeleted, path: str) -> str:
    """Delete a path (needs approval)."""
    ctx.deleted.append(path)
    return f"deleted {path}"


def answered(messages: list[Message]) -> bool:
    """Whether the model has already answered in this execution."""
    return any(isinstance(m, ModelResponse) for m in messages)


def deleter() -> Agent[Any, Any]:
    """An agent that deletes the path its input names, always with call id `call_0`."""

    async def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        await anyio.lowlevel.checkpoint()
        if not answered(messages):
            return ToolCall("delete", {"path": first_prompt(messages)}, "call_0")
        return "|".join(last_result_texts(messages))

    return Agent(name="deleter", model=FunctionModel(respond), tools=[delete])


def path_of(item: ToolApprovalItem) -> str:
    """Return the path a pending `delete` would delete."""
    return str(json.loads(item.arguments)["path"])


# --- approval integrity -----------------------------------------------------------------


async def test_an_approval_never_covers_an_identical_call_of_another_run() -> None:
    """Two runs pending on the same tool, call id and arguments: approving one run's item resumes only that run."""
    ctx = FsContext()
    agent = deleter()
    x = await agent.run("/same", context=ctx)
    y = await agent.run("/same", context=ctx)
    (ix,), (iy,) = x.interruptions, y.interruptions
    assert (ix.tool_name, ix.call_id, ix.arguments) == (iy.tool_name, iy.call_id, iy.arguments)
    assert ix.approval_id != iy.approval_id
    ctx.approve_tool(ix)
    assert y.state is not None and x.state is not None
    still = await agent.run(y.state, context=ctx)
    assert [i.approval_id for i in still.interruptions] == [iy.approval_id]
    assert ctx.deleted == []
    assert (await agent.run(x.state, context=ctx)).output == "deleted /same"
    assert ctx.deleted == ["/same"]


async def test_a_decision_recorded_by_a_handler_on_a_retry_view_reaches_the_callers_context() -> None:
    """A handler's always_approve on the retry copy of a RetryContext is recorded on the caller's context."""
    calls = [ToolCall("delete", {"wrong": 1}, "bad"), ToolCall("delete", {"path": "/a"}, "c1")]

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        turn = sum(isinstance(m, ModelResponse) for m in messages)
        return calls[turn] if turn < len(calls) else "|".join(last_result_texts(messages))

    seen: list[tuple[bool, int]] = []

    def handler(item: ToolApprovalItem, ctx: RetryFsContext) -> bool:
        seen.append((ctx.is_retry, ctx.retry_count))
        ctx.approve_tool(item, always_approve=True)
        return True

    caller = RetryFsContext()
    agent = Agent(name="retrying", model=FunctionModel(respond), tools=[delete])
    result = await agent.run("go", context=caller, approval_handler=handler)
    assert result.output == "deleted /a"
    assert seen == [(True, 1)]
    assert caller.is_tool_approved("delete", "any-call") is True
    assert caller.deleted == ["/a"]


@pytest.mark.parametrize(
    "derive",
    [
        lambda c: c.with_metadata(user="bob"),
        copy.copy,
        lambda c: dataclasses.replace(c, deleted=[]),
    ],
    ids=["with_metadata", "copy", "replace"],
)
async def test_a_permanent_approval_on_result_context_stays_with_its_user(derive: Any) -> None:
    """always_approve recorded on user A's result.context never lets a copy made for user B run the tool."""
    agent = deleter()
    alice = FsContext().with_metadata(user="alice")
    first = await agent.run("/alice", context=alice)
    first.context.approve_tool(first.interruptions[0], always_approve=True)
    assert first.state is not None
    assert (await agent.run(first.state, context=alice)).output == "deleted /alice"
    bob = derive(first.context)
    other = await agent.run("/bob", context=bob)
    assert [path_of(i) for i in other.interruptions] == ["/bob"]
    assert "/bob" not in alice.deleted and "/bob" not in bob.deleted


async def test_call_ids_with_slashes_cannot_make_two_delegation_paths_share_an_approval() -> None:
    """A model that names a delegation call "a/b" gets items distinct from those under the path ("a", "b")."""
    leaf = deleter()

    def mid_respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not answered(messages):
            return ToolCall("deleter", {"task": "/z"}, "b")
        return "|".join(last_result_texts(messages))

    mid = Agent(name="mid", model=FunctionModel(mid_respond), subagents=[leaf])

    def top_respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not answered(messages):
            return [ToolCall("deleter", {"task": "/z"}, "a/b"), ToolCall("mid", {"task": "go"}, "a")]
        return "|".join(last_result_texts(messages))

    top = Agent(name="top", model=FunctionModel(top_respond), subagents=[leaf, mid])
    ctx = FsContext()
    first = await top.run("go", context=ctx)
    one, other = first.interruptions
    assert (one.tool_name, one.call_id, one.arguments) == (other.tool_name, other.call_id, other.arguments)
    assert one.approval_id != other.approval_id
    ctx.approve_tool(other)
    assert first.state is not None
    second = await top.run(first.state, context=ctx)
    assert [i.approval_id for i in second.interruptions] == [one.approval_id]
    assert ctx.deleted == ["/z"]


@dataclass
class Tenant(RunContext):
    """Another application's context class."""


async def test_a_resume_with_a_context_of_the_wrong_class_leaves_the_state_resumable() -> None:
    """Resuming with a context the tools cannot use fails with ContextTypeError and does not use up the state."""

    @tool(requires_approval=True)
    def remove(ctx: FsContext, path: str) -> str:
        """Delete a path (needs approval; needs an FsContext)."""
        ctx.deleted.append(path)
        return f"deleted {path}"

    model = FunctionModel(lambda m, i: ToolCall("remove", {"path": "/y"}, "c1") if not answered(m) else "done")
    agent = Agent(name="remover", model=model, tools=[remove])
    ctx = FsContext()
    first = await agent.run("go", context=ctx)
    ctx.approve_tool(first.interruptions[0])
    assert first.state is not None
    with pytest.raises(ContextTypeError):
        await agent.run(first.state, context=Tenant())
    assert (await agent.run(first.state, context=ctx)).output == "done"
    assert ctx.deleted == ["/y"]


items = st.builds(
    ToolApprovalItem,
    tool_name=st.sampled_from(["delete", "refund"]),
    call_id=st.sampled_from(["call_0", "call_1"]),
    arguments=st.sampled_from(["{}", '{"path": "/"}']),
    agent_name=st.just("a"),
    approval_id=st.text("0123456789abcdef", min_size=32, max_size=32),
)


@settings(max_examples=100, deadline=None)
@given(pool=st.lists(items, min_size=1, max_size=8, unique_by=lambda i: i.approval_id), data=st.data())
def test_per_call_decisions_never_cover_another_item(pool: list[ToolApprovalItem], data: st.DataObject) -> None:
    """Whatever the items share (tool, call id, arguments), a per-call decision answers for its own item only."""
    ctx = RunContext()
    decided: dict[str, bool] = {}
    for item in data.draw(st.lists(st.sampled_from(pool), max_size=8)):
        approve = data.draw(st.booleans())
        (ctx.approve_tool if approve else ctx.reject_tool)(item)
        decided[item.approval_id] = approve
    for item in pool:
        expected = decided.get(item.approval_id)
        status = ctx.approval_status(item)
        assert status == {None: "undecided", True: "approved", False: "rejected"}[expected]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths=st.lists(st.sampled_from(["/", "/tmp", "/home"]), min_size=1, max_size=6), data=st.data())
async def test_approving_some_interruptions_runs_exactly_those(paths: list[str], data: st.DataObject) -> None:
    """Concurrent runs on one context, all pending on call_0: resuming runs exactly the approved ones."""
    ctx = FsContext()
    agent = deleter()
    results: dict[int, Any] = {}

    async def start(i: int) -> None:
        results[i] = await agent.run(paths[i], context=ctx)

    async with anyio.create_task_group() as tg:
        for i in range(len(paths)):
            tg.start_soon(start, i)
    approved = data.draw(st.sets(st.integers(0, len(paths) - 1)))
    for i in approved:
        ctx.approve_tool(results[i].interruptions[0])
    for i in range(len(paths)):
        resumed = await agent.run(results[i].state, context=ctx)
        assert bool(resumed.interruptions) is (i not in approved)
    assert sorted(ctx.deleted) == sorted(paths[i] for i in approved)


# --- cross-run leaks --------------------------------------------------------------------


@tool
async def who_am_i(ctx: RunContext, waits: int) -> str:
    """Report the run's input and tag after letting other runs go first; write into its own metadata."""
    for _ in range(waits):
        await anyio.lowlevel.checkpoint()
    ctx.metadata["seen"] = ctx.query
    return f"{ctx.query}/{ctx.get('tag')}/{current_context().query}"


@tool
def who_am_i_in_a_thread(waits: int) -> str:
    """The same from a worker thread, through current_context()."""
    ctx = current_context()
    return f"{ctx.query}/{ctx.get('tag')}/{ctx.query}"


def reporter() -> Agent[Any, Any]:
    """An agent that calls both reporting tools and answers with their results."""

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not answered(messages):
            waits = len(first_prompt(messages)) % 4
            return [ToolCall("who_am_i", {"waits": waits}, "w1"), ToolCall("who_am_i_in_a_thread", {"waits": 0}, "w2")]
        return "|".join(last_result_texts(messages))

    return Agent(name="reporter", model=FunctionModel(respond), tools=[who_am_i, who_am_i_in_a_thread])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shares=st.lists(st.booleans(), min_size=1, max_size=12))
async def test_concurrent_runs_never_see_each_others_input(shares: list[bool]) -> None:
    """Runs sharing one context object or not: each sees its own input, and no caller's context is written."""
    shared = RunContext(metadata={"tag": "shared"})
    own = [RunContext(metadata={"tag": f"own{i}"}) for i in range(len(shares))]
    outputs: dict[int, str] = {}
    agent = reporter()

    async def one(i: int) -> None:
        ctx = shared if shares[i] else own[i]
        outputs[i] = (await agent.run(f"input-{i}" + "x" * i, context=ctx)).output

    async with anyio.create_task_group() as tg:
        for i in range(len(shares)):
            tg.start_soon(one, i)
    for i, share in enumerate(shares):
        me, tag = f"input-{i}" + "x" * i, "shared" if share else f"own{i}"
        assert outputs[i] == f"{me}/{tag}/{me}|{me}/{tag}/{me}"
    for ctx in (shared, *own):
        assert ctx.query == "" and "seen" not in ctx.metadata


# --- resource life cycles ---------------------------------------------------------------


def living_tasks() -> int:
    """Return the number of tasks alive on the current event loop."""
    if sniffio.current_async_library() == "trio":
        import trio

        return int(trio.lowlevel.current_statistics().tasks_living)
    import asyncio

    return len(asyncio.all_tasks())


async def settle(count: Any, baseline: int) -> int:
    """Let finished tasks wind down; return `count()` once it is back at `baseline` (or after the hang guard)."""
    with anyio.move_on_after(HANG_GUARD):
        while count() > baseline:  # noqa: ASYNC110 - polling a count nobody signals
            await anyio.sleep(0.01)
    return int(count())


async def test_tasks_return_to_their_baseline_after_many_runs() -> None:
    """200 runs with parallel calls, delegations, approvals and interruptions leave no task behind."""
    child = Agent(name="child", model=FunctionModel(lambda m, i: "child done"), description="A child.")

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not answered(messages):
            return [
                ToolCall("who_am_i", {"waits": 2}, "a"),
                ToolCall("who_am_i_in_a_thread", {"waits": 0}, "b"),
                ToolCall("child", {"task": "t"}, "c"),
                ToolCall("delete", {"path": "/x"}, "d"),
            ]
        return "|".join(last_result_texts(messages))

    agent = Agent(
        name="busy", model=FunctionModel(respond), tools=[who_am_i, who_am_i_in_a_thread, delete], subagents=[child]
    )
    baseline = living_tasks()
    for i in range(200):
        result = await agent.run("go", context=FsContext(), approval_handler=(lambda item: True) if i % 2 else None)
        assert bool(result.interruptions) is (i % 2 == 0)
    assert await settle(living_tasks, baseline) == baseline


def test_no_thread_is_left_after_a_hundred_nested_run_sync_calls() -> None:
    """100 run_sync calls from plain code, each with a sync tool running a nested run_sync, leave no thread."""

    @tool
    def leaf() -> str:
        """A sync tool of the nested run."""
        return "leaf"

    def two_turns(tool_name: str) -> FunctionModel:
        return FunctionModel(lambda m, i: ToolCall(tool_name, {}, "c1") if not answered(m) else last_result_texts(m)[0])

    inner = Agent(name="inner", model=two_turns("leaf"), tools=[leaf])

    @tool
    def nest() -> str:
        """Run the inner agent synchronously."""
        return inner.run_sync("x").output

    outer = Agent(name="outer", model=two_turns("nest"), tools=[nest])
    before = set(threading.enumerate())
    for _ in range(100):
        assert outer.run_sync("go").output == "leaf"
    deadline = time.monotonic() + HANG_GUARD
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert set(threading.enumerate()) - before == set()


# --- limits under parallelism -----------------------------------------------------------


async def test_a_tool_call_limit_holds_for_parallel_calls() -> None:
    """UsageLimits(tool_calls_limit=3) with 8 parallel calls executes at most 3 of them."""
    ran: list[int] = []

    @tool
    async def work(n: int) -> str:
        """Do some work."""
        await anyio.lowlevel.checkpoint()
        ran.append(n)
        return "ok"

    model = FunctionModel(
        lambda m, i: [ToolCall("work", {"n": n}, f"w{n}") for n in range(8)] if not answered(m) else "done"
    )
    agent = Agent(name="worker", model=model, tools=[work])
    with pytest.raises(UsageLimitExceeded, match="tool_calls_limit"):
        await agent.run("go", usage_limits=UsageLimits(tool_calls_limit=3))
    assert len(ran) <= 3


async def test_nested_runs_inside_parallel_tools_share_the_request_bound() -> None:
    """max_requests=5 bounds the requests of 8 parallel tools that each start a nested run."""
    requests: list[str] = []

    async def inner_respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        requests.append("inner")
        await anyio.lowlevel.checkpoint()
        return "inner done"

    inner = Agent(name="inner", model=FunctionModel(inner_respond))

    @tool
    async def ask(n: int) -> str:
        """Ask the inner agent."""
        return (await inner.run(f"q{n}")).output

    def outer_respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        requests.append("outer")
        return [ToolCall("ask", {"n": n}, f"a{n}") for n in range(8)] if not answered(messages) else "done"

    outer = Agent(name="outer", model=FunctionModel(outer_respond), tools=[ask])
    with pytest.raises(UsageLimitExceeded, match="max_requests"):
        await outer.run("go", max_requests=5)
    assert len(requests) <= 5


# --- malformed input at every entry point -----------------------------------------------


def signed(payload: str) -> str:
    """Return a state envelope around `payload`, signed with the test key (as an insider with the key could)."""
    mac = hmac.new(KEY.encode(), payload.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return json.dumps({"format": "cogent.run_state", "version": 1, "payload": payload, "hmac_sha256": mac})


@settings(max_examples=100, deadline=None)
@given(data=st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_arbitrary_bytes_and_text_as_a_saved_state_are_a_run_state_error(data: bytes | str) -> None:
    """RunState.from_json on arbitrary bytes or text raises RunStateError and nothing else."""
    with pytest.raises(RunStateError):
        RunState.from_json(data, key=KEY)


@settings(max_examples=100, deadline=None)
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_a_validly_signed_payload_of_any_json_is_a_run_state_error(payload: Any) -> None:
    """A correctly signed envelope around any JSON value that is not a state raises RunStateError."""
    with pytest.raises(RunStateError):
        RunState.from_json(signed(json.dumps(payload)), key=KEY)


@tool
def lookup(path: str) -> str:
    """Look a path up."""
    return f"{path} exists"


def looker_deleter() -> Agent[Any, Any]:
    """An agent whose first response looks a path up and deletes it (the delete waits for approval)."""

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not answered(messages):
            return [ToolCall("lookup", {"path": "/p"}, "l1"), ToolCall("delete", {"path": "/p"}, "d1")]
        return "|".join(last_result_texts(messages))

    return Agent(name="agent", model=FunctionModel(respond), tools=[lookup, delete])


def mutate(value: Any, path: list[int], replacement: Any) -> Any:
    """Return `value` with the node that `path` picks (by index modulo size) replaced or removed."""
    if not path or not isinstance(value, dict | list) or not value:
        return replacement
    step, rest = path[0], path[1:]
    if isinstance(value, dict):
        key = sorted(value)[step % len(value)]
        changed = dict(value)
        if replacement == "<delete>" and not rest:
            del changed[key]
        else:
            changed[key] = mutate(value[key], rest, replacement)
        return changed
    changed_list = list(value)
    index = step % len(value)
    if replacement == "<delete>" and not rest:
        del changed_list[index]
    else:
        changed_list[index] = mutate(value[index], rest, replacement)
    return changed_list


json_leaves = st.one_of(
    st.just("<delete>"),
    st.none(),
    st.booleans(),
    st.integers(-3, 10**6),
    st.text(max_size=20),
    st.sampled_from(["d1", "l1", "delete", "lookup", "agent", "/", "tool_return", "response", "user"]),
    st.just([]),
    st.just({}),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.lists(st.integers(0, 50), max_size=6), json_leaves), min_size=1, max_size=3))
async def test_an_edited_and_re_signed_state_never_runs_an_unapproved_call(edits: list[tuple[list[int], Any]]) -> None:
    """Random edits of a real state, re-signed: loading and resuming ends in RunStateError or deletes nothing."""
    agent = looker_deleter()
    first = await agent.run("go", context=FsContext())
    assert first.state is not None
    payload: Any = json.loads(json.loads(first.state.to_json(key=KEY))["payload"])
    for path, replacement in edits:
        payload = mutate(payload, path, replacement)
    victim = FsContext()
    try:
        state = RunState.from_json(signed(json.dumps(payload)), key=KEY)
        result = await agent.run(state, context=victim)
    except RunStateError:
        return
    except UserError as exc:  # e.g. a state for another input type: a CogentError with a sentence, never internal
        assert isinstance(exc, CogentError) and str(exc)[:1].isupper()
        return
    assert victim.deleted == []
    assert result.output is not None or result.interruptions


async def test_lone_surrogates_in_input_instructions_and_history_reach_a_real_server(server: ChatServer) -> None:
    """Input, instructions and history holding lone surrogates: the request to the server succeeds (U+FFFD)."""
    server.script = [Reply(text="ok")]
    history = [UserPrompt(content="earlier \ud83d"), ModelResponse(text="answer \udc80")]
    agent = Agent(name="a", model=server.model(), instructions="be brief \ud800")
    result = await agent.run("task \udcff", message_history=history)
    assert result.output == "ok"
    sent = json.dumps(server.requests[0]["messages"], ensure_ascii=False)
    for text in ("be brief \ufffd", "earlier \ufffd", "answer \ufffd", "task \ufffd"):
        assert text in sent


AGENT_ARGUMENTS = ["name", "model", "instructions", "description", "tools", "subagents", "interceptors",
                   "context_type", "output_type", "max_turns", "tool_retries", "tool_errors",
                   "parallel_tool_calls", "allow_truncated_output"]  # fmt: skip
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.binary(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just(len),
    st.just(object()),
    st.just(RunContext()),
    st.just(int),
)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(AGENT_ARGUMENTS), value=junk)
def test_any_wrong_agent_argument_is_a_user_error_or_accepted(name: str, value: Any) -> None:
    """Agent(...) with any junk in one argument either works or raises UserError, never an internal exception."""
    arguments: dict[str, Any] = {"name": "a", "model": "test", name: value}
    try:
        Agent(**arguments)
    except UserError as exc:
        assert str(exc)[:1].isupper()


@pytest.mark.parametrize("where", ["tool", "instructions", "approval_handler"])
async def test_a_builtin_without_a_signature_is_a_user_error(where: str) -> None:
    """`int` (no signature Python can inspect) as a tool, instructions or approval handler is a UserError."""
    with pytest.raises(UserError, match="no signature"):
        if where == "approval_handler":
            await Agent(name="a", model=FunctionModel(lambda m, i: "x")).run("go", approval_handler=int)
        else:
            Agent(name="a", model="test", **({"tools": [int]} if where == "tool" else {"instructions": int}))


RUN_ARGUMENTS = ["input", "context", "message_history", "interceptors", "usage_limits", "approval_handler",
                 "max_depth", "max_requests"]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(RUN_ARGUMENTS), value=junk)
async def test_any_wrong_run_argument_is_a_user_error_or_accepted(name: str, value: Any) -> None:
    """agent.run(...) with any junk in one argument either works or raises UserError, never an internal exception."""
    agent = Agent(name="a", model=FunctionModel(lambda m, i: "fine"))
    arguments: dict[str, Any] = {"input": "go", name: value}
    try:
        result = await agent.run(**arguments)
    except UserError as exc:
        assert str(exc)[:1].isupper()
    except RunStateError:
        assert name == "input"
    else:
        assert result.output == "fine"


# --- cancellation and deadlines through nested runs -------------------------------------


def one_call(tool_name: str, arguments: dict[str, Any] | None = None) -> FunctionModel:
    """A model that calls `tool_name` once, then answers with its result."""
    return FunctionModel(
        lambda m, i: ToolCall(tool_name, arguments or {}, "c1") if not answered(m) else last_result_texts(m)[0]
    )


@pytest.mark.parametrize("inner_context", ["inherited", "fresh"])
async def test_a_deadline_stops_a_nested_run_inside_a_tool(inner_context: str) -> None:
    """An outer TimedContext deadline ends a nested agent.run() hanging in its tool: DeadlineExceeded, no leftovers."""
    finished: list[str] = []

    @tool
    async def hang() -> str:
        """Hang until cancelled."""
        try:
            await anyio.sleep_forever()
        finally:
            finished.append("inner tool cancelled")
        return "never"

    inner = Agent(name="inner", model=one_call("hang"), tools=[hang])

    @tool
    async def nest(ctx: TimedContext) -> str:
        """Run the inner agent, with this context or a fresh one."""
        return (await inner.run("x", context=ctx if inner_context == "inherited" else None)).output

    outer = Agent(name="outer", model=one_call("nest"), tools=[nest])
    baseline = living_tasks()
    with anyio.fail_after(HANG_GUARD), pytest.raises(DeadlineExceeded):
        await outer.run("go", context=TimedContext(deadline=now_utc() + timedelta(seconds=0.05)))
    assert finished == ["inner tool cancelled"]
    assert await settle(living_tasks, baseline) == baseline


@pytest.mark.parametrize("limit", ["deadline", "tool-timeout"])
async def test_the_end_of_a_sync_tool_call_stops_its_nested_run_sync(limit: str) -> None:
    """A deadline or a tool timeout cancels a nested run_sync (running on the outer loop) whose async tool hangs."""
    finished: list[str] = []

    @tool
    async def hang() -> str:
        """Hang until cancelled."""
        try:
            await anyio.sleep_forever()
        finally:
            finished.append("inner tool cancelled")
        return "never"

    inner = Agent(name="inner", model=one_call("hang"), tools=[hang])

    @tool(timeout=LIMIT if limit == "tool-timeout" else None)
    def nest() -> str:
        """Run the inner agent synchronously."""
        return inner.run_sync("x").output

    outer = Agent(name="outer", model=one_call("nest"), tools=[nest])
    baseline = living_tasks()
    with anyio.fail_after(HANG_GUARD):
        if limit == "deadline":
            with pytest.raises(DeadlineExceeded):
                await outer.run("go", context=TimedContext(deadline=now_utc() + timedelta(seconds=LIMIT)))
        else:
            assert (await outer.run("go")).output == f"Error: Tool 'nest' timed out after {LIMIT} seconds"
    assert await settle(living_tasks, baseline) == baseline
    assert finished == ["inner tool cancelled"]


async def test_a_nested_run_started_after_its_sync_tool_call_ended_never_runs() -> None:
    """A sync tool abandoned at its timeout that calls run_sync() afterwards is cancelled: its tools never run."""
    release, done = threading.Event(), threading.Event()
    ran: list[str] = []
    outcome: list[str] = []

    @tool
    def side_effect() -> str:
        """A write that must not happen once the call that asked for it is over."""
        ran.append("inner tool ran")
        return "written"

    inner = Agent(name="inner", model=one_call("side_effect"), tools=[side_effect])

    @tool(timeout=LIMIT)
    def late() -> str:
        """Wait until the call has timed out, then run the inner agent."""
        release.wait(HANG_GUARD)
        try:
            return inner.run_sync("x").output
        except BaseException as exc:  # the thread was abandoned: nobody else sees how its run ended
            outcome.append(type(exc).__name__)
            raise
        finally:
            done.set()

    outer = Agent(name="outer", model=one_call("late"), tools=[late])
    assert (await outer.run("go")).output == f"Error: Tool 'late' timed out after {LIMIT} seconds"
    release.set()
    assert await anyio.to_thread.run_sync(done.wait, HANG_GUARD)
    assert ran == [] and outcome in (["CancelledError"], ["Cancelled"])  # asyncio's, trio's


async def test_cancelling_the_caller_cancels_nested_runs() -> None:
    """Cancelling the task that awaits the outer run cancels the nested run's hanging tool; nothing is left running."""
    started, finished = anyio.Event(), []

    @tool
    async def hang() -> str:
        """Hang until cancelled."""
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            finished.append("inner tool cancelled")
        return "never"

    inner = Agent(name="inner", model=one_call("hang"), tools=[hang])

    @tool
    async def nest() -> str:
        """Run the inner agent."""
        return (await inner.run("x")).output

    outer = Agent(name="outer", model=one_call("nest"), tools=[nest])
    baseline = living_tasks()
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(outer.run, "go")
            await started.wait()
            tg.cancel_scope.cancel()
    assert finished == ["inner tool cancelled"]
    assert await settle(living_tasks, baseline) == baseline
