"""The desk's 15 tools, on the conversation's database (`ctx.db`).

Each tool receives the run's `RetailContext` by injection (`ctx`, never shown to the
model); its docstring is what the model reads. The work is done by `operations` (the
reference's rules in SQL) on a connection the tool opens. A write needs an approval
(the customer's explicit yes) and makes its change in ONE transaction (`_write`), which
an error rolls back. A failing call raises `RetailError`, and the model receives
`Error: <message>`, the reference's exact text. Records are returned as JSON.

In a durable run, a tool call that was running when its process died runs again (a step
is done once it is checkpointed). A write is therefore made exactly once: the call's
idempotency key (`ctx.write_key()`) is stored with the result in the same transaction as
the change, and a transaction that finds the key already there changes nothing and
returns the stored result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from cogent import Tool, tool

from . import operations
from .context import RetailContext
from .store import applied_writes, get_order, get_product, get_user

__all__ = ["IDENTIFICATION_TOOLS", "TOOLS", "WRITE_TOOLS"]


def _write(ctx: RetailContext, change: Callable[[sa.Connection], Any]) -> str:
    """Make one write in one transaction and return its result as JSON; exactly once in a durable run.

    With a write key (durable runs), the key and the result are stored in the same
    transaction as the change, and a transaction that finds the key already stored (the
    call runs again after a crash) changes nothing and returns the stored result.
    """
    key = ctx.write_key() if ctx.write_key is not None else None
    with ctx.db.begin() as conn:
        if key is not None:
            done = conn.scalar(sa.select(applied_writes.c.result).where(applied_writes.c.key == key))
            if done is not None:
                return str(done)
        result = json.dumps(change(conn))
        if key is not None:
            conn.execute(applied_writes.insert().values(key=key, result=result))
    return result


@tool
def find_user_id_by_email(ctx: RetailContext, email: str) -> str:
    """Find a user id by email address. Fails if no user has this email.

    Args:
        email: The email address of the user, such as 'something@example.com'.
    """
    with ctx.db.connect() as conn:
        return operations.find_user_id_by_email(conn, email)


@tool
def find_user_id_by_name_zip(ctx: RetailContext, first_name: str, last_name: str, zip: str) -> str:
    """Find a user id by first name, last name and zip code, if the user cannot be found by email.

    Args:
        first_name: The first name of the user, such as 'John'.
        last_name: The last name of the user, such as 'Doe'.
        zip: The zip code of the user's address, such as '12345'.
    """
    with ctx.db.connect() as conn:
        return operations.find_user_id_by_name_zip(conn, first_name, last_name, zip)


@tool
def get_user_details(ctx: RetailContext, user_id: str) -> str:
    """Get the details of a user: name, address, email, payment methods and order ids.

    Args:
        user_id: The user id, such as 'sara_doe_496'.
    """
    with ctx.db.connect() as conn:
        return json.dumps(get_user(conn, user_id))


@tool
def get_order_details(ctx: RetailContext, order_id: str) -> str:
    """Get the status and details of an order: items, fulfillments and payments.

    Args:
        order_id: The order id, such as '#W0000000' (with the '#').
    """
    with ctx.db.connect() as conn:
        return json.dumps(get_order(conn, order_id))


@tool
def get_product_details(ctx: RetailContext, product_id: str) -> str:
    """Get a product with all its variant items: their options, availability and price.

    Args:
        product_id: The product id, such as '6086499569'; not an item id.
    """
    with ctx.db.connect() as conn:
        return json.dumps(get_product(conn, product_id))


@tool
def list_all_product_types(ctx: RetailContext) -> str:
    """List the name and product id of every product type in the store (there are 50)."""
    with ctx.db.connect() as conn:
        return json.dumps(operations.list_all_product_types(conn))


@tool
def calculate(expression: str) -> str:
    """Calculate the result of an arithmetic expression, rounded to 2 decimals.

    Args:
        expression: Numbers, + - * /, parentheses and spaces only, such as '2 + 2'.
    """
    return operations.calculate(expression)


@tool
def transfer_to_human_agents(summary: str) -> str:
    """Transfer the user to a human agent, only if they ask for one or the policy and tools cannot solve the issue.

    Args:
        summary: A summary of the user's issue.
    """
    return "Transfer successful"


@tool(requires_approval=True)
def cancel_pending_order(ctx: RetailContext, order_id: str, reason: str) -> str:
    """Cancel a pending order and refund its payments (gift cards at once, others in 5-7 business days).

    Args:
        order_id: The order id, such as '#W0000000' (with the '#').
        reason: 'no longer needed' or 'ordered by mistake'.
    """
    return _write(ctx, lambda conn: operations.cancel_pending_order(conn, order_id, reason))


@tool(requires_approval=True)
def modify_pending_order_address(
    ctx: RetailContext, order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> str:
    """Change the shipping address of a pending order.

    Args:
        order_id: The order id, such as '#W0000000' (with the '#').
        address1: The first line of the address, such as '123 Main St'.
        address2: The second line, such as 'Apt 1', or ''.
        city: The city, such as 'San Francisco'.
        state: The state, such as 'CA'.
        country: The country, such as 'USA'.
        zip: The zip code, such as '12345'.
    """
    return _write(
        ctx,
        lambda conn: operations.modify_pending_order_address(
            conn, order_id, address1, address2, city, state, country, zip
        ),
    )


@tool(requires_approval=True)
def modify_pending_order_payment(ctx: RetailContext, order_id: str, payment_method_id: str) -> str:
    """Pay a pending order (with a single payment) with another method of the user; the old one is refunded.

    Args:
        order_id: The order id, such as '#W0000000' (with the '#').
        payment_method_id: The new method, such as 'gift_card_0000000' (a gift card must cover the amount).
    """
    return _write(ctx, lambda conn: operations.modify_pending_order_payment(conn, order_id, payment_method_id))


@tool(requires_approval=True)
def modify_pending_order_items(
    ctx: RetailContext, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Swap items of a pending order for other variants of the same products, once per order (collect them all).

    Args:
        order_id: The order id, such as '#W0000000' (with the '#').
        item_ids: The item ids to replace, such as '1008292230'; repeat an id held several times.
        new_item_ids: The new item ids, position by position: available variants of the same products.
        payment_method_id: The method that pays or receives the price difference (a gift card must cover it).
    """
    return _write(
        ctx,
        lambda conn: operations.modify_pending_order_items(conn, order_id, item_ids, new_item_ids, payment_method_id),
    )


@tool(requires_approval=True)
def modify_user_address(
    ctx: RetailContext, user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> str:
    """Change the default address of a user; existing orders keep theirs.

    Args:
        user_id: The user id, such as 'sara_doe_496'.
        address1: The first line of the address, such as '123 Main St'.
        address2: The second line, such as 'Apt 1', or ''.
        city: The city, such as 'San Francisco'.
        state: The state, such as 'CA'.
        country: The country, such as 'USA'.
        zip: The zip code, such as '12345'.
    """
    return _write(
        ctx, lambda conn: operations.modify_user_address(conn, user_id, address1, address2, city, state, country, zip)
    )


@tool(requires_approval=True)
def return_delivered_order_items(ctx: RetailContext, order_id: str, item_ids: list[str], payment_method_id: str) -> str:
    """Request the return of items of a delivered order (an order is returned or exchanged only once).

    Args:
        order_id: The order id, such as '#W0000000' (with the '#').
        item_ids: The item ids to return, such as '1008292230'; repeat an id held several times.
        payment_method_id: The refund's method: the order's original method or a gift card of the user.
    """
    return _write(
        ctx, lambda conn: operations.return_delivered_order_items(conn, order_id, item_ids, payment_method_id)
    )


@tool(requires_approval=True)
def exchange_delivered_order_items(
    ctx: RetailContext, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> str:
    """Request an exchange of items of a delivered order for other variants of the same products (once per order).

    Args:
        order_id: The order id, such as '#W0000000' (with the '#').
        item_ids: The item ids to exchange, such as '1008292230'; repeat an id held several times.
        new_item_ids: The new item ids, position by position: available variants of the same products.
        payment_method_id: The method that pays or receives the price difference (a gift card must cover it).
    """
    return _write(
        ctx,
        lambda conn: operations.exchange_delivered_order_items(
            conn, order_id, item_ids, new_item_ids, payment_method_id
        ),
    )


TOOLS: dict[str, Tool[..., str]] = {
    t.name: t
    for t in (
        *(find_user_id_by_email, find_user_id_by_name_zip, get_user_details, get_order_details, get_product_details),
        *(list_all_product_types, calculate, transfer_to_human_agents, cancel_pending_order),
        *(modify_pending_order_address, modify_pending_order_payment, modify_pending_order_items, modify_user_address),
        *(return_delivered_order_items, exchange_delivered_order_items),
    )
}
"""All 15 tools by name: 8 reads, then the 7 writes."""

WRITE_TOOLS = frozenset(name for name, t in TOOLS.items() if t.requires_approval)
"""The tools that change the database; each call needs an approval."""

IDENTIFICATION_TOOLS = frozenset({"find_user_id_by_email", "find_user_id_by_name_zip"})
"""The tools that authenticate the customer: a successful call returns their user id."""
