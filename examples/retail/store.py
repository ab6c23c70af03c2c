"""The retail database in SQL (SQLAlchemy Core): its tables and how records are read back.

Three kinds of records, as in tau2-bench: products (with their variants), users (with
their payment methods) and orders (with their items, fulfillments and payments). Each
nested list or mapping of a record is a child table with a `position` column that keeps
the record's order; small lists of ids and `options` mappings are JSON columns. Every
number is a float (`Double`), so amounts round-trip exactly. The SQL is portable: the same
tables work on SQLite and PostgreSQL.

`read_users`, `read_orders` and `read_products` rebuild records as plain dicts whose keys
come in the reference's schema order, so `json.dumps(record)` is byte for byte the output
of the reference tools.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

__all__ = [
    "ADDRESS_FIELDS",
    "DATA_DIR",
    "METADATA",
    "OPTIONAL_ORDER_FIELDS",
    "WRITES_METADATA",
    "Record",
    "RetailError",
    "applied_writes",
    "fulfillments",
    "get_order",
    "get_product",
    "get_user",
    "order_items",
    "orders",
    "payment_methods",
    "payments",
    "products",
    "read_orders",
    "read_products",
    "read_users",
    "users",
    "variants",
]

DATA_DIR = Path(__file__).resolve().parent / "data"
"""The folder of `db.json`, `tasks.json`, `expected_outcomes.json` and `policy.md`."""

Record = dict[str, Any]
"""A user, order or product as the reference returns it (keys in schema order)."""

ADDRESS_FIELDS = ("address1", "address2", "city", "country", "state", "zip")
"""The columns of an address, in schema order (users and orders carry them inline)."""

OPTIONAL_ORDER_FIELDS = (
    "cancel_reason",
    "exchange_items",
    "exchange_new_items",
    "exchange_payment_method_id",
    "exchange_price_difference",
    "return_items",
    "return_payment_method_id",
)
"""The order fields that stay `None` until a write tool sets them (`db.json` leaves them out)."""


class RetailError(Exception):
    """A retail tool call failed; the message is the reference's error text."""


METADATA = sa.MetaData()
"""All tables of the retail database."""


def _address_columns() -> list[sa.Column[str]]:
    return [sa.Column(name, sa.String, nullable=False) for name in ADDRESS_FIELDS]


products = sa.Table(
    "products",
    METADATA,
    sa.Column("product_id", sa.String, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("name", sa.String, nullable=False),
)
variants = sa.Table(
    "variants",
    METADATA,
    sa.Column("product_id", sa.String, sa.ForeignKey("products.product_id"), primary_key=True),
    sa.Column("item_id", sa.String, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
    sa.Column("available", sa.Boolean, nullable=False),
    sa.Column("price", sa.Double, nullable=False),
)
users = sa.Table(
    "users",
    METADATA,
    sa.Column("user_id", sa.String, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("first_name", sa.String, nullable=False),
    sa.Column("last_name", sa.String, nullable=False),
    *_address_columns(),
    sa.Column("email", sa.String, nullable=False),
)
payment_methods = sa.Table(
    "payment_methods",
    METADATA,
    sa.Column("user_id", sa.String, sa.ForeignKey("users.user_id"), primary_key=True),
    sa.Column("payment_method_id", sa.String, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("source", sa.String, nullable=False),  # credit_card, paypal or gift_card
    sa.Column("brand", sa.String),  # credit cards only
    sa.Column("last_four", sa.String),  # credit cards only
    sa.Column("balance", sa.Double),  # gift cards only
)
orders = sa.Table(
    "orders",
    METADATA,
    sa.Column("order_id", sa.String, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("user_id", sa.String, sa.ForeignKey("users.user_id"), nullable=False, index=True),
    *_address_columns(),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("cancel_reason", sa.String),
    sa.Column("exchange_items", sa.JSON(none_as_null=True)),
    sa.Column("exchange_new_items", sa.JSON(none_as_null=True)),
    sa.Column("exchange_payment_method_id", sa.String),
    sa.Column("exchange_price_difference", sa.Double),
    sa.Column("return_items", sa.JSON(none_as_null=True)),
    sa.Column("return_payment_method_id", sa.String),
)
order_items = sa.Table(
    "order_items",
    METADATA,
    sa.Column("order_id", sa.String, sa.ForeignKey("orders.order_id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("product_id", sa.String, nullable=False),
    sa.Column("item_id", sa.String, nullable=False),
    sa.Column("price", sa.Double, nullable=False),
    sa.Column("options", sa.JSON, nullable=False),
)
fulfillments = sa.Table(
    "fulfillments",
    METADATA,
    sa.Column("order_id", sa.String, sa.ForeignKey("orders.order_id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("tracking_id", sa.JSON, nullable=False),
    sa.Column("item_ids", sa.JSON, nullable=False),
)
payments = sa.Table(
    "payments",
    METADATA,
    sa.Column("order_id", sa.String, sa.ForeignKey("orders.order_id"), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("transaction_type", sa.String, nullable=False),  # payment or refund
    sa.Column("amount", sa.Double, nullable=False),
    sa.Column("payment_method_id", sa.String, nullable=False),
)

WRITES_METADATA = sa.MetaData()
"""The table durable runs add to a task's database (not part of the store's schema)."""

applied_writes = sa.Table(
    "applied_writes",
    WRITES_METADATA,
    sa.Column("key", sa.String, primary_key=True),
    sa.Column("result", sa.Text, nullable=False),
)
"""The writes made by durable runs, by idempotency key, with their results (see `tools._write`)."""


@functools.cache
def _query(table: sa.Table, columns: tuple[str, ...], key: str, *, by_ids: bool) -> sa.Select[Any]:
    """Build the query of `_rows` once per shape: building and keying a statement costs more than running it."""
    query = sa.select(*(table.c[name] for name in columns)).order_by(table.c.position)
    return query.where(table.c[key].in_(sa.bindparam("ids", expanding=True))) if by_ids else query


def _rows(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], key: str, ids: Sequence[str] | None
) -> Sequence[sa.Row[Any]]:
    """Return `columns` of a table's rows in position order: all rows, or those whose `key` is in `ids`."""
    if ids is None:
        return conn.execute(_query(table, tuple(columns), key, by_ids=False)).all()
    return conn.execute(_query(table, tuple(columns), key, by_ids=True), {"ids": list(ids)}).all()


def _records(
    conn: sa.Connection, table: sa.Table, fields: Sequence[str], key: str, ids: Sequence[str] | None
) -> list[Record]:
    """Return a table's rows as dicts of `fields` (see `_rows`)."""
    return [dict(zip(fields, row, strict=True)) for row in _rows(conn, table, fields, key, ids)]


def _children(
    conn: sa.Connection, table: sa.Table, parent: str, fields: Sequence[str], ids: Sequence[str] | None
) -> defaultdict[str, list[Record]]:
    """Return a child table's rows as dicts of `fields`, grouped by their `parent` id, in position order."""
    groups: defaultdict[str, list[Record]] = defaultdict(list)
    for row in _rows(conn, table, (parent, *fields), parent, ids):
        groups[row[0]].append(dict(zip(fields, row[1:], strict=True)))
    return groups


def _address(row: Record) -> dict[str, str]:
    return {
        "address1": row["address1"],
        "address2": row["address2"],
        "city": row["city"],
        "country": row["country"],
        "state": row["state"],
        "zip": row["zip"],
    }


def _payment_method(row: Record) -> Record:
    """A payment method in schema order: `source, id`, then `brand, last_four` or `balance`."""
    method: Record = {"source": row["source"], "id": row["payment_method_id"]}
    if row["source"] == "credit_card":
        method |= {"brand": row["brand"], "last_four": row["last_four"]}
    elif row["source"] == "gift_card":
        method["balance"] = row["balance"]
    return method


_USER_FIELDS = ("user_id", "first_name", "last_name", *ADDRESS_FIELDS, "email")
_METHOD_FIELDS = ("payment_method_id", "source", "brand", "last_four", "balance")
_ORDER_FIELDS = ("order_id", "user_id", *ADDRESS_FIELDS, "status", *OPTIONAL_ORDER_FIELDS)
_ITEM_FIELDS = ("name", "product_id", "item_id", "price", "options")
_FULFILLMENT_FIELDS = ("tracking_id", "item_ids")
_PAYMENT_FIELDS = ("transaction_type", "amount", "payment_method_id")
_VARIANT_FIELDS = ("item_id", "options", "available", "price")


def read_users(conn: sa.Connection, user_ids: Sequence[str] | None = None) -> dict[str, Record]:
    """Return users as the reference's records, by id, in database order.

    Args:
        conn: A connection to the retail database.
        user_ids: The users to read; `None` reads them all. Unknown ids are left out.

    Returns:
        Each user: `user_id, name{first_name, last_name}, address, email,
        payment_methods{id: method}, orders[order ids]`.
    """
    methods = _children(conn, payment_methods, "user_id", _METHOD_FIELDS, user_ids)
    user_orders = _children(conn, orders, "user_id", ("order_id",), user_ids)
    return {
        row["user_id"]: {
            "user_id": row["user_id"],
            "name": {"first_name": row["first_name"], "last_name": row["last_name"]},
            "address": _address(row),
            "email": row["email"],
            "payment_methods": {m["payment_method_id"]: _payment_method(m) for m in methods[row["user_id"]]},
            "orders": [order["order_id"] for order in user_orders[row["user_id"]]],
        }
        for row in _records(conn, users, _USER_FIELDS, "user_id", user_ids)
    }


def read_orders(conn: sa.Connection, order_ids: Sequence[str] | None = None) -> dict[str, Record]:
    """Return orders as the reference's records, by id, in database order.

    Args:
        conn: A connection to the retail database.
        order_ids: The orders to read; `None` reads them all. Unknown ids are left out.

    Returns:
        Each order with its items, fulfillments and payment history, and the seven
        optional fields (`None` when unset).
    """
    items = _children(conn, order_items, "order_id", _ITEM_FIELDS, order_ids)
    shipped = _children(conn, fulfillments, "order_id", _FULFILLMENT_FIELDS, order_ids)
    paid = _children(conn, payments, "order_id", _PAYMENT_FIELDS, order_ids)
    return {
        row["order_id"]: {
            "order_id": row["order_id"],
            "user_id": row["user_id"],
            "address": _address(row),
            "items": items[row["order_id"]],
            "status": row["status"],
            "fulfillments": shipped[row["order_id"]],
            "payment_history": paid[row["order_id"]],
            **{name: row[name] for name in OPTIONAL_ORDER_FIELDS},
        }
        for row in _records(conn, orders, _ORDER_FIELDS, "order_id", order_ids)
    }


def read_products(conn: sa.Connection, product_ids: Sequence[str] | None = None) -> dict[str, Record]:
    """Return products with all their variants as the reference's records, by id, in database order.

    Args:
        conn: A connection to the retail database.
        product_ids: The products to read; `None` reads them all. Unknown ids are left out.

    Returns:
        Each product: `name, product_id, variants{item_id: {item_id, options, available, price}}`.
    """
    found = _children(conn, variants, "product_id", _VARIANT_FIELDS, product_ids)
    return {
        row["product_id"]: {
            "name": row["name"],
            "product_id": row["product_id"],
            "variants": {variant["item_id"]: variant for variant in found[row["product_id"]]},
        }
        for row in _records(conn, products, ("name", "product_id"), "product_id", product_ids)
    }


# --- Single records ---------------------------------------------------------------------


def _one(records: dict[str, Record], key: str, missing: str) -> Record:
    if key not in records:
        raise RetailError(missing)
    return records[key]


def get_user(conn: sa.Connection, user_id: str) -> Record:
    """Return one user record (see `read_users`).

    Raises:
        RetailError: `User not found`, if there is no such user.
    """
    return _one(read_users(conn, [user_id]), user_id, "User not found")


def get_order(conn: sa.Connection, order_id: str) -> Record:
    """Return one order record (see `read_orders`).

    Raises:
        RetailError: `Order not found`, if there is no such order.
    """
    return _one(read_orders(conn, [order_id]), order_id, "Order not found")


def get_product(conn: sa.Connection, product_id: str) -> Record:
    """Return one product record with all its variants (see `read_products`).

    Raises:
        RetailError: `Product not found`, if there is no such product (an item id is not a product id).
    """
    return _one(read_products(conn, [product_id]), product_id, "Product not found")
