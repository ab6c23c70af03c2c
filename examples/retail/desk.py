"""The multi-agent retail support desk: a front desk and three specialists.

```
front_desk            identification, lookups, calculate, transfer to a human
├── pending_orders    cancel / modify a pending order (address, payment, items)
├── returns_exchanges return / exchange items of a delivered order
└── account           change the user's default address
```

Every tool has exactly one owner (`OWNER`). Each specialist is offered only its own
write tools. All four agents carry the policy interceptors, and they share the
conversation's database and session through the run context.
"""

from __future__ import annotations

from cogent import Agent
from cogent.models import Model, infer_model

from .context import RetailContext
from .policy import POLICY
from .store import DATA_DIR
from .tools import TOOLS, WRITE_TOOLS

__all__ = ["FRONT_DESK", "FRONT_DESK_TOOLS", "OWNER", "SPECIALISTS", "build_desk"]

FRONT_DESK = "front_desk"
"""The name of the agent the customer talks to."""

SPECIALISTS: dict[str, tuple[str, ...]] = {
    "pending_orders": (
        "cancel_pending_order",
        "modify_pending_order_address",
        "modify_pending_order_payment",
        "modify_pending_order_items",
    ),
    "returns_exchanges": ("return_delivered_order_items", "exchange_delivered_order_items"),
    "account": ("modify_user_address",),
}
"""Each specialist's tools."""

_DESCRIPTIONS = {
    "pending_orders": "Cancels a pending order, or changes its shipping address, payment method or items.",
    "returns_exchanges": "Requests the return or the exchange of items of a delivered order.",
    "account": "Changes the default address of the authenticated user.",
}

FRONT_DESK_TOOLS: tuple[str, ...] = tuple(name for name in TOOLS if name not in WRITE_TOOLS)
"""The front desk's own tools: identification, lookups, calculate and the transfer."""

OWNER: dict[str, str] = {
    **dict.fromkeys(FRONT_DESK_TOOLS, FRONT_DESK),
    **{tool: agent for agent, tools in SPECIALISTS.items() for tool in tools},
}
"""The agent that owns (and alone is offered) each tool."""

_POLICY_TEXT = (DATA_DIR / "policy.md").read_text(encoding="utf-8")

_FRONT_DESK_INSTRUCTIONS = f"""You are the front desk of a retail store's customer support.

{_POLICY_TEXT}

## How this desk works

You authenticate the user and look up users, orders and products yourself. Changes are
made by specialists: delegate each confirmed change, with every detail it needs (order
id, item ids, new item ids, payment method id, address fields, reason), to
`pending_orders` (cancel or modify a pending order), `returns_exchanges` (return or
exchange a delivered order) or `account` (change the user's default address)."""

_SPECIALIST_INSTRUCTIONS = (
    "You are a specialist of a retail store's support desk. The front desk has authenticated the user and "
    "obtained their explicit confirmation. Carry out the requested changes exactly as stated, one tool call at "
    "a time, then report the outcome of each call, including any error, in a few words."
)


def build_desk(model: Model | str, *, max_turns: int = 40) -> Agent[RetailContext, str]:
    """Build the desk: the front desk agent with its three specialist subagents.

    Args:
        model: The model of all four agents (a `Model`, or a string such as
            `"openai:gpt-4o-mini"`). An offline model tells them apart by
            `info.agent_name`.
        max_turns: Model requests allowed per agent execution.

    Returns:
        The front desk agent; run it with a `RetailContext`.
    """
    model = infer_model(model)
    specialists = [
        Agent(
            name=name,
            model=model,
            description=_DESCRIPTIONS[name],
            instructions=_SPECIALIST_INSTRUCTIONS,
            tools=[TOOLS[tool] for tool in tools],
            interceptors=POLICY,
            context_type=RetailContext,
            max_turns=max_turns,
            parallel_tool_calls=False,
        )
        for name, tools in SPECIALISTS.items()
    ]
    return Agent(
        name=FRONT_DESK,
        model=model,
        instructions=_FRONT_DESK_INSTRUCTIONS,
        tools=[TOOLS[tool] for tool in FRONT_DESK_TOOLS],
        subagents=specialists,
        interceptors=POLICY,
        context_type=RetailContext,
        max_turns=max_turns,
        parallel_tool_calls=False,
    )
