"""The multi-agent retail support desk: a front desk and three specialists.

```
front_desk            identification, lookups, calculate, transfer to a human
├── pending_orders    cancel / modify a pending order (address, payment, items)
├── returns_exchanges return / exchange items of a delivered order
└── account           change the user's default address
```

Each tool has exactly one owner, and each specialist is offered only its own write tools.
All four agents carry the policy interceptors and share the conversation's context.
"""

from __future__ import annotations

from collections.abc import Mapping

from cogent import Agent, Tool
from cogent.models import Model

from .context import RetailContext
from .policy import POLICY
from .store import DATA_DIR
from .tools import (
    TOOLS,
    WRITE_TOOLS,
    cancel_pending_order,
    exchange_delivered_order_items,
    modify_pending_order_address,
    modify_pending_order_items,
    modify_pending_order_payment,
    modify_user_address,
    return_delivered_order_items,
)

__all__ = ["AGENTS", "FRONT_DESK", "OWNER", "SPECIALISTS", "build_desk"]

FRONT_DESK = "front_desk"
"""The agent the customer talks to."""

SPECIALISTS: dict[str, tuple[str, tuple[Tool[..., str], ...]]] = {
    "pending_orders": (
        "Cancels a pending order, or changes its shipping address, payment method or items.",
        (cancel_pending_order, modify_pending_order_address, modify_pending_order_payment, modify_pending_order_items),
    ),
    "returns_exchanges": (
        "Requests the return or the exchange of items of a delivered order.",
        (return_delivered_order_items, exchange_delivered_order_items),
    ),
    "account": ("Changes the default address of the authenticated user.", (modify_user_address,)),
}
"""Each specialist's description (for the front desk's model) and its tools."""

AGENTS: tuple[str, ...] = (FRONT_DESK, *SPECIALISTS)
"""The names of the desk's four agents."""

OWNER: dict[str, str] = {name: FRONT_DESK for name in TOOLS if name not in WRITE_TOOLS} | {
    tool.name: agent for agent, (_, tools) in SPECIALISTS.items() for tool in tools
}
"""The agent that owns (and alone is offered) each tool."""

_FRONT_DESK_INSTRUCTIONS = f"""You are the front desk of a retail store's customer support.

{(DATA_DIR / "policy.md").read_text(encoding="utf-8")}

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


def build_desk(model: Model | str | Mapping[str, Model | str], *, max_turns: int = 40) -> Agent[RetailContext, str]:
    """Build the desk: the front desk agent with its three specialist subagents.

    Args:
        model: The model of all four agents (a `Model`, or a name such as
            `"openai:gpt-4o-mini"`), or one model per agent name (`AGENTS`).
        max_turns: Model requests allowed per agent execution.

    Returns:
        The front desk agent; run it with a `RetailContext`.

    Raises:
        ValueError: If a mapping of models does not name exactly the four agents.
    """
    if isinstance(model, Mapping):
        if set(model) != set(AGENTS):
            raise ValueError(f"build_desk() needs one model per agent {list(AGENTS)}; it got {sorted(model)}.")
        models = dict(model)
    else:
        models = dict.fromkeys(AGENTS, model)
    specialists = [
        Agent(
            name=name,
            model=models[name],
            description=description,
            instructions=_SPECIALIST_INSTRUCTIONS,
            tools=tools,
            interceptors=POLICY,
            context_type=RetailContext,
            max_turns=max_turns,
            parallel_tool_calls=False,
        )
        for name, (description, tools) in SPECIALISTS.items()
    ]
    return Agent(
        name=FRONT_DESK,
        model=models[FRONT_DESK],
        instructions=_FRONT_DESK_INSTRUCTIONS,
        tools=[tool for name, tool in TOOLS.items() if OWNER[name] == FRONT_DESK],
        subagents=specialists,
        interceptors=POLICY,
        context_type=RetailContext,
        max_turns=max_turns,
        parallel_tool_calls=False,
    )
