"""Regression tests for the hardening fixes (issue 13, items 1-14).

Each test failed on the code before the redesign (commit 04c9a3d) and passes now; the
report of the hardening branch records how each one failed there.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import pickle
import threading
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sniffio
from chat_server import Call, ChatServer, Reply
from helpers import first_prompt, last_result_texts

from cogent import (
    Agent,
    DelegationDepthExceeded,
    FunctionModel,
    InterceptContext,
    Phase,
    RunContext,
    RunState,
    ToolApprovalItem,
    ToolCall,
    UsageLimitExceeded,
    UsageLimits,
    UserError,
    interceptor,
    tool,
)
from cogent.exceptions import CogentError, RunStateError
from cogent.messages import Message, ModelResponse
from cogent.models import ModelRequestParameters

pytestmark = pytest.mark.anyio

CANARY = "canary-93be"
KEY = "hardening-test-key"


# --- helpers ----------------------------------------------------------------------------


@dataclass
class FsContext(RunContext):
    """A context with a file system stand-in: the paths deleted so far (shared by child contexts)."""

    deleted: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)


@tool(requires_approval=True)
def delete(ctx: FsContext, path: str) -> str:
    """Delete a path (needs approval)."""
    ctx.deleted.append(path)
    return f"deleted {path}"


def deleter(*, numbered: bool = False) -> Agent[Any, Any]:
    """An agent that deletes the path its input names, with call id `call_0` in every run (or `call_<path>`)."""

    async def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        await anyio.lowlevel.checkpoint()  # a real model awaits I/O: other tasks run meanwhile
        if not any(isinstance(m, ModelResponse) for m in messages):
            path = first_prompt(messages)
            return ToolCall("delete", {"path": path}, f"call_{path}" if numbered else "call_0")
        return "|".join(last_result_texts(messages))

    return Agent(name="deleter", model=FunctionModel(respond), tools=[delete], description="Deletes a path.")


def path_of(item: ToolApprovalItem) -> str:
    """Return the path a pending `delete` call would delete."""
    return str(json.loads(item.arguments)["path"])


def edit_payload(text: str, change: Any) -> str:
    """Return saved state `text` with `change(payload_dict)` applied, signature left as it was."""
    envelope = json.loads(text)
    payload = json.loads(envelope["payload"])
    change(payload)
    envelope["payload"] = json.dumps(payload)
    return json.dumps(envelope)


def resign(text: str) -> str:
    """Return `text` (an edited envelope) signed again with the test key, as an insider holding the key could."""
    envelope = json.loads(text)
    envelope["hmac_sha256"] = hmac.new(KEY.encode(), envelope["payload"].encode(), hashlib.sha256).hexdigest()
    return json.dumps(envelope)


# --- 1: sibling subagents reusing a call id -------------------------------------------


def parent_of_two_deleters(parallel: bool) -> Agent[Any, Any]:
    """A parent that asks its `deleter` subagent to delete '/tmp/cache' and '/' in one response."""

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not any(isinstance(m, ModelResponse) for m in messages):
            return [
                ToolCall("deleter", {"task": "/tmp/cache"}, "p1"),
                ToolCall("deleter", {"task": "/"}, "p2"),
            ]
        return "|".join(last_result_texts(messages))

    return Agent(name="parent", model=FunctionModel(respond), subagents=[deleter()], parallel_tool_calls=parallel)


@interceptor(Phase.PRE_ACT)
async def slow_audit_of_root(ic: InterceptContext) -> None:
    """An auditing interceptor that awaits its log writes: a few scheduling points, more for a delete of '/'."""
    if ic.tool_name == "delete":
        for _ in range(10 if (ic.tool_args or {}).get("path") == "/" else 3):
            await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize("parallel", [True, False], ids=["parallel", "sequential"])
async def test_a_handlers_approval_does_not_cover_a_siblings_call_with_the_same_id(parallel: bool) -> None:
    """Two subagent calls both numbered call_0: the handler is asked for each, and a rejected one never runs.

    Both calls are made before either is decided; the audit makes the '/' call reach its approval after
    the '/tmp/cache' call was approved.
    """
    asked: list[str] = []

    def handler(item: ToolApprovalItem) -> bool:
        asked.append(path_of(item))
        return path_of(item) == "/tmp/cache"

    ctx = FsContext()
    result = await parent_of_two_deleters(parallel).run(
        "clean up", context=ctx, approval_handler=handler, interceptors=[slow_audit_of_root]
    )
    assert sorted(asked) == ["/", "/tmp/cache"]
    assert ctx.deleted == ["/tmp/cache"]
    assert "rejected" in result.output


async def test_approving_one_siblings_interruption_resumes_only_that_call() -> None:
    """Without a handler both siblings interrupt; approving '/tmp/cache' leaves '/' pending and not run."""
    ctx = FsContext()
    agent = parent_of_two_deleters(parallel=True)
    first = await agent.run("clean up", context=ctx)
    assert sorted(path_of(i) for i in first.interruptions) == ["/", "/tmp/cache"]
    assert {i.call_id for i in first.interruptions} == {"call_0"}
    (cache,) = [i for i in first.interruptions if path_of(i) == "/tmp/cache"]
    ctx.approve_tool(cache)
    assert first.state is not None
    second = await agent.run(first.state, context=ctx)
    assert ctx.deleted == ["/tmp/cache"]
    assert [path_of(i) for i in second.interruptions] == ["/"]


# --- 2: a handler must answer a bool ---------------------------------------------------


async def _false() -> bool:
    return False


async def _no() -> str:
    return "no"


@pytest.mark.parametrize(
    "answer",
    ["no", {"approved": False}, 1, None, "yes", [True]],
    ids=["str-no", "dict", "int", "none", "str-yes", "list"],
)
async def test_a_handler_answering_anything_but_a_bool_is_a_user_error(answer: Any) -> None:
    """A non-bool answer is a UserError and the call does not run (truthy answers included)."""
    ctx = FsContext()
    with pytest.raises(UserError, match="must return"):
        await deleter().run("/data", context=ctx, approval_handler=lambda item: answer)
    assert ctx.deleted == []


async def test_a_sync_handler_returning_a_coroutine_is_decided_by_its_answer() -> None:
    """A sync handler that returns a coroutine is not approved by the coroutine object: its answer decides."""
    ctx = FsContext()
    result = await deleter().run("/data", context=ctx, approval_handler=lambda item: _false())
    assert ctx.deleted == []
    assert "rejected" in result.output
    with pytest.raises(UserError, match="must return"):
        await deleter().run("/data", context=ctx, approval_handler=lambda item: _no())
    assert ctx.deleted == []


# --- 3: decisions of one run never cover another run's call ---------------------------


async def test_a_handlers_approval_in_one_run_does_not_cover_another_runs_pending_call() -> None:
    """Run Y's call_0 approved by its handler does not let interrupted run X's call_0 run on resume."""
    ctx = FsContext()
    agent = deleter()
    x = await agent.run("everything", context=ctx)
    assert [path_of(i) for i in x.interruptions] == ["everything"]
    y = await agent.run("tmp", context=ctx, approval_handler=lambda item: True)
    assert y.output == "deleted tmp"
    assert x.state is not None
    resumed = await agent.run(x.state, context=ctx)
    assert ctx.deleted == ["tmp"]
    assert [path_of(i) for i in resumed.interruptions] == ["everything"]


async def test_a_per_call_approval_of_one_run_does_not_cover_another_runs_call() -> None:
    """Approving run Y's call_0 on the shared context and resuming Y leaves run X's call_0 undecided."""
    ctx = FsContext()
    agent = deleter()
    x = await agent.run("everything", context=ctx)
    y = await agent.run("tmp", context=ctx)
    ctx.approve_tool(y.interruptions[0])
    assert x.state is not None and y.state is not None
    assert (await agent.run(y.state, context=ctx)).output == "deleted tmp"
    resumed = await agent.run(x.state, context=ctx)
    assert ctx.deleted == ["tmp"]
    assert [path_of(i) for i in resumed.interruptions] == ["everything"]


async def test_one_users_permanent_approval_does_not_reach_another_users_with_metadata_copy() -> None:
    """always_approve on user A's with_metadata copy lets A's calls run, never user B's."""
    agent = deleter()
    service = FsContext()
    await Agent(name="warm", model=FunctionModel(lambda m, i: "up")).run("warm up", context=service)
    alice, bob = service.with_metadata(user="alice"), service.with_metadata(user="bob")
    first = await agent.run("alice-file", context=alice)
    alice.approve_tool(first.interruptions[0], always_approve=True)
    assert first.state is not None
    assert (await agent.run(first.state, context=alice)).output == "deleted alice-file"
    other = await agent.run("bob-file", context=bob)
    assert [path_of(i) for i in other.interruptions] == ["bob-file"]
    assert service.deleted == ["alice-file"]


# --- 4: a saved RunState is untrusted input -----------------------------------------------


async def interrupted(ctx: FsContext, path: str = "/tmp/x") -> tuple[Agent[Any, Any], RunState]:
    """Return the deleter and its state, interrupted on deleting `path`."""
    agent = deleter()
    result = await agent.run(path, context=ctx)
    assert result.state is not None
    return agent, result.state


async def test_an_added_approvals_entry_is_rejected() -> None:
    """A state whose payload gained an "approvals" entry does not load, and the call does not run."""
    ctx = FsContext()
    agent, state = await interrupted(ctx)

    def grant(payload: dict[str, Any]) -> None:
        payload["approvals"] = {"delete": {"approved": True, "rejected": []}}

    forged = edit_payload(state.to_json(key=KEY), grant)
    with pytest.raises(RunStateError, match="signature"):
        await agent.run(RunState.from_json(forged, key=KEY), context=ctx)
    assert ctx.deleted == []


async def test_arguments_edited_after_approval_are_rejected() -> None:
    """Editing the pending call's path after the approver saw '/tmp/x' makes the state fail to load."""
    ctx = FsContext()
    agent, state = await interrupted(ctx)
    ctx.approve_tool(state.interruptions[0])

    def retarget(payload: dict[str, Any]) -> None:
        payload["messages"][-1]["tool_calls"][0]["arguments"] = {"path": "/"}
        for item in payload.get("pending", []):
            item["arguments"] = json.dumps({"path": "/"})

    forged = edit_payload(state.to_json(key=KEY), retarget)
    with pytest.raises(RunStateError):
        await agent.run(RunState.from_json(forged, key=KEY), context=ctx)
    assert ctx.deleted == []


async def test_a_forged_nested_state_for_a_plain_tool_is_rejected() -> None:
    """A children[call_id] entry for a call of a plain tool fails to load (and to resume, even re-signed)."""
    ctx = FsContext()
    agent, state = await interrupted(ctx)
    call_id = state.interruptions[0].call_id

    def nest(payload: dict[str, Any]) -> None:
        payload["children"] = {call_id: copy.deepcopy(payload)}
        payload["pending"] = []  # the call now claims to wait inside a "subagent"

    forged = edit_payload(state.to_json(key=KEY), nest)
    with pytest.raises(RunStateError):
        RunState.from_json(forged, key=KEY)
    with pytest.raises(RunStateError, match="not a delegation"):
        await agent.run(RunState.from_json(resign(forged), key=KEY), context=ctx)
    assert ctx.deleted == []


async def test_a_state_resumes_at_most_once() -> None:
    """Resuming the same state twice, or two JSON copies of it, runs the approved call once."""
    for via_json in (False, True):
        ctx = FsContext()
        agent, state = await interrupted(ctx)
        ctx.approve_tool(state.interruptions[0], always_approve=True)
        text = state.to_json(key=KEY)
        first = RunState.from_json(text, key=KEY) if via_json else state
        second = RunState.from_json(text, key=KEY) if via_json else state
        assert (await agent.run(first, context=ctx)).output == "deleted /tmp/x"
        with pytest.raises(RunStateError, match="already resumed"):
            await agent.run(second, context=ctx)
        assert ctx.deleted == ["/tmp/x"]


@pytest.mark.parametrize("mangle", ["truncated", "empty", "wrong-key", "not-an-object", "no-payload"])
async def test_a_malformed_saved_state_is_a_run_state_error(mangle: str) -> None:
    """Truncated, empty, foreign-key or shapeless JSON raises RunStateError (a CogentError) with a sentence."""
    _, state = await interrupted(FsContext())
    text = state.to_json(key=KEY)
    data, key = {
        "truncated": (text[: len(text) // 2], KEY),
        "empty": ("", KEY),
        "wrong-key": (text, "another-key"),
        "not-an-object": ("[1, 2, 3]", KEY),
        "no-payload": (json.dumps({"format": "cogent.run_state", "version": 1}), KEY),
    }[mangle]
    with pytest.raises(RunStateError) as info:
        RunState.from_json(data, key=key)
    assert isinstance(info.value, CogentError)
    assert str(info.value)[0].isupper() and str(info.value).rstrip().endswith(".")


async def test_resuming_never_installs_decisions_on_the_callers_context() -> None:
    """A state resumed with another user's context carries no decisions into it."""
    alice = FsContext()
    agent, state = await interrupted(alice)
    alice.approve_tool(state.interruptions[0], always_approve=True)
    text = state.to_json(key=KEY)
    bob = FsContext()
    resumed = await agent.run(RunState.from_json(text, key=KEY), context=bob)
    assert bob.deleted == [] and alice.deleted == []
    assert [path_of(i) for i in resumed.interruptions] == ["/tmp/x"]
    assert bob.is_tool_approved("delete", "call_0") is None
    assert bob.approval_status(resumed.interruptions[0]) == "undecided"


async def test_a_state_pickles_and_the_copy_resumes_once() -> None:
    """`pickle.dumps(result.state)` works; the unpickled state resumes, and only once."""
    ctx = FsContext()
    agent, state = await interrupted(ctx)
    ctx.approve_tool(state.interruptions[0])
    restored = pickle.loads(pickle.dumps(state))
    assert (await agent.run(restored, context=ctx)).output == "deleted /tmp/x"
    with pytest.raises(RunStateError):
        await agent.run(pickle.loads(pickle.dumps(state)), context=ctx)
    assert ctx.deleted == ["/tmp/x"]


# --- 5: sequential calls wait for a pending approval --------------------------------------


@tool(requires_approval=True)
def transfer(ctx: FsContext, amount: int) -> str:
    """Transfer money (needs approval)."""
    ctx.notified.append(f"transfer {amount}")
    return f"transferred {amount}"


@tool
def notify(ctx: FsContext, message: str) -> str:
    """Notify the customer."""
    ctx.notified.append(f"notify {message}")
    return "notified"


def transfer_then_notify() -> tuple[Agent[Any, Any], list[list[str]]]:
    """A sequential agent whose model transfers and notifies in one response; it records each turn's results."""
    seen: list[list[str]] = []

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not any(isinstance(m, ModelResponse) for m in messages):
            return [ToolCall("transfer", {"amount": 100}, "t1"), ToolCall("notify", {"message": "transfer done"}, "n1")]
        seen.append(last_result_texts(messages))
        return "done"

    agent = Agent(name="bank", model=FunctionModel(respond), tools=[transfer, notify], parallel_tool_calls=False)
    return agent, seen


@pytest.mark.parametrize("approve", [True, False], ids=["approved", "rejected"])
async def test_a_call_after_a_pending_approval_waits_for_the_decision(approve: bool) -> None:
    """With parallel_tool_calls=False, notify runs only after the transfer is decided, in the model's order."""
    ctx = FsContext()
    agent, seen = transfer_then_notify()
    first = await agent.run("pay", context=ctx)
    assert [i.tool_name for i in first.interruptions] == ["transfer"]
    assert ctx.notified == []  # nothing after the pending call ran
    (ctx.approve_tool if approve else ctx.reject_tool)(first.interruptions[0])
    assert first.state is not None
    result = await agent.run(first.state, context=ctx)
    assert result.output == "done"
    if approve:
        assert ctx.notified == ["transfer 100", "notify transfer done"]
        assert seen == [["transferred 100", "notified"]]
    else:
        assert ctx.notified == ["notify transfer done"]
        assert seen == [["Tool call 'transfer' was rejected; do not retry it.", "notified"]]


# --- 6: records stay bounded ------------------------------------------------------------


async def test_decisions_and_saved_states_do_not_grow_with_history() -> None:
    """After 3,000 approve-and-resume runs on one context, a new state and the context are as small as at first."""
    ctx = FsContext()
    agent = deleter(numbered=True)
    state_sizes: list[int] = []
    context_sizes: list[int] = []  # bytes of the context's decision store
    for i in range(3000):
        path = f"/tmp/{i:05d}"
        result = await agent.run(path, context=ctx)
        assert result.state is not None
        ctx.approve_tool(result.interruptions[0])
        if i in (1, 2999):
            state_sizes.append(len(result.state.to_json(key=KEY)))
        assert (await agent.run(result.state, context=ctx)).output == f"deleted {path}"
        if i in (1, 2999):
            # the decision store itself: pickling the context would drop the decisions
            context_sizes.append(len(pickle.dumps(ctx._approvals())))
    assert state_sizes[0] == state_sizes[1]
    assert context_sizes[0] == context_sizes[1]
    assert ctx.is_tool_approved("delete", "call_/tmp/02999") is None


# --- 8: nested run_sync at high concurrency ---------------------------------------------


async def test_sixty_concurrent_runs_whose_sync_tools_call_run_sync_complete() -> None:
    """More concurrent runs than worker threads (40), each sync tool running a nested run_sync that needs a
    worker thread for its own sync tool, all finish."""

    @tool
    def shout(text: str) -> str:
        """A sync tool of the nested run: it needs a worker thread too."""
        return f"inner:{text}"

    def inner_respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not any(isinstance(m, ModelResponse) for m in messages):
            return ToolCall("shout", {"text": first_prompt(messages)}, "s1")
        return last_result_texts(messages)[0]

    inner = Agent(name="inner", model=FunctionModel(inner_respond), tools=[shout])

    @tool
    def ask_inner(question: str) -> str:
        """Ask the inner agent synchronously."""
        return inner.run_sync(question).output

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not any(isinstance(m, ModelResponse) for m in messages):
            return ToolCall("ask_inner", {"question": first_prompt(messages)}, "c1")
        return last_result_texts(messages)[0]

    outer = Agent(name="outer", model=FunctionModel(respond), tools=[ask_inner])
    outputs: dict[int, str] = {}

    async def one(i: int) -> None:
        outputs[i] = (await outer.run(f"q{i}")).output

    with anyio.fail_after(60):  # a hang guard only (a deadlock would wait forever)
        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(one, i)
    assert outputs == {i: f"inner:q{i}" for i in range(60)}


# --- 9, 10: hard bounds under parallelism and recursion ------------------------------------


async def test_a_request_limit_holds_across_parallel_delegations() -> None:
    """UsageLimits(request_limit=3) with 8 parallel delegations makes at most 3 model requests."""
    requests: list[str] = []

    async def child_respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        requests.append("child")
        await anyio.lowlevel.checkpoint()  # a real model awaits I/O: the other delegations run meanwhile
        return "child done"

    async def parent_respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        requests.append("parent")
        await anyio.lowlevel.checkpoint()
        if not any(isinstance(m, ModelResponse) for m in messages):
            return [ToolCall("child", {"task": f"t{i}"}, f"d{i}") for i in range(8)]
        return "parent done"

    child = Agent(name="child", model=FunctionModel(child_respond), description="A child.")
    parent = Agent(name="parent", model=FunctionModel(parent_respond), subagents=[child])
    with pytest.raises(UsageLimitExceeded):
        await parent.run("go", usage_limits=UsageLimits(request_limit=3))
    assert len(requests) <= 3


async def test_a_self_delegating_agent_with_fan_out_stops_at_the_request_bound() -> None:
    """An agent that delegates to itself twice per turn stops with UsageLimitExceeded after at most 200 requests."""
    requests: list[int] = []

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        requests.append(1)
        if not any(isinstance(m, ModelResponse) for m in messages):
            return [ToolCall("loop", {"task": "again"}, "a"), ToolCall("loop", {"task": "again"}, "b")]
        return "done"

    agent = Agent(name="loop", model=FunctionModel(respond), description="Loops.")
    agent.add_subagents(agent)
    with anyio.fail_after(60), pytest.raises(UsageLimitExceeded, match="max_requests"):  # a hang guard only
        await agent.run("go", max_depth=100)
    assert len(requests) <= 200


@pytest.mark.parametrize("kind", ["async-run", "sync-run_sync"])
async def test_a_cycle_of_nested_runs_inside_tools_stops_with_a_framework_error(kind: str) -> None:
    """A tool that runs its own agent again stops with DelegationDepthExceeded or UsageLimitExceeded, raised out."""
    holder: list[Agent[Any, Any]] = []

    @tool
    async def recurse_async(task: str) -> str:
        """Run the agent again."""
        return (await holder[0].run(task)).output

    @tool
    def recurse_sync(task: str) -> str:
        """Run the agent again, synchronously."""
        return holder[0].run_sync(task).output

    chosen = recurse_async if kind == "async-run" else recurse_sync

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not any(isinstance(m, ModelResponse) for m in messages):
            return ToolCall(chosen.name, {"task": "again"}, "r1")
        return "|".join(last_result_texts(messages))

    holder.append(Agent(name="cycle", model=FunctionModel(respond), tools=[chosen]))
    with anyio.fail_after(60):  # a hang guard only
        with pytest.raises((DelegationDepthExceeded, UsageLimitExceeded)):
            await holder[0].run("go")


# --- 11: text that is not valid UTF-8, and contexts inside results ------------------------

LONE = "bad \ud800 text"


async def test_a_tool_result_with_a_lone_surrogate_reaches_a_real_server(server: ChatServer) -> None:
    """The next request to an OpenAI-compatible server succeeds: the lone surrogate is replaced."""

    @tool
    def lone() -> str:
        """Return text with a lone surrogate."""
        return LONE

    server.script = [Reply(tool_calls=[Call(name="lone", id="c1")]), Reply(text="ok")]
    result = await Agent(name="agent", model=server.model(), tools=[lone]).run("go")
    assert result.output == "ok"
    sent = json.dumps(server.requests[1]["messages"], ensure_ascii=False)
    assert "bad \ufffd text" in sent


async def test_a_state_with_lone_surrogates_saves_and_resumes() -> None:
    """A state whose task and tool results hold lone surrogates serializes, loads and resumes."""

    @tool
    def lone() -> str:
        """Return text with a lone surrogate."""
        return LONE

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not any(isinstance(m, ModelResponse) for m in messages):
            return [ToolCall("lone", {}, "l1"), ToolCall("delete", {"path": "/tmp/\udc80"}, "d1")]
        return "|".join(last_result_texts(messages))

    agent = Agent(name="agent", model=FunctionModel(respond), tools=[lone, delete])
    ctx = FsContext()
    first = await agent.run("task \udcff", context=ctx)
    assert first.state is not None
    ctx.approve_tool(first.interruptions[0])
    state = RunState.from_json(first.state.to_json(key=KEY), key=KEY)
    result = await agent.run(state, context=ctx)
    assert result.output.startswith("bad \ufffd text|deleted /tmp/")
    assert len(ctx.deleted) == 1


@dataclass
class SecretContext(RunContext):
    """A context with canaries in its fields."""

    api_key: str = f"{CANARY}-key"
    user: str = f"{CANARY}-user"


@pytest.mark.parametrize("shape", ["bare", "list", "dict"])
async def test_a_context_returned_by_a_tool_never_reaches_the_model(shape: str) -> None:
    """A tool returning its context (or a container holding it) sends a placeholder, never field values."""

    @tool
    def leak(ctx: SecretContext) -> Any:
        """Return the context."""
        return {"bare": ctx, "list": [1, ctx], "dict": {"ctx": ctx, "n": 1}}[shape]

    sent: list[str] = []

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        sent.append(repr(messages))
        if not any(isinstance(m, ModelResponse) for m in messages):
            return ToolCall("leak", {}, "c1")
        return "done"

    result = await Agent(name="agent", model=FunctionModel(respond), tools=[leak]).run("go", context=SecretContext())
    assert result.output == "done"
    assert "never serialized" in sent[-1]
    assert all(CANARY not in s for s in sent)


# --- 12: an exception that cannot be shown ----------------------------------------------


class Unprintable(Exception):
    """An exception whose `__str__` raises."""

    def __str__(self) -> str:
        raise RuntimeError("cannot print me")


async def test_a_tool_exception_whose_str_raises_still_gives_an_error_result() -> None:
    """The model gets an error result for a tool whose exception cannot be rendered."""

    @tool
    def broken() -> str:
        """Fail badly."""
        raise Unprintable()

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        if not any(isinstance(m, ModelResponse) for m in messages):
            return ToolCall("broken", {}, "c1")
        return last_result_texts(messages)[0]

    result = await Agent(name="agent", model=FunctionModel(respond), tools=[broken]).run("go")
    assert result.output.startswith("Error:")
    assert "Unprintable" in result.output


# --- 13: misuse is a UserError with a full sentence -------------------------------------


def _plain_context() -> RunContext:
    class Plain(RunContext):
        def __init__(self) -> None:  # skips RunContext.__init__
            self.user = "u"

    return Plain()


async def _agen() -> Any:
    yield 1


CONSTRUCTION: dict[str, dict[str, Any]] = {
    "model-none": {"model": None},
    "model-int": {"model": 123},
    "max_turns-str": {"max_turns": "3"},
    "tools-callable": {"tools": len},
    "interceptors-callable": {"interceptors": len},
    "instructions-int": {"instructions": 5},
}


def assert_sentence(exc: BaseException) -> None:
    """Assert that an error message is a full sentence."""
    message = str(exc)
    assert message[0].isupper(), message
    assert message.rstrip().endswith((".", ")")), message
    assert len(message.split()) >= 6, message


@pytest.mark.parametrize("overrides", CONSTRUCTION.values(), ids=list(CONSTRUCTION))
def test_misconfiguring_an_agent_is_a_user_error_with_a_sentence(overrides: dict[str, Any]) -> None:
    """Agent(...) with a wrong argument raises UserError naming it, in a full sentence."""
    arguments: dict[str, Any] = {"name": "a", "model": "test", **overrides}
    with pytest.raises(UserError) as info:
        Agent(**arguments)
    assert next(iter(overrides)) in str(info.value)
    assert_sentence(info.value)


RUN_MISUSE: dict[str, dict[str, Any]] = {
    "usage_limits-dict": {"usage_limits": {"request_limit": 3}},
    "history-str": {"message_history": "hi"},
    "history-provider-dicts": {"message_history": [{"role": "user", "content": "hi"}]},
    "plain-context": {"context": "PLAIN"},
}


@pytest.mark.parametrize("overrides", RUN_MISUSE.values(), ids=list(RUN_MISUSE))
async def test_misusing_run_is_a_user_error_with_a_sentence(overrides: dict[str, Any]) -> None:
    """agent.run(...) with a wrong argument raises UserError in a full sentence, before any model request."""
    requests: list[int] = []
    agent = Agent(name="a", model=FunctionModel(lambda m, i: requests.append(1) or "hi"))
    arguments = {k: (_plain_context() if v == "PLAIN" else v) for k, v in overrides.items()}
    with pytest.raises(UserError) as info:
        await agent.run("go", **arguments)
    assert_sentence(info.value)
    assert requests == []


def test_an_async_generator_tool_is_a_user_error_with_a_sentence() -> None:
    """@tool on an async generator function raises UserError at decoration."""
    with pytest.raises(UserError) as info:
        tool(_agen)
    assert_sentence(info.value)


# --- 14: run_sync errors are not chained to sniffio's lookup ------------------------------


def test_an_error_out_of_run_sync_is_not_chained_to_async_library_not_found() -> None:
    """The exception run_sync raises has no AsyncLibraryNotFoundError in its __context__/__cause__ chain."""

    @tool
    def fail() -> str:
        """Fail."""
        raise ValueError("tool failed")

    def respond(messages: list[Message], info: ModelRequestParameters) -> Any:
        return ToolCall("fail", {}, "c1")

    agent = Agent(name="agent", model=FunctionModel(respond), tools=[fail], tool_errors="raise")
    errors: list[BaseException] = []

    def in_plain_thread() -> None:
        try:
            agent.run_sync("go")
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=in_plain_thread)
    worker.start()
    worker.join()
    (error,) = errors
    assert isinstance(error, ValueError)
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and len(chain) < 20:
        chain.append(link)
        link = link.__cause__ or link.__context__
    assert not any(isinstance(e, sniffio.AsyncLibraryNotFoundError) for e in chain), chain
