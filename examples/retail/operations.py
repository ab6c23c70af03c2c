"""The 15 retail operations on a database connection, with the reference's rules and messages.

Each operation works on the connection it is given and knows nothing of agents: the
tools (`tools.py`) open the connection, and for a write the one transaction, around it.
An operation that fails raises `RetailError` with the reference's message before it
changes anything (all checks come first), so a failed write leaves the database as it
was. The rules, in the order the reference checks them, are in `data/README.md`.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from typing import Any, cast

import sqlalchemy as sa

from .store import (
    Record,
    RetailError,
    get_order,
    get_user,
    order_items,
    orders,
    payment_methods,
    payments,
    products,
    users,
    variants,
)

__all__ = [
    "calculate",
    "cancel_pending_order",
    "exchange_delivered_order_items",
    "find_user_id_by_email",
    "find_user_id_by_name_zip",
    "list_all_product_types",
    "modify_pending_order_address",
    "modify_pending_order_items",
    "modify_pending_order_payment",
    "modify_user_address",
    "return_delivered_order_items",
]

# --- Reads -----------------------------------------------------------------------------


def _first_user_id(conn: sa.Connection, condition: sa.ColumnElement[bool]) -> str:
    query = sa.select(users.c.user_id).where(condition).order_by(users.c.position).limit(1)
    if (user_id := conn.scalar(query)) is None:
        raise RetailError("User not found")
    return str(user_id)


def find_user_id_by_email(conn: sa.Connection, email: str) -> str:
    """Return the id of the first user (in database order) with this email, ignoring case.

    Raises:
        RetailError: `User not found`.
    """
    return _first_user_id(conn, sa.func.lower(users.c.email) == email.lower())


def find_user_id_by_name_zip(conn: sa.Connection, first_name: str, last_name: str, zip: str) -> str:
    """Return the id of the first user with this name (ignoring case) and exactly this zip code.

    Raises:
        RetailError: `User not found`.
    """
    first, last = sa.func.lower(users.c.first_name), sa.func.lower(users.c.last_name)
    return _first_user_id(conn, (first == first_name.lower()) & (last == last_name.lower()) & (users.c.zip == zip))


def list_all_product_types(conn: sa.Connection) -> dict[str, str]:
    """Return every product's id by product name, sorted by name."""
    rows = conn.execute(sa.select(products.c.name, products.c.product_id).order_by(products.c.position))
    return dict(sorted({name: product_id for name, product_id in rows}.items()))


_OPERATORS: dict[type[ast.AST], Callable[..., float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def _evaluate(node: ast.expr) -> float:
    """Evaluate with Python's int and float semantics (so `1 / 0` fails like `eval`: `division by zero`)."""
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return cast(float, node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    raise RetailError("Only numbers, +, -, *, / and parentheses are supported")


def calculate(expression: str) -> str:
    """Evaluate arithmetic (numbers, + - * /, parentheses) like the reference's `eval`, rounded to 2 decimals.

    Returns:
        The float as a string, such as `8276.23` or `4.0`.

    Raises:
        RetailError: `Invalid characters in expression`, the Python error of an invalid
            or failing expression (`division by zero`), or, for a power or a floor
            division (which `eval` would compute), that only + - * / are supported.
    """
    if not all(char in "0123456789+-*/(). " for char in expression):
        raise RetailError("Invalid characters in expression")
    try:  # parsed like eval(), which ignores leading spaces
        return str(round(float(_evaluate(ast.parse(expression.lstrip(" "), "<string>", mode="eval").body)), 2))
    except (SyntaxError, RecursionError, ZeroDivisionError, OverflowError) as exc:
        raise RetailError(str(exc)) from exc


# --- Building blocks of the writes -------------------------------------------------------


def _method_key(user_id: str, method_id: str) -> sa.ColumnElement[bool]:
    return (payment_methods.c.user_id == user_id) & (payment_methods.c.payment_method_id == method_id)


def _payment_method(conn: sa.Connection, order: Record, method_id: str) -> Record:
    """Look a payment method up among those of the order's user; return its `source` and `balance`."""
    query = sa.select(payment_methods.c.source, payment_methods.c.balance)
    if (row := conn.execute(query.where(_method_key(order["user_id"], method_id))).one_or_none()) is None:
        raise RetailError("Payment method not found")
    return {"source": row.source, "balance": row.balance}


def _credit_gift_card(conn: sa.Connection, order: Record, method_id: str, amount: float) -> None:
    """Add `amount` (negative: debit) to a gift card of the order's user, rounded to cents; other methods are kept."""
    if (method := _payment_method(conn, order, method_id))["source"] == "gift_card":
        key = _method_key(order["user_id"], method_id)
        conn.execute(sa.update(payment_methods).where(key).values(balance=round(method["balance"] + amount, 2)))


def _add_payments(conn: sa.Connection, order: Record, *entries: tuple[str, float, str]) -> None:
    """Append `(transaction_type, amount, payment_method_id)` entries to the order's payment history."""
    start, fields = len(order["payment_history"]), ("transaction_type", "amount", "payment_method_id")
    rows = [
        {"order_id": order["order_id"], "position": start + i, **dict(zip(fields, entry, strict=True))}
        for i, entry in enumerate(entries)
    ]
    conn.execute(sa.insert(payments), rows)


def _update_order(conn: sa.Connection, order_id: str, **values: Any) -> Record:
    """Set columns of the order and return the order after the change."""
    conn.execute(sa.update(orders).where(orders.c.order_id == order_id).values(**values))
    return get_order(conn, order_id)


def _check_counts(order: Record, item_ids: list[str], message: str) -> None:
    """No id may appear in `item_ids` more often than in the order (`message` names the id)."""
    in_order = [item["item_id"] for item in order["items"]]
    for item_id in item_ids:
        if item_ids.count(item_id) > in_order.count(item_id):
            raise RetailError(message.format(item_id))


def _new_variants(
    conn: sa.Connection, order: Record, pairs: list[tuple[str, str]], *, same_ok: bool
) -> tuple[list[Record], float]:
    """Check each (old, new) item pair; return the new variants' `price` and `options`, and the unrounded
    sum of the price differences."""
    found: list[Record] = []
    difference = 0.0
    for item_id, new_item_id in pairs:
        if not same_ok and item_id == new_item_id:
            raise RetailError("The new item id should be different from the old item id")
        item = next(item for item in order["items"] if item["item_id"] == item_id)  # the first one: its price
        key = (variants.c.product_id == item["product_id"]) & (variants.c.item_id == new_item_id)
        query = sa.select(variants.c.available, variants.c.price, variants.c.options).where(key)
        if (new := conn.execute(query).one_or_none()) is None:
            raise RetailError("Variant not found")
        if not new.available:
            raise RetailError(f"New item {new_item_id} not found or available")
        found.append({"price": new.price, "options": new.options})
        difference += new.price - item["price"]  # pair by pair like the reference (sum() would round differently)
    return found, difference


def _check_balance(method: Record, amount: float, message: str) -> None:
    if method["source"] == "gift_card" and method["balance"] < amount:
        raise RetailError(message)


# --- Writes --------------------------------------------------------------------------------


def cancel_pending_order(conn: sa.Connection, order_id: str, reason: str) -> Record:
    """Cancel a pending order: refund every payment (a gift card at once) and return the order.

    Raises:
        RetailError: The reference's message of the first check that fails (see `data/README.md`).
    """
    order = get_order(conn, order_id)
    if order["status"] != "pending":
        raise RetailError("Non-pending order cannot be cancelled")
    if reason not in ("no longer needed", "ordered by mistake"):
        raise RetailError("Invalid reason")
    refunds = [("refund", p["amount"], p["payment_method_id"]) for p in order["payment_history"]]
    for _, amount, method_id in refunds:
        _credit_gift_card(conn, order, method_id, amount)
    _add_payments(conn, order, *refunds)
    return _update_order(conn, order_id, status="cancelled", cancel_reason=reason)


def modify_pending_order_address(
    conn: sa.Connection, order_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> Record:
    """Replace the shipping address of an order whose status contains `pending`; return the order.

    Raises:
        RetailError: The reference's message of the first check that fails (see `data/README.md`).
    """
    if "pending" not in get_order(conn, order_id)["status"]:
        raise RetailError("Non-pending order cannot be modified")
    address = {"address1": address1, "address2": address2, "city": city, "state": state, "country": country}
    return _update_order(conn, order_id, **address, zip=zip)


def modify_pending_order_payment(conn: sa.Connection, order_id: str, payment_method_id: str) -> Record:
    """Move a pending order's single payment to another method of its user; return the order.

    Raises:
        RetailError: The reference's message of the first check that fails (see `data/README.md`).
    """
    order = get_order(conn, order_id)
    if "pending" not in order["status"]:
        raise RetailError("Non-pending order cannot be modified")
    method = _payment_method(conn, order, payment_method_id)
    history = order["payment_history"]
    if len(history) != 1 or history[0]["transaction_type"] != "payment":
        raise RetailError("There should be exactly one payment for a pending order")
    old_method_id, amount = history[0]["payment_method_id"], history[0]["amount"]
    if old_method_id == payment_method_id:
        raise RetailError("The new payment method should be different from the current one")
    _check_balance(method, amount, "Insufficient gift card balance to pay for the order")
    _payment_method(conn, order, old_method_id)
    _add_payments(conn, order, ("payment", amount, payment_method_id), ("refund", amount, old_method_id))
    _credit_gift_card(conn, order, payment_method_id, -amount)
    _credit_gift_card(conn, order, old_method_id, amount)
    return get_order(conn, order_id)


def modify_pending_order_items(
    conn: sa.Connection, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> Record:
    """Swap items of a pending order for other variants of their products, charging or refunding the difference.

    Raises:
        RetailError: The reference's message of the first check that fails (see `data/README.md`).
    """
    order = get_order(conn, order_id)
    if order["status"] != "pending":
        raise RetailError("Non-pending order cannot be modified")
    _check_counts(order, item_ids, "{} not found")
    if len(item_ids) != len(new_item_ids):
        raise RetailError("The number of items to be exchanged should match")
    pairs = list(zip(item_ids, new_item_ids, strict=True))
    found, difference = _new_variants(conn, order, pairs, same_ok=False)
    method = _payment_method(conn, order, payment_method_id)
    _check_balance(method, difference, "Insufficient gift card balance to pay for the new item")
    _add_payments(conn, order, ("payment" if difference > 0 else "refund", abs(difference), payment_method_id))
    _credit_gift_card(conn, order, payment_method_id, -difference)
    last = found[-1]  # like the reference: every swapped item gets the LAST new variant's price and options
    for item_id, new_item_id in pairs:  # each pair: the first item that still has the old id
        here = (order_items.c.order_id == order_id) & (order_items.c.item_id == item_id)
        position = conn.scalar(sa.select(sa.func.min(order_items.c.position)).where(here))
        first = (order_items.c.order_id == order_id) & (order_items.c.position == position)
        conn.execute(
            sa.update(order_items)
            .where(first)
            .values(item_id=new_item_id, price=last["price"], options=last["options"])
        )
    return _update_order(conn, order_id, status="pending (item modified)")


def modify_user_address(
    conn: sa.Connection, user_id: str, address1: str, address2: str, city: str, state: str, country: str, zip: str
) -> Record:
    """Replace a user's default address (their orders keep theirs); return the user.

    Raises:
        RetailError: The reference's message of the first check that fails (see `data/README.md`).
    """
    get_user(conn, user_id)
    address = {"address1": address1, "address2": address2, "city": city, "state": state, "country": country}
    conn.execute(sa.update(users).where(users.c.user_id == user_id).values(**address, zip=zip))
    return get_user(conn, user_id)


def return_delivered_order_items(
    conn: sa.Connection, order_id: str, item_ids: list[str], payment_method_id: str
) -> Record:
    """Record a return request for items of a delivered order; return the order.

    Raises:
        RetailError: The reference's message of the first check that fails (see `data/README.md`).
    """
    order = get_order(conn, order_id)
    if order["status"] != "delivered":
        raise RetailError("Non-delivered order cannot be returned")
    method = _payment_method(conn, order, payment_method_id)
    if method["source"] != "gift_card" and payment_method_id != order["payment_history"][0]["payment_method_id"]:
        raise RetailError("Payment method should be the original payment method")
    _check_counts(order, item_ids, "Some item not found")
    changes = {"return_items": sorted(item_ids), "return_payment_method_id": payment_method_id}
    return _update_order(conn, order_id, status="return requested", **changes)


def exchange_delivered_order_items(
    conn: sa.Connection, order_id: str, item_ids: list[str], new_item_ids: list[str], payment_method_id: str
) -> Record:
    """Record an exchange request for items of a delivered order (difference rounded to cents); return the order.

    Raises:
        RetailError: The reference's message of the first check that fails (see `data/README.md`).
    """
    order = get_order(conn, order_id)
    if order["status"] != "delivered":
        raise RetailError("Non-delivered order cannot be exchanged")
    _check_counts(order, item_ids, "Number of {} not found.")
    if len(item_ids) != len(new_item_ids):
        raise RetailError("The number of items to be exchanged should match.")
    pairs = list(zip(item_ids, new_item_ids, strict=True))
    difference = round(_new_variants(conn, order, pairs, same_ok=True)[1], 2)
    method = _payment_method(conn, order, payment_method_id)
    _check_balance(method, difference, "Insufficient gift card balance to pay for the price difference")
    changes: dict[str, Any] = {"exchange_items": sorted(item_ids), "exchange_new_items": sorted(new_item_ids)}
    changes |= {"exchange_payment_method_id": payment_method_id, "exchange_price_difference": difference}
    return _update_order(conn, order_id, status="exchange requested", **changes)
