"""The retail desk's policy interceptors, approvals, tools and structure (examples/retail)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cogent import Agent, FunctionModel, ToolApprovalItem, ToolCall
from cogent.messages import Message, ModelResponse, ToolReturn
from cogent.models import ModelRequestParameters
from examples.retail.context import RetailContext
from examples.retail.desk import AGENTS, FRONT_DESK, OWNER, SPECIALISTS, build_desk
from examples.retail.harness.database import DatabaseTemplate, canonical_db, changed_records
from examples.retail.harness.replay import tool_outputs
from examples.retail.policy import AUTHENTICATED_TOOLS
from examples.retail.store import get_order
from examples.retail.tools import TOOLS, WRITE_TOOLS

pytestmark = pytest.mark.anyio

Reply = ModelResponse | str | ToolCall | list[ToolCall]

TEMPLATE = DatabaseTemplate()
DB = TEMPLATE.initial
PENDING = next(order for order in DB["orders"].values() if order["status"] == "pending")
"""A pending order, and below its owner and an order of another user."""
OWNER_USER = DB["users"][PENDING["user_id"]]
OTHER_ORDER = next(order for order in DB["orders"].values() if order["user_id"] != PENDING["user_id"])
OTHER_USER = next(user for user in DB["users"].values() if user["user_id"] != OWNER_USER["user_id"])


@pytest.fixture
def ctx() -> Iterator[RetailContext]:
    """A context with a fresh, unchanged database and no authenticated user."""
    with TEMPLATE.fresh() as db:
        yield RetailContext(db=db)


def changed(ctx: RetailContext) -> dict[str, Any]:
    """The records the conversation changed."""
    with ctx.db.connect() as conn:
        return changed_records(DB, canonical_db(conn))


def order_status(ctx: RetailContext, order_id: str) -> str:
    """An order's status in the conversation's database."""
    with ctx.db.connect() as conn:
        return str(get_order(conn, order_id)["status"])


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


def approve(item: ToolApprovalItem) -> bool:
    """Approve every call."""
    return True


async def test_write_before_authentication_is_refused(ctx: RetailContext) -> None:
    """A write made before the user is authenticated does not run, and the model is told why."""
    desk = desk_playing(
        {FRONT_DESK: [delegate("pending_orders"), "ok"], "pending_orders": [cancel(PENDING["order_id"]), "done"]}
    )

    result = await desk.run("Cancel my order.", context=ctx, approval_handler=approve)

    output = tool_outputs(result.trace)["cancel"]
    assert output.startswith("Error: cancel_pending_order needs an authenticated user")
    assert changed(ctx) == {}
    assert ctx.session.user_id is None


@pytest.mark.parametrize("tool", ["get_user_details", "get_order_details"])
async def test_user_data_lookup_before_authentication_is_refused(ctx: RetailContext, tool: str) -> None:
    """User and order lookups are refused until the user is authenticated."""
    arguments = {"user_id": OWNER_USER["user_id"]} if tool == "get_user_details" else {"order_id": PENDING["order_id"]}
    desk = desk_playing({FRONT_DESK: [ToolCall(tool, arguments, "lookup"), "ok"]})

    result = await desk.run("Show me my data.", context=ctx)

    assert tool_outputs(result.trace)["lookup"].startswith(f"Error: {tool} needs an authenticated user")


async def test_generic_tools_need_no_authentication(ctx: RetailContext) -> None:
    """Product lookups, calculate and the transfer to a human work before authentication."""
    product_id = PENDING["items"][0]["product_id"]
    calls = [
        ToolCall("get_product_details", {"product_id": product_id}, "product"),
        ToolCall("list_all_product_types", {}, "types"),
        ToolCall("calculate", {"expression": "1 + 2"}, "calc"),
        ToolCall("transfer_to_human_agents", {"summary": "Wants a human."}, "transfer"),
    ]
    desk = desk_playing({FRONT_DESK: [*calls, "ok"]})

    outputs = tool_outputs((await desk.run("Hi", context=ctx)).trace)

    assert json.loads(outputs["product"]) == DB["products"][product_id]
    assert json.loads(outputs["types"]) == {p["name"]: p["product_id"] for p in DB["products"].values()}
    assert outputs["calc"] == "3.0"
    assert outputs["transfer"] == "Transfer successful"


async def test_identification_authenticates_the_conversation_for_specialists(ctx: RetailContext) -> None:
    """After the front desk identifies the user, a specialist's approved write runs on the shared database."""
    desk = desk_playing(
        {
            FRONT_DESK: [identify(), delegate("pending_orders"), "ok"],
            "pending_orders": [cancel(PENDING["order_id"]), "done"],
        }
    )

    result = await desk.run("Cancel my order.", context=ctx, approval_handler=approve)

    assert result.context.session.user_id == ctx.session.user_id == OWNER_USER["user_id"]
    cancelled = json.loads(tool_outputs(result.trace)["cancel"])
    assert (cancelled["order_id"], cancelled["status"]) == (PENDING["order_id"], "cancelled")
    assert order_status(ctx, PENDING["order_id"]) == "cancelled"
    assert set(changed(ctx)["orders"]) == {PENDING["order_id"]}


async def test_action_on_another_users_order_is_refused(ctx: RetailContext) -> None:
    """Once a user is authenticated, a write on another user's order is refused and changes nothing."""
    desk = desk_playing(
        {
            FRONT_DESK: [identify(), delegate("pending_orders"), "ok"],
            "pending_orders": [cancel(OTHER_ORDER["order_id"]), "done"],
        }
    )

    result = await desk.run("Cancel that order.", context=ctx, approval_handler=approve)

    output = tool_outputs(result.trace)["cancel"]
    assert output.startswith(f"Error: This conversation is with user {OWNER_USER['user_id']}")
    assert changed(ctx) == {}


async def test_another_users_profile_and_address_are_refused(ctx: RetailContext) -> None:
    """Reading another user's profile or changing their address is refused."""
    address = dict(OWNER_USER["address"])
    desk = desk_playing(
        {
            FRONT_DESK: [
                identify(),
                ToolCall("get_user_details", {"user_id": OTHER_USER["user_id"]}, "profile"),
                delegate("account"),
                "ok",
            ],
            "account": [
                ToolCall("modify_user_address", {"user_id": OTHER_USER["user_id"], **address}, "address"),
                "done",
            ],
        }
    )

    outputs = tool_outputs((await desk.run("Hi", context=ctx, approval_handler=approve)).trace)

    assert outputs["profile"].startswith("Error: This conversation is with user")
    assert outputs["address"].startswith("Error: This conversation is with user")
    assert changed(ctx) == {}


async def test_unknown_order_reaches_the_tool(ctx: RetailContext) -> None:
    """An order id that does not exist is not refused by the policy: the tool reports it with the reference error."""
    desk = desk_playing(
        {FRONT_DESK: [identify(), ToolCall("get_order_details", {"order_id": "#9502126"}, "lookup"), "ok"]}
    )

    outputs = tool_outputs((await desk.run("Hi", context=ctx)).trace)

    assert outputs["lookup"] == "Error: Order not found"


async def test_second_user_cannot_take_over_the_conversation(ctx: RetailContext) -> None:
    """Identifying another user after the first keeps the session on the first user."""
    second = ToolCall("find_user_id_by_email", {"email": OTHER_USER["email"]}, "second")
    desk = desk_playing({FRONT_DESK: [identify(), second, "ok"]})

    outputs = tool_outputs((await desk.run("Hi", context=ctx)).trace)

    assert outputs["second"].startswith(
        f"Error: This conversation is already authenticated as user {OWNER_USER['user_id']}"
    )
    assert ctx.session.user_id == OWNER_USER["user_id"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user_id=st.sampled_from(sorted(DB["users"])), order_id=st.sampled_from(sorted(DB["orders"])))
async def test_order_lookup_is_allowed_exactly_for_own_orders(ctx: RetailContext, user_id: str, order_id: str) -> None:
    """For any authenticated user and any order, the lookup returns the order iff the user owns it."""
    desk = desk_playing(
        {
            FRONT_DESK: [
                identify(DB["users"][user_id]),
                ToolCall("get_order_details", {"order_id": order_id}, "lookup"),
                "ok",
            ]
        }
    )
    fresh = RetailContext(db=ctx.db)  # the database is only read: one per test is enough

    output = tool_outputs((await desk.run("Hi", context=fresh)).trace)["lookup"]

    if DB["orders"][order_id]["user_id"] == user_id:
        assert json.loads(output) == DB["orders"][order_id]
    else:
        assert output.startswith(f"Error: This conversation is with user {user_id}")


async def test_unapproved_write_interrupts_the_run(ctx: RetailContext) -> None:
    """Without an approval handler a write interrupts the run; approving and resuming performs it."""
    desk = desk_playing(
        {
            FRONT_DESK: [identify(), delegate("pending_orders"), "ok"],
            "pending_orders": [cancel(PENDING["order_id"]), "done"],
        }
    )

    result = await desk.run("Cancel my order.", context=ctx)

    assert result.state is not None
    assert [(i.tool_name, i.agent_name) for i in result.interruptions] == [("cancel_pending_order", "pending_orders")]
    assert changed(ctx) == {}
    ctx.approve_tool(result.interruptions[0])
    resumed = await desk.run(result.state, context=ctx)
    assert resumed.output == "ok"
    assert order_status(ctx, PENDING["order_id"]) == "cancelled"


async def test_rejected_write_tells_the_model_and_changes_nothing(ctx: RetailContext) -> None:
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

    await build_desk(FunctionModel(respond)).run("Cancel my order.", context=ctx, approval_handler=lambda item: False)

    assert len(seen) == 1
    assert "rejected" in seen[0]
    assert changed(ctx) == {}


async def test_each_agent_is_offered_only_its_own_tools(ctx: RetailContext) -> None:
    """The front desk sees its lookups and the specialists; each specialist sees only its own write tools."""
    offered: dict[str, list[str]] = {}
    specialists = list(SPECIALISTS)

    def respond(messages: list[Message], info: ModelRequestParameters) -> Reply:
        offered.setdefault(info.agent_name, [t.name for t in info.tools])
        step = sum(isinstance(m, ModelResponse) for m in messages)
        if info.agent_name == FRONT_DESK and step < len(specialists):
            return delegate(specialists[step], f"d{step}")
        return "done"

    await build_desk(FunctionModel(respond)).run("Hi", context=ctx)

    assert offered[FRONT_DESK] == [name for name in TOOLS if OWNER[name] == FRONT_DESK] + specialists
    for name, (_, tools) in SPECIALISTS.items():
        assert offered[name] == [tool.name for tool in tools]
    assert sorted(OWNER) == sorted(TOOLS)
    assert {name for name, owner in OWNER.items() if owner != FRONT_DESK} == WRITE_TOOLS


async def test_desk_takes_one_model_per_agent(ctx: RetailContext) -> None:
    """With a mapping of models, each agent's requests go to its own model."""
    asked: list[tuple[str, str]] = []

    def model(name: str, replies: list[Reply]) -> FunctionModel:
        def respond(messages: list[Message], info: ModelRequestParameters) -> Reply:
            asked.append((name, info.agent_name))
            return replies[sum(isinstance(m, ModelResponse) for m in messages)]

        return FunctionModel(respond)

    models = {agent: model(agent, ["done"]) for agent in AGENTS}
    models[FRONT_DESK] = model(FRONT_DESK, [delegate("account"), "ok"])

    result = await build_desk(models).run("Hi", context=ctx)

    assert result.output == "ok"
    assert asked == [(FRONT_DESK, FRONT_DESK), ("account", "account"), (FRONT_DESK, FRONT_DESK)]


def test_desk_refuses_a_mapping_without_every_agent() -> None:
    """A mapping of models that leaves an agent out, or names an unknown one, is refused with the agents' names."""
    models: dict[str, Any] = dict.fromkeys(AGENTS, "test")
    del models["account"]

    with pytest.raises(ValueError, match="one model per agent"):
        build_desk(models)
    with pytest.raises(ValueError, match="one model per agent"):
        build_desk({**dict.fromkeys(AGENTS, "test"), "billing": "test"})


def test_tool_definitions_hide_the_context_and_writes_need_approval(ctx: RetailContext) -> None:
    """The 15 tools hide the context, describe every parameter, call through, and exactly the writes need approval."""
    for name, tool in TOOLS.items():
        schema = tool.definition.parameters_json_schema
        assert "ctx" not in schema.get("properties", {})
        assert tool.definition.description
        assert all(p.get("description") for p in schema.get("properties", {}).values())
        assert tool.requires_approval == (name in WRITE_TOOLS)
    assert WRITE_TOOLS <= AUTHENTICATED_TOOLS
    assert json.loads(TOOLS["get_order_details"](ctx, PENDING["order_id"])) == PENDING


def test_context_holds_the_database_as_one_field_and_children_share_it(ctx: RetailContext) -> None:
    """The engine is the context's one resource field; a specialist's context shares it and the session."""
    child = ctx.create_child_context()

    assert isinstance(ctx.db, sa.Engine)
    assert child.db is ctx.db
    assert child.session is ctx.session
    assert (child.depth, child.parent_task_id) == (ctx.depth + 1, ctx.task_id)
    assert child.deadline == ctx.deadline
