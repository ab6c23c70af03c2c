"""Tool approvals: decisions on the context, handlers, interruptions and resuming, also across JSON and subagents."""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cogent import (
    Agent,
    FunctionModel,
    InterceptContext,
    InterceptResult,
    ModelRetry,
    Phase,
    RetryContext,
    RunContext,
    RunState,
    ScriptedModel,
    ToolApprovalItem,
    ToolCall,
    interceptor,
    tool,
)
from cogent.exceptions import RunStateError, UserError
from cogent.messages import Message, ModelResponse, ToolReturn
from cogent.models import ModelRequestParameters

pytestmark = pytest.mark.anyio

REJECTED = "Tool call 'refund' was rejected; do not retry it."


@dataclass
class ShopContext(RunContext):
    """A context with a service the tools use (a list standing in for a payment gateway)."""

    shop_id: str = "shop-1"
    refunds: list[str] = field(default_factory=list)


@tool(requires_approval=True)
def refund(ctx: ShopContext, order_id: str) -> str:
    """Refund an order."""
    ctx.refunds.append(order_id)
    return f"refunded {order_id} at {ctx.shop_id}"


@tool
def lookup(order_id: str) -> str:
    """Look an order up."""
    return f"order {order_id}: paid"


def item(tool_name: str = "refund", call_id: str = "c1") -> ToolApprovalItem:
    """A pending approval for `tool_name` / `call_id`."""
    return ToolApprovalItem(tool_name=tool_name, call_id=call_id, arguments="{}", agent_name="agent")


def tool_results(messages: list[Message]) -> list[str]:
    """The tool results the model received, in order."""
    return [m.content for m in messages if isinstance(m, ToolReturn)]


def refund_call(order_id: str, call_id: str) -> ToolCall:
    """A model's call of `refund`."""
    return ToolCall("refund", {"order_id": order_id}, call_id)


def shop_agent(*steps: Any, name: str = "shop") -> Agent[Any, Any]:
    """An agent with `refund` (approval needed) and `lookup` that plays `steps`."""
    return Agent(name=name, model=ScriptedModel(list(steps)), tools=[refund, lookup], description="Handles refunds.")


# --- the decision records (semantics of the OpenAI Agents SDK's RunContextWrapper) --------------------


def test_per_call_decisions_are_scoped_to_the_call_id() -> None:
    """approve_tool/reject_tool without `always` decide one call id; other calls stay undecided."""
    ctx = RunContext()
    assert ctx.is_tool_approved("refund", "c1") is None
    ctx.approve_tool(item(call_id="c1"))
    ctx.reject_tool(item(call_id="c2"))
    assert ctx.is_tool_approved("refund", "c1") is True
    assert ctx.is_tool_approved("refund", "c2") is False
    assert ctx.is_tool_approved("refund", "c3") is None
    assert ctx.is_tool_approved("lookup", "c1") is None
    ctx.reject_tool(item(call_id="c1"))
    assert ctx.is_tool_approved("refund", "c1") is False


def test_permanent_decisions_cover_every_call() -> None:
    """always_approve / always_reject decide every call of the tool, and the later one replaces the earlier."""
    ctx = RunContext()
    ctx.approve_tool(item(call_id="c1"), always_approve=True)
    assert ctx.is_tool_approved("refund", "any") is True
    ctx.reject_tool(item(call_id="c2"), always_reject=True)
    assert ctx.is_tool_approved("refund", "c1") is False
    assert ctx.is_tool_approved("refund", "other") is False


def test_get_approval_status_falls_back_to_the_pending_items_tool_name() -> None:
    """get_approval_status tries the pending item's tool name when the given name has no decision."""
    ctx = RunContext()
    pending = item(tool_name="refund", call_id="c9")
    ctx.approve_tool(pending)
    assert ctx.get_approval_status("refund_v2", "c9") is None
    assert ctx.get_approval_status("refund_v2", "c9", existing_pending=pending) is True


class ReferenceApprovals:
    """The OpenAI Agents SDK's RunContextWrapper decision logic, transcribed from reference/001 as an oracle."""

    def __init__(self) -> None:
        self.records: dict[str, list[Any]] = {}

    def decide(self, tool_name: str, call_id: str, *, always: bool, approve: bool) -> None:
        entry = self.records.setdefault(tool_name, [[], []])  # [approved, rejected]
        if always:
            entry[0] = approve
            entry[1] = [] if approve else True
            if not approve:
                entry[0] = False
            return
        opposite = entry[1] if approve else entry[0]
        if isinstance(opposite, list) and call_id in opposite:
            opposite.remove(call_id)
        target = entry[0] if approve else entry[1]
        if isinstance(target, list) and call_id not in target:
            target.append(call_id)

    def status(self, tool_name: str, call_id: str) -> bool | None:
        entry = self.records.get(tool_name)
        if not entry:
            return None
        approved, rejected = entry
        if approved is True:
            return True
        if rejected is True:
            return False
        if isinstance(approved, list) and call_id in approved:
            return True
        if isinstance(rejected, list) and call_id in rejected:
            return False
        return None


decisions = st.lists(
    st.tuples(st.sampled_from(["refund", "wipe"]), st.sampled_from(["c1", "c2", "c3"]), st.booleans(), st.booleans()),
    max_size=12,
)


@given(decisions)
def test_decisions_match_the_openai_agents_sdk(steps: list[tuple[str, str, bool, bool]]) -> None:
    """Any sequence of approvals and rejections gives the statuses the OpenAI Agents SDK gives."""
    ctx = RunContext()
    oracle = ReferenceApprovals()
    for tool_name, call_id, always, approve in steps:
        pending = item(tool_name=tool_name, call_id=call_id)
        if approve:
            ctx.approve_tool(pending, always_approve=always)
        else:
            ctx.reject_tool(pending, always_reject=always)
        oracle.decide(tool_name, call_id, always=always, approve=approve)
        for name in ("refund", "wipe"):
            for cid in ("c1", "c2", "c3"):
                assert ctx.is_tool_approved(name, cid) == oracle.status(name, cid)


# --- approval handlers ----------------------------------------------------------------------------


async def test_a_sync_handler_receives_the_item_and_the_context_and_approves() -> None:
    """A sync handler gets the ToolApprovalItem and the run's context by injection; True lets the tool run."""
    seen: list[tuple[ToolApprovalItem, ShopContext]] = []

    def approve_small(pending: ToolApprovalItem, ctx: ShopContext) -> bool:
        seen.append((pending, ctx))
        return True

    agent = shop_agent(refund_call("A1", "c1"), "done")
    result = await agent.run("refund A1", context=ShopContext(), approval_handler=approve_small)
    [(pending, ctx)] = seen
    assert (pending.tool_name, pending.call_id, pending.arguments, pending.agent_name) == (
        "refund",
        "c1",
        '{"order_id":"A1"}',
        "shop",
    )
    assert len(pending.approval_id) == 32
    assert ctx is result.context
    assert result.context.refunds == ["A1"]
    assert result.interruptions == [] and result.state is None


async def test_an_async_handler_rejects_and_the_model_receives_the_rejection() -> None:
    """An async handler returning False: the tool does not run and the model is told the call was rejected."""

    async def deny(pending: ToolApprovalItem) -> bool:
        return False

    requests: list[list[Message]] = []

    def model(messages: list[Message], info: ModelRequestParameters) -> Any:
        requests.append(list(messages))
        return refund_call("A1", "c1") if len(requests) == 1 else "ok"

    agent = Agent(name="shop", model=FunctionModel(model), tools=[refund])
    context = ShopContext()
    result = await agent.run("refund A1", context=context, approval_handler=deny)
    assert context.refunds == []
    assert tool_results(requests[1]) == [REJECTED]
    assert result.output == "ok"


async def test_a_callable_object_with_an_async_call_method_is_a_handler() -> None:
    """An approver object whose `__call__` is `async def` is awaited, with the item and the context injected."""

    class SmallRefunds:
        def __init__(self, allowed: set[str]) -> None:
            self.allowed = allowed

        async def __call__(self, pending: ToolApprovalItem, ctx: ShopContext) -> bool:
            return json.loads(pending.arguments)["order_id"] in self.allowed and ctx.shop_id == "shop-1"

    agent = shop_agent([refund_call("A1", "c1"), refund_call("B2", "c2")], "done")
    result = await agent.run("go", context=ShopContext(), approval_handler=SmallRefunds({"A1"}))
    assert result.context.refunds == ["A1"]
    assert tool_results(result.messages) == ["refunded A1 at shop-1", REJECTED]


async def test_a_handler_must_take_the_item() -> None:
    """A handler that does not take exactly the pending item (besides the context) is a UserError and nothing runs;
    a positional-only parameter is fine, since the item is passed positionally."""
    agent = shop_agent(refund_call("A1", "c1"), "done")
    context = ShopContext()
    with pytest.raises(UserError, match=r"The approval_handler must take 1 parameter\(s\).*takes 0 \(none\)"):
        await agent.run("go", context=context, approval_handler=lambda: True)

    def two(pending: ToolApprovalItem, note: str) -> bool:
        return True

    with pytest.raises(UserError, match=r"takes 2 \(pending, note\)"):
        await agent.run("go", context=context, approval_handler=two)
    assert context.refunds == []

    def only_positional(pending: ToolApprovalItem, /) -> bool:
        return pending.call_id == "c1"

    assert (await agent.run("go", context=context, approval_handler=only_positional)).output == "done"
    assert context.refunds == ["A1"]


async def test_a_handlers_decision_is_per_call() -> None:
    """The handler is asked again for a later call of the same tool: its answer decides one call and is not
    recorded on the context (so no later call, of this run or another, can ride on it)."""
    asked: list[ToolApprovalItem] = []

    def approve(pending: ToolApprovalItem) -> bool:
        asked.append(pending)
        return True

    agent = shop_agent(refund_call("A1", "c1"), refund_call("A2", "c2"), "done")
    context = ShopContext()
    result = await agent.run("refund both", context=context, approval_handler=approve)
    assert [p.call_id for p in asked] == ["c1", "c2"]
    assert context.refunds == ["A1", "A2"]
    assert (context.is_tool_approved("refund", "c1"), context.is_tool_approved("refund", "c3")) == (None, None)
    for ctx in (context, result.context):
        assert [ctx.approval_status(p) for p in asked] == ["undecided", "undecided"]


async def test_a_permanent_decision_skips_the_handler() -> None:
    """A tool approved with always_approve=True on the context runs without asking the handler."""

    def never(pending: ToolApprovalItem) -> bool:
        raise AssertionError("the handler must not be asked")

    context = ShopContext()
    context.approve_tool(item(call_id="earlier"), always_approve=True)
    await shop_agent(refund_call("A1", "c1"), "done").run("go", context=context, approval_handler=never)
    assert context.refunds == ["A1"]


# --- interruptions and resuming ---------------------------------------------------------------------


async def test_without_a_handler_the_run_is_interrupted_and_resumes_after_approval() -> None:
    """No handler: the run ends with interruptions and a state; after approve_tool, run(state) finishes it."""
    agent = shop_agent([ToolCall("lookup", {"order_id": "A1"}, "c0"), refund_call("A1", "c1")], "refund done")
    context = ShopContext()
    result = await agent.run("refund A1", context=context)
    assert result.output is None
    assert [i.call_id for i in result.interruptions] == ["c1"]
    assert result.state is not None and result.state.interruptions == result.interruptions
    assert context.refunds == []
    context.approve_tool(result.interruptions[0])
    resumed = await agent.run(result.state, context=context)
    assert resumed.output == "refund done"
    assert context.refunds == ["A1"]
    assert tool_results(resumed.messages) == ["order A1: paid", "refunded A1 at shop-1"]
    assert resumed.usage.tool_calls == 2
    assert resumed.usage.requests == 2


async def test_a_json_state_resumes_with_the_decisions_of_the_context_it_is_resumed_with() -> None:
    """A new request resumes the JSON state with a new context: that context's decision applies; the first
    context's permanent approval does not travel with the state, so a later call waits again."""
    agent = shop_agent(
        [ToolCall("wipe_cache", {}, "c0"), refund_call("A1", "c1")], ToolCall("wipe_cache", {}, "c2"), "done"
    )

    wiped: list[str] = []

    @tool(requires_approval=True)
    def wipe_cache(ctx: ShopContext) -> str:
        """Wipe the cache."""
        wiped.append(ctx.shop_id)
        return "wiped"

    agent.add_tools(wipe_cache)
    first = ShopContext(shop_id="request-1")
    first.approve_tool(item(tool_name="wipe_cache", call_id="setup"), always_approve=True)
    result = await agent.run("go", context=first)
    assert result.state is not None
    saved = result.state.to_json()
    assert not any("approv" in key for key in json.loads(json.loads(saved)["payload"]))

    state = RunState.from_json(saved)
    second = ShopContext(shop_id="request-2")
    second.approve_tool(state.interruptions[0])
    resumed = await agent.run(state, context=second)
    assert second.refunds == ["A1"] and first.refunds == []
    assert wiped == ["request-1"]
    assert [i.tool_name for i in resumed.interruptions] == ["wipe_cache"]  # c2 waits for request-2's own decision
    second.approve_tool(resumed.interruptions[0])
    assert resumed.state is not None
    final = await agent.run(resumed.state, context=second)
    assert final.output == "done" and wiped == ["request-1", "request-2"]


async def test_a_per_call_approval_does_not_cover_the_next_call() -> None:
    """After a per-call approval, a later call of the same tool interrupts again; after always_approve it does not."""
    agent = shop_agent(refund_call("A1", "c1"), refund_call("A2", "c2"), refund_call("A3", "c3"), "done")
    context = ShopContext()
    result = await agent.run("go", context=context)
    context.approve_tool(result.interruptions[0])
    result = await agent.run(result.state, context=context)  # type: ignore[arg-type]
    assert [i.call_id for i in result.interruptions] == ["c2"]
    context.approve_tool(result.interruptions[0], always_approve=True)
    result = await agent.run(result.state, context=context)  # type: ignore[arg-type]
    assert result.interruptions == [] and result.output == "done"
    assert context.refunds == ["A1", "A2", "A3"]


async def test_a_rejection_after_an_interruption_reaches_the_model() -> None:
    """Rejecting the pending call and resuming sends the rejection message to the model; the tool never runs."""
    requests: list[list[Message]] = []

    def model(messages: list[Message], info: ModelRequestParameters) -> Any:
        requests.append(list(messages))
        return refund_call("A1", "c1") if not any(isinstance(m, ModelResponse) for m in messages) else "understood"

    agent = Agent(name="shop", model=FunctionModel(model), tools=[refund])
    context = ShopContext()
    result = await agent.run("refund A1", context=context)
    context.reject_tool(result.interruptions[0])
    resumed = await agent.run(RunState.from_json(result.state.to_json()), context=context)  # type: ignore[union-attr]
    assert resumed.output == "understood"
    assert tool_results(requests[-1]) == [REJECTED]
    assert context.refunds == []


async def test_parallel_calls_are_interrupted_together_and_decided_separately() -> None:
    """Two pending calls of one response are both reported; one approved and one rejected resume correctly."""
    agent = shop_agent([refund_call("A1", "c1"), refund_call("A2", "c2")], "done")
    context = ShopContext()
    result = await agent.run("refund both", context=context)
    assert sorted(i.call_id for i in result.interruptions) == ["c1", "c2"]
    by_id = {i.call_id: i for i in result.interruptions}
    context.approve_tool(by_id["c1"])
    context.reject_tool(by_id["c2"])
    resumed = await agent.run(result.state, context=context)  # type: ignore[arg-type]
    assert context.refunds == ["A1"]
    assert tool_results(resumed.messages) == ["refunded A1 at shop-1", REJECTED]


async def test_a_decision_on_result_context_applies_when_resuming_with_the_callers_context() -> None:
    """`result.context` shares its decisions with the context passed in: approving on it and resuming the JSON state
    with the caller's context runs the call; a fresh context has no decision, so the call waits again."""
    agent = shop_agent(refund_call("A1", "c1"), "done")
    context = ShopContext()
    result = await agent.run("go", context=context)
    assert result.state is not None
    result.context.approve_tool(result.interruptions[0])
    stored = result.state.to_json()
    fresh = ShopContext()
    again = await agent.run(RunState.from_json(stored), context=fresh)
    assert again.output is None and fresh.refunds == []
    assert again.state is not None
    with pytest.raises(RunStateError, match="already resumed"):
        await agent.run(RunState.from_json(stored), context=context)
    fresh.approve_tool(again.interruptions[0])
    resumed = await agent.run(again.state, context=fresh)
    assert resumed.output == "done" and fresh.refunds == ["A1"]


# --- inside a subagent ------------------------------------------------------------------------------


async def test_an_approval_inside_a_subagent_interrupts_and_resumes_through_the_parent() -> None:
    """A subagent's pending call interrupts the parent; the state nests it by call id, survives JSON, and resumes."""
    looked_up: list[str] = []

    @tool
    def check(order_id: str) -> str:
        """Check an order."""
        looked_up.append(order_id)
        return f"{order_id} ok"

    desk = Agent(
        name="refund_desk",
        description="Processes refunds.",
        model=ScriptedModel([[ToolCall("check", {"order_id": "A1"}, "s0"), refund_call("A1", "s1")], "desk: refunded"]),
        tools=[refund, check],
    )
    lead = Agent(
        name="lead",
        model=ScriptedModel([ToolCall("refund_desk", {"task": "refund A1"}, "p1"), "all done"]),
        subagents=[desk],
    )
    result = await lead.run("refund A1", context=ShopContext())
    assert result.state is not None
    assert [(i.agent_name, i.call_id) for i in result.interruptions] == [("refund_desk", "s1")]
    assert list(result.state.children) == ["p1"]
    assert result.state.children["p1"].agent_name == "refund_desk"

    state = RunState.from_json(result.state.to_json())
    context = ShopContext(shop_id="request-2")
    context.approve_tool(state.interruptions[0])
    resumed = await lead.run(state, context=context)
    assert resumed.output == "all done"
    assert context.refunds == ["A1"]
    assert looked_up == ["A1"]  # the subagent's finished call was not run again
    assert tool_results(resumed.messages) == ["desk: refunded"]
    assert resumed.usage.tool_calls == 3  # the delegation, check and refund, each once


async def test_an_approved_delegation_interrupted_inside_is_not_asked_again_on_resume() -> None:
    """A delegation that needs approval, approved, then interrupted by its subagent's call: approving that call
    resumes the subagent; the delegation is not asked for again."""
    desk = Agent(
        name="refund_desk",
        description="Processes refunds.",
        model=ScriptedModel([refund_call("A1", "s1"), "desk: refunded"]),
        tools=[refund],
    )
    lead = Agent(
        name="lead",
        model=ScriptedModel([ToolCall("refund_desk", {"task": "refund A1"}, "p1"), "all done"]),
        tools=[desk.as_tool(requires_approval=True)],
    )
    context = ShopContext()
    first = await lead.run("refund A1", context=context)
    assert [(i.agent_name, i.tool_name) for i in first.interruptions] == [("lead", "refund_desk")]
    context.approve_tool(first.interruptions[0])
    assert first.state is not None
    second = await lead.run(first.state, context=context)
    assert [(i.agent_name, i.tool_name) for i in second.interruptions] == [("refund_desk", "refund")]
    context.approve_tool(second.interruptions[0])
    assert second.state is not None
    final = await lead.run(second.state, context=context)
    assert final.interruptions == [] and final.output == "all done" and context.refunds == ["A1"]


async def test_a_subagent_approval_with_a_handler_does_not_interrupt() -> None:
    """With a run-level approval handler, a subagent's call is decided in place and the run completes."""
    desk = shop_agent(refund_call("A1", "s1"), "desk: refunded", name="refund_desk")
    lead = Agent(
        name="lead", model=ScriptedModel([ToolCall("refund_desk", {"task": "refund A1"}), "done"]), subagents=[desk]
    )
    asked: list[str] = []

    def approve(pending: ToolApprovalItem) -> bool:
        asked.append(pending.agent_name)
        return True

    context = ShopContext()
    result = await lead.run("go", context=context, approval_handler=approve)
    assert (result.output, asked, context.refunds) == ("done", ["refund_desk"], ["A1"])


# --- what a decision covers -------------------------------------------------------------------------


async def test_a_per_call_decision_is_used_once() -> None:
    """The per-call approval the resumed run acted on is forgotten afterwards: it cannot cover a later call."""
    agent = shop_agent(refund_call("A1", "c1"), "done")
    context = ShopContext()
    result = await agent.run("go", context=context)
    (pending,) = result.interruptions
    context.approve_tool(pending)
    assert (context.approval_status(pending), context.is_tool_approved("refund", "c1")) == ("approved", True)
    await agent.run(result.state, context=context)  # type: ignore[arg-type]
    assert context.refunds == ["A1"]
    assert (context.approval_status(pending), context.is_tool_approved("refund", "c1")) == ("undecided", None)


async def test_a_per_call_approval_never_covers_the_same_call_in_another_run() -> None:
    """An approval of one run's pending call does not let a new run's call with the same id, tool and arguments run."""
    agent = shop_agent(refund_call("A1", "c1"), "done")
    context = ShopContext()
    first = await agent.run("go", context=context)
    context.approve_tool(first.interruptions[0])
    second = await agent.run("go", context=context)  # a new run, not a resume of `first`
    assert context.refunds == []
    assert [i.call_id for i in second.interruptions] == ["c1"]
    assert second.interruptions[0].approval_id != first.interruptions[0].approval_id


def test_a_decision_on_an_item_without_an_approval_id_covers_only_that_item() -> None:
    """Items built by hand (no `approval_id`) are decided one by one, by tool, call id and arguments."""
    ctx = RunContext()
    ctx.approve_tool(item(call_id="c1"))
    ctx.reject_tool(item(tool_name="wipe", call_id="c1"))
    assert ctx.approval_status(item(call_id="c1")) == "approved"
    assert ctx.approval_status(item(tool_name="wipe", call_id="c1")) == "rejected"
    assert ctx.approval_status(item(call_id="c2")) == "undecided"
    other_arguments = ToolApprovalItem(tool_name="refund", call_id="c1", arguments='{"x":1}', agent_name="agent")
    assert ctx.approval_status(other_arguments) == "undecided"


async def test_always_reject_rejects_every_call_without_asking_the_handler() -> None:
    """After `always_reject=True`, every call of the tool is rejected (the model is told), the handler is not asked."""

    def never(pending: ToolApprovalItem) -> bool:
        raise AssertionError("the handler must not be asked")

    context = ShopContext()
    context.reject_tool(item(call_id="earlier"), always_reject=True)
    assert context.approval_status(item(call_id="any")) == "rejected"
    result = await shop_agent(refund_call("A1", "c1"), "done").run("go", context=context, approval_handler=never)
    assert context.refunds == []
    assert tool_results(result.messages) == [REJECTED]
    assert result.interruptions == []


async def test_copies_made_by_the_caller_carry_no_decisions() -> None:
    """`copy.copy()` and `with_metadata()` of a context start without its decisions, so a context derived for another
    request never inherits an approval; the run's own `result.context` shares them."""
    context = ShopContext()
    context.approve_tool(item(call_id="c1"), always_approve=True)
    for derived in (copy.copy(context), context.with_metadata(request="r2")):
        assert derived.approval_status(item(call_id="c2")) == "undecided"
        result = await shop_agent(refund_call("A1", "c2"), "done").run("go", context=derived)
        assert [i.call_id for i in result.interruptions] == ["c2"]
        assert result.context.approval_status(result.interruptions[0]) == "undecided"
    assert context.approval_status(item(call_id="c2")) == "approved"


async def test_calls_whose_fields_run_together_get_separate_decisions() -> None:
    """Two pending calls whose call id and tool name concatenate to the same text ("xa" + "b" and "x" + "ab") are
    distinct items: approving one and rejecting the other runs exactly the approved one."""
    ran: list[str] = []

    @tool(requires_approval=True)
    def b(order_id: str) -> str:
        """Tool b."""
        ran.append("b")
        return "b ran"

    @tool(requires_approval=True)
    def ab(order_id: str) -> str:
        """Tool ab."""
        ran.append("ab")
        return "ab ran"

    agent = Agent(
        name="shop",
        model=ScriptedModel([[ToolCall("b", {"order_id": "1"}, "xa"), ToolCall("ab", {"order_id": "1"}, "x")], "done"]),
        tools=[b, ab],
    )
    context = RunContext()
    result = await agent.run("go", context=context)
    by_tool = {i.tool_name: i for i in result.interruptions}
    assert by_tool["b"].approval_id != by_tool["ab"].approval_id
    context.approve_tool(by_tool["b"])
    context.reject_tool(by_tool["ab"])
    await agent.run(result.state, context=context)  # type: ignore[arg-type]
    assert ran == ["b"]


def test_an_approval_item_cannot_be_changed_after_it_is_reported() -> None:
    """A pending item is immutable (its arguments are what the approver saw) and is built from keyword arguments."""
    pending = item()
    with pytest.raises(dataclasses.FrozenInstanceError):
        pending.arguments = '{"order_id":"other"}'  # type: ignore[misc]
    with pytest.raises(TypeError):
        ToolApprovalItem("refund", "c1", "{}", "agent")  # type: ignore[misc]


async def test_a_decision_on_result_context_is_seen_when_resuming_with_the_callers_context() -> None:
    """`result.context` shares the caller's decisions even when the caller's context had none before the run: an
    approval made on it lets the resumed run (with the caller's context) run the call."""
    agent = shop_agent(refund_call("A1", "c1"), "done")
    context = ShopContext()
    result = await agent.run("go", context=context)
    result.context.approve_tool(result.interruptions[0])
    assert context.approval_status(result.interruptions[0]) == "approved"
    resumed = await agent.run(result.state, context=context)  # type: ignore[arg-type]
    assert (resumed.output, context.refunds) == ("done", ["A1"])


# --- handlers that answer wrongly, states that do not fit ---------------------------------------------


async def test_a_handler_must_answer_a_bool() -> None:
    """A handler answering anything but True or False (after awaiting an awaitable it returns) is a UserError and
    the call does not run; a sync handler may return an awaitable of a bool."""
    agent = shop_agent(refund_call("A1", "c1"), "done")
    context = ShopContext()
    with pytest.raises(UserError, match="The approval_handler answered str for tool 'refund'; it must return True"):
        await agent.run("go", context=context, approval_handler=lambda pending: "yes")
    assert context.refunds == []

    async def later() -> bool:
        return True

    result = await agent.run("go", context=context, approval_handler=lambda pending: later())
    assert (result.output, context.refunds) == ("done", ["A1"])


async def test_an_altered_pending_call_is_refused_on_resume() -> None:
    """A RunState whose pending call was changed after the interruption (other arguments than the approver saw) is
    refused with RunStateError when resumed, even with the original item approved; the tool does not run."""
    agent = shop_agent(refund_call("A1", "c1"), "done")
    context = ShopContext()
    result = await agent.run("go", context=context)
    assert result.state is not None
    (pending,) = result.state.pending
    context.approve_tool(pending)
    altered = dataclasses.replace(result.state, pending=[dataclasses.replace(pending, arguments='{"order_id":"B9"}')])
    with pytest.raises(RunStateError, match="does not match its approval item; the state was altered"):
        await agent.run(altered, context=context)
    assert context.refunds == []


async def test_a_state_whose_pending_arguments_the_tool_no_longer_accepts_is_refused() -> None:
    """Resuming with an agent whose tool of that name takes other arguments is a RunStateError naming the tool."""
    result = await shop_agent(refund_call("A1", "c1"), "done").run("go", context=ShopContext())
    assert result.state is not None

    @tool(requires_approval=True, name="refund")
    def refund_by_number(order_id: int) -> str:
        return "refunded"

    changed = Agent(name="shop", model=ScriptedModel(["done"]), tools=[refund_by_number, lookup])
    with pytest.raises(RunStateError, match="pending call of tool 'refund' has arguments the tool does not accept"):
        await changed.run(result.state, context=ShopContext())


async def test_resuming_runs_the_call_with_the_arguments_the_approver_saw() -> None:
    """A PRE_ACT interceptor runs once per call: on resume the approved call runs with the (modified) arguments of
    the pending item, without validating or intercepting the model's original arguments again."""
    seen: list[dict[str, Any]] = []

    @interceptor(Phase.PRE_ACT)
    def normalize(call: InterceptContext) -> InterceptResult | None:
        seen.append(dict(call.tool_args or {}))
        if call.tool_name == "refund":
            return InterceptResult.modify_args(order_id=str(call.tool_args["order_id"]).upper())  # type: ignore[index]
        return None

    agent = Agent(
        name="shop", model=ScriptedModel([refund_call("a1", "c1"), "done"]), tools=[refund], interceptors=[normalize]
    )
    context = ShopContext()
    result = await agent.run("go", context=context)
    (pending,) = result.interruptions
    assert pending.arguments == '{"order_id":"A1"}'
    context.approve_tool(pending)
    await agent.run(result.state, context=context)  # type: ignore[arg-type]
    assert context.refunds == ["A1"]
    assert seen == [{"order_id": "a1"}]


async def test_a_retried_call_of_an_always_approved_tool_runs() -> None:
    """The copy of a `RetryContext` a retried call receives shares the context's decisions: after `always_approve`,
    the retry of a call that asked for one runs without interrupting."""
    attempts: list[int] = []

    @tool(requires_approval=True)
    def charge(ctx: RetryContext, amount: int) -> str:
        attempts.append(ctx.retry_count)
        if ctx.retry_count == 0:
            raise ModelRetry("the gateway was busy")
        return f"charged {amount}"

    context = RetryContext()
    context.approve_tool(item(tool_name="charge", call_id="setup"), always_approve=True)
    model = ScriptedModel([ToolCall("charge", {"amount": 5}), ToolCall("charge", {"amount": 5}), "done"])
    result = await Agent(name="pay", model=model, tools=[charge]).run("go", context=context)
    assert (result.output, result.interruptions, attempts) == ("done", [], [0, 1])


async def test_a_call_with_non_ascii_arguments_and_id_is_approved_and_resumed() -> None:
    """Arguments and a call id outside ASCII (as a model writes them) pause, survive JSON and resume once approved."""
    agent = shop_agent([refund_call("Bestellung-Grüße-☕", "appel-ü")], "erstattet")
    context = ShopContext()
    result = await agent.run("refund", context=context)
    (pending,) = result.interruptions
    assert pending.call_id == "appel-ü" and json.loads(pending.arguments) == {"order_id": "Bestellung-Grüße-☕"}
    assert result.state is not None
    state = RunState.from_json(result.state.to_json())
    context.approve_tool(state.interruptions[0])
    resumed = await agent.run(state, context=context)
    assert resumed.output == "erstattet" and context.refunds == ["Bestellung-Grüße-☕"]
