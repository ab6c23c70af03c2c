"""The retail desk's policy interceptors, approvals, tools and structure (examples/retail)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cogent import Agent, FunctionModel, ToolApprovalItem, ToolCall
from cogent.messages import Message, ModelResponse, ToolReturn
from cogent.models import ModelRequestParameters
from examples.retail.context import RetailContext
from examples.retail.desk import FRONT_DESK, FRONT_DESK_TOOLS, OWNER, SPECIALISTS, build_desk
from examples.retail.policy import AUTHENTICATED_TOOLS
from examples.retail.replay import tool_outputs
from examples.retail.store import RetailDB, cancel_pending_order, get_order_details
from examples.retail.tools import TOOLS, WRITE_TOOLS

pytestmark = pytest.mark.anyio

Reply = ModelResponse | str | ToolCall | list[ToolCall]

DB = RetailDB.fresh()
PENDING = next(order for order in DB.orders if order["status"] == "pending")
"""A pending order, and below its owner and an order of another user."""
OWNER_USER = DB.users.get(PENDING["user_id"])
OTHER_ORDER = next(order for order in DB.orders if order["user_id"] != PENDING["user_id"])
ORDER_IDS = [order["order_id"] for order in DB.orders]
USER_IDS = [user["user_id"] for user in DB.users]


def desk_playing(scripts: dict[str, Sequence[Reply]]) -> Agent[RetailContext, str]:
    """Return the desk with a model that plays one script per agent (step = responses so far)."""

    def respond(messages: list[Message], info: ModelRequestParameters) -> Reply:
        step = sum(isinstance(m, ModelResponse) for m in messages)
        return scripts[info.agent_name][step]

    return build_desk(FunctionModel(respond))


def identify(user: Any = OWNER_USER) -> ToolCall:
    """The call that authenticates `user` by email."""
    return ToolCall("find_user_id_by_email", {"email": user["email"]}, "identify")


def cancel(order_id: str, call_id: str = "cancel") -> ToolCall:
    """A cancellation of `order_id`."""
    return ToolCall("cancel_pending_order", {"order_id": order_id, "reason": "no longer needed"}, call_id)


def delegate(agent: str, call_id: str = "delegate") -> ToolCall:
    """A delegation to `agent`."""
    return ToolCall(agent, {"task": "Do the confirmed change."}, call_id)


def fresh_context() -> RetailContext:
    """A context with an unchanged database and no authenticated user."""
    return RetailContext(db=RetailDB.fresh())


def approve(item: ToolApprovalItem) -> bool:
    """Approve every call."""
    return True


async def test_write_before_authentication_is_refused() -> None:
    """A write made before the user is authenticated does not run, and the model is told why."""
    desk = desk_playing(
        {FRONT_DESK: [delegate("pending_orders"), "ok"], "pending_orders": [cancel(PENDING["order_id"]), "done"]}
    )
    ctx = fresh_context()

    result = await desk.run("Cancel my order.", context=ctx, approval_handler=approve)

    output = tool_outputs(result.trace)["cancel"]
    assert output.startswith("Error: cancel_pending_order needs an authenticated user")
    assert ctx.db.changed() == {}
    assert ctx.session.user_id is None


@pytest.mark.parametrize("tool", ["get_user_details", "get_order_details"])
async def test_user_data_lookup_before_authentication_is_refused(tool: str) -> None:
    """User and order lookups are refused until the user is authenticated."""
    arguments = {"user_id": OWNER_USER["user_id"]} if tool == "get_user_details" else {"order_id": PENDING["order_id"]}
    desk = desk_playing({FRONT_DESK: [ToolCall(tool, arguments, "lookup"), "ok"]})

    result = await desk.run("Show me my data.", context=fresh_context())

    assert tool_outputs(result.trace)["lookup"].startswith(f"Error: {tool} needs an authenticated user")


async def test_generic_tools_need_no_authentication() -> None:
    """Product lookups, calculate and the transfer to a human work before authentication."""
    product_id = PENDING["items"][0]["product_id"]
    calls = [
        ToolCall("get_product_details", {"product_id": product_id}, "product"),
        ToolCall("list_all_product_types", {}, "types"),
        ToolCall("calculate", {"expression": "1 + 2"}, "calc"),
        ToolCall("transfer_to_human_agents", {"summary": "Wants a human."}, "transfer"),
    ]
    desk = desk_playing({FRONT_DESK: [*calls, "ok"]})

    outputs = tool_outputs((await desk.run("Hi", context=fresh_context())).trace)

    assert json.loads(outputs["product"])["product_id"] == product_id
    assert len(json.loads(outputs["types"])) == 50
    assert outputs["calc"] == "3.0"
    assert outputs["transfer"] == "Transfer successful"


async def test_identification_authenticates_the_conversation_for_specialists() -> None:
    """After the front desk identifies the user, a specialist's approved write runs on the shared database."""
    desk = desk_playing(
        {
            FRONT_DESK: [identify(), delegate("pending_orders"), "ok"],
            "pending_orders": [cancel(PENDING["order_id"]), "done"],
        }
    )
    ctx = fresh_context()

    result = await desk.run("Cancel my order.", context=ctx, approval_handler=approve)

    assert ctx.session.user_id == OWNER_USER["user_id"]
    expected = cancel_pending_order(RetailContext(db=RetailDB.fresh()), PENDING["order_id"], "no longer needed")
    assert tool_outputs(result.trace)["cancel"] == expected
    assert ctx.db.orders.get(PENDING["order_id"])["status"] == "cancelled"


async def test_action_on_another_users_order_is_refused() -> None:
    """Once a user is authenticated, a write on another user's order is refused and changes nothing."""
    desk = desk_playing(
        {
            FRONT_DESK: [identify(), delegate("pending_orders"), "ok"],
            "pending_orders": [cancel(OTHER_ORDER["order_id"]), "done"],
        }
    )
    ctx = fresh_context()

    result = await desk.run("Cancel that order.", context=ctx, approval_handler=approve)

    output = tool_outputs(result.trace)["cancel"]
    assert output.startswith(f"Error: This conversation is with user {OWNER_USER['user_id']}")
    assert ctx.db.changed() == {}


async def test_another_users_profile_and_address_are_refused() -> None:
    """Reading another user's profile or changing their address is refused."""
    other = next(user for user in DB.users if user["user_id"] != OWNER_USER["user_id"])
    address = dict(OWNER_USER["address"])
    desk = desk_playing(
        {
            FRONT_DESK: [
                identify(),
                ToolCall("get_user_details", {"user_id": other["user_id"]}, "profile"),
                delegate("account"),
                "ok",
            ],
            "account": [ToolCall("modify_user_address", {"user_id": other["user_id"], **address}, "address"), "done"],
        }
    )
    ctx = fresh_context()

    outputs = tool_outputs((await desk.run("Hi", context=ctx, approval_handler=approve)).trace)

    assert outputs["profile"].startswith("Error: This conversation is with user")
    assert outputs["address"].startswith("Error: This conversation is with user")
    assert ctx.db.changed() == {}


async def test_unknown_order_reaches_the_tool() -> None:
    """An order id that does not exist is not refused by the policy: the tool reports it with the reference error."""
    desk = desk_playing(
        {FRONT_DESK: [identify(), ToolCall("get_order_details", {"order_id": "#9502126"}, "lookup"), "ok"]}
    )

    outputs = tool_outputs((await desk.run("Hi", context=fresh_context())).trace)

    assert outputs["lookup"] == "Error: Order not found"


async def test_second_user_cannot_take_over_the_conversation() -> None:
    """Identifying another user after the first keeps the session on the first user."""
    other = next(user for user in DB.users if user["user_id"] != OWNER_USER["user_id"])
    second = ToolCall("find_user_id_by_email", {"email": other["email"]}, "second")
    desk = desk_playing({FRONT_DESK: [identify(), second, "ok"]})
    ctx = fresh_context()

    outputs = tool_outputs((await desk.run("Hi", context=ctx)).trace)

    assert outputs["second"].startswith(
        f"Error: This conversation is already authenticated as user {OWNER_USER['user_id']}"
    )
    assert ctx.session.user_id == OWNER_USER["user_id"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user_id=st.sampled_from(USER_IDS), order_id=st.sampled_from(ORDER_IDS))
async def test_order_lookup_is_allowed_exactly_for_own_orders(user_id: str, order_id: str) -> None:
    """For any authenticated user and any order, the lookup returns the order iff the user owns it."""
    user = DB.users.get(user_id)
    desk = desk_playing(
        {FRONT_DESK: [identify(user), ToolCall("get_order_details", {"order_id": order_id}, "lookup"), "ok"]}
    )
    ctx = fresh_context()

    output = tool_outputs((await desk.run("Hi", context=ctx)).trace)["lookup"]

    if DB.orders.get(order_id)["user_id"] == ctx.session.user_id:
        assert output == get_order_details(ctx, order_id)
    else:
        assert output.startswith("Error: This conversation is with user")


async def test_unapproved_write_interrupts_the_run() -> None:
    """Without an approval handler a write interrupts the run; approving and resuming performs it."""
    desk = desk_playing(
        {
            FRONT_DESK: [identify(), delegate("pending_orders"), "ok"],
            "pending_orders": [cancel(PENDING["order_id"]), "done"],
        }
    )
    ctx = fresh_context()

    result = await desk.run("Cancel my order.", context=ctx)

    assert result.state is not None
    assert [(i.tool_name, i.agent_name) for i in result.interruptions] == [("cancel_pending_order", "pending_orders")]
    assert ctx.db.changed() == {}
    ctx.approve_tool(result.interruptions[0])
    resumed = await desk.run(result.state, context=ctx)
    assert resumed.output == "ok"
    assert ctx.db.orders.get(PENDING["order_id"])["status"] == "cancelled"


async def test_rejected_write_tells_the_model_and_changes_nothing() -> None:
    """A write the approval handler rejects does not run; the specialist's model receives the rejection."""
    seen: list[str] = []

    def respond(messages: list[Message], info: ModelRequestParameters) -> Reply:
        step = sum(isinstance(m, ModelResponse) for m in messages)
        front: list[Reply] = [identify(), delegate("pending_orders"), "ok"]
        if info.agent_name == FRONT_DESK:
            return front[step]
        if step == 0:
            return cancel(PENDING["order_id"])
        seen.extend(m.content for m in messages if isinstance(m, ToolReturn))
        return "not done"

    ctx = fresh_context()

    await build_desk(FunctionModel(respond)).run("Cancel my order.", context=ctx, approval_handler=lambda item: False)

    assert len(seen) == 1
    assert "rejected" in seen[0]
    assert ctx.db.changed() == {}


async def test_each_agent_is_offered_only_its_own_tools() -> None:
    """The front desk sees its lookups and the specialists; each specialist sees only its own write tools."""
    offered: dict[str, list[str]] = {}
    specialists = list(SPECIALISTS)

    def respond(messages: list[Message], info: ModelRequestParameters) -> Reply:
        offered.setdefault(info.agent_name, [t.name for t in info.tools])
        step = sum(isinstance(m, ModelResponse) for m in messages)
        if info.agent_name == FRONT_DESK and step < len(specialists):
            return delegate(specialists[step], f"d{step}")
        return "done"

    await build_desk(FunctionModel(respond)).run("Hi", context=fresh_context())

    assert offered[FRONT_DESK] == [*FRONT_DESK_TOOLS, *SPECIALISTS]
    for name, tools in SPECIALISTS.items():
        assert offered[name] == list(tools)
    assert sorted(OWNER) == sorted(TOOLS)


def test_tool_definitions_hide_the_context_and_writes_need_approval() -> None:
    """The 15 tools hide the context, describe themselves from the store, call through, and writes need approval."""
    assert len(TOOLS) == 15
    for name, tool in TOOLS.items():
        schema = tool.definition.parameters_json_schema
        assert "ctx" not in schema["properties"]
        assert tool.definition.description
        assert all(p.get("description") for p in schema["properties"].values())
        assert tool.requires_approval == (name in WRITE_TOOLS)
    assert WRITE_TOOLS <= AUTHENTICATED_TOOLS
    ctx = fresh_context()
    assert TOOLS["get_order_details"](ctx, PENDING["order_id"]) == get_order_details(ctx, PENDING["order_id"])


def test_child_context_shares_database_and_session() -> None:
    """A specialist's context shares the conversation's database and session and advances the lineage."""
    ctx = fresh_context()

    child = ctx.create_child_context()

    assert child.db is ctx.db
    assert child.session is ctx.session
    assert (child.depth, child.parent_task_id) == (ctx.depth + 1, ctx.task_id)
    assert child.deadline == ctx.deadline
